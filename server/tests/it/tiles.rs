//! The log served as tlog-tiles, checked by an independent implementation of the tiled-log
//! algorithms (the `tlog_tiles` crate, a port of Go's `sumdb/tlog`): it authenticates the tiles
//! airlock serves against the checkpoint's root hash and proves a leaf's inclusion from them.

use airlock_proto::{ChannelName, Checkpoint, Kind, PackageName, Version};
use tlog_tiles::{
    check_record, prove_record, record_hash, tree_hash, Hash, Tile, TileHashReader, TileReader,
};

use crate::harness::{http_get, http_request, World};

/// A log of 300 leaves: the root, one release, and channel statements for it.
fn log_of_300(world: &World) -> u64 {
    world.write("t-1.0.bin", b"tiled");
    world.publish("t-1.0.bin", "t", "1.0").ok();
    let name = PackageName::normalize(Kind::Wheel, "t").unwrap();
    for i in 0..298 {
        let envelope = airlock_client::statements::channel(
            ChannelName::new(&format!("c{i}")).unwrap(),
            airlock_proto::ChannelAction::Add,
            Kind::Wheel,
            name.clone(),
            Version::new("1.0").unwrap(),
            1_700_000_000,
            None,
        )
        .unwrap();
        let (status, body) = world.submit_signed_by_publisher(envelope);
        assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
    }
    world.log_size()
}

/// Reads tiles from the server over HTTP, by the paths the spec names.
struct HttpTiles<'a> {
    url: &'a str,
}

fn spec_path(tile: &Tile) -> String {
    // The crate writes Go's `tile/<height>/<level>/<N>`; tlog-tiles fixes the height at 8.
    format!("/{}", tile.path().replacen("tile/8/", "tile/", 1))
}

impl TileReader for HttpTiles<'_> {
    fn height(&self) -> u8 {
        8
    }

    fn read_tiles(&self, tiles: &[Tile]) -> Result<Vec<Vec<u8>>, tlog_tiles::Error> {
        Ok(tiles
            .iter()
            .map(|tile| {
                let (status, body) = http_get(self.url, &spec_path(tile));
                assert_eq!(status, 200, "{}", spec_path(tile));
                body
            })
            .collect())
    }

    fn save_tiles(&self, _tiles: &[Tile], _data: &[Vec<u8>]) {}
}

/// The leaves of an entry bundle: each a big-endian uint16 length and its bytes.
fn entries(mut bundle: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while !bundle.is_empty() {
        let len = usize::from(u16::from_be_bytes([bundle[0], bundle[1]]));
        out.push(bundle[2..2 + len].to_vec());
        bundle = &bundle[2 + len..];
    }
    out
}

#[test]
fn tiles_verify_with_an_independent_tlog_implementation() {
    let world = World::new(1, 1);
    let size = log_of_300(&world);
    assert_eq!(size, 300);
    let (status, note) = http_get(&world.url(), "/checkpoint");
    assert_eq!(status, 200);
    assert_eq!(note, http_get(&world.url(), "/v1/log/checkpoint").1, "/checkpoint is the log's checkpoint");
    let root = Hash(Checkpoint::from_note_unverified(&note).unwrap().root_hash.0);

    // The independent implementation recomputes the root from the tiles and authenticates them.
    let tiles = HttpTiles { url: &world.url() };
    let reader = TileHashReader::new(size, root, &tiles);
    assert_eq!(tree_hash(size, &reader).unwrap(), root);

    // Entries: a full bundle and the partial one at the right edge hold the exact leaves.
    let url = world.url();
    let (_, full) = http_get(&url, "/tile/entries/000");
    let (_, partial) = http_get(&url, "/tile/entries/001.p/44");
    let mut leaves = entries(&full);
    assert_eq!(leaves.len(), 256);
    leaves.extend(entries(&partial));
    assert_eq!(leaves.len(), 300);
    let (_, page) = http_get(&url, "/v1/log/leaves?start=0&end=300");
    let page: airlock_proto::api::LeavesPage = airlock_proto::decode("page", &page, 1 << 24).unwrap();
    assert_eq!(page.leaves.iter().map(|l| l.to_vec()).collect::<Vec<_>>(), leaves);

    // An inclusion proof built from the tiles alone proves leaf 123 against the checkpoint.
    let proof = prove_record(size, 123, &reader).unwrap();
    check_record(&proof, size, root, 123, record_hash(&leaves[123])).unwrap();
    assert!(check_record(&proof, size, root, 123, record_hash(&leaves[124])).is_err());
}

#[test]
fn tiles_are_immutable_and_beyond_the_log_is_404() {
    let world = World::new(1, 1);
    let size = log_of_300(&world);
    let head = |path: &str| {
        use std::io::{Read, Write};
        let host = world.url().trim_start_matches("http://").to_owned();
        let mut stream = std::net::TcpStream::connect(&host).unwrap();
        write!(stream, "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").unwrap();
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).unwrap();
        String::from_utf8_lossy(&raw).to_lowercase()
    };
    assert!(head("/tile/0/000").contains("cache-control: public, max-age=31536000, immutable"));
    assert_eq!(http_get(&world.url(), "/tile/0/000").1.len(), 256 * 32);
    assert_eq!(http_get(&world.url(), "/tile/0/001.p/44").1.len(), 44 * 32);
    assert_eq!(http_get(&world.url(), "/tile/1/000.p/1").1.len(), 32);
    // Level-1 hash 0 is the root of the first 256 leaves: the level-0 tile's subtree hash.
    let level0 = http_get(&world.url(), "/tile/0/000").1;
    assert_eq!(Tile::subtree_hash(&level0).0.to_vec(), http_get(&world.url(), "/tile/1/000.p/1").1);
    assert_eq!(size, 300);
    for beyond in
        ["/tile/0/001", "/tile/0/001.p/45", "/tile/entries/001", "/tile/1/000.p/2", "/tile/0/x001/000"]
    {
        assert_eq!(http_get(&world.url(), beyond).0, 404, "{beyond}");
    }
    for malformed in ["/tile/0/1", "/tile/0/000.p/256", "/tile/9/000"] {
        assert_eq!(http_get(&world.url(), malformed).0, 404, "{malformed}");
    }
    assert_eq!(http_request("POST", &world.url(), "/tile/0/000", None, b"").0, 405);
}
