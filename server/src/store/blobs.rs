//! The blob store: bytes on the filesystem under `blobs/<2 hex>/<2 hex>/<64 hex>`.
//!
//! A blob is written to a temp file under `tmp/` while BLAKE3 and SHA-256 are computed, then
//! fsynced, checked against the digest it claims, renamed into place, and the directory fsynced.
//! Only after that does the caller record it in the database. A temp file that is not finished
//! is removed when its writer is dropped, and `tmp/` is emptied at start-up.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use airlock_proto::{Digest, Sha256};
use sha2::Digest as _;

/// A blob that is durable at its final path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredBlob {
    pub digest: Digest,
    pub size: u64,
    pub sha256: Sha256,
}

/// Why a finished upload was refused.
#[derive(Debug, thiserror::Error)]
pub enum FinishError {
    #[error("uploaded bytes hash to {actual}, not {expected}")]
    DigestMismatch { expected: Digest, actual: Digest },
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// The blob directory and its staging area.
#[derive(Debug)]
pub struct BlobStore {
    blobs: PathBuf,
    tmp: PathBuf,
}

/// Syncs a directory so that a rename or create inside it is durable.
pub fn fsync_dir(path: &Path) -> io::Result<()> {
    File::open(path)?.sync_all()
}

impl BlobStore {
    /// Opens the store under `data`, creating it, and removes stale temp files.
    pub fn open(data: &Path) -> io::Result<Self> {
        let blobs = data.join("blobs");
        let tmp = data.join("tmp");
        fs::create_dir_all(&blobs)?;
        fs::create_dir_all(&tmp)?;
        for entry in fs::read_dir(&tmp)? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                fs::remove_file(entry.path())?;
            }
        }
        Ok(Self { blobs, tmp })
    }

    /// Where a blob's bytes live.
    pub fn path(&self, digest: &Digest) -> PathBuf {
        let hex = digest.to_hex();
        self.blobs.join(&hex[0..2]).join(&hex[2..4]).join(hex)
    }

    /// Opens a stored blob for reading.
    pub fn open_blob(&self, digest: &Digest) -> io::Result<File> {
        File::open(self.path(digest))
    }

    /// Starts a new upload in the staging area.
    pub fn begin(&self) -> io::Result<BlobWriter> {
        let name = format!("upload-{}", hex::encode(rand::random::<[u8; 16]>()));
        let path = self.tmp.join(name);
        let file = OpenOptions::new().write(true).create_new(true).open(&path)?;
        let sha256 = Sha256Worker::start();
        let syncer = Syncer::start(file.try_clone()?);
        Ok(BlobWriter {
            file,
            path,
            blake3: blake3::Hasher::new(),
            sha256,
            syncer,
            size: 0,
            since_sync: 0,
            finished: false,
        })
    }

    fn install(&self, temp: &Path, digest: &Digest) -> io::Result<()> {
        let target = self.path(digest);
        let parent = target.parent().ok_or_else(|| io::Error::other("blob path has no parent"))?;
        let created = !parent.exists();
        fs::create_dir_all(parent)?;
        fs::rename(temp, &target)?;
        fsync_dir(parent)?;
        if created {
            // The two fan-out directories may be new too.
            if let Some(grandparent) = parent.parent() {
                fsync_dir(grandparent)?;
            }
            fsync_dir(&self.blobs)?;
        }
        Ok(())
    }
}

/// An upload in progress: a temp file and the running hashes.
#[derive(Debug)]
pub struct BlobWriter {
    file: File,
    path: PathBuf,
    blake3: blake3::Hasher,
    sha256: Sha256Worker,
    syncer: Syncer,
    size: u64,
    since_sync: u64,
    finished: bool,
}

/// Bytes written between background syncs: write-back overlaps receiving, so the final fsync
/// is short.
const SYNC_EVERY: u64 = 64 << 20;

/// SHA-256 on its own thread, so it runs beside BLAKE3 instead of after it.
#[derive(Debug)]
struct Sha256Worker {
    tx: Option<std::sync::mpsc::SyncSender<bytes::Bytes>>,
    handle: Option<std::thread::JoinHandle<[u8; 32]>>,
}

