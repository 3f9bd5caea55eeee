//! The byte form of a [`LogSnapshot`]: a compact binary layout rather than CBOR, because a
//! fold of a million releases is read at every start and CBOR's field names and generic
//! decoding cost seconds there. Integers are little-endian; a string or byte string is a
//! 4-byte length then its bytes; a release's metadata is its CBOR (empty when it is the
//! default, as it is for most wheels). The decoder caps every count by the bytes left, checks
//! every name as the name types do, and refuses trailing bytes.

use super::snapshot::{
    FoldSnapshot, LogSnapshot, SnapshotChannel, SnapshotRelease, SnapshotRoot, SnapshotStatus,
    MAX_SNAPSHOT_BYTES,
};
use crate::merkle::Frontier;
use crate::{
    codec, ChannelName, Digest, FileEntry, FileName, Kind, Metadata, PackageName, PayloadType, Release,
    Sha256, Version,
};

const MAGIC: &[u8; 8] = b"airfold1";
/// Largest metadata of one release (a statement is at most 64 KiB).
const MAX_METADATA_BYTES: usize = 64 << 10;

/// Why snapshot bytes were refused.
#[derive(Debug, thiserror::Error)]
#[error("snapshot bytes at offset {at}: {what}")]
pub struct FoldDecodeError {
    pub at: usize,
    pub what: String,
}

pub(super) struct Writer(pub(super) Vec<u8>);

impl Writer {
    pub(super) fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    pub(super) fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    pub(super) fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    pub(super) fn bytes(&mut self, v: &[u8]) {
        self.u32(u32::try_from(v.len()).unwrap_or(u32::MAX));
        self.0.extend_from_slice(v);
    }
    pub(super) fn str(&mut self, v: &str) {
        self.bytes(v.as_bytes());
    }
    pub(super) fn count(&mut self, n: usize) {
        self.u64(n as u64);
    }
    pub(super) fn kind(&mut self, kind: Kind) {
        self.u8(match kind {
            Kind::Wheel => 0,
            Kind::Node => 1,
        });
    }
    pub(super) fn key(&mut self, kind: Kind, name: &PackageName, version: &Version) {
        self.kind(kind);
        self.str(name.as_str());
        self.str(version.as_str());
    }
}

pub(super) struct Reader<'a> {
    pub(super) bytes: &'a [u8],
    pub(super) at: usize,
}

impl<'a> Reader<'a> {
    pub(super) fn fail<T>(&self, what: impl Into<String>) -> Result<T, FoldDecodeError> {
        Err(FoldDecodeError { at: self.at, what: what.into() })
    }
    pub(super) fn take(&mut self, n: usize) -> Result<&'a [u8], FoldDecodeError> {
        // An end past `usize::MAX` saturates, and no slice reaches it.
        match self.bytes.get(self.at..self.at.saturating_add(n)) {
            Some(slice) => {
                self.at += n;
                Ok(slice)
            }
            _ => self.fail(format!("{n} bytes wanted, {} left", self.bytes.len() - self.at)),
        }
    }
    pub(super) fn array<const N: usize>(&mut self) -> Result<[u8; N], FoldDecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }
    pub(super) fn u8(&mut self) -> Result<u8, FoldDecodeError> {
        Ok(self.take(1)?[0])
    }
    pub(super) fn u32(&mut self) -> Result<u32, FoldDecodeError> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    pub(super) fn u64(&mut self) -> Result<u64, FoldDecodeError> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    pub(super) fn bytes(&mut self) -> Result<&'a [u8], FoldDecodeError> {
        let len = self.u32()? as usize;
        self.take(len)
    }
    pub(super) fn str(&mut self) -> Result<&'a str, FoldDecodeError> {
        let bytes = self.bytes()?;
        std::str::from_utf8(bytes).or_else(|_| self.fail("text that is not UTF-8"))
    }
    /// A count of items each at least `min` bytes long: never more than the bytes left allow.
    pub(super) fn count(&mut self, min: usize) -> Result<usize, FoldDecodeError> {
        let n = self.u64()?;
        let left = (self.bytes.len() - self.at) as u64;
        if n.saturating_mul(min as u64) > left {
            return self.fail(format!("a count of {n} items, more than the {left} bytes left hold"));
        }
        Ok(n as usize)
    }
    pub(super) fn kind(&mut self) -> Result<Kind, FoldDecodeError> {
        match self.u8()? {
            0 => Ok(Kind::Wheel),
            1 => Ok(Kind::Node),
            other => self.fail(format!("kind {other}")),
        }
    }
    pub(super) fn name(&mut self, kind: Kind) -> Result<PackageName, FoldDecodeError> {
        let text = self.str()?;
        PackageName::new(kind, text).or_else(|e| self.fail(e.to_string()))
    }
    pub(super) fn version(&mut self) -> Result<Version, FoldDecodeError> {
        let text = self.str()?;
        Version::new(text).or_else(|e| self.fail(e.to_string()))
    }
    pub(super) fn channel(&mut self) -> Result<ChannelName, FoldDecodeError> {
        let text = self.str()?;
        ChannelName::new(text).or_else(|e| self.fail(e.to_string()))
    }
    pub(super) fn key(&mut self) -> Result<(Kind, PackageName, Version), FoldDecodeError> {
        let kind = self.kind()?;
        Ok((kind, self.name(kind)?, self.version()?))
    }
    pub(super) fn status(&mut self) -> Result<SnapshotStatus, FoldDecodeError> {
        match self.u8()? {
            0 => Ok(SnapshotStatus::Active),
            1 => Ok(SnapshotStatus::Yanked(self.str()?.to_owned())),
            2 => Ok(SnapshotStatus::Revoked(self.str()?.to_owned())),
            other => self.fail(format!("status {other}")),
        }
    }
}

