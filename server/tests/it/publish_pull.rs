//! The main path: publish, approve, submit, pull by name and by digest, verify.

use airlock_proto::Envelope;

use crate::harness::{http_get, http_request, World};

fn random_bytes(len: usize) -> Vec<u8> {
    (0..len).map(|_| rand::random::<u8>()).collect()
}

#[test]
fn publish_then_pull_by_name_and_digest_returns_identical_bytes() {
    let world = World::new(1, 1);
    let bytes = random_bytes(300_000);
    world.write("demo_pkg-1.0.0.bin", &bytes);
    world.publish("demo_pkg-1.0.0.bin", "Demo_Pkg", "1.0.0").ok();
    // A cold pull says how long fetching and verifying the leaves took, and saving them.
    world
        .pull("demo-pkg==1.0.0", "by-name.bin")
        .ok()
        .says("verified log leaves 0..2 against the pinned root: fetched and verified in")
        .says("leaves/s), state saved in");
    assert_eq!(std::fs::read(world.path("by-name.bin")).unwrap(), bytes);
    let digest = airlock_proto::Digest::of(&bytes).to_string();
    let run = world
        .cli(&[
            "--json",
            "pull",
            &digest,
            "--server",
            &world.url(),
            "--root",
            "root.cbor",
            "-o",
            "by-digest.bin",
        ])
        .ok();
    assert_eq!(std::fs::read(world.path("by-digest.bin")).unwrap(), bytes);
    let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(report["name"], "demo-pkg");
    assert_eq!(report["files"][0]["blake3"], digest);
    world.cli(&["verify", "by-digest.bin", "--digest", &digest]).ok();
    let other = airlock_proto::Digest::of(b"other").to_string();
    world.cli(&["verify", "by-digest.bin", "--digest", &other]).code(3).says("hashes to");
}

#[test]
fn threshold_two_sign_only_approve_submit() {
    let world = World::new(3, 2);
    world.write("tree/pyproject.toml", b"[project]\nname = \"Comfy-Pack\"\nversion = \"2.0.0\"\n");
    world.write("tree/__init__.py", b"NODE_CLASS_MAPPINGS = {}\n");
    world.cli(&["pack", "tree", "-o", "pack.zip"]).ok();
    let url = world.url();
    let token = world.publish_token.clone();
    world.sign_only("pack.zip", "node", "Comfy-Pack", "2.0.0", "stmt.cbor").ok();
    // One signature does not meet a threshold of 2.
    world.cli(&["submit", "stmt.cbor", "--server", &url, "--token", &token]).code(1).says("threshold");
    assert_eq!(world.log_size(), 1);
    // A second publisher signs a copy on "another machine"; the copies are merged.
    std::fs::copy(world.path("stmt.cbor"), world.path("copy.cbor")).unwrap();
    // A node statement travels with its scan report, which an approver is shown.
    std::fs::copy(world.path("stmt.cbor.report.json"), world.path("copy.cbor.report.json")).unwrap();
    world.cli(&["approve", "copy.cbor", "--key", "keys/pub2.key", "--root", "root.cbor"]).ok();
    world.cli(&["merge", "stmt.cbor", "copy.cbor", "-o", "merged.cbor"]).ok();
    world.cli(&["submit", "merged.cbor", "--server", &url, "--token", &token, "--root", "root.cbor"]).ok();
    assert_eq!(world.log_size(), 2);
    world
        .cli(&[
            "pull",
            "comfy-pack==2.0.0",
            "--kind",
            "node",
            "--server",
            &url,
            "--root",
            "root.cbor",
            "-o",
            "out.zip",
        ])
        .ok();
    assert_eq!(std::fs::read(world.path("out.zip")).unwrap(), std::fs::read(world.path("pack.zip")).unwrap());
}

#[test]
fn duplicate_signature_does_not_meet_threshold_of_two() {
    let world = World::new(2, 2);
    world.write("a-1.0.bin", b"wheel");
    let url = world.url();
    let token = world.publish_token.clone();
    world.sign_only("a-1.0.bin", "wheel", "a", "1.0", "s.cbor").ok();
    let mut envelope = Envelope::from_bytes(&std::fs::read(world.path("s.cbor")).unwrap()).unwrap();
    envelope.signatures.push(envelope.signatures[0].clone());
    std::fs::write(world.path("dup.cbor"), envelope.to_bytes().unwrap()).unwrap();
    world
        .cli(&["submit", "dup.cbor", "--server", &url, "--token", &token])
        .code(1)
        .says("422")
        .says("signed more than once");
    assert_eq!(world.log_size(), 1);
}

