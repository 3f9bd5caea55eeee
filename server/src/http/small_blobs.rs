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

    /// Remembers `blob` (the whole blob as read, and its headers) if its bytes hash to `digest`;
    /// returns what to serve either way.
    pub fn remember(&self, digest: &Digest, blob: SmallBlob) -> Arc<SmallBlob> {
        let blob = Arc::new(blob);
        if blob.bytes.len() as u64 > MAX_BLOB || Digest::of(&blob.bytes) != *digest {
            return blob;
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
        blob
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blob(bytes: Bytes) -> SmallBlob {
        SmallBlob { bytes, etag: HeaderValue::from_static("\"e\""), sha256: HeaderValue::from_static("ab") }
    }

    #[test]
    fn only_bytes_that_match_their_digest_are_remembered_and_the_budget_holds() {
        let blobs = SmallBlobs::default();
        let held_bytes = || blobs.0.read().unwrap().bytes;
        let good = Bytes::from(vec![7u8; 1000]);
        let digest = Digest::of(&good);
        let damaged = Bytes::from(vec![8u8; 1000]);
        let served = blobs.remember(&digest, blob(damaged.clone()));
        assert_eq!(served.bytes, damaged, "damaged bytes are still served as read");
        assert!(blobs.get(&digest).is_none(), "damaged bytes are remembered");
        blobs.remember(&digest, blob(good.clone()));
        let held = blobs.get(&digest).unwrap();
        assert_eq!(held.bytes, good);
        assert_eq!(held.etag, "\"e\"");
        for i in 0..(BUDGET / MAX_BLOB as usize) * 2 {
            let mut bytes = vec![0u8; MAX_BLOB as usize];
            bytes[..8].copy_from_slice(&(i as u64).to_le_bytes());
            let bytes = Bytes::from(bytes);
            blobs.remember(&Digest::of(&bytes), blob(bytes));
            assert!(held_bytes() <= BUDGET);
        }
        let too_big = Bytes::from(vec![1u8; MAX_BLOB as usize + 1]);
        blobs.remember(&Digest::of(&too_big), blob(too_big.clone()));
        assert!(blobs.get(&Digest::of(&too_big)).is_none(), "a blob over the cap is remembered");
    }
}
