//! The RocksDB database: column families, record encodings, and the batches that change them.

use std::path::Path;

use airlock_proto::merkle::Hash;
use airlock_proto::{codec, Digest, Sha256, Timestamp};
use anyhow::{Context, Result};
use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamilyDescriptor, IteratorMode, Options, WriteBatch, WriteBufferManager,
    WriteOptions, DB,
};
use serde::{Deserialize, Serialize};

const CF_LEAVES: &str = "log_leaves";
const CF_NODES: &str = "log_nodes";
const CF_META: &str = "meta";
const CF_DIGESTS: &str = "digests";
const CF_BLOBS: &str = "blobs";
const CF_TOKENS: &str = "tokens";
const ALL_CFS: [&str; 6] = [CF_LEAVES, CF_NODES, CF_META, CF_DIGESTS, CF_BLOBS, CF_TOKENS];

const META_SIZE: &[u8] = b"log_size";
const META_CHECKPOINT: &[u8] = b"checkpoint";
const META_SCHEMA: &[u8] = b"schema_version";
const SCHEMA_VERSION: u64 = 1;

/// Cap on any stored record read back (a leaf is at most an envelope).
const MAX_RECORD_BYTES: usize = 2 << 20;

/// What the server knows about a stored blob.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobRecord {
    pub size: u64,
    pub sha256: Sha256,
    pub stored_at: Timestamp,
}

/// A bearer token's grant. The token itself is never stored, only its BLAKE3 hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    pub scope: String,
    pub label: String,
    pub created_at: Timestamp,
    /// When the token stops being accepted; `None`: never.
    pub expires_at: Option<Timestamp>,
}

/// The RocksDB handle.
#[derive(Debug)]
pub struct Db {
    db: DB,
}

/// Everything one appended leaf changes.
#[derive(Debug, Default)]
pub struct LeafBatch {
    pub index: u64,
    pub leaf: Vec<u8>,
    pub nodes: Vec<(u32, u64, Hash)>,
    pub digests: Vec<Digest>,
}

fn node_key(level: u32, index: u64) -> [u8; 12] {
    let mut key = [0u8; 12];
    key[..4].copy_from_slice(&level.to_be_bytes());
    key[4..].copy_from_slice(&index.to_be_bytes());
    key
}

fn u64_value(bytes: &[u8]) -> Result<u64> {
    Ok(u64::from_be_bytes(bytes.try_into().context("stored integer is not 8 bytes")?))
}

impl Db {
    /// Opens (creating if needed) the database under `dir`, its memory bounded to `memory`
    /// bytes: one block cache for every column family, to which the memtables are charged too
    /// (half of it at most), each memtable small.
    pub fn open(dir: &Path, memory: u64) -> Result<Self> {
        let memory = usize::try_from(memory).unwrap_or(usize::MAX);
        let cache = Cache::new_lru_cache(memory);
        let buffers =
            WriteBufferManager::new_write_buffer_manager_with_cache(memory / 2, false, cache.clone());
        let tuned = || {
            let mut options = Options::default();
            let mut table = BlockBasedOptions::default();
            table.set_block_cache(&cache);
            options.set_block_based_table_factory(&table);
            options.set_write_buffer_manager(&buffers);
            options.set_write_buffer_size((memory / 16).clamp(1 << 20, 16 << 20));
            options.set_max_write_buffer_number(2);
            options
        };
        let mut options = tuned();
        options.create_if_missing(true);
        options.create_missing_column_families(true);
        options.set_max_open_files(256);
        let cfs = std::iter::once(rocksdb::DEFAULT_COLUMN_FAMILY_NAME)
            .chain(ALL_CFS)
            .map(|name| ColumnFamilyDescriptor::new(name, tuned()));
        let db = DB::open_cf_descriptors(&options, dir, cfs).map_err(|e| {
            if e.to_string().contains("lock") {
                anyhow::anyhow!(
                    "database {} is in use by another process (is airlockd running?): {e}",
                    dir.display()
                )
            } else {
                anyhow::anyhow!("cannot open database {}: {e}", dir.display())
            }
        })?;
        let this = Self { db };
        match this.get(CF_META, META_SCHEMA)? {
            None => this.put_sync(CF_META, META_SCHEMA, &SCHEMA_VERSION.to_be_bytes())?,
            Some(v) if u64_value(&v)? == SCHEMA_VERSION => {}
            Some(v) => anyhow::bail!(
                "database schema version {} is not supported (expected {SCHEMA_VERSION})",
                u64_value(&v)?
            ),
        }
        Ok(this)
    }

