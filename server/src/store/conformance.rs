//! The conformance suite every blob backend must pass, run through the store's public API (the
//! one ingest path, ranged reads, stat, list, delete) and through the backend trait itself.
//! Each case takes a function that opens the store afresh over the same place, so that a case can
//! also stand for a crash and a restart. The filesystem backend runs it below; a second backend
//! adds one line per case.

use std::io::Read;
use std::sync::Arc;

use airlock_proto::{Clock, Digest, Sha256};
use bytes::Bytes;
use sha2::Digest as _;

use super::{Expected, IngestError, Store};

type Open<'a> = &'a dyn Fn() -> Arc<Store>;

fn sha256(bytes: &[u8]) -> Sha256 {
    Sha256(sha2::Sha256::digest(bytes).into())
}

fn ingest(store: &Arc<Store>, bytes: &[u8], expected: Expected) -> Result<super::StoredBlob, IngestError> {
    let mut ingest = store.ingest(expected)?;
    for chunk in bytes.chunks(7) {
        ingest.write(Bytes::copy_from_slice(chunk))?;
    }
    ingest.finish()
}

fn read_range(store: &Store, digest: &Digest, offset: u64, len: u64) -> Vec<u8> {
    let mut out = Vec::new();
    store.open_blob(digest, offset, len).expect("open").into_reader().read_to_end(&mut out).expect("read");
    out
}

fn held(store: &Store) -> Vec<Digest> {
    store.backend().list().expect("list")
}

/// Written blobs are durable, recorded with both digests, and readable in any range.
pub fn write_then_read_ranges(open: Open<'_>) {
    let store = open();
    let bytes: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
    let digest = Digest::of(&bytes);
    let stored =
        ingest(&store, &bytes, Expected::logged(digest, bytes.len() as u64, sha256(&bytes))).unwrap();
    assert_eq!((stored.digest, stored.size, stored.sha256), (digest, 10_000, sha256(&bytes)));
    let record = store.blob(&digest).unwrap().expect("recorded");
    assert_eq!((record.size, record.sha256), (10_000, sha256(&bytes)));
    assert_eq!(read_range(&store, &digest, 0, 10_000), bytes);
    assert_eq!(read_range(&store, &digest, 1234, 100), bytes[1234..1334]);
    assert_eq!(read_range(&store, &digest, 9_999, 1), bytes[9_999..]);
    drop(store);
    let reopened = open();
    assert_eq!(read_range(&reopened, &digest, 0, 10_000), bytes, "not durable across a reopen");
}

