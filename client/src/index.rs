//! The index of a client's fold (`logs/<root>.index`): releases by kind and name, and file
//! digests, in buckets, so that a pull whose registry brought no new leaf resolves its target by
//! reading one or two buckets instead of the whole fold. The table's BLAKE3 is in the sealed
//! head and each bucket's BLAKE3 in the table: a bucket that does not match is refused, and the
//! caller falls back to the fold.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use airlock_keys::{RegistryState, ReleaseRecord};
use airlock_proto::api::{
    decode_digest_bucket, decode_name_bucket, encode_digest_bucket, encode_name_bucket, BucketRef,
    DigestBucket, FoldDecodeError, IndexRef, IndexTable, IndexedRelease, NameBucket, ReleaseRef,
    INDEX_FORMAT, MAX_INDEX_PART_BYTES,
};
use airlock_proto::{ChannelName, Digest, Hash32, Kind, PackageName, Version};
use anyhow::Context;

use crate::fsutil;
use crate::pull::ReleaseView;

/// Entries per bucket aimed at: a lookup decodes one bucket of about this many.
const PER_BUCKET: usize = 64;

/// The bucket count for `items` entries. The table grows with the log but is fixed-size
/// entries, hashed and copied rather than decoded (a million releases: 48 bytes for each of
/// 15,625 buckets).
fn bucket_count(items: usize) -> usize {
    items.div_ceil(PER_BUCKET).max(1)
}

fn bucket_of(key: &[u8], count: usize) -> usize {
    let hash = blake3::hash(key);
    let mut first = [0u8; 8];
    first.copy_from_slice(&hash.as_bytes()[..8]);
    (u64::from_le_bytes(first) % count as u64) as usize
}

fn name_key(kind: Kind, name: &PackageName) -> Vec<u8> {
    format!("{kind}\0{name}").into_bytes()
}

fn record_of(indexed: IndexedRelease) -> (ReleaseRecord, Vec<ChannelName>) {
    (ReleaseRecord::from_snapshot(indexed.release), indexed.channels)
}

/// Writes the index of `registry` to `path` atomically and returns where its table is.
pub fn write(path: &Path, registry: &RegistryState) -> anyhow::Result<IndexRef> {
    let mut channels_of: HashMap<ReleaseRef, Vec<ChannelName>> = HashMap::new();
    for channel in registry.channels() {
        for record in registry.channel_releases(channel) {
            let r = &record.release;
            channels_of.entry((r.kind, r.name.clone(), r.version.clone())).or_default().push(channel.clone());
        }
    }
    let mut records: Vec<&ReleaseRecord> = registry.releases().collect();
    records.sort_by_key(|r| r.leaf_index);
    let name_count = bucket_count(records.len());
    let file_count: usize = records.iter().map(|r| r.release.files.len()).sum();
    let digest_count = bucket_count(file_count);
    // Which records each bucket holds, in log order; the buckets are built and encoded on the
    // machine's cores.
    let mut names: Vec<Vec<&ReleaseRecord>> = vec![Vec::new(); name_count];
    let mut digests: Vec<Vec<(Digest, &ReleaseRecord)>> = vec![Vec::new(); digest_count];
    for record in records {
        let r = &record.release;
        for file in &r.files {
            digests[bucket_of(file.blake3.as_bytes(), digest_count)].push((file.blake3, record));
        }
        names[bucket_of(&name_key(r.kind, &r.name), name_count)].push(record);
    }
    let key = |r: &ReleaseRecord| (r.release.kind, r.release.name.clone(), r.release.version.clone());
    let names = encode_each(&names, |bucket| {
        let bucket: NameBucket = bucket
            .iter()
            .map(|record| IndexedRelease {
                release: record.to_snapshot(),
                channels: channels_of.get(&key(record)).cloned().unwrap_or_default(),
            })
            .collect();
        Ok(encode_name_bucket(&bucket)?)
    })?;
    let digests = encode_each(&digests, |bucket| {
        let bucket: DigestBucket = bucket.iter().map(|(digest, record)| (*digest, key(record))).collect();
        Ok(encode_digest_bucket(&bucket))
    })?;
    let mut at = 0;
    let mut place = |(bytes, blake3): &Encoded| {
        let bucket = BucketRef { offset: at, len: bytes.len() as u64, blake3: *blake3 };
        at += bytes.len() as u64;
        bucket
    };
    let table = IndexTable {
        format: INDEX_FORMAT,
        size: registry.size(),
        names: names.iter().map(&mut place).collect(),
        digests: digests.iter().map(&mut place).collect(),
    };
    let table_bytes = table.to_bytes();
    // The length of the table, the table, then every bucket in order: written as they are,
    // with no copy of the whole file in memory.
    let write = || -> std::io::Result<()> {
        let mut file = fsutil::AtomicFile::create(path, 0o600)?;
        file.write_all_bytes(&(table_bytes.len() as u64).to_be_bytes())?;
        file.write_all_bytes(&table_bytes)?;
        for (bytes, _) in names.iter().chain(&digests) {
            file.write_all_bytes(bytes)?;
        }
        file.commit()
    };
    write().with_context(|| format!("cannot write {}", path.display()))?;
    Ok(IndexRef {
        table_len: table_bytes.len() as u64,
        table_blake3: Hash32(*blake3::hash(&table_bytes).as_bytes()),
    })
}