#[test]
fn unsigned_and_wrongly_signed_releases_refused_and_nothing_logged() {
    let world = World::new(1, 1);
    world.write("b-1.0.bin", b"wheel b");
    let url = world.url();
    let token = world.publish_token.clone();
    world.sign_only("b-1.0.bin", "wheel", "b", "1.0", "s.cbor").ok();
    let signed = Envelope::from_bytes(&std::fs::read(world.path("s.cbor")).unwrap()).unwrap();
    let mut unsigned = signed.clone();
    unsigned.signatures.clear();
    let mut wrong = signed.clone();
    wrong.signatures[0].sig.0[0] ^= 1;
    for (name, envelope) in [("unsigned", unsigned), ("wrong", wrong)] {
        let (status, body) =
            http_request("POST", &url, "/v1/statements", Some(&token), &envelope.to_bytes().unwrap());
        assert_eq!(status, 422, "{name}: {}", String::from_utf8_lossy(&body));
        assert!(String::from_utf8_lossy(&body).contains("publisher threshold not met"), "{name}");
    }
    assert_eq!(world.log_size(), 1);
    // A key the root does not list is refused by the signing tool itself.
    world.cli(&["key", "generate", "stranger", "--dir", "keys"]).ok();
    world
        .cli(&["approve", "s.cbor", "--key", "keys/stranger.key", "--root", "root.cbor"])
        .code(1)
        .says("not a publisher key");
}

#[test]
fn name_version_cannot_be_republished_with_other_bytes() {
    let world = World::new(1, 1);
    world.write("v1/c-1.0.bin", b"first bytes");
    world.write("v2/c-1.0.bin", b"other bytes");
    world.publish("v1/c-1.0.bin", "c", "1.0").ok();
    world.publish("v2/c-1.0.bin", "c", "1.0").code(1).says("409").says("already logged");
    assert_eq!(world.log_size(), 2);
    world.pull("c==1.0", "c.bin").ok();
    assert_eq!(std::fs::read(world.path("c.bin")).unwrap(), b"first bytes");
}

#[test]
fn writes_need_a_publish_token() {
    let world = World::new(1, 1);
    world.write("d-1.0.bin", b"d");
    let url = world.url();
    let digest = airlock_proto::Digest::of(b"d").to_hex();
    let path = format!("/v1/blobs/blake3/{digest}");
    assert_eq!(http_request("PUT", &url, &path, None, b"d").0, 401);
    assert_eq!(http_request("PUT", &url, &path, Some("alk_not-a-real-token"), b"d").0, 401);
    assert_eq!(http_request("PUT", &url, &path, Some(&world.read_token.clone()), b"d").0, 403);
    assert_eq!(http_request("POST", &url, "/v1/statements", None, b"x").0, 401);
    assert_eq!(http_request("POST", &url, "/v1/statements", Some(&world.read_token.clone()), b"x").0, 403);
    // Nothing was stored: the blob is unknown even to a publisher.
    assert_eq!(http_request("GET", &url, &path, Some(&world.publish_token.clone()), b"").0, 404);
    world.publish_to(&url, None, "d-1.0.bin", "wheel", "d", "1.0", &[]).code(1).says("401");
    assert_eq!(world.log_size(), 1);
}

#[test]
fn upload_with_wrong_digest_is_400_and_leaves_nothing() {
    let world = World::new(1, 1);
    let url = world.url();
    let claimed = airlock_proto::Digest::of(b"claimed").to_hex();
    let (status, _) = http_request(
        "PUT",
        &url,
        &format!("/v1/blobs/blake3/{claimed}"),
        Some(&world.publish_token.clone()),
        b"actual",
    );
    assert_eq!(status, 400);
    assert_eq!(std::fs::read_dir(world.path("data/tmp")).unwrap().count(), 0);
    let blob_files = walk_files(&world.path("data/blobs"));
    assert!(blob_files.is_empty(), "{blob_files:?}");
}

#[test]
fn unreferenced_blob_is_hidden_from_anonymous_readers() {
    let world = World::new(1, 1);
    let url = world.url();
    let digest = airlock_proto::Digest::of(b"unapproved").to_hex();
    let path = format!("/v1/blobs/blake3/{digest}");
    assert_eq!(http_request("PUT", &url, &path, Some(&world.publish_token.clone()), b"unapproved").0, 201);
    assert_eq!(http_get(&url, &path).0, 404);
    let (status, body) = http_request("GET", &url, &path, Some(&world.publish_token.clone()), b"");
    assert_eq!((status, body.as_slice()), (200, b"unapproved".as_slice()));
}

