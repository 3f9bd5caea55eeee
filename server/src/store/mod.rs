//! Storage: RocksDB for metadata, the log and indexes; a blob backend for blob bytes.
//!
//! Only this module touches RocksDB or the blob directory (an architecture test checks it). The
//! rest of the server holds a [`Store`]: the log (leaves, tree nodes, checkpoint), blob records
//! and reads, the one ingest path, and tokens. Every logical change is one `WriteBatch` written
//! with sync, so an acknowledged change survives a crash and a partial one is never visible.

mod adopt;
mod backend;
pub mod blob_store;
#[cfg(test)]
mod conformance;
mod db;
mod fs;
mod ingest;
mod removal;
mod s3;

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::{Arc, PoisonError, RwLock};

use airlock_proto::merkle::{Hash, NodeSource};
use airlock_proto::{Clock, Digest};
use anyhow::Context;

pub use adopt::hash_reader;
pub use backend::{BlobBackend, BlobRead, BlobStage, ChunkRead, Parked, StoreUnavailable, StreamRead};
pub use db::{BlobRecord, LeafBatch, TokenRecord};
pub use fs::FsBackend;
pub use ingest::{Checked, Expected, Ingest, IngestError, StoredBlob};
pub use removal::Removable;
pub use s3::S3Backend;

use db::Db;

/// RocksDB's memory by default, in MiB.
pub const DEFAULT_DB_MEMORY_MIB: u64 = 64;

/// The database directory inside a data directory.
const DB_DIR: &str = "db";

/// Most visible blob records remembered (about 100 bytes each); the memory is emptied when full.
const MAX_VISIBLE: usize = 1 << 17;

/// What the store knows of a blob a reader asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlobLookup {
    /// Stored and referenced by a logged release: anyone may read it.
    Visible(BlobRecord),
    /// Stored, but no logged release references it yet: only a publisher may read it.
    Unlogged(BlobRecord),
    /// Not stored here; `referenced` when a logged release names it (a mirror that does not
    /// carry it).
    Absent { referenced: bool },
}

/// The server's storage: the database and the blob backend.
pub struct Store {
    db: Db,
    blobs: Box<dyn BlobBackend>,
    clock: Clock,
    /// Records of blobs that are stored and referenced by a logged release. Both facts last
    /// (garbage collection removes only unreferenced blobs; a purge of a revoked release's blob
    /// takes its entry out), so a blob GET answers from here without reading RocksDB.
    visible: RwLock<HashMap<Digest, BlobRecord>>,
    /// Shared by each commit from placing a blob's bytes to recording them; exclusive while a
    /// blob is judged and removed (`removal.rs`).
    removal: RwLock<()>,
    /// Whether other front ends keep their blobs in the same bucket.
    sharing: blob_store::Sharing,
    /// The blobs are in an object store, not on a local disk.
    remote: bool,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store").field("blobs", &self.blobs).finish_non_exhaustive()
    }
}

impl Store {
    /// Opens the store in a data directory: the database (which takes the directory's lock, so
    /// a second process fails here, before touching anything) and the blob backend: the bucket
    /// its `blob-store.toml` names, else the filesystem.
    pub fn open(data: &Path, clock: Clock) -> anyhow::Result<Arc<Self>> {
        Self::open_with_memory(data, clock, DEFAULT_DB_MEMORY_MIB)
    }

    /// `open`, with RocksDB's memory bounded to `db_memory_mib` MiB (its block cache, which its
    /// memtables are charged to).
    pub fn open_with_memory(data: &Path, clock: Clock, db_memory_mib: u64) -> anyhow::Result<Arc<Self>> {
        let db = Db::open(&data.join(DB_DIR), db_memory_mib << 20)?;
        let bucket = blob_store::read(data)?;
        let sharing = bucket.as_ref().map_or(blob_store::Sharing::Own, blob_store::S3Settings::sharing);
        let remote = bucket.is_some();
        let blobs: Box<dyn BlobBackend> = match bucket {
            Some(bucket) => Box::new(S3Backend::open(&bucket).with_context(|| {
                format!("cannot open the blob store of {} ({})", data.display(), blob_store::BLOB_STORE_FILE)
            })?),
            None => Box::new(
                FsBackend::open(data)
                    .with_context(|| format!("cannot open blob store in {}", data.display()))?,
            ),
        };
        Ok(Arc::new(Self {
            db,
            blobs,
            clock,
            visible: RwLock::default(),
            removal: RwLock::default(),
            sharing,
            remote,
        }))
    }

    /// Whether the blobs are in an object store reached over the network (a read waits for
    /// its answer) rather than on a local disk.
    pub fn blobs_are_remote(&self) -> bool {
        self.remote
    }

    /// Whether other front ends keep their blobs in the same bucket.
    pub fn sharing(&self) -> blob_store::Sharing {
        self.sharing
    }

    fn backend(&self) -> &dyn BlobBackend {
        self.blobs.as_ref()
    }

    fn clock(&self) -> &Clock {
        &self.clock
    }

    // The log.

