//! The registry fold saved beside the database (`<data>/fold.snapshot`, sealed), so that a start
//! resumes it and replays only the leaves logged after it instead of every signature of the log.
//!
//! A snapshot is used only when its seal matches, it decodes, `airlock_keys` resumes it (the root
//! chain walked again from the pinned root), and its frontier equals the stored tree's at its
//! size: it is a fold of this very log's prefix. Anything else is refused, with the reason
//! logged, and the log is replayed from leaf 0. It is written at shutdown, after a start that
//! replayed many leaves, and periodically while the log grows; each write is atomic and durable.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use airlock_proto::api::{seal, unseal, LogSnapshot, MAX_SNAPSHOT_BYTES, SEAL_BYTES, SNAPSHOT_FORMAT};
use airlock_proto::merkle::Frontier;
use anyhow::Context;

use crate::registry::Registry;
use crate::store::Store;

/// The snapshot's file name in the data directory.
pub const SNAPSHOT_FILE: &str = "fold.snapshot";

/// A start that replays at least this many leaves writes a snapshot once it is open.
pub const SNAPSHOT_AFTER_REPLAY: u64 = 1_000;

/// Where the snapshot lives.
pub fn path(data: &Path) -> PathBuf {
    data.join(SNAPSHOT_FILE)
}

/// Reads the snapshot and checks it belongs to the stored log: `Ok(None)` when there is none,
/// `Err` naming why it was refused.
pub fn read(data: &Path, store: &Store) -> anyhow::Result<Option<LogSnapshot>> {
    let file = path(data);
    if !file.exists() {
        return Ok(None);
    }
    let bytes = airlock_client::fsutil::read_capped(&file, (MAX_SNAPSHOT_BYTES + SEAL_BYTES) as u64)?;
    let body = unseal(&bytes)?;
    let snapshot = LogSnapshot::from_bytes(body)?;
    anyhow::ensure!(
        snapshot.format == SNAPSHOT_FORMAT,
        "it is format {}, this build reads format {SNAPSHOT_FORMAT}",
        snapshot.format
    );
    let size = snapshot.frontier.size();
    let stored = store.log_size()?;
    anyhow::ensure!(size <= stored, "it holds {size} leaves, the stored log {stored}");
    let tree = Frontier::from_source(store, size)?;
    anyhow::ensure!(
        tree == snapshot.frontier,
        "its tree of {size} leaves is not the stored log's (another log, or a rewritten one)"
    );
    Ok(Some(snapshot))
}

/// Writes the snapshot atomically (temp file, fsync, rename, fsync of the directory).
pub fn write(data: &Path, snapshot: &LogSnapshot) -> anyhow::Result<()> {
    let file = path(data);
    let body = snapshot.to_bytes()?;
    airlock_client::fsutil::write_atomic(&file, &seal(&body), 0o600)
        .with_context(|| format!("cannot write {}", file.display()))?;
    tracing::info!(size = snapshot.frontier.size(), bytes = body.len(), "fold snapshot written");
    Ok(())
}

/// Logs why a snapshot was refused; the caller replays the whole log.
pub fn refused(data: &Path, why: &anyhow::Error) {
    tracing::warn!(
        file = %path(data).display(),
        reason = format!("{why:#}"),
        "the fold snapshot was refused; replaying the whole log"
    );
}

/// How often a running server saves the fold when the log has grown.
pub const SNAPSHOT_INTERVAL: Duration = Duration::from_secs(600);

/// Saves the fold when the log has grown since the last save.
#[derive(Debug)]
pub struct Saver {
    saved: AtomicU64,
}

impl Saver {
    /// A saver that counts the log as saved at `size` leaves.
    pub fn new(size: u64) -> Self {
        Self { saved: AtomicU64::new(size) }
    }

    /// Writes the snapshot if the log grew since the last write. Blocking.
    pub fn save_if_grown(&self, data: &Path, registry: &Registry) -> anyhow::Result<()> {
        let size = registry.size();
        if self.saved.load(Ordering::SeqCst) == size {
            return Ok(());
        }
        let snapshot = registry.snapshot()?;
        write(data, &snapshot)?;
        self.saved.store(snapshot.frontier.size(), Ordering::SeqCst);
        Ok(())
    }
}