pub(super) fn write_release(w: &mut Writer, r: &SnapshotRelease) -> Result<(), codec::CodecError> {
    w.u64(r.leaf);
    match &r.status {
        SnapshotStatus::Active => w.u8(0),
        SnapshotStatus::Yanked(reason) => {
            w.u8(1);
            w.str(reason);
        }
        SnapshotStatus::Revoked(reason) => {
            w.u8(2);
            w.str(reason);
        }
    }
    let release = &r.release;
    w.key(release.kind, &release.name, &release.version);
    w.u64(release.published_at);
    w.count(release.files.len());
    for file in &release.files {
        w.str(file.filename.as_str());
        w.u64(file.size);
        w.0.extend_from_slice(file.blake3.as_bytes());
        w.0.extend_from_slice(&file.sha256.0);
    }
    if release.metadata == Metadata::default() {
        w.bytes(&[]);
    } else {
        w.bytes(&codec::encode("release metadata", &release.metadata)?);
    }
    Ok(())
}

pub(super) fn read_release(r: &mut Reader<'_>) -> Result<SnapshotRelease, FoldDecodeError> {
    let leaf = r.u64()?;
    let status = r.status()?;
    let (kind, name, version) = r.key()?;
    let published_at = r.u64()?;
    let count = r.count(4 + 8 + 64)?;
    let mut files = Vec::with_capacity(count);
    for _ in 0..count {
        let text = r.str()?;
        let filename = FileName::new(text).or_else(|e| r.fail(e.to_string()))?;
        let size = r.u64()?;
        let blake3 = Digest::from_bytes(r.array()?);
        let sha256 = Sha256(r.array()?);
        files.push(FileEntry { filename, size, blake3, sha256 });
    }
    let metadata = match r.bytes()? {
        [] => Metadata::default(),
        bytes => {
            codec::decode("release metadata", bytes, MAX_METADATA_BYTES).or_else(|e| r.fail(e.to_string()))?
        }
    };
    let release =
        Release { payload_type: PayloadType::Release, kind, name, version, files, metadata, published_at };
    Ok(SnapshotRelease { leaf, release, status })
}

/// Releases per chunk of the release section.
const CHUNK_RELEASES: usize = 32_768;

/// One chunk of releases: its count, then exactly that many releases.
fn read_chunk(start: usize, chunk: &[u8]) -> Result<Vec<SnapshotRelease>, FoldDecodeError> {
    let mut r = Reader { bytes: chunk, at: 0 };
    let count = r.count(8 + 1 + 1 + 8 + 8 + 8 + 4)?;
    let mut releases = Vec::with_capacity(count);
    for _ in 0..count {
        releases.push(read_release(&mut r)?);
    }
    if r.at != chunk.len() {
        return Err(FoldDecodeError { at: start + r.at, what: "trailing bytes in a release chunk".into() });
    }
    Ok(releases)
}

/// The release chunks decoded across the machine's cores, in order.
fn read_chunks(slices: &[(usize, &[u8])]) -> Result<Vec<SnapshotRelease>, FoldDecodeError> {
    let parts = crate::parallel::map_parts(slices, |group| {
        let mut out = Vec::new();
        for (start, chunk) in group {
            out.extend(read_chunk(*start, chunk)?);
        }
        Ok(out)
    });
    let mut releases = Vec::new();
    for part in parts {
        let part =
            part.unwrap_or_else(|| Err(FoldDecodeError { at: 0, what: "a decoding thread failed".into() }))?;
        releases.extend(part);
    }
    Ok(releases)
}