    /// Number of leaves in the log.
    pub fn log_size(&self) -> anyhow::Result<u64> {
        self.db.log_size()
    }

    /// Leaf `index`'s exact bytes.
    pub fn leaf(&self, index: u64) -> anyhow::Result<Option<Vec<u8>>> {
        self.db.leaf(index)
    }

    /// Every leaf `[0, size)`, in order; a missing one is an error naming it.
    pub fn all_leaves(&self) -> anyhow::Result<Vec<Vec<u8>>> {
        let size = self.log_size()?;
        (0..size)
            .map(|index| self.leaf(index)?.with_context(|| format!("log leaf {index} missing from storage")))
            .collect()
    }

    /// Leaves `[start, end)`, stopping early once `byte_cap` bytes are collected (at least one
    /// leaf is returned when any exists).
    pub fn leaves(&self, start: u64, end: u64, byte_cap: usize) -> anyhow::Result<Vec<Vec<u8>>> {
        self.db.leaves(start, end, byte_cap)
    }

    /// The newest signed checkpoint.
    pub fn checkpoint(&self) -> anyhow::Result<Option<Vec<u8>>> {
        self.db.checkpoint()
    }

    /// Replaces the checkpoint (a newer one for the same tree).
    pub fn put_checkpoint(&self, checkpoint: &[u8]) -> anyhow::Result<()> {
        self.db.put_checkpoint(checkpoint)
    }

    /// Appends leaves with everything they change and the checkpoint that covers them, durably,
    /// in one batch: all of them become visible together or none does.
    pub fn append(&self, changes: &[LeafBatch], checkpoint: &[u8]) -> anyhow::Result<()> {
        self.db.append(changes, checkpoint)
    }

    /// Whether a logged release references a blob (which makes it public).
    pub fn is_referenced(&self, digest: &Digest) -> anyhow::Result<bool> {
        Ok(self.db.digest_leaf(digest)?.is_some())
    }

    // Blobs.

    /// The record of a stored blob.
    pub fn blob(&self, digest: &Digest) -> anyhow::Result<Option<BlobRecord>> {
        self.db.blob(digest)
    }

    /// How many blobs are recorded, and their bytes (a scan of every record).
    pub fn blob_totals(&self) -> anyhow::Result<(u64, u64)> {
        self.db.blob_totals()
    }

    /// Every recorded blob digest.
    pub fn blob_digests(&self) -> anyhow::Result<Vec<Digest>> {
        self.db.blob_digests()
    }

    /// What a reader may learn of a blob. A blob both stored and referenced by a logged release
    /// is remembered once found (both facts last until a purge), so that answer reads no RocksDB.
    pub fn lookup_blob(&self, digest: &Digest) -> anyhow::Result<BlobLookup> {
        if let Some(record) = self.visible.read().unwrap_or_else(PoisonError::into_inner).get(digest) {
            return Ok(BlobLookup::Visible(record.clone()));
        }
        // Under the commit side of the removal lock, so that a purge cannot come between the
        // reads and the remembering.
        let _commit = self.commit_guard();
        let referenced = self.is_referenced(digest)?;
        let Some(record) = self.blob(digest)? else { return Ok(BlobLookup::Absent { referenced }) };
        if !referenced {
            return Ok(BlobLookup::Unlogged(record));
        }
        let mut visible = self.visible.write().unwrap_or_else(PoisonError::into_inner);
        if visible.len() >= MAX_VISIBLE {
            visible.clear();
        }
        visible.insert(*digest, record.clone());
        Ok(BlobLookup::Visible(record))
    }