#[test]
fn range_requests_and_cache_headers() {
    let world = World::new(1, 1);
    let bytes = random_bytes(10_000);
    world.write("e-1.0.bin", &bytes);
    world.publish("e-1.0.bin", "e", "1.0").ok();
    let digest = airlock_proto::Digest::of(&bytes);
    let url = world.url();
    let raw = raw_get(&url, &format!("/v1/blobs/blake3/{}", digest.to_hex()), "Range: bytes=100-199\r\n");
    assert!(raw.0.starts_with("HTTP/1.1 206"), "{}", raw.0);
    let head = raw.0.to_lowercase();
    assert!(head.contains("content-range: bytes 100-199/10000"), "{head}");
    assert!(head.contains("content-length: 100"));
    assert!(head.contains(&format!("etag: \"{digest}\"")));
    assert!(head.contains("immutable"));
    assert_eq!(raw.1, bytes[100..200]);
    let raw = raw_get(&url, &format!("/v1/blobs/blake3/{}", digest.to_hex()), "Range: bytes=20000-\r\n");
    assert!(raw.0.starts_with("HTTP/1.1 416"), "{}", raw.0);
}

/// Small ranges are read in one go and sent from memory, larger ones streamed: both paths give
/// exactly the logged bytes, whole or in part, and the second GET (from the remembered record)
/// the same as the first.
#[test]
fn small_and_large_blobs_and_ranges_are_served_byte_for_byte() {
    let world = World::new(1, 1);
    let url = world.url();
    for (name, size) in [("small", 11 * 1024), ("large", 300_000)] {
        let bytes = random_bytes(size);
        world.write(&format!("{name}.bin"), &bytes);
        world.publish(&format!("{name}.bin"), name, "1.0").ok();
        let path = format!("/v1/blobs/blake3/{}", airlock_proto::Digest::of(&bytes).to_hex());
        for _ in 0..2 {
            assert_eq!(http_get(&url, &path), (200, bytes.clone()), "{name}");
        }
        for (start, end) in [(0, 0), (1, size - 2), (size / 3, size - 1), (70_000.min(size - 1), size - 1)] {
            let raw = raw_get(&url, &path, &format!("Range: bytes={start}-{end}\r\n"));
            assert!(raw.0.starts_with("HTTP/1.1 206"), "{name} {start}-{end}: {}", raw.0);
            assert_eq!(raw.1, bytes[start..=end], "{name} {start}-{end}");
        }
    }
}

/// Bytes this process has had read from storage (page-cache hits not counted). The server runs
/// in the test's process, and nextest runs each test in a process of its own.
fn read_from_storage() -> Option<u64> {
    let io = std::fs::read_to_string("/proc/self/io").ok()?;
    io.lines().find_map(|line| line.strip_prefix("read_bytes: ")).and_then(|n| n.trim().parse().ok())
}

/// A blob past the size stored directly (4 MiB) is served exactly, whole and in ranges that
/// start mid-page and cross buffer boundaries. Its first GET reads the part the page cache does
/// not hold from the device, leaving it uncached; the second reads it through the cache; from
/// the third on it comes from memory.
#[test]
fn a_large_blob_is_read_directly_once_then_through_the_page_cache() {
    let world = World::new(1, 1);
    let url = world.url();
    let size = 6 * 1024 * 1024 + 4097;
    let bytes = random_bytes(size);
    world.write("large.bin", &bytes);
    world.publish("large.bin", "large", "1.0").ok();
    let path = format!("/v1/blobs/blake3/{}", airlock_proto::Digest::of(&bytes).to_hex());
    // Written directly, so not in the page cache: the whole buffers after the first 4 MiB (the
    // 4097-byte tail went through the page cache).
    let cold = (size - 4097 - (4 << 20)) as u64;
    let mut read = Vec::new();
    for _ in 0..3 {
        let before = read_from_storage();
        assert_eq!(http_get(&url, &path), (200, bytes.clone()));
        read.extend(before.zip(read_from_storage()).map(|(before, after)| after - before));
    }
    if let [first, second, third] = read[..] {
        assert!(first >= cold && second >= cold, "the cold part is read from the device twice: {read:?}");
        assert!(third < cold / 2, "the third GET is served from the page cache: {read:?}");
    } else {
        eprintln!("the kernel does not count bytes read from storage: only the bytes were checked");
    }
    let mib = 1 << 20;
    for (start, end) in
        [(4095, size - 1), (mib - 1, 5 * mib + 1), (5 * mib + 1, size - 2), (size - 4097, size - 1)]
    {
        let raw = raw_get(&url, &path, &format!("Range: bytes={start}-{end}\r\n"));
        assert!(raw.0.starts_with("HTTP/1.1 206"), "{start}-{end}: {}", raw.0);
        assert!(raw.1 == bytes[start..=end], "{start}-{end}");
    }
}

