//! Blobs the backend holds that this store has no record of, checked in place: on a bucket
//! shared by several front ends (and only there), another one stored them. A sync takes such a blob without
//! fetching or storing it again, once its bytes, read whole from the backend, have the size,
//! BLAKE3 and SHA-256 the log gives (the same checks as the ingest path); the batch commit then
//! only records it.

use std::io::Read;

use airlock_proto::{Digest, Sha256};
use sha2::Digest as _;

use super::blob_store::Sharing;
use super::{Checked, Parked, Store, StoredBlob};

/// The oldest object a sync takes in place; the grace period of a shared bucket's collector
/// must be longer (its default is 7 days).
pub const ADOPT_MAX_AGE_SECS: u64 = 3600;

impl Store {
    /// A checked blob for `digest` from the bytes the backend already holds, or `None` when it
    /// holds none of that size or they do not match (then the blob is fetched as usual, and its
    /// commit writes the good bytes over the bad). Blocking: it reads the whole blob.
    pub fn adopt(&self, digest: Digest, size: u64, sha256: Sha256) -> anyhow::Result<Option<Checked>> {
        // Only another front end of a shared bucket stores blobs this store has not recorded:
        // elsewhere a sync pays no look at the backend for each blob it fetches.
        if self.sharing == Sharing::Own {
            return Ok(None);
        }
        // An object no one has recorded for long may be about to go (the collector removes such
        // objects after its grace period): it is fetched and written again instead, which makes
        // it young.
        match self.blobs.written(&digest)? {
            Some((held, at)) if held == size && self.now().saturating_sub(at) <= ADOPT_MAX_AGE_SECS => {}
            _ => return Ok(None),
        }
        let found = hash_reader(self.blobs.open(&digest, 0, size.saturating_add(1))?.into_reader())?;
        if found != (size, digest, sha256) {
            tracing::warn!(%digest, "the backend holds other bytes under this digest; fetching it");
            return Ok(None);
        }
        Ok(Some(Checked { parked: Parked::in_place(), blob: StoredBlob { digest, size, sha256 } }))
    }
}

/// The length, BLAKE3 and SHA-256 of what a reader holds.
pub fn hash_reader(mut reader: impl Read) -> std::io::Result<(u64, Digest, Sha256)> {
    let mut blake3 = blake3::Hasher::new();
    let mut sha256 = sha2::Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = reader.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        blake3.update(&buffer[..n]);
        sha256.update(&buffer[..n]);
        total += n as u64;
    }
    Ok((total, Digest::from(blake3.finalize()), Sha256(sha256.finalize().into())))
}
