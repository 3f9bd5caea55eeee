//! A signed log written straight into a data directory, for the scale figures: the root, then
//! releases signed by the world's publisher (signing spread over the cores), the tree nodes, the
//! digest index and a checkpoint signed by the server's log key, appended in large batches
//! through the store as `airlockd` itself appends. No server runs meanwhile; the next
//! `airlockd serve` replays and verifies every leaf like any stored log.

use std::time::Instant;

use airlock_keys::{read_secret_key, sign_envelope, sign_note};
use airlock_proto::merkle::{leaf_hash, nodes_completed_by_append, MemoryTree};
use airlock_proto::{Checkpoint, Clock, FileName, Hash32, Kind, Metadata, Note, PackageName, Version};
use airlock_server::registry::LOG_KEY_FILE;
use airlock_server::store::{Expected, LeafBatch, Store};
use anyhow::{ensure, Context};
use sha2::Digest as _;

use super::{now, World};

/// The name of the `i`th generated release (1-based), as `airlock pull` asks for it.
pub fn release_name(i: usize) -> String {
    format!("bench-pkg-{i:07}")
}

/// Leaves appended per store batch.
const BATCH: usize = 20_000;

/// Writes the root and `count` releases of one small file into `world`'s empty data directory.
pub fn generate_log(world: &World, count: usize) -> anyhow::Result<()> {
    let started = Instant::now();
    let store = Store::open(&world.data, Clock::system())?;
    ensure!(store.log_size()? == 0, "the data directory already holds a log");
    let bytes = bytes::Bytes::from_static(b"a small release");
    let digests = airlock_client::publish::FileDigests {
        size: bytes.len() as u64,
        blake3: airlock_proto::Digest::of(&bytes),
        sha256: airlock_proto::Sha256(sha2::Sha256::digest(&bytes).into()),
    };
    let mut ingest = store.ingest(Expected::address(digests.blake3, 1 << 10))?;
    ingest.write(bytes)?;
    ingest.finish()?;

    let log_key = read_secret_key(&world.data.join(LOG_KEY_FILE)).context("read the log key")?;
    let root = std::fs::read(&world.root_file)?;
    let mut tree = MemoryTree::new();
    let mut next = 1usize;
    let mut pending = vec![(root, Vec::new())];
    while !pending.is_empty() || next <= count {
        let end = (next + BATCH).min(count + 1);
        pending.extend(sign_releases(world, next..end, digests)?);
        next = end;
        let mut batch = Vec::with_capacity(pending.len());
        for (leaf, digests) in pending.drain(..) {
            let index = tree.size();
            let hash = leaf_hash(&leaf);
            let nodes = match nodes_completed_by_append(&tree, index, hash) {
                Ok(nodes) => nodes,
                Err(never) => match never {},
            };
            tree.push(hash);
            batch.push(LeafBatch { index, leaf, nodes, digests });
        }
        let checkpoint = Checkpoint {
            origin: "bench.airlock".to_owned(),
            size: tree.size(),
            root_hash: Hash32(tree.root()),
            issued_at: now(),
            expires_at: now() + 86_400,
        };
        let mut note = Note::new(checkpoint.to_text())?;
        sign_note(&mut note, "bench.airlock", &log_key)?;
        store.append(&batch, &note.to_bytes())?;
        if tree.size() % 100_000 < BATCH as u64 {
            eprintln!(
                "  generated {} leaves, {:.0}/s",
                tree.size(),
                tree.size() as f64 / started.elapsed().as_secs_f64()
            );
        }
    }
    Ok(())
}

/// Release leaves `range` (1-based names), signed across the machine's cores, each with the
/// digests its leaf indexes.
fn sign_releases(
    world: &World,
    range: std::ops::Range<usize>,
    digests: airlock_client::publish::FileDigests,
) -> anyhow::Result<Vec<(Vec<u8>, Vec<airlock_proto::Digest>)>> {
    let one = |i: usize| -> anyhow::Result<(Vec<u8>, Vec<airlock_proto::Digest>)> {
        let name = release_name(i);
        let file = format!("bench_pkg_{i:07}-1.0-py3-none-any.whl");
        let mut envelope = airlock_client::publish::release_envelope(
            Kind::Wheel,
            PackageName::new(Kind::Wheel, &name)?,
            Version::new("1.0")?,
            (FileName::new(&file)?, digests),
            Metadata::default(),
            now(),
        )?;
        sign_envelope(&mut envelope, &world.publisher);
        Ok((envelope.to_bytes()?, vec![digests.blake3]))
    };
    let ids: Vec<usize> = range.collect();
    let mut out = Vec::with_capacity(ids.len());
    for part in
        airlock_proto::parallel::map_parts(&ids, |ids| ids.iter().map(|&i| one(i)).collect::<Vec<_>>())
    {
        for signed in part.ok_or_else(|| anyhow::anyhow!("a signing thread panicked"))? {
            out.push(signed?);
        }
    }
    Ok(out)
}