/// Chunks of any size are stored in order: thousands of small ones, empty ones among them; then
/// larger ones, one of them across the point where a backend may change how it writes (4 MiB
/// for the filesystem), and a tail that fills no whole buffer.
pub fn chunks_of_any_size(open: Open<'_>) {
    const LEN: usize = (13 << 19) + 3;
    let store = open();
    let bytes: Vec<u8> = (0..LEN as u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    let digest = Digest::of(&bytes);
    let mut chunks = Vec::new();
    let mut at = 0;
    for i in 0.. {
        if at == bytes.len() {
            break;
        }
        let len = if i < 3000 { i * 37 % 181 } else { i * 7919 % 70_001 };
        let len = len.min(bytes.len() - at);
        chunks.push(Bytes::copy_from_slice(&bytes[at..at + len]));
        at += len;
    }
    assert!(chunks.iter().any(Bytes::is_empty));
    let mut ingest = store.ingest(Expected::address(digest, LEN as u64)).unwrap();
    for chunk in chunks {
        ingest.write(chunk).unwrap();
    }
    let stored = ingest.finish().unwrap();
    assert_eq!((stored.digest, stored.size, stored.sha256), (digest, LEN as u64, sha256(&bytes)));
    drop(store);
    assert_eq!(read_range(&open(), &digest, 0, LEN as u64), bytes, "batched bytes differ");
}

/// Aligned pool buffers, as an upload hands them over, are stored in order: whole ones across
/// the point where a backend may change how it writes (4 MiB for the filesystem, which then
/// writes them without a copy), and a part-filled last one.
pub fn pooled_buffers(open: Open<'_>) {
    use airlock_client::direct::{AlignedPool, BUFFER};
    const LEN: usize = 6 * BUFFER + 12_345;
    let store = open();
    let bytes: Vec<u8> = (0..LEN as u32).map(|i| (i.wrapping_mul(2_246_822_519) >> 11) as u8).collect();
    let digest = Digest::of(&bytes);
    let pool = AlignedPool::default();
    let mut ingest = store.ingest(Expected::address(digest, LEN as u64)).unwrap();
    for piece in bytes.chunks(BUFFER) {
        let mut filling = pool.take();
        assert_eq!(filling.push(piece), piece.len());
        ingest.write(filling.freeze()).unwrap();
    }
    let stored = ingest.finish().unwrap();
    assert_eq!((stored.digest, stored.size, stored.sha256), (digest, LEN as u64, sha256(&bytes)));
    drop(store);
    assert_eq!(read_range(&open(), &digest, 0, LEN as u64), bytes, "pooled bytes differ");
}

/// `stat` and `list` see committed blobs only; `delete` removes one.
pub fn stat_list_delete(open: Open<'_>) {
    let store = open();
    let a = b"first blob".to_vec();
    let b = b"second, longer blob".to_vec();
    for bytes in [&a, &b] {
        ingest(&store, bytes, Expected::address(Digest::of(bytes), 1 << 20)).unwrap();
    }
    let mut want = vec![Digest::of(&a), Digest::of(&b)];
    want.sort();
    assert_eq!(held(&store), want);
    assert_eq!(store.backend().stat(&Digest::of(&b)).unwrap(), Some(b.len() as u64));
    assert_eq!(store.backend().stat(&Digest::of(b"absent")).unwrap(), None);
    assert!(store.discard_unreferenced(&Digest::of(&a)).unwrap());
    assert_eq!(held(&store), vec![Digest::of(&b)]);
    assert!(store.blob(&Digest::of(&a)).unwrap().is_none(), "the record outlived the bytes");
    assert!(!store.backend().delete(&Digest::of(&a)).unwrap(), "deleting twice reports nothing deleted");
}

/// Bytes that do not match what was expected leave nothing: no record, no blob, no stage.
pub fn mismatch_leaves_nothing(open: Open<'_>) {
    let store = open();
    let bytes = b"the real bytes".to_vec();
    let digest = Digest::of(&bytes);
    let wrong_blake3 = Expected::logged(Digest::of(b"other"), bytes.len() as u64, sha256(&bytes));
    assert!(matches!(ingest(&store, &bytes, wrong_blake3), Err(IngestError::Blake3 { .. })));
    let wrong_sha = Expected::logged(digest, bytes.len() as u64, sha256(b"other"));
    assert!(matches!(ingest(&store, &bytes, wrong_sha), Err(IngestError::Sha256 { .. })));
    let wrong_size = Expected::logged(digest, bytes.len() as u64 - 1, sha256(&bytes));
    assert!(matches!(ingest(&store, &bytes, wrong_size), Err(IngestError::Size { .. })));
    let short = Expected::logged(digest, bytes.len() as u64 + 1, sha256(&bytes));
    assert!(matches!(ingest(&store, &bytes, short), Err(IngestError::Size { .. })));
    let capped = Expected::address(digest, 3);
    assert!(matches!(ingest(&store, &bytes, capped), Err(IngestError::TooLarge { .. })));
    assert!(held(&store).is_empty(), "a refused blob is visible");
    assert!(store.blob(&digest).unwrap().is_none() && store.blob_digests().unwrap().is_empty());
    drop(store);
    assert!(held(&open()).is_empty());
}

/// An ingest abandoned before it finished — dropped, or cut off by a crash that runs no
/// destructor — leaves nothing visible, before or after a restart.
pub fn crash_before_durability_leaves_nothing(open: Open<'_>) {
    let store = open();
    let bytes = vec![7u8; 100_000];
    let digest = Digest::of(&bytes);
    let mut dropped = store.ingest(Expected::address(digest, 1 << 20)).unwrap();
    dropped.write(Bytes::from(bytes.clone())).unwrap();
    drop(dropped);
    // A stage cut off by a crash: the process dies, no destructor runs, nothing is committed.
    let mut crashed = store.backend().stage(&digest).unwrap();
    crashed.write(Bytes::from(bytes)).unwrap();
    std::mem::forget(crashed);
    assert!(held(&store).is_empty());
    assert!(store.backend().stat(&digest).unwrap().is_none());
    drop(store);
    let restarted = open();
    assert!(held(&restarted).is_empty(), "a blob that never became durable is visible after restart");
    assert!(restarted.blob(&digest).unwrap().is_none());
}

/// Checked blobs committed together are all recorded, readable and durable; checked blobs never
/// committed (dropped, as when a sync fails before its commit) leave nothing.
pub fn batch_commit(open: Open<'_>) {
    let store = open();
    let check = |bytes: &[u8]| {
        let mut ingest =
            store.ingest(Expected::logged(Digest::of(bytes), bytes.len() as u64, sha256(bytes))).unwrap();
        ingest.write(Bytes::copy_from_slice(bytes)).unwrap();
        ingest.check().unwrap()
    };
    let blobs: Vec<Vec<u8>> = (0..5u8).map(|i| vec![i; 1000 + usize::from(i)]).collect();
    let abandoned = check(b"checked, never committed");
    let checked: Vec<_> = blobs.iter().map(|b| check(b)).collect();
    assert!(held(&store).is_empty(), "a checked blob is visible before its commit");
    assert!(store.blob(&Digest::of(&blobs[0])).unwrap().is_none());
    let stored = store.commit_batch(checked).unwrap();
    assert_eq!(
        stored.iter().map(|s| s.digest).collect::<Vec<_>>(),
        blobs.iter().map(|b| Digest::of(b)).collect::<Vec<_>>()
    );
    drop(abandoned);
    drop(store);
    let reopened = open();
    let mut want: Vec<Digest> = blobs.iter().map(|b| Digest::of(b)).collect();
    want.sort();
    assert_eq!(held(&reopened), want, "the batch is not durable, or the abandoned blob is visible");
    for bytes in &blobs {
        let record = reopened.blob(&Digest::of(bytes)).unwrap().expect("recorded");
        assert_eq!((record.size, record.sha256), (bytes.len() as u64, sha256(bytes)));
        assert_eq!(read_range(&reopened, &Digest::of(bytes), 0, bytes.len() as u64), *bytes);
    }
    assert!(reopened.commit_batch(Vec::new()).unwrap().is_empty());
}

/// The filesystem backend.
mod fs {
    use super::*;

    fn fs_store(dir: &tempfile::TempDir) -> impl Fn() -> Arc<Store> + '_ {
        move || Store::open(dir.path(), Clock::system()).expect("open store")
    }

    fn staged_files(dir: &tempfile::TempDir) -> usize {
        std::fs::read_dir(dir.path().join("tmp")).expect("tmp dir").count()
    }

    #[test]
    fn write_then_read_ranges() {
        let dir = tempfile::tempdir().unwrap();
        super::write_then_read_ranges(&fs_store(&dir));
    }

    #[test]
    fn chunks_of_any_size() {
        let dir = tempfile::tempdir().unwrap();
        super::chunks_of_any_size(&fs_store(&dir));
    }

    #[test]
    fn pooled_buffers() {
        let dir = tempfile::tempdir().unwrap();
        super::pooled_buffers(&fs_store(&dir));
    }

    #[test]
    fn stat_list_delete() {
        let dir = tempfile::tempdir().unwrap();
        super::stat_list_delete(&fs_store(&dir));
    }

    #[test]
    fn mismatch_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        super::mismatch_leaves_nothing(&fs_store(&dir));
        assert_eq!(staged_files(&dir), 0);
    }

    #[test]
    fn batch_commit() {
        let dir = tempfile::tempdir().unwrap();
        super::batch_commit(&fs_store(&dir));
        assert_eq!(staged_files(&dir), 0, "an abandoned checked blob left its stage behind");
    }

    #[test]
    fn crash_before_durability_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        super::crash_before_durability_leaves_nothing(&fs_store(&dir));
        assert_eq!(staged_files(&dir), 0, "a restart leaves stale stages behind");
    }
}