impl Sha256Worker {
    fn start() -> Self {
        let (tx, rx) = std::sync::mpsc::sync_channel::<bytes::Bytes>(16);
        let handle = std::thread::spawn(move || {
            let mut hasher = sha2::Sha256::new();
            for chunk in rx {
                hasher.update(&chunk);
            }
            hasher.finalize().into()
        });
        Self { tx: Some(tx), handle: Some(handle) }
    }

    fn update(&self, chunk: bytes::Bytes) -> io::Result<()> {
        match &self.tx {
            Some(tx) => tx.send(chunk).map_err(|_| io::Error::other("SHA-256 worker stopped")),
            None => Err(io::Error::other("SHA-256 worker finished")),
        }
    }

    fn finish(&mut self) -> io::Result<[u8; 32]> {
        self.tx = None;
        self.handle
            .take()
            .ok_or_else(|| io::Error::other("SHA-256 worker finished"))?
            .join()
            .map_err(|_| io::Error::other("SHA-256 worker panicked"))
    }
}

impl Drop for Sha256Worker {
    fn drop(&mut self) {
        self.tx = None;
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

/// Starts write-back of what was written so far, on its own thread; never more than one at once.
#[derive(Debug)]
struct Syncer {
    tx: Option<std::sync::mpsc::SyncSender<()>>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Syncer {
    fn start(file: File) -> Self {
        let (tx, rx) = std::sync::mpsc::sync_channel::<()>(1);
        let handle = std::thread::spawn(move || {
            for () in rx {
                let _ = file.sync_data(); // Best effort: the final sync_all is what counts.
            }
        });
        Self { tx: Some(tx), handle: Some(handle) }
    }

    fn nudge(&self) {
        if let Some(tx) = &self.tx {
            let _ = tx.try_send(()); // A sync already pending covers this one too.
        }
    }

    fn stop(&mut self) {
        self.tx = None;
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

impl Drop for Syncer {
    fn drop(&mut self) {
        self.stop();
    }
}

impl BlobWriter {
    /// Hashes and writes a chunk.
    pub fn write(&mut self, data: &[u8]) -> io::Result<()> {
        self.write_bytes(bytes::Bytes::copy_from_slice(data))
    }

    /// Hashes and writes a chunk without copying it: SHA-256 runs on another thread while
    /// BLAKE3 and the write run here.
    pub fn write_bytes(&mut self, data: bytes::Bytes) -> io::Result<()> {
        self.sha256.update(data.clone())?;
        self.blake3.update(&data);
        self.file.write_all(&data)?;
        self.size += data.len() as u64;
        self.since_sync += data.len() as u64;
        if self.since_sync >= SYNC_EVERY {
            self.since_sync = 0;
            self.syncer.nudge();
        }
        Ok(())
    }

    /// Bytes written so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Syncs the bytes, checks them against `expected`, and moves them into place. On a
    /// mismatch the temp file is removed and nothing is left behind.
    pub fn finish(mut self, store: &BlobStore, expected: &Digest) -> Result<StoredBlob, FinishError> {
        let actual = Digest::from(self.blake3.finalize());
        if actual != *expected {
            return Err(FinishError::DigestMismatch { expected: *expected, actual });
        }
        let sha256 = Sha256(self.sha256.finish()?);
        self.syncer.stop();
        self.file.sync_all()?;
        store.install(&self.path, expected)?;
        self.finished = true;
        Ok(StoredBlob { digest: actual, size: self.size, sha256 })
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        if !self.finished {
            let _ = fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finished_blob_is_in_place_and_temp_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let mut writer = store.begin().unwrap();
        writer.write(b"hello ").unwrap();
        writer.write(b"world").unwrap();
        let stored = writer.finish(&store, &Digest::of(b"hello world")).unwrap();
        assert_eq!(stored.size, 11);
        assert_eq!(fs::read(store.path(&stored.digest)).unwrap(), b"hello world");
        assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
    }

    #[test]
    fn digest_mismatch_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let mut writer = store.begin().unwrap();
        writer.write(b"hello").unwrap();
        let claimed = Digest::of(b"other");
        assert!(matches!(writer.finish(&store, &claimed), Err(FinishError::DigestMismatch { .. })));
        assert!(!store.path(&claimed).exists());
        assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
    }

    #[test]
    fn abandoned_upload_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let mut writer = store.begin().unwrap();
        writer.write(b"partial").unwrap();
        drop(writer);
        assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
    }
}
