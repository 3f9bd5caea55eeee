//! The one ingest path for blob bytes: upload, mirror sync and bundle import all call it.
//!
//! Bytes are staged in the backend while BLAKE3 (here) and SHA-256 (on its own thread, or inline
//! for a small blob of known size) are computed. `finish` checks the size, BLAKE3 and SHA-256 against what the caller expected; only
//! when every one matched does the backend commit the bytes (durable, then visible) and the
//! database record them: one blob at a time (`finish`), or many together (`check`, then
//! `Store::commit_batch`). On any failure the stage is dropped and nothing is left behind.

use std::io::{self, Read as _};
use std::sync::Arc;

use airlock_client::sha256_thread::Sha256Hasher;
use airlock_proto::{Digest, Sha256};
use bytes::Bytes;

use super::backend::{BlobStage, Parked};
use super::Store;

/// What the caller knows about a blob before its bytes arrive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expected {
    /// The address the bytes must hash to.
    pub blake3: Digest,
    /// The exact size, when known (mirror sync, bundle import).
    pub size: Option<u64>,
    /// The SHA-256, when known.
    pub sha256: Option<Sha256>,
    /// The most bytes accepted.
    pub max_size: u64,
}

impl Expected {
    /// A blob of which the log states every digest and the size.
    pub fn logged(blake3: Digest, size: u64, sha256: Sha256) -> Self {
        Self { blake3, size: Some(size), sha256: Some(sha256), max_size: size }
    }

    /// A blob known only by its address (an upload), of at most `max_size` bytes.
    pub fn address(blake3: Digest, max_size: u64) -> Self {
        Self { blake3, size: None, sha256: None, max_size }
    }
}

/// A blob that is durable and recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredBlob {
    pub digest: Digest,
    pub size: u64,
    pub sha256: Sha256,
}

/// A blob whose size and digests matched, its bytes parked for `Store::commit_batch`. Dropped
/// uncommitted, it leaves nothing behind.
#[derive(Debug)]
pub struct Checked {
    pub(super) parked: Parked,
    pub blob: StoredBlob,
}

/// Why ingesting a blob failed. Each names what failed; nothing was kept.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("blob {digest} is over the {max}-byte cap")]
    TooLarge { digest: Digest, max: u64 },
    #[error("blob {digest}: received {actual} bytes, expected {expected}")]
    Size { digest: Digest, expected: u64, actual: u64 },
    #[error("blob bytes hash to {actual}, not {expected}")]
    Blake3 { expected: Digest, actual: Digest },
    #[error("blob {digest}: SHA-256 of the bytes is {actual}, expected {expected}")]
    Sha256 { digest: Digest, expected: Sha256, actual: Sha256 },
    #[error("blob storage: {0}")]
    Io(#[from] io::Error),
    #[error("blob record: {0:#}")]
    Record(anyhow::Error),
}

impl IngestError {
    /// True when the bytes did not match what was expected (the sender's fault, not ours).
    pub fn is_mismatch(&self) -> bool {
        matches!(self, Self::TooLarge { .. } | Self::Size { .. } | Self::Blake3 { .. } | Self::Sha256 { .. })
    }
}

/// A blob being ingested. Dropped before `finish`, it leaves nothing behind.
#[derive(Debug)]
pub struct Ingest {
    store: Arc<Store>,
    expected: Expected,
    stage: Box<dyn BlobStage>,
    blake3: blake3::Hasher,
    sha256: Sha256Hasher,
    size: u64,
}

impl Ingest {
    pub(super) fn begin(store: Arc<Store>, expected: Expected) -> Result<Self, IngestError> {
        let stage = store.backend().stage(&expected.blake3)?;
        Ok(Self {
            store,
            expected,
            stage,
            blake3: blake3::Hasher::new(),
            sha256: Sha256Hasher::for_size(expected.size, SHA256_QUEUE),
            size: 0,
        })
    }

    /// Hashes and stages a chunk. SHA-256 runs on another thread while BLAKE3 and the write run
    /// here; the chunk is not copied.
    pub fn write(&mut self, chunk: Bytes) -> Result<(), IngestError> {
        self.size += chunk.len() as u64;
        if self.size > self.expected.max_size {
            return Err(match self.expected.size {
                Some(expected) => {
                    IngestError::Size { digest: self.expected.blake3, expected, actual: self.size }
                }
                None => IngestError::TooLarge { digest: self.expected.blake3, max: self.expected.max_size },
            });
        }
        self.sha256.update(chunk.clone())?;
        self.blake3.update(&chunk);
        self.stage.write(chunk)?;
        Ok(())
    }

    /// Bytes received so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Checks every digest, then commits and records the blob. Blocking (fsync).
    pub fn finish(mut self) -> Result<StoredBlob, IngestError> {
        let blob = self.verify()?;
        let store = Arc::clone(&self.store);
        let _commit = store.commit_guard();
        self.stage.commit(&blob.digest)?;
        store.record_blobs(std::slice::from_ref(&blob), &[blob.digest])?;
        Ok(blob)
    }

    /// Checks every digest and parks the bytes for `Store::commit_batch`; nothing is visible or
    /// recorded until that commit.
    pub fn check(mut self) -> Result<Checked, IngestError> {
        let blob = self.verify()?;
        Ok(Checked { parked: self.stage.park()?, blob })
    }

    /// The size, BLAKE3 and SHA-256 checked against what was expected.
    fn verify(&mut self) -> Result<StoredBlob, IngestError> {
        let digest = self.expected.blake3;
        if let Some(expected) = self.expected.size {
            if self.size != expected {
                return Err(IngestError::Size { digest, expected, actual: self.size });
            }
        }
        let actual = Digest::from(self.blake3.finalize());
        if actual != digest {
            return Err(IngestError::Blake3 { expected: digest, actual });
        }
        let sha256 = Sha256(self.sha256.finish()?);
        if let Some(expected) = self.expected.sha256 {
            if expected != sha256 {
                return Err(IngestError::Sha256 { digest, expected, actual: sha256 });
            }
        }
        Ok(StoredBlob { digest, size: self.size, sha256 })
    }

    /// Ingests everything `reader` yields, then commits and records it (`finish`). Blocking.
    pub fn from_reader(self, reader: impl io::Read) -> Result<StoredBlob, IngestError> {
        self.read_all(reader)?.finish()
    }

    /// Ingests everything `reader` yields, then checks and parks it for a batch commit
    /// (`check`). Blocking.
    pub fn check_reader(self, reader: impl io::Read) -> Result<Checked, IngestError> {
        self.read_all(reader)?.check()
    }

    /// Hashes and stages everything `reader` yields, in large reads.
    fn read_all(mut self, mut reader: impl io::Read) -> Result<Self, IngestError> {
        const CHUNK: usize = 1 << 20;
        loop {
            let mut buffer = Vec::with_capacity(CHUNK);
            let n = (&mut reader).take(CHUNK as u64).read_to_end(&mut buffer)?;
            if n == 0 {
                break;
            }
            self.write(Bytes::from(buffer))?;
        }
        Ok(self)
    }
}

/// Chunks (1 MiB each from an upload) that may wait for the SHA-256 thread.
const SHA256_QUEUE: usize = 4;
