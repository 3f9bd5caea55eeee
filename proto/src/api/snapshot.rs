//! The saved fold of a verified log (CBOR): what a client, mirror or primary folded from the
//! leaves, so that loading it needs no signature check and no tree re-hash. The file that holds
//! it carries a BLAKE3 seal over these bytes (`seal` and `unseal`); `keys::TrustedLog::resume`
//! checks what can be checked without the leaves (the root chain from the pinned root, the
//! checkpoint's signature and that the frontier reproduces its root hash).

use serde::{Deserialize, Serialize};

use crate::bytes::Hash32;
use crate::merkle::Frontier;
use crate::{ChannelName, Digest, Kind, PackageName, Release, Timestamp, Version};

/// Snapshot format version; a snapshot of another version is refused and rebuilt from the log.
pub const SNAPSHOT_FORMAT: u32 = 1;
/// Largest snapshot accepted.
pub const MAX_SNAPSHOT_BYTES: usize = 1 << 31;
/// Bytes of one entry of [`FoldSnapshot::payloads`]: a payload's BLAKE3, then its leaf index
/// (big-endian).
pub const PAYLOAD_ENTRY_BYTES: usize = 40;

/// A release as the fold holds it.
pub type ReleaseRef = (Kind, PackageName, Version);

/// A logged root: its leaf index and envelope bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotRoot {
    pub leaf: u64,
    pub envelope: serde_bytes::ByteBuf,
}

/// Whether a release may be installed, as the fold holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SnapshotStatus {
    Active,
    Yanked(String),
    Revoked(String),
}

/// A logged release, its leaf and its status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotRelease {
    pub leaf: u64,
    pub release: Release,
    pub status: SnapshotStatus,
}

/// The releases a channel holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotChannel {
    pub channel: ChannelName,
    pub held: Vec<ReleaseRef>,
}

/// The registry state after `size` leaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoldSnapshot {
    pub size: u64,
    pub roots: Vec<SnapshotRoot>,
    pub releases: Vec<SnapshotRelease>,
    /// Every logged payload's BLAKE3 and leaf, [`PAYLOAD_ENTRY_BYTES`] each, in leaf order.
    pub payloads: serde_bytes::ByteBuf,
    pub channels: Vec<SnapshotChannel>,
    /// The leaf of the latest status statement of each release.
    pub status_leaves: Vec<(ReleaseRef, u64)>,
    /// The leaf of the latest channel statement of each channel, kind and name.
    pub channel_leaves: Vec<((ChannelName, Kind, PackageName), u64)>,
}

/// A verified log: the fold, the frontier of the tree over the same leaves, and the newest
/// checkpoint that verified (none for a primary, which signs its own). Its byte form is
/// `to_bytes` and `from_bytes` (`fold_codec.rs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSnapshot {
    pub format: u32,
    pub fold: FoldSnapshot,
    pub frontier: Frontier,
    pub checkpoint: Option<serde_bytes::ByteBuf>,
    pub newest_issued_at: Timestamp,
}

/// A client's saved fold (`logs/<root>.fold`, sealed): the verified log and how many bytes of
/// its leaves file (`logs/<root>.leaves`, each leaf a 4-byte big-endian length then its bytes)
/// hold the leaves behind it. Rewritten only when the log grows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientFold {
    /// `LogSnapshot::to_bytes`.
    pub log: serde_bytes::ByteBuf,
    pub leaves_bytes: u64,
}

/// A client's newest checkpoint for the size its fold holds (`logs/<root>.head`, sealed), with
/// what confirms a registry still serves that log without the fold (the roots and the
/// frontier: `keys::TrustedHead`) and where the index of the fold is. Rewritten on every update,
/// so that an update that brings no leaf reads and writes a few kilobytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientHead {
    pub format: u32,
    pub size: u64,
    pub checkpoint: Option<serde_bytes::ByteBuf>,
    pub newest_issued_at: Timestamp,
    pub roots: Vec<SnapshotRoot>,
    pub frontier: Frontier,
    pub index: Option<IndexRef>,
}

/// Where a client's index (`logs/<root>.index`) begins: the length and BLAKE3 of its table.
/// The file is the table's length (8 bytes, big-endian), the table, then the buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexRef {
    pub table_len: u64,
    pub table_blake3: Hash32,
}

/// One bucket of an index: where it lies in the file (counted from the end of the table), and
/// its BLAKE3.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BucketRef {
    pub offset: u64,
    pub len: u64,
    pub blake3: Hash32,
}

/// The index of a fold, by name and by file digest, so that resolving a name or a digest reads
/// one or two buckets rather than the whole fold. A release goes to the name bucket its kind
/// and name hash to; each file's digest to the digest bucket its BLAKE3 hashes to. Its byte
/// form is fixed-size (`to_bytes`, `from_bytes`): a header, then 48 bytes per bucket, so that
/// reading it is a hash and a copy however large the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexTable {
    pub format: u32,
    pub size: u64,
    pub names: Vec<BucketRef>,
    pub digests: Vec<BucketRef>,
}

/// A release in a name bucket, with the channels that hold it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexedRelease {
    pub release: SnapshotRelease,
    pub channels: Vec<ChannelName>,
}

/// A name bucket: every release whose kind and name hash to it, in log order.
pub type NameBucket = Vec<IndexedRelease>;
/// A digest bucket: each file digest that hashes to it and the release holding it, in log order.
pub type DigestBucket = Vec<(Digest, ReleaseRef)>;
/// Index format version (the table's `format`): an index of another version is not opened, and
/// the fold answers and writes the index again. 2: buckets in the fold's binary layout.
pub const INDEX_FORMAT: u32 = 2;
/// Largest index table or bucket accepted.
pub const MAX_INDEX_PART_BYTES: usize = 64 << 20;