    /// The capacity of the block cache, in bytes.
    #[cfg(test)]
    pub fn cache_capacity(&self) -> Result<u64> {
        self.db.property_int_value("rocksdb.block-cache-capacity")?.context("no block cache capacity")
    }

    fn cf(&self, name: &str) -> Result<&rocksdb::ColumnFamily> {
        self.db.cf_handle(name).with_context(|| format!("column family {name} missing"))
    }

    fn get(&self, cf: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.db.get_cf(self.cf(cf)?, key)?)
    }

    fn sync_options() -> WriteOptions {
        let mut options = WriteOptions::default();
        options.set_sync(true);
        options
    }

    fn put_sync(&self, cf: &str, key: &[u8], value: &[u8]) -> Result<()> {
        let mut batch = WriteBatch::default();
        batch.put_cf(self.cf(cf)?, key, value);
        self.db.write_opt(batch, &Self::sync_options())?;
        Ok(())
    }

    /// Number of leaves in the log.
    pub fn log_size(&self) -> Result<u64> {
        self.get(CF_META, META_SIZE)?.map_or(Ok(0), |v| u64_value(&v))
    }

    /// Leaf `index`'s exact bytes.
    pub fn leaf(&self, index: u64) -> Result<Option<Vec<u8>>> {
        self.get(CF_LEAVES, &index.to_be_bytes())
    }

    /// Leaves `[start, end)`, stopping early once `byte_cap` bytes are collected (at least one
    /// leaf is returned when any exists).
    pub fn leaves(&self, start: u64, end: u64, byte_cap: usize) -> Result<Vec<Vec<u8>>> {
        let mut out = Vec::new();
        let mut total = 0usize;
        let iter = self.db.iterator_cf(
            self.cf(CF_LEAVES)?,
            IteratorMode::From(&start.to_be_bytes(), rocksdb::Direction::Forward),
        );
        for (expected, item) in (start..end).zip(iter) {
            let (key, value) = item?;
            anyhow::ensure!(u64_value(&key)? == expected, "log leaf {expected} missing from storage");
            total += value.len();
            if !out.is_empty() && total > byte_cap {
                break;
            }
            out.push(value.into_vec());
        }
        Ok(out)
    }

    /// The newest signed checkpoint.
    pub fn checkpoint(&self) -> Result<Option<Vec<u8>>> {
        self.get(CF_META, META_CHECKPOINT)
    }

    /// Replaces the checkpoint (a re-signed one for the same tree).
    pub fn put_checkpoint(&self, checkpoint: &[u8]) -> Result<()> {
        self.put_sync(CF_META, META_CHECKPOINT, checkpoint)
    }

    /// Appends leaves with everything they change and the checkpoint that covers them,
    /// durably, in one batch: all of them become visible together or none does.
    pub fn append(&self, changes: &[LeafBatch], checkpoint: &[u8]) -> Result<()> {
        let mut expected = self.log_size()?;
        let mut batch = WriteBatch::default();
        let (leaves, nodes, digests) = (self.cf(CF_LEAVES)?, self.cf(CF_NODES)?, self.cf(CF_DIGESTS)?);
        let mut new_digests = std::collections::HashSet::new();
        for change in changes {
            anyhow::ensure!(change.index == expected, "append at {} does not follow the log", change.index);
            expected += 1;
            batch.put_cf(leaves, change.index.to_be_bytes(), &change.leaf);
            for (level, index, hash) in &change.nodes {
                batch.put_cf(nodes, node_key(*level, *index), hash);
            }
            for digest in &change.digests {
                if self.db.get_cf(digests, digest.as_bytes())?.is_none() && new_digests.insert(*digest) {
                    batch.put_cf(digests, digest.as_bytes(), change.index.to_be_bytes());
                }
            }
        }
        let meta = self.cf(CF_META)?;
        batch.put_cf(meta, META_CHECKPOINT, checkpoint);
        batch.put_cf(meta, META_SIZE, expected.to_be_bytes());
        self.db.write_opt(batch, &Self::sync_options())?;
        Ok(())
    }

    /// The leaf index of the first release that references a blob, if any does.
    pub fn digest_leaf(&self, digest: &Digest) -> Result<Option<u64>> {
        self.get(CF_DIGESTS, digest.as_bytes())?.map(|v| u64_value(&v)).transpose()
    }

    /// The record of a stored blob.
    pub fn blob(&self, digest: &Digest) -> Result<Option<BlobRecord>> {
        self.get(CF_BLOBS, digest.as_bytes())?
            .map(|v| codec::decode("blob record", &v, MAX_RECORD_BYTES).map_err(anyhow::Error::from))
            .transpose()
    }

    /// Records blobs whose bytes are already durable, in one synced write.
    pub fn put_blobs(&self, records: &[(Digest, BlobRecord)]) -> Result<()> {
        let mut batch = WriteBatch::default();
        let cf = self.cf(CF_BLOBS)?;
        for (digest, record) in records {
            batch.put_cf(cf, digest.as_bytes(), codec::encode("blob record", record)?);
        }
        self.db.write_opt(batch, &Self::sync_options())?;
        Ok(())
    }

    /// Removes a blob's record.
    pub fn delete_blob(&self, digest: &Digest) -> Result<()> {
        let mut batch = WriteBatch::default();
        batch.delete_cf(self.cf(CF_BLOBS)?, digest.as_bytes());
        self.db.write_opt(batch, &Self::sync_options())?;
        Ok(())
    }

    /// Every recorded blob digest (for verification tools).
    pub fn blob_digests(&self) -> Result<Vec<Digest>> {
        let mut out = Vec::new();
        for item in self.db.iterator_cf(self.cf(CF_BLOBS)?, IteratorMode::Start) {
            let (key, _) = item?;
            let bytes: [u8; 32] = key.as_ref().try_into().context("blob key is not 32 bytes")?;
            out.push(Digest::from_bytes(bytes));
        }
        Ok(out)
    }

    /// How many blobs are recorded, and the bytes their records name.
    pub fn blob_totals(&self) -> Result<(u64, u64)> {
        let (mut count, mut bytes) = (0u64, 0u64);
        for item in self.db.iterator_cf(self.cf(CF_BLOBS)?, IteratorMode::Start) {
            let (_, value) = item?;
            let record: BlobRecord = codec::decode("blob record", &value, MAX_RECORD_BYTES)?;
            count += 1;
            bytes += record.size;
        }
        Ok((count, bytes))
    }

    /// Stores a token grant under the hash of the token.
    pub fn put_token(&self, token_hash: &[u8; 32], record: &TokenRecord) -> Result<()> {
        self.put_sync(CF_TOKENS, token_hash, &codec::encode("token record", record)?)
    }

    /// Every token grant, by the hash of its token.
    pub fn tokens(&self) -> Result<Vec<([u8; 32], TokenRecord)>> {
        let mut out = Vec::new();
        for item in self.db.iterator_cf(self.cf(CF_TOKENS)?, IteratorMode::Start) {
            let (key, value) = item?;
            let hash: [u8; 32] =
                key.as_ref().try_into().map_err(|_| anyhow::anyhow!("a token key is not 32 bytes"))?;
            out.push((hash, codec::decode("token record", &value, MAX_RECORD_BYTES)?));
        }
        Ok(out)
    }

    /// Removes a token grant, durably.
    pub fn delete_token(&self, token_hash: &[u8; 32]) -> Result<()> {
        let mut batch = WriteBatch::default();
        batch.delete_cf(self.cf(CF_TOKENS)?, token_hash);
        self.db.write_opt(batch, &Self::sync_options())?;
        Ok(())
    }

    /// Looks a token grant up by the hash of the token.
    pub fn token(&self, token_hash: &[u8; 32]) -> Result<Option<TokenRecord>> {
        self.get(CF_TOKENS, token_hash)?
            .map(|v| codec::decode("token record", &v, MAX_RECORD_BYTES).map_err(anyhow::Error::from))
            .transpose()
    }
}

impl Db {
    /// A stored tree node.
    pub fn node(&self, level: u32, index: u64) -> Result<Hash> {
        let value = self
            .get(CF_NODES, &node_key(level, index))?
            .with_context(|| format!("tree node ({level}, {index}) missing from storage"))?;
        value.as_slice().try_into().context("tree node is not 32 bytes")
    }
}