/// A bucket's bytes and their BLAKE3.
type Encoded = (Vec<u8>, Hash32);

/// Each of `buckets` encoded by `encode` and hashed, in order, across the machine's cores.
fn encode_each<B: Sync>(
    buckets: &[B],
    encode: impl Fn(&B) -> anyhow::Result<Vec<u8>> + Sync,
) -> anyhow::Result<Vec<Encoded>> {
    let parts = airlock_proto::parallel::map_parts(buckets, |part| -> anyhow::Result<Vec<Encoded>> {
        part.iter()
            .map(|bucket| {
                let bytes = encode(bucket)?;
                let blake3 = Hash32(*blake3::hash(&bytes).as_bytes());
                Ok((bytes, blake3))
            })
            .collect()
    });
    let mut out = Vec::with_capacity(buckets.len());
    for part in parts {
        out.extend(part.unwrap_or_else(|| Err(anyhow::anyhow!("an index thread failed")))?);
    }
    Ok(out)
}

/// An opened index whose table matched the head's seal.
#[derive(Debug)]
pub struct Index {
    file: File,
    table: IndexTable,
    /// Where the buckets begin (their offsets count from here).
    body: u64,
}

impl Index {
    /// Opens the index at `path`, checking its table against `at`.
    pub fn open(path: &Path, at: &IndexRef) -> anyhow::Result<Self> {
        let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        let mut len = [0u8; 8];
        file.read_exact_at(&mut len, 0)?;
        anyhow::ensure!(
            u64::from_be_bytes(len) == at.table_len,
            "the index table is not the one the head names"
        );
        let table = read_table(&file, at)?;
        anyhow::ensure!(table.format == INDEX_FORMAT, "index format {}", table.format);
        anyhow::ensure!(!table.names.is_empty() && !table.digests.is_empty(), "the index has no buckets");
        Ok(Self { file, table, body: 8 + at.table_len })
    }

    /// The size of the log the index was made at.
    pub fn size(&self) -> u64 {
        self.table.size
    }

    fn names(
        &self,
        kind: Kind,
        name: &PackageName,
    ) -> anyhow::Result<Vec<(ReleaseRecord, Vec<ChannelName>)>> {
        let at = &self.table.names[bucket_of(&name_key(kind, name), self.table.names.len())];
        let bucket = read_part(&self.file, self.body + at.offset, at.len, &at.blake3, decode_name_bucket)?;
        Ok(bucket
            .into_iter()
            .map(record_of)
            .filter(|(r, _)| r.release.kind == kind && r.release.name == *name)
            .collect())
    }
}

