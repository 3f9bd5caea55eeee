//! SHA-256 beside BLAKE3: a large blob's SHA-256 runs on its own thread, fed the same `Bytes`
//! without a copy, so hashing a blob with both costs the slower of the two rather than their
//! sum. A small blob is hashed inline, where a thread would cost more than it saves. The
//! server's ingest (uploads, syncs, imports) and the client's checked downloads both use it.

use std::io;
use std::sync::mpsc::SyncSender;
use std::thread::JoinHandle;

use bytes::Bytes;
use sha2::Digest as _;

/// Blobs up to this size (when the size is known beforehand) are hashed inline.
pub const INLINE_MAX: u64 = 1 << 20;

/// SHA-256 of a stream of chunks: inline, or on its own thread.
#[derive(Debug)]
pub enum Sha256Hasher {
    Inline(Box<sha2::Sha256>),
    Worker(Worker),
}

impl Sha256Hasher {
    /// Inline for a blob known to be at most `INLINE_MAX` bytes, else a thread that may hold
    /// `queue` chunks not yet hashed.
    pub fn for_size(size: Option<u64>, queue: usize) -> Self {
        match size {
            Some(size) if size <= INLINE_MAX => Self::Inline(Box::default()),
            _ => Self::Worker(Worker::start(queue)),
        }
    }

    pub fn update(&mut self, chunk: Bytes) -> io::Result<()> {
        match self {
            Self::Inline(hasher) => {
                hasher.update(&chunk);
                Ok(())
            }
            Self::Worker(worker) => worker.update(chunk),
        }
    }

    /// The digest of every chunk given.
    pub fn finish(&mut self) -> io::Result<[u8; 32]> {
        match self {
            Self::Inline(hasher) => Ok(std::mem::take(hasher.as_mut()).finalize().into()),
            Self::Worker(worker) => worker.finish(),
        }
    }
}

/// The thread and the queue to it.
#[derive(Debug)]
pub struct Worker {
    tx: Option<SyncSender<Bytes>>,
    handle: Option<JoinHandle<[u8; 32]>>,
}

impl Worker {
    fn start(queue: usize) -> Self {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Bytes>(queue);
        let handle = std::thread::spawn(move || {
            let mut hasher = sha2::Sha256::new();
            for chunk in rx {
                hasher.update(&chunk);
            }
            hasher.finalize().into()
        });
        Self { tx: Some(tx), handle: Some(handle) }
    }

    fn update(&self, chunk: Bytes) -> io::Result<()> {
        match &self.tx {
            Some(tx) => tx.send(chunk).map_err(|_| io::Error::other("the SHA-256 thread stopped")),
            None => Err(io::Error::other("the SHA-256 thread already finished")),
        }
    }

    fn finish(&mut self) -> io::Result<[u8; 32]> {
        self.tx = None;
        self.handle
            .take()
            .ok_or_else(|| io::Error::other("the SHA-256 thread already finished"))?
            .join()
            .map_err(|_| io::Error::other("the SHA-256 thread panicked"))
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.tx = None;
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Inline and on a thread, chunks of any size give the digest of their concatenation.
    #[test]
    fn both_ways_give_the_digest_of_all_chunks() {
        let bytes: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 + i / 13) as u8).collect();
        let expected: [u8; 32] = sha2::Sha256::digest(&bytes).into();
        for (size, queue) in [(Some(bytes.len() as u64), 2), (None, 1), (Some(10), 4)] {
            let mut hasher = Sha256Hasher::for_size(size, queue);
            assert_eq!(matches!(hasher, Sha256Hasher::Inline(_)), size == Some(10));
            for chunk in bytes.chunks(65_537) {
                hasher.update(Bytes::copy_from_slice(chunk)).unwrap();
            }
            assert_eq!(hasher.finish().unwrap(), expected);
            assert!(hasher.update(Bytes::new()).is_err() || matches!(hasher, Sha256Hasher::Inline(_)));
        }
    }
}
