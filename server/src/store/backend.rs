//! The blob backend: where blob bytes live. The filesystem is the one implementation today; an
//! S3-compatible object store is the next. Every implementation passes the conformance suite in
//! `store/conformance.rs`.
//!
//! A backend stores bytes and nothing else: hashing, size checks and the database record are the
//! ingest path's job (`store/ingest.rs`), so no backend can make an unverified blob visible.

use std::fmt;
use std::fs::File;
use std::io::{self, Read};

use airlock_proto::Digest;
use bytes::Bytes;

/// A backend of blob bytes, addressed by BLAKE3.
pub trait BlobBackend: Send + Sync + fmt::Debug {
    /// Starts staging a new blob. Staged bytes are invisible to `open`, `stat` and `list` until
    /// `commit`; a stage dropped without commit leaves nothing behind.
    /// `digest` is the one the ingest path expects: the stage commits under no other.
    fn stage(&self, digest: &Digest) -> io::Result<Box<dyn BlobStage>>;

    /// Opens `len` bytes of a blob from `offset`. The caller has checked the range against the
    /// recorded size.
    fn open(&self, digest: &Digest, offset: u64, len: u64) -> io::Result<BlobRead>;

    /// The stored size of a blob, or `None` when the backend does not hold it.
    fn stat(&self, digest: &Digest) -> io::Result<Option<u64>>;

    /// A blob's size and when it was written (Unix seconds), in one look; `None` when the
    /// backend does not hold it or cannot tell. Only a shared bucket's sync and garbage
    /// collection ask.
    fn written(&self, digest: &Digest) -> io::Result<Option<(u64, u64)>> {
        let _ = digest;
        Ok(None)
    }

    /// A URL at which anyone holding it can GET the blob from the backend directly for
    /// `valid_for` (a presigned URL), or `None` when the backend has none to give.
    fn presign(&self, digest: &Digest, valid_for: std::time::Duration) -> io::Result<Option<String>> {
        let _ = (digest, valid_for);
        Ok(None)
    }

    /// Every blob the backend holds (committed blobs only).
    fn list(&self) -> io::Result<Vec<Digest>>;

    /// Removes a blob; `false` when it was not there. Only the store calls this, and only for a
    /// blob whose record it removed first.
    fn delete(&self, digest: &Digest) -> io::Result<bool>;

    /// Commits parked stages together: every one durable, then every one visible under its
    /// digest, as `BlobStage::commit` does for one, at a cost per batch rather than per blob.
    /// After an error nothing of the batch is visible that was not there before.
    fn commit_batch(&self, parked: Vec<(Parked, Digest)>) -> io::Result<()>;

    /// Temporary objects a crash left behind that were written at or before `cutoff` (name and
    /// bytes), removed unless `remove` is false. A backend that clears them when it opens (the
    /// filesystem's `tmp/`) has none.
    fn collect_stages(&self, cutoff: std::time::SystemTime, remove: bool) -> io::Result<Vec<(String, u64)>> {
        let _ = (cutoff, remove);
        Ok(Vec::new())
    }
}

/// A stage written in full and checked, set aside for `BlobBackend::commit_batch` by the backend
/// that made it. It holds no open file; dropped uncommitted, it leaves nothing behind.
pub struct Parked(pub Box<dyn std::any::Any + Send>);

/// What a blob the backend already holds is parked as (`Store::adopt`).
struct InPlace;

impl Parked {
    /// A blob the backend already holds under its digest, checked in place.
    pub fn in_place() -> Self {
        Self(Box::new(InPlace))
    }

    /// Whether this is a blob checked in place, which a batch commit only records.
    pub fn is_in_place(&self) -> bool {
        self.0.is::<InPlace>()
    }
}

impl fmt::Debug for Parked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Parked")
    }
}

/// A blob being written. Bytes go in with `write`; `commit` makes them durable and visible
/// under a digest the ingest path has already verified.
pub trait BlobStage: Send + fmt::Debug {
    /// Appends a chunk.
    fn write(&mut self, chunk: Bytes) -> io::Result<()>;

    /// Makes the staged bytes durable, then visible under `digest`. After an error nothing is
    /// visible under `digest` that was not there before.
    fn commit(self: Box<Self>, digest: &Digest) -> io::Result<()>;

    /// Sets the staged bytes aside for a batch commit (`BlobBackend::commit_batch`).
    fn park(self: Box<Self>) -> io::Result<Parked>;
}

/// The bytes of an opened blob range. The filesystem hands out the open file positioned at the
/// range start, so that a zero-copy send path can use it directly; other backends stream.
#[derive(Debug)]
pub enum BlobRead {
    /// An open file positioned at the range start; read `len` bytes.
    File { file: File, len: u64 },
    /// A stream of exactly the range's bytes.
    Stream(StreamRead),
    /// Chunks a task sends as they arrive (an object store's response), to be passed on as
    /// they come; at most `len` bytes of them are the range.
    Chunks(ChunkRead),
}

/// The receiving end of a blob range's chunks.
#[derive(Debug)]
pub struct ChunkRead {
    pub chunks: tokio::sync::mpsc::Receiver<io::Result<Bytes>>,
    pub len: u64,
}

/// Reads chunks as they arrive. Blocking: never on an async worker thread.
struct ChunkReader {
    chunks: tokio::sync::mpsc::Receiver<io::Result<Bytes>>,
    current: Bytes,
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.chunks.blocking_recv() {
                Some(chunk) => self.current = chunk?,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

/// A boxed reader of a blob range.
pub struct StreamRead(pub Box<dyn Read + Send>);

impl fmt::Debug for StreamRead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StreamRead")
    }
}

impl BlobRead {
    /// A reader over the range, whatever the backend handed out. Blocking.
    pub fn into_reader(self) -> Box<dyn Read + Send> {
        match self {
            Self::File { file, len } => Box::new(file.take(len)),
            Self::Stream(stream) => stream.0,
            Self::Chunks(ChunkRead { chunks, len }) => {
                Box::new(ChunkReader { chunks, current: Bytes::new() }.take(len))
            }
        }
    }
}

/// The error inside an `io::Error` from a backend whose store did not answer as it should (a
/// bucket unreachable, refusing or failing): requests that meet it are answered 503, and the
/// detail, which names the store, is logged rather than sent.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StoreUnavailable(pub String);

impl StoreUnavailable {
    /// Whether `error` carries one, and its detail.
    pub fn detail(error: &io::Error) -> Option<&str> {
        error.get_ref().and_then(|inner| inner.downcast_ref::<Self>()).map(|e| e.0.as_str())
    }
}