    /// Reads `len` bytes of a recorded blob from `offset` into memory (for small ranges: one
    /// open and one read, no streaming task).
    pub fn read_blob(&self, digest: &Digest, offset: u64, len: u64) -> std::io::Result<bytes::Bytes> {
        use std::io::Read;
        let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
        self.blobs.open(digest, offset, len)?.into_reader().take(len).read_to_end(&mut bytes)?;
        if bytes.len() as u64 != len {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("blob {digest} is shorter than its record"),
            ));
        }
        Ok(bytes.into())
    }

    /// A URL at which a client can GET the blob from the backend itself for `valid_for`, or
    /// `None` when the backend cannot give one (the filesystem).
    pub fn presign_blob(
        &self,
        digest: &Digest,
        valid_for: std::time::Duration,
    ) -> std::io::Result<Option<String>> {
        self.blobs.presign(digest, valid_for)
    }

    /// Opens `len` bytes of a recorded blob from `offset`.
    pub fn open_blob(&self, digest: &Digest, offset: u64, len: u64) -> std::io::Result<BlobRead> {
        self.blobs.open(digest, offset, len)
    }

    /// Starts ingesting a blob (see `store/ingest.rs`).
    pub fn ingest(self: &Arc<Self>, expected: Expected) -> Result<Ingest, IngestError> {
        Ingest::begin(Arc::clone(self), expected)
    }

    /// Records blobs whose bytes are durable and visible, in one synced write. If that fails the
    /// bytes are taken back out, so nothing unrecorded stays visible.
    /// Records committed blobs. When the record cannot be written, the bytes this commit wrote
    /// (`written`) are taken back, unless the bucket is shared: there another front end may
    /// have written or recorded the same key, and the collector removes what no one records.
    fn record_blobs(&self, blobs: &[StoredBlob], written: &[Digest]) -> Result<(), IngestError> {
        let stored_at = self.clock().now();
        let records: Vec<(Digest, BlobRecord)> = blobs
            .iter()
            .map(|b| (b.digest, BlobRecord { size: b.size, sha256: b.sha256, stored_at }))
            .collect();
        self.db.put_blobs(&records).map_err(|e| {
            if self.sharing == blob_store::Sharing::Own {
                for digest in written {
                    let _ = self.blobs.delete(digest);
                }
            }
            IngestError::Record(e)
        })
    }

    /// Commits checked blobs together (`Ingest::check`): the backend makes every one durable
    /// and visible in one batch, then one synced write records them all. A mirror sync of many
    /// small blobs pays a few syncs instead of three or four a blob. On an error none of them is
    /// recorded or left visible.
    pub fn commit_batch(&self, checked: Vec<Checked>) -> Result<Vec<StoredBlob>, IngestError> {
        if checked.is_empty() {
            return Ok(Vec::new());
        }
        let mut parked = Vec::with_capacity(checked.len());
        let mut blobs = Vec::with_capacity(checked.len());
        let mut in_place = Vec::new();
        for Checked { parked: stage, blob } in checked {
            // A blob checked in place (`adopt`) is only recorded.
            if stage.is_in_place() {
                in_place.push((blob.digest, blob.size));
            } else {
                parked.push((stage, blob.digest));
            }
            blobs.push(blob);
        }
        let _commit = self.commit_guard();
        // Still there now that no collection can run: else nothing is recorded.
        for (digest, size) in in_place {
            if self.blobs.stat(&digest)? != Some(size) {
                return Err(IngestError::Io(std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!("blob {digest} went from the backend before it was recorded"),
                )));
            }
        }
        let written: Vec<Digest> = parked.iter().map(|(_, digest)| *digest).collect();
        self.blobs.commit_batch(parked)?;
        self.record_blobs(&blobs, &written)?;
        Ok(blobs)
    }

    // Tokens.

    /// Stores a token grant under the hash of the token.
    pub fn put_token(&self, token_hash: &[u8; 32], record: &TokenRecord) -> anyhow::Result<()> {
        self.db.put_token(token_hash, record)
    }

    /// Looks a token grant up by the hash of the token.
    pub fn token(&self, token_hash: &[u8; 32]) -> anyhow::Result<Option<TokenRecord>> {
        self.db.token(token_hash)
    }

    /// Every token grant, by the hash of its token.
    pub fn tokens(&self) -> anyhow::Result<Vec<([u8; 32], TokenRecord)>> {
        self.db.tokens()
    }

    /// Removes a token grant, durably.
    pub fn delete_token(&self, token_hash: &[u8; 32]) -> anyhow::Result<()> {
        self.db.delete_token(token_hash)
    }

    /// The time now, by the store's clock.
    pub fn now(&self) -> airlock_proto::Timestamp {
        self.clock.now()
    }
}

/// Reads tree nodes from the database.
impl NodeSource for Store {
    type Error = anyhow::Error;

    fn node(&self, level: u32, index: u64) -> anyhow::Result<Hash> {
        self.db.node(level, index)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// RocksDB's block cache (which the memtables are charged to) has the configured size.
    #[test]
    fn the_database_memory_is_bounded_by_the_configured_budget() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_with_memory(dir.path(), Clock::system(), 16).unwrap();
        assert_eq!(store.db.cache_capacity().unwrap(), 16 << 20);
        drop(store);
        let store = Store::open(dir.path(), Clock::system()).unwrap();
        assert_eq!(store.db.cache_capacity().unwrap(), DEFAULT_DB_MEMORY_MIB << 20);
    }

    /// `verify-store` checks a blob's recorded SHA-256 as well as its size and BLAKE3: a record
    /// whose SHA-256 no longer matches the bytes is reported, naming it.
    #[test]
    fn verify_store_reports_a_recorded_sha256_that_does_not_match_the_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), Clock::system()).unwrap();
        let bytes = bytes::Bytes::from_static(b"verified bytes");
        let digest = Digest::of(&bytes);
        let mut ingest = store.ingest(Expected::address(digest, 1 << 10)).unwrap();
        ingest.write(bytes).unwrap();
        let stored = ingest.finish().unwrap();
        assert!(crate::verify_store::verify_store(&store).unwrap().problems.is_empty());
        let wrong = BlobRecord { size: stored.size, sha256: airlock_proto::Sha256([0; 32]), stored_at: 0 };
        store.db.put_blobs(&[(digest, wrong)]).unwrap();
        let problems = crate::verify_store::verify_store(&store).unwrap().problems;
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("SHA-256") && problems[0].contains(&digest.to_string()), "{problems:?}");
    }
}