impl LogSnapshot {
    /// The snapshot's bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>, codec::CodecError> {
        let mut w =
            Writer(Vec::with_capacity(64 + self.fold.releases.len() * 160 + self.fold.payloads.len()));
        w.0.extend_from_slice(MAGIC);
        w.u32(self.format);
        w.u64(self.frontier.size());
        w.count(self.frontier.hashes().len());
        for hash in self.frontier.hashes() {
            w.0.extend_from_slice(hash);
        }
        match &self.checkpoint {
            None => w.u8(0),
            Some(note) => {
                w.u8(1);
                w.bytes(note);
            }
        }
        w.u64(self.newest_issued_at);
        let fold = &self.fold;
        w.u64(fold.size);
        w.count(fold.roots.len());
        for root in &fold.roots {
            w.u64(root.leaf);
            w.bytes(&root.envelope);
        }
        // Releases in chunks, each prefixed with its length in bytes and its count, so that a
        // reader decodes the chunks on all its cores.
        w.count(fold.releases.len().div_ceil(CHUNK_RELEASES));
        for chunk in fold.releases.chunks(CHUNK_RELEASES) {
            let at = w.0.len();
            w.u64(0);
            w.count(chunk.len());
            for release in chunk {
                write_release(&mut w, release)?;
            }
            let len = (w.0.len() - at - 8) as u64;
            w.0[at..at + 8].copy_from_slice(&len.to_le_bytes());
        }
        w.count(fold.payloads.len());
        w.0.extend_from_slice(&fold.payloads);
        w.count(fold.channels.len());
        for channel in &fold.channels {
            w.str(channel.channel.as_str());
            w.count(channel.held.len());
            for (kind, name, version) in &channel.held {
                w.key(*kind, name, version);
            }
        }
        w.count(fold.status_leaves.len());
        for ((kind, name, version), leaf) in &fold.status_leaves {
            w.key(*kind, name, version);
            w.u64(*leaf);
        }
        w.count(fold.channel_leaves.len());
        for ((channel, kind, name), leaf) in &fold.channel_leaves {
            w.str(channel.as_str());
            w.kind(*kind);
            w.str(name.as_str());
            w.u64(*leaf);
        }
        Ok(w.0)
    }

    /// Reads a snapshot's bytes (at most [`MAX_SNAPSHOT_BYTES`]).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, FoldDecodeError> {
        let mut r = Reader { bytes, at: 0 };
        if bytes.len() > MAX_SNAPSHOT_BYTES {
            return r.fail(format!("{} bytes, over the {MAX_SNAPSHOT_BYTES}-byte cap", bytes.len()));
        }
        if r.take(8)? != MAGIC {
            return r.fail("not a fold snapshot");
        }
        let format = r.u32()?;
        let size = r.u64()?;
        let count = r.count(32)?;
        let hashes = (0..count).map(|_| r.array::<32>()).collect::<Result<Vec<_>, _>>()?;
        let frontier = Frontier::from_parts(size, hashes).or_else(|e| r.fail(e.to_string()))?;
        let checkpoint = match r.u8()? {
            0 => None,
            1 => Some(serde_bytes::ByteBuf::from(r.bytes()?.to_vec())),
            other => return r.fail(format!("checkpoint tag {other}")),
        };
        let newest_issued_at = r.u64()?;
        let fold_size = r.u64()?;
        let count = r.count(12)?;
        let mut roots = Vec::with_capacity(count);
        for _ in 0..count {
            let leaf = r.u64()?;
            roots.push(SnapshotRoot { leaf, envelope: serde_bytes::ByteBuf::from(r.bytes()?.to_vec()) });
        }
        let chunks = r.count(16)?;
        let mut slices = Vec::with_capacity(chunks);
        for _ in 0..chunks {
            let len = usize::try_from(r.u64()?).unwrap_or(usize::MAX);
            let start = r.at;
            slices.push((start, r.take(len)?));
        }
        let releases = read_chunks(&slices)?;
        let count = r.count(1)?;
        let payloads = serde_bytes::ByteBuf::from(r.take(count)?.to_vec());
        let count = r.count(4 + 8)?;
        let mut channels = Vec::with_capacity(count);
        for _ in 0..count {
            let channel = r.channel()?;
            let held_count = r.count(1 + 4 + 4)?;
            let held = (0..held_count).map(|_| r.key()).collect::<Result<Vec<_>, _>>()?;
            channels.push(SnapshotChannel { channel, held });
        }
        let count = r.count(1 + 4 + 4 + 8)?;
        let mut status_leaves = Vec::with_capacity(count);
        for _ in 0..count {
            let key = r.key()?;
            status_leaves.push((key, r.u64()?));
        }
        let count = r.count(4 + 1 + 4 + 8)?;
        let mut channel_leaves = Vec::with_capacity(count);
        for _ in 0..count {
            let channel = r.channel()?;
            let kind = r.kind()?;
            let name = r.name(kind)?;
            channel_leaves.push(((channel, kind, name), r.u64()?));
        }
        if r.at != bytes.len() {
            return r.fail(format!("{} trailing bytes", bytes.len() - r.at));
        }
        let fold = FoldSnapshot {
            size: fold_size,
            roots,
            releases,
            payloads,
            channels,
            status_leaves,
            channel_leaves,
        };
        Ok(Self { format, fold, frontier, checkpoint, newest_issued_at })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::api::SNAPSHOT_FORMAT;

    fn release(kind: Kind, name: &str, version: &str, metadata: Metadata) -> Release {
        let file = if kind == Kind::Wheel {
            format!("{}-{version}-py3-none-any.whl", name.replace('-', "_"))
        } else {
            format!("{name}-{version}.zip")
        };
        Release {
            payload_type: PayloadType::Release,
            kind,
            name: PackageName::new(kind, name).unwrap(),
            version: Version::new(version).unwrap(),
            files: vec![FileEntry {
                filename: FileName::new(&file).unwrap(),
                size: 42,
                blake3: Digest::of(file.as_bytes()),
                sha256: Sha256([7; 32]),
            }],
            metadata,
            published_at: 1_700_000_000,
        }
    }

    fn sample() -> LogSnapshot {
        let wheel = release(Kind::Wheel, "demo-pkg", "1.0", Metadata::default());
        let metadata = Metadata {
            summary: Some("a pack".into()),
            dependencies: vec!["torch>=2".into()],
            scan_report: Some(Digest::of(b"report")),
            ..Metadata::default()
        };
        let pack = release(Kind::Node, "comfy-pack", "1.2.0", metadata);
        let key = |r: &Release| (r.kind, r.name.clone(), r.version.clone());
        let stable = ChannelName::new("stable").unwrap();
        let fold = FoldSnapshot {
            size: 4,
            roots: vec![SnapshotRoot { leaf: 0, envelope: serde_bytes::ByteBuf::from(b"root".to_vec()) }],
            releases: vec![
                SnapshotRelease {
                    leaf: 1,
                    release: wheel.clone(),
                    status: SnapshotStatus::Yanked("broken".into()),
                },
                SnapshotRelease { leaf: 2, release: pack.clone(), status: SnapshotStatus::Active },
            ],
            payloads: serde_bytes::ByteBuf::from(vec![3u8; 160]),
            channels: vec![SnapshotChannel { channel: stable.clone(), held: vec![key(&pack)] }],
            status_leaves: vec![(key(&wheel), 3)],
            channel_leaves: vec![((stable, pack.kind, pack.name.clone()), 2)],
        };
        LogSnapshot {
            format: SNAPSHOT_FORMAT,
            fold,
            frontier: Frontier::from_parts(4, vec![[9; 32]]).unwrap(),
            checkpoint: Some(serde_bytes::ByteBuf::from(b"a note".to_vec())),
            newest_issued_at: 1_700_000_100,
        }
    }

    #[test]
    fn a_snapshot_round_trips_byte_for_byte() {
        let snapshot = sample();
        let bytes = snapshot.to_bytes().unwrap();
        let again = LogSnapshot::from_bytes(&bytes).unwrap();
        assert_eq!(again, snapshot);
        assert_eq!(again.to_bytes().unwrap(), bytes);
    }

    #[test]
    fn every_cut_trailing_bytes_a_bad_name_and_a_huge_count_are_refused_without_panicking() {
        let bytes = sample().to_bytes().unwrap();
        for cut in 0..bytes.len() {
            assert!(LogSnapshot::from_bytes(&bytes[..cut]).is_err(), "a cut at {cut} decoded");
        }
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(LogSnapshot::from_bytes(&trailing).unwrap_err().what.contains("trailing"));
        // The frontier's hash count claims more than the bytes hold.
        let mut huge = bytes.clone();
        huge[20..28].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(LogSnapshot::from_bytes(&huge).unwrap_err().what.contains("more than the"));
        // A release name the name rules refuse.
        let at = bytes.windows(8).position(|w| w == b"demo-pkg").unwrap();
        let mut bad = bytes;
        bad[at] = b'_';
        assert!(LogSnapshot::from_bytes(&bad).is_err());
    }
}