/// The first bytes of a sealed snapshot file.
const MAGIC: &[u8; 8] = b"airsnap1";

/// Why a sealed snapshot was refused.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("it is {0} bytes, shorter than a seal")]
    Truncated(usize),
    #[error("it does not start with the snapshot magic")]
    Magic,
    #[error("its bytes do not match their BLAKE3 seal (truncated, corrupted or edited)")]
    Mismatch,
}

/// Bytes a seal adds before the body: the magic and the body's BLAKE3.
pub const SEAL_BYTES: usize = 8 + 32;

/// Seals encoded snapshot bytes: magic, BLAKE3 of the body, body.
pub fn seal(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + SEAL_BYTES);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(blake3::hash(body).as_bytes());
    out.extend_from_slice(body);
    out
}

/// The body of sealed bytes, once its seal matches.
pub fn unseal(sealed: &[u8]) -> Result<&[u8], SealError> {
    if sealed.len() < SEAL_BYTES {
        return Err(SealError::Truncated(sealed.len()));
    }
    let (magic, rest) = sealed.split_at(8);
    let (hash, body) = rest.split_at(32);
    if magic != MAGIC {
        return Err(SealError::Magic);
    }
    if blake3::hash(body).as_bytes() != hash {
        return Err(SealError::Mismatch);
    }
    Ok(body)
}

/// Bytes of one bucket entry of an index table: offset, length, BLAKE3.
const BUCKET_ENTRY_BYTES: usize = 48;

impl IndexTable {
    /// The table's bytes: format (u32), size, name and digest bucket counts (u64 each), then each
    /// bucket's offset, length and BLAKE3; integers little-endian.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(28 + (self.names.len() + self.digests.len()) * BUCKET_ENTRY_BYTES);
        out.extend_from_slice(&self.format.to_le_bytes());
        out.extend_from_slice(&self.size.to_le_bytes());
        out.extend_from_slice(&(self.names.len() as u64).to_le_bytes());
        out.extend_from_slice(&(self.digests.len() as u64).to_le_bytes());
        for bucket in self.names.iter().chain(&self.digests) {
            out.extend_from_slice(&bucket.offset.to_le_bytes());
            out.extend_from_slice(&bucket.len.to_le_bytes());
            out.extend_from_slice(&bucket.blake3.0);
        }
        out
    }

    /// Reads a table's bytes: the counts must account for every byte.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, String> {
        let u64_at = |at: usize| -> Result<u64, String> {
            let slice = bytes.get(at..at + 8).ok_or_else(|| format!("the table is cut at {at}"))?;
            Ok(u64::from_le_bytes(slice.try_into().unwrap_or_default()))
        };
        let format =
            u32::from_le_bytes(bytes.get(..4).ok_or("the table is empty")?.try_into().unwrap_or_default());
        let (size, names, digests) = (u64_at(4)?, u64_at(12)?, u64_at(20)?);
        let entries = names.checked_add(digests).and_then(|n| n.checked_mul(BUCKET_ENTRY_BYTES as u64));
        if entries.and_then(|n| n.checked_add(28)) != Some(bytes.len() as u64) {
            return Err(format!(
                "{names} and {digests} buckets do not fill a table of {} bytes",
                bytes.len()
            ));
        }
        let mut all = bytes[28..].chunks_exact(BUCKET_ENTRY_BYTES).map(|entry| {
            let mut blake3 = [0u8; 32];
            blake3.copy_from_slice(&entry[16..]);
            BucketRef {
                offset: u64::from_le_bytes(entry[..8].try_into().unwrap_or_default()),
                len: u64::from_le_bytes(entry[8..16].try_into().unwrap_or_default()),
                blake3: Hash32(blake3),
            }
        });
        let names = all.by_ref().take(names as usize).collect();
        let digests = all.collect();
        Ok(Self { format, size, names, digests })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_index_table_round_trips_and_refuses_counts_that_do_not_fill_it() {
        let bucket = |n: u8| BucketRef { offset: u64::from(n) * 10, len: 10, blake3: Hash32([n; 32]) };
        let table =
            IndexTable { format: 1, size: 9, names: vec![bucket(1), bucket(2)], digests: vec![bucket(3)] };
        let bytes = table.to_bytes();
        assert_eq!(IndexTable::from_bytes(&bytes).unwrap(), table);
        assert!(IndexTable::from_bytes(&bytes[..bytes.len() - 1]).unwrap_err().contains("do not fill"));
        let mut more = bytes.clone();
        more[12] = 3;
        assert!(IndexTable::from_bytes(&more).is_err());
        let mut huge = bytes;
        huge[12..20].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(IndexTable::from_bytes(&huge).is_err());
        assert!(IndexTable::from_bytes(&[]).is_err());
    }

    #[test]
    fn a_seal_refuses_a_flipped_bit_a_cut_and_a_foreign_file() {
        let sealed = seal(b"the fold");
        assert_eq!(unseal(&sealed).unwrap(), b"the fold");
        let mut flipped = sealed.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert!(matches!(unseal(&flipped), Err(SealError::Mismatch)));
        assert!(matches!(unseal(&sealed[..sealed.len() - 1]), Err(SealError::Mismatch)));
        assert!(matches!(unseal(&sealed[..20]), Err(SealError::Truncated(20))));
        let mut foreign = sealed;
        foreign[0] = b'x';
        assert!(matches!(unseal(&foreign), Err(SealError::Magic)));
    }
}