/// The S3 backend, against the bucket the test run provides (`scripts/seaweedfs.sh`).
mod s3 {
    use super::*;
    use crate::store::blob_store;

    /// A data directory whose blobs are in the run's bucket under a prefix of its own.
    fn s3_store<'a>(dir: &'a tempfile::TempDir, test: &str) -> Option<impl Fn() -> Arc<Store> + 'a> {
        let bucket = blob_store::test_bucket(test)?;
        blob_store::write(dir.path(), &bucket).unwrap();
        Some(move || Store::open(dir.path(), Clock::system()).expect("open store"))
    }

    /// The time `seconds` from now.
    fn at(seconds: i64) -> std::time::SystemTime {
        let now = airlock_proto::clock::system_now().saturating_add_signed(seconds);
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(now)
    }

    /// Temporary objects under `stages/`, waiting up to 5 s for background deletes.
    fn staged_objects(store: &Store) -> usize {
        let far = at(3600);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let found = store.backend().collect_stages(far, false).unwrap().len();
            if found == 0 || std::time::Instant::now() > deadline {
                return found;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    #[test]
    fn write_then_read_ranges() {
        let dir = tempfile::tempdir().unwrap();
        let Some(open) = s3_store(&dir, "write_then_read_ranges") else { return };
        super::write_then_read_ranges(&open);
    }

    #[test]
    fn chunks_of_any_size() {
        let dir = tempfile::tempdir().unwrap();
        let Some(open) = s3_store(&dir, "chunks_of_any_size") else { return };
        super::chunks_of_any_size(&open);
    }

    #[test]
    fn pooled_buffers() {
        let dir = tempfile::tempdir().unwrap();
        let Some(open) = s3_store(&dir, "pooled_buffers") else { return };
        super::pooled_buffers(&open);
    }

    #[test]
    fn stat_list_delete() {
        let dir = tempfile::tempdir().unwrap();
        let Some(open) = s3_store(&dir, "stat_list_delete") else { return };
        super::stat_list_delete(&open);
    }

    #[test]
    fn mismatch_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let Some(open) = s3_store(&dir, "mismatch_leaves_nothing") else { return };
        super::mismatch_leaves_nothing(&open);
        assert_eq!(staged_objects(&open()), 0);
    }

    #[test]
    fn batch_commit() {
        let dir = tempfile::tempdir().unwrap();
        let Some(open) = s3_store(&dir, "batch_commit") else { return };
        super::batch_commit(&open);
        assert_eq!(staged_objects(&open()), 0, "an abandoned checked blob left its stage behind");
    }

    #[test]
    fn crash_before_durability_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let Some(open) = s3_store(&dir, "crash_before_durability_leaves_nothing") else { return };
        super::crash_before_durability_leaves_nothing(&open);
        assert_eq!(staged_objects(&open()), 0);
    }

    /// Blobs of several parts: written through multipart, read back whole and in ranges that
    /// cross part boundaries, parked and committed in a batch; a stage of several parts that a
    /// crash cuts off leaves no visible object, and collecting stages aborts its upload.
    #[test]
    fn multipart_blobs_and_a_crashed_upload() {
        let dir = tempfile::tempdir().unwrap();
        let Some(open) = s3_store(&dir, "multipart_blobs_and_a_crashed_upload") else { return };
        let store = open();
        let part = crate::store::s3::PART_BYTES;
        let big: Vec<u8> = (0..2 * part + 12_345).map(|i| (i % 251) as u8).collect();
        let stored =
            ingest(&store, &big, Expected::logged(Digest::of(&big), big.len() as u64, sha256(&big))).unwrap();
        assert_eq!(stored.size, big.len() as u64);
        assert_eq!(read_range(&store, &stored.digest, 0, big.len() as u64), big);
        let (from, len) = (part as u64 - 10, 20u64 + part as u64);
        assert_eq!(read_range(&store, &stored.digest, from, len), big[from as usize..(from + len) as usize]);
        assert_eq!(store.backend().stat(&stored.digest).unwrap(), Some(big.len() as u64));

        // Parked and committed in a batch, beside a small one.
        let other: Vec<u8> = big.iter().map(|b| b.wrapping_add(1)).collect();
        let small = b"a small blob beside a large one".to_vec();
        let check = |bytes: &[u8]| {
            let mut ingest =
                store.ingest(Expected::logged(Digest::of(bytes), bytes.len() as u64, sha256(bytes))).unwrap();
            for chunk in bytes.chunks(1 << 20) {
                ingest.write(Bytes::copy_from_slice(chunk)).unwrap();
            }
            ingest.check().unwrap()
        };
        store.commit_batch(vec![check(&other), check(&small)]).unwrap();
        assert_eq!(read_range(&store, &Digest::of(&other), 0, other.len() as u64), other);
        assert_eq!(read_range(&store, &Digest::of(&small), 0, small.len() as u64), small);
        assert_eq!(staged_objects(&store), 0, "a committed blob left its temporary object");

        // A crash in the middle of a multipart upload: no destructor runs.
        let crashed_bytes = vec![9u8; 2 * part + 1];
        let mut crashed = store.backend().stage(&Digest::of(&crashed_bytes)).unwrap();
        crashed.write(Bytes::from(crashed_bytes.clone())).unwrap();
        std::mem::forget(crashed);
        assert!(store.backend().stat(&Digest::of(&crashed_bytes)).unwrap().is_none());
        let far = at(3600);
        let found = store.backend().collect_stages(far, false).unwrap();
        assert_eq!(found.len(), 1, "the upload's marker: {found:?}");
        // Younger than the cutoff: kept.
        let past = at(-3600);
        assert!(store.backend().collect_stages(past, true).unwrap().is_empty());
        assert_eq!(store.backend().collect_stages(far, true).unwrap().len(), 1);
        assert!(store.backend().collect_stages(far, false).unwrap().is_empty());
        let mut listed = held(&store);
        listed.sort();
        let mut want = vec![stored.digest, Digest::of(&other), Digest::of(&small)];
        want.sort();
        assert_eq!(listed, want);
    }
}