fn read_table(file: &File, at: &IndexRef) -> anyhow::Result<IndexTable> {
    let damaged = |what: String| anyhow::Error::new(IndexDamaged(what));
    let len = usize::try_from(at.table_len).ok().filter(|len| *len <= MAX_INDEX_PART_BYTES);
    let mut bytes = vec![0u8; len.ok_or_else(|| damaged(format!("a table of {} bytes", at.table_len)))?];
    file.read_exact_at(&mut bytes, 8).map_err(|e| damaged(format!("the table is cut short ({e})")))?;
    if blake3::hash(&bytes).as_bytes() != &at.table_blake3.0 {
        return Err(damaged("the table does not match its BLAKE3".to_owned()));
    }
    IndexTable::from_bytes(&bytes).map_err(damaged)
}

/// The index could not be read as its head sealed it: the caller falls back to the fold.
#[derive(Debug, thiserror::Error)]
#[error("the saved index is damaged: {0}")]
pub struct IndexDamaged(String);

/// The bucket at `offset`, checked against its BLAKE3 and decoded by `decode`.
fn read_part<T>(
    file: &File,
    offset: u64,
    len: u64,
    seal: &Hash32,
    decode: impl FnOnce(&[u8]) -> Result<T, FoldDecodeError>,
) -> anyhow::Result<T> {
    let damaged = |what: String| anyhow::Error::new(IndexDamaged(what));
    if len > MAX_INDEX_PART_BYTES as u64 {
        return Err(damaged(format!("a part of {len} bytes")));
    }
    let mut bytes = vec![0u8; usize::try_from(len)?];
    file.read_exact_at(&mut bytes, offset).map_err(|e| damaged(format!("cut short ({e})")))?;
    if blake3::hash(&bytes).as_bytes() != &seal.0 {
        return Err(damaged("a part does not match its BLAKE3".to_owned()));
    }
    decode(&bytes).map_err(|e| damaged(e.to_string()))
}

fn held(channels: &[ChannelName], channel: Option<&ChannelName>) -> bool {
    channel.is_none_or(|c| channels.contains(c))
}

impl ReleaseView for Index {
    fn release_in(
        &self,
        kind: Kind,
        name: &PackageName,
        version: &Version,
        channel: Option<&ChannelName>,
    ) -> anyhow::Result<Option<ReleaseRecord>> {
        Ok(self
            .names(kind, name)?
            .into_iter()
            .find(|(r, channels)| r.release.version == *version && held(channels, channel))
            .map(|(r, _)| r))
    }

    fn releases_in(
        &self,
        kind: Kind,
        name: &PackageName,
        channel: Option<&ChannelName>,
    ) -> anyhow::Result<Vec<ReleaseRecord>> {
        Ok(self.names(kind, name)?.into_iter().filter(|(_, c)| held(c, channel)).map(|(r, _)| r).collect())
    }

    fn release_by_digest_in(
        &self,
        digest: &Digest,
        channel: Option<&ChannelName>,
    ) -> anyhow::Result<Option<ReleaseRecord>> {
        let at = &self.table.digests[bucket_of(digest.as_bytes(), self.table.digests.len())];
        let bucket = read_part(&self.file, self.body + at.offset, at.len, &at.blake3, decode_digest_bucket)?;
        let mut holders = Vec::new();
        for (_, (kind, name, version)) in bucket.iter().filter(|(d, _)| d == digest) {
            let found = self.names(*kind, name)?.into_iter().find(|(r, _)| r.release.version == *version);
            holders.extend(found);
        }
        let chosen = airlock_keys::preferred_holder(&holders, |(r, _)| r);
        Ok(chosen.map(|i| holders.swap_remove(i)).filter(|(_, c)| held(c, channel)).map(|(r, _)| r))
    }
}