#[test]
fn path_traversal_in_urls_is_refused() {
    let world = World::new(1, 1);
    let url = world.url();
    for path in [
        "/v1/blobs/blake3/../../etc/passwd",
        "/v1/blobs/blake3/..%2f..%2fetc",
        "/v1/blobs/blake3/ZZ",
        "/files/blake3/../..",
    ] {
        let (status, _) = http_get(&url, path);
        assert!(status == 400 || status == 404, "{path}: {status}");
    }
}

pub(crate) fn raw_get(base: &str, path: &str, extra: &str) -> (String, Vec<u8>) {
    use std::io::{Read, Write};
    let host = base.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(host).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}Connection: close\r\n\r\n").unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let split = response.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    (String::from_utf8_lossy(&response[..split]).into_owned(), response[split..].to_vec())
}

/// Every regular file under `dir`.
pub fn walk_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return out };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk_files(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[test]
fn a_statement_over_the_64_kib_entry_limit_is_refused_at_submit() {
    let world = World::new(1, 1);
    let before = world.log_size();
    // The caps keep every valid statement under the limit, so the CLI refuses to build one over
    // them, naming the cap...
    world.write("big-1.0.bin", b"a small file with a large statement");
    let line = format!("dep{}", "x".repeat(3_990));
    let mut extra = Vec::new();
    for _ in 0..5 {
        extra.extend(["--dependency", line.as_str()]);
    }
    world
        .publish_to(&world.url(), Some(&world.publish_token), "big-1.0.bin", "wheel", "big", "1.0", &extra)
        .code(1)
        .says("over the cap of 16384");
    // ...and the server refuses any entry over the limit, whatever it holds, naming the limit.
    let (status, body) =
        world.submit_signed_by_publisher(Envelope::unsigned("airlock.release.v2", vec![0xa0; 70_000]));
    assert_eq!(status, 422, "{}", String::from_utf8_lossy(&body));
    assert!(
        String::from_utf8_lossy(&body).contains("entry limit of 65535 bytes"),
        "{}",
        String::from_utf8_lossy(&body)
    );
    assert_eq!(world.log_size(), before, "nothing was logged");
}

/// A small logged blob is read once and then answered from memory (`http/small_blobs.rs`): bytes
/// damaged on disk after that first read do not reach clients. Bytes that were already damaged
/// at the first read are served as read but not remembered, so the repaired file is served next.
#[test]
fn small_blobs_are_answered_from_memory_only_once_read_intact() {
    let world = World::new(1, 1);
    let url = world.url();
    let file = |bytes: &[u8]| {
        let hex = airlock_proto::Digest::of(bytes).to_hex();
        world.path(&format!("data/blobs/{}/{hex}", &hex[..2]))
    };
    let path = |bytes: &[u8]| format!("/v1/blobs/blake3/{}", airlock_proto::Digest::of(bytes).to_hex());
    let flipped = |bytes: &[u8]| bytes.iter().map(|b| b ^ 0x5a).collect::<Vec<u8>>();

    let read_first = random_bytes(11 * 1024);
    world.write("first.bin", &read_first);
    world.publish("first.bin", "first", "1.0").ok();
    assert_eq!(http_get(&url, &path(&read_first)), (200, read_first.clone()));
    std::fs::write(file(&read_first), flipped(&read_first)).unwrap();
    assert_eq!(http_get(&url, &path(&read_first)), (200, read_first.clone()), "damage after the first read");
    let raw = raw_get(&url, &path(&read_first), "Range: bytes=100-199\r\n");
    assert!(raw.0.starts_with("HTTP/1.1 206"), "{}", raw.0);
    assert_eq!(raw.1, read_first[100..200]);

    let damaged_first = random_bytes(11 * 1024);
    world.write("second.bin", &damaged_first);
    world.publish("second.bin", "second", "1.0").ok();
    std::fs::write(file(&damaged_first), flipped(&damaged_first)).unwrap();
    assert_eq!(http_get(&url, &path(&damaged_first)), (200, flipped(&damaged_first)), "served as read");
    std::fs::write(file(&damaged_first), &damaged_first).unwrap();
    assert_eq!(
        http_get(&url, &path(&damaged_first)),
        (200, damaged_first.clone()),
        "damaged bytes remembered"
    );

    // HEAD and a revalidation answer from the record, without reading the file.
    let never_read = random_bytes(11 * 1024);
    world.write("third.bin", &never_read);
    world.publish("third.bin", "third", "1.0").ok();
    std::fs::remove_file(file(&never_read)).unwrap();
    let (status, body) = http_request("HEAD", &url, &path(&never_read), None, b"");
    assert_eq!((status, body.len()), (200, 0));
    let etag = format!("If-None-Match: \"{}\"\r\n", airlock_proto::Digest::of(&never_read));
    let raw = raw_get(&url, &path(&never_read), &etag);
    assert!(raw.0.starts_with("HTTP/1.1 304"), "{}", raw.0);
}
