//! Small logged blobs held in memory for serving: the bytes and the answer's per-blob headers,
//! made once. A blob GET of one then costs a lookup and no file access.
//!
//! Only blobs the store answered `Visible` for are asked for, and only after that answer, so a
//! purged or collected blob is refused by the store before this memory is consulted. Bytes are
//! remembered only when their BLAKE3 matches the digest, so the memory never holds damaged
//! bytes (a damaged file is served as it reads, as before, and not remembered).

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use airlock_proto::Digest;
use bytes::Bytes;
use http::HeaderValue;

/// Largest blob remembered: the size that is read into memory whole anyway.
pub const MAX_BLOB: u64 = 64 << 10;
/// Most bytes remembered in all, each blob charged its length and `ENTRY_COST`; the memory is
/// emptied when a new blob would pass it.
const BUDGET: usize = 8 << 20;
/// What a remembered blob costs beside its bytes: the map slot, the `Arc` and two header values.
const ENTRY_COST: usize = 256;

/// A remembered blob: its bytes and the headers every answer for it carries.
#[derive(Debug)]
pub struct SmallBlob {
    pub bytes: Bytes,
    /// `"<digest>"`, the ETag.
    pub etag: HeaderValue,
    /// The SHA-256 in hex, for `X-Airlock-Sha256`.
    pub sha256: HeaderValue,
}

#[derive(Debug, Default)]
struct Held {
    blobs: HashMap<Digest, Arc<SmallBlob>>,
    bytes: usize,
}

/// The memory of small blobs.
#[derive(Debug, Default)]
pub struct SmallBlobs(RwLock<Held>);

impl SmallBlobs {
    /// The blob remembered under `digest`.
    pub fn get(&self, digest: &Digest) -> Option<Arc<SmallBlob>> {
        self.0.read().unwrap_or_else(PoisonError::into_inner).blobs.get(digest).cloned()
    }

    /// Remembers `bytes` (the whole blob as read) if they hash to `digest`; returns what to
    /// serve either way.
    pub fn remember(
        &self,
        digest: &Digest,
        bytes: Bytes,
        sha256_hex: &str,
    ) -> anyhow::Result<Arc<SmallBlob>> {
        let blob = Arc::new(SmallBlob {
            etag: HeaderValue::from_str(&format!("\"{digest}\""))?,
            sha256: HeaderValue::from_str(sha256_hex)?,
            bytes,
        });
        if blob.bytes.len() as u64 > MAX_BLOB || Digest::of(&blob.bytes) != *digest {
            return Ok(blob);
        }
        let mut held = self.0.write().unwrap_or_else(PoisonError::into_inner);
        let cost = blob.bytes.len() + ENTRY_COST;
        if held.bytes + cost > BUDGET {
            held.blobs.clear();
            held.bytes = 0;
        }
        if held.blobs.insert(*digest, Arc::clone(&blob)).is_none() {
            held.bytes += cost;
        }
        Ok(blob)
    }

    /// Bytes held now, as charged against the budget.
    pub fn held_bytes(&self) -> usize {
        self.0.read().unwrap_or_else(PoisonError::into_inner).bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_bytes_that_match_their_digest_are_remembered_and_the_budget_holds() {
        let blobs = SmallBlobs::default();
        let good = Bytes::from(vec![7u8; 1000]);
        let digest = Digest::of(&good);
        let damaged = Bytes::from(vec![8u8; 1000]);
        let served = blobs.remember(&digest, damaged.clone(), "ab").unwrap();
        assert_eq!(served.bytes, damaged, "damaged bytes are still served as read");
        assert!(blobs.get(&digest).is_none(), "damaged bytes are remembered");
        blobs.remember(&digest, good.clone(), "ab").unwrap();
        let held = blobs.get(&digest).unwrap();
        assert_eq!(held.bytes, good);
        assert_eq!(held.etag, format!("\"{digest}\"").as_str());
        for i in 0..(BUDGET / MAX_BLOB as usize) * 2 {
            let mut bytes = vec![0u8; MAX_BLOB as usize];
            bytes[..8].copy_from_slice(&(i as u64).to_le_bytes());
            let bytes = Bytes::from(bytes);
            blobs.remember(&Digest::of(&bytes), bytes, "ab").unwrap();
            assert!(blobs.held_bytes() <= BUDGET);
        }
        let too_big = Bytes::from(vec![1u8; MAX_BLOB as usize + 1]);
        blobs.remember(&Digest::of(&too_big), too_big.clone(), "ab").unwrap();
        assert!(blobs.get(&Digest::of(&too_big)).is_none(), "a blob over the cap is remembered");
    }
}
