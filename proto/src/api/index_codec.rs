//! The byte form of a client index's buckets: the fold's compact layout (`fold_codec`), not
//! CBOR, since a cold pull of a million releases writes every bucket and CBOR doubles their
//! size. A name bucket is a count, then each release as the fold writes it followed by its
//! channels (a count, then each name); a digest bucket is a count, then each file's BLAKE3 (32
//! bytes) and the kind, name and version of the release holding it. The decoders cap every
//! count by the bytes left, check every name, and refuse trailing bytes.

use super::fold_codec::{read_release, write_release, FoldDecodeError, Reader, Writer};
use super::snapshot::{DigestBucket, IndexedRelease, NameBucket};
use crate::{codec, Digest};

/// Fewest bytes a release takes in the fold's layout (leaf, status, kind, two empty strings,
/// time, file count, empty metadata), then an empty channel count.
const MIN_INDEXED_RELEASE: usize = 8 + 1 + 1 + 4 + 4 + 8 + 8 + 4 + 8;
/// Fewest bytes of a digest entry: the digest, a kind and two empty strings.
const MIN_DIGEST_ENTRY: usize = 32 + 1 + 4 + 4;

/// The bytes of a name bucket.
pub fn encode_name_bucket(bucket: &[IndexedRelease]) -> Result<Vec<u8>, codec::CodecError> {
    let mut w = Writer(Vec::with_capacity(bucket.len() * 256));
    w.count(bucket.len());
    for indexed in bucket {
        write_release(&mut w, &indexed.release)?;
        w.count(indexed.channels.len());
        for channel in &indexed.channels {
            w.str(channel.as_str());
        }
    }
    Ok(w.0)
}

/// A name bucket from its bytes.
pub fn decode_name_bucket(bytes: &[u8]) -> Result<NameBucket, FoldDecodeError> {
    let mut r = Reader { bytes, at: 0 };
    let count = r.count(MIN_INDEXED_RELEASE)?;
    let mut bucket = Vec::with_capacity(count);
    for _ in 0..count {
        let release = read_release(&mut r)?;
        let channels = r.count(4)?;
        let channels = (0..channels).map(|_| r.channel()).collect::<Result<_, _>>()?;
        bucket.push(IndexedRelease { release, channels });
    }
    finished(&r, "name bucket")?;
    Ok(bucket)
}

/// The bytes of a digest bucket.
pub fn encode_digest_bucket(bucket: &DigestBucket) -> Vec<u8> {
    let mut w = Writer(Vec::with_capacity(8 + bucket.len() * 64));
    w.count(bucket.len());
    for (digest, (kind, name, version)) in bucket {
        w.0.extend_from_slice(digest.as_bytes());
        w.key(*kind, name, version);
    }
    w.0
}

/// A digest bucket from its bytes.
pub fn decode_digest_bucket(bytes: &[u8]) -> Result<DigestBucket, FoldDecodeError> {
    let mut r = Reader { bytes, at: 0 };
    let count = r.count(MIN_DIGEST_ENTRY)?;
    let mut bucket = Vec::with_capacity(count);
    for _ in 0..count {
        let digest = Digest::from_bytes(r.array()?);
        bucket.push((digest, r.key()?));
    }
    finished(&r, "digest bucket")?;
    Ok(bucket)
}

fn finished(r: &Reader<'_>, what: &str) -> Result<(), FoldDecodeError> {
    match r.at == r.bytes.len() {
        true => Ok(()),
        false => Err(FoldDecodeError { at: r.at, what: format!("trailing bytes after the {what}") }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{SnapshotRelease, SnapshotStatus};
    use crate::{
        ChannelName, FileEntry, FileName, Kind, Metadata, PackageName, PayloadType, Release, Sha256, Version,
    };

    fn indexed(name: &str, version: &str, channels: &[&str], metadata: Metadata) -> IndexedRelease {
        let file = FileEntry {
            filename: FileName::new(&format!("{name}-{version}.tar.gz")).unwrap(),
            size: 1234,
            blake3: Digest::of(name.as_bytes()),
            sha256: Sha256([7; 32]),
        };
        let release = Release {
            payload_type: PayloadType::Release,
            kind: Kind::Node,
            name: PackageName::new(Kind::Node, name).unwrap(),
            version: Version::new(version).unwrap(),
            files: vec![file],
            metadata,
            published_at: 1_700_000_000,
        };
        IndexedRelease {
            release: SnapshotRelease { leaf: 42, release, status: SnapshotStatus::Yanked("broken".into()) },
            channels: channels.iter().map(|c| ChannelName::new(c).unwrap()).collect(),
        }
    }

    fn names() -> NameBucket {
        let metadata = Metadata { summary: Some("a pack".into()), ..Metadata::default() };
        vec![
            indexed("comfy-a", "1.0.0", &["stable", "lab"], metadata),
            indexed("comfy-b", "2.0", &[], Metadata::default()),
        ]
    }

    fn digests() -> DigestBucket {
        names()
            .iter()
            .map(|i| {
                (
                    i.release.release.files[0].blake3,
                    (
                        i.release.release.kind,
                        i.release.release.name.clone(),
                        i.release.release.version.clone(),
                    ),
                )
            })
            .collect()
    }

    /// Both buckets come back as they went in, empty ones too, and take fewer bytes than CBOR.
    #[test]
    fn buckets_round_trip_smaller_than_cbor() {
        let names = names();
        let bytes = encode_name_bucket(&names).unwrap();
        assert_eq!(decode_name_bucket(&bytes).unwrap(), names);
        assert!(bytes.len() < codec::encode("bucket", &names).unwrap().len());
        let digests = digests();
        let bytes = encode_digest_bucket(&digests);
        assert_eq!(decode_digest_bucket(&bytes).unwrap(), digests);
        assert_eq!(decode_name_bucket(&encode_name_bucket(&[]).unwrap()).unwrap(), vec![]);
        assert_eq!(decode_digest_bucket(&encode_digest_bucket(&vec![])).unwrap(), vec![]);
    }

    /// Every cut of a bucket, a trailing byte, a count past the bytes and a bad name are
    /// refused, never a panic.
    #[test]
    fn damaged_buckets_are_refused() {
        for bytes in [encode_name_bucket(&names()).unwrap(), encode_digest_bucket(&digests())] {
            let decode = |b: &[u8]| {
                let as_names = decode_name_bucket(b).is_ok();
                let as_digests = decode_digest_bucket(b).is_ok();
                as_names || as_digests
            };
            assert!(decode(&bytes));
            for cut in 0..bytes.len() {
                assert!(!decode(&bytes[..cut]), "cut at {cut}");
            }
            let mut longer = bytes.clone();
            longer.push(0);
            assert!(!decode(&longer), "a trailing byte");
            let mut huge = bytes.clone();
            huge[..8].copy_from_slice(&u64::MAX.to_le_bytes());
            assert!(!decode(&huge), "a huge count");
        }
        let mut bad = encode_digest_bucket(&digests());
        let name_at = 8 + 32 + 1 + 4;
        bad[name_at] = b'/';
        let error = decode_digest_bucket(&bad).unwrap_err();
        assert!(error.at > 0, "{error}");
    }
}