/// The S3 backend against Garage, where one is installed and named by `AIRLOCK_TEST_GARAGE_*`
/// (skipped with a message otherwise): the same cases as SeaweedFS.
mod garage {
    use super::*;
    use crate::store::blob_store;

    fn garage_store<'a>(dir: &'a tempfile::TempDir, test: &str) -> Option<impl Fn() -> Arc<Store> + 'a> {
        let mut bucket = blob_store::test_bucket_of("GARAGE", test)?;
        bucket.region = std::env::var("AIRLOCK_TEST_GARAGE_REGION").unwrap_or_else(|_| "garage".to_owned());
        blob_store::write(dir.path(), &bucket).unwrap();
        Some(move || Store::open(dir.path(), Clock::system()).expect("open store"))
    }

    #[test]
    fn the_conformance_cases() {
        type Case = fn(Open<'_>);
        let cases: [(&str, Case); 7] = [
            ("write_then_read_ranges", super::write_then_read_ranges),
            ("chunks_of_any_size", super::chunks_of_any_size),
            ("pooled_buffers", super::pooled_buffers),
            ("stat_list_delete", super::stat_list_delete),
            ("mismatch_leaves_nothing", super::mismatch_leaves_nothing),
            ("crash_before_durability_leaves_nothing", super::crash_before_durability_leaves_nothing),
            ("batch_commit", super::batch_commit),
        ];
        for (name, case) in cases {
            let dir = tempfile::tempdir().unwrap();
            let Some(open) = garage_store(&dir, name) else { return };
            case(&open);
        }
    }
}
