//! The filesystem blob backend: bytes under `blobs/<2 hex>/<2 hex>/<64 hex>`.
//!
//! A blob is staged in a temp file under `tmp/`, synced, renamed into place, and the directory
//! synced. A stage that is not committed is removed when dropped, and `tmp/` is emptied when the
//! backend opens, so a crash leaves nothing visible that was not committed.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use airlock_proto::Digest;
use bytes::Bytes;

use super::backend::{BlobBackend, BlobRead, BlobStage};

/// Bytes written between background syncs: write-back overlaps receiving, so the final sync
/// is short.
const SYNC_EVERY: u64 = 64 << 20;

/// Blobs in a directory on the local filesystem.
#[derive(Debug)]
pub struct FsBackend {
    blobs: PathBuf,
    tmp: PathBuf,
}

/// Syncs a directory so that a rename or create inside it is durable.
fn fsync_dir(path: &Path) -> io::Result<()> {
    File::open(path)?.sync_all()
}

impl FsBackend {
    /// Opens the backend under `data` (creating `blobs/` and `tmp/`) and removes stale stages.
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

    fn path(&self, digest: &Digest) -> PathBuf {
        blob_path(&self.blobs, digest)
    }
}

fn blob_path(blobs: &Path, digest: &Digest) -> PathBuf {
    let hex = digest.to_hex();
    blobs.join(&hex[0..2]).join(&hex[2..4]).join(hex)
}

/// Renames a synced temp file to its blob path and syncs the directories it changed.
fn install(blobs: &Path, temp: &Path, digest: &Digest) -> io::Result<()> {
    let target = blob_path(blobs, digest);
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
        fsync_dir(blobs)?;
    }
    Ok(())
}

impl BlobBackend for FsBackend {
    fn stage(&self) -> io::Result<Box<dyn BlobStage>> {
        let path = self.tmp.join(format!("stage-{}", hex::encode(rand::random::<[u8; 16]>())));
        let file = OpenOptions::new().write(true).create_new(true).open(&path)?;
        Ok(Box::new(FsStage {
            file,
            path,
            blobs: self.blobs.clone(),
            syncer: None,
            since_sync: 0,
            committed: false,
        }))
    }

    fn open(&self, digest: &Digest, offset: u64, len: u64) -> io::Result<BlobRead> {
        let mut file = File::open(self.path(digest))?;
        if offset > 0 {
            file.seek(SeekFrom::Start(offset))?;
        }
        Ok(BlobRead::File { file, len })
    }

    fn stat(&self, digest: &Digest) -> io::Result<Option<u64>> {
        match fs::metadata(self.path(digest)) {
            Ok(meta) => Ok(Some(meta.len())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn list(&self) -> io::Result<Vec<Digest>> {
        let mut out = Vec::new();
        for first in fs::read_dir(&self.blobs)? {
            let first = first?;
            if !first.file_type()?.is_dir() {
                continue;
            }
            for second in fs::read_dir(first.path())? {
                let second = second?;
                if !second.file_type()?.is_dir() {
                    continue;
                }
                for blob in fs::read_dir(second.path())? {
                    let blob = blob?;
                    if let Some(digest) = blob.file_name().to_str().and_then(|n| Digest::from_hex(n).ok()) {
                        out.push(digest);
                    }
                }
            }
        }
        out.sort();
        Ok(out)
    }

    fn delete(&self, digest: &Digest) -> io::Result<bool> {
        let path = self.path(digest);
        match fs::remove_file(&path) {
            Ok(()) => {
                if let Some(parent) = path.parent() {
                    fsync_dir(parent)?;
                }
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// A stage: a temp file and its background syncer (started once the blob is large enough to
/// need one, so that a small blob costs no thread).
#[derive(Debug)]
struct FsStage {
    file: File,
    path: PathBuf,
    blobs: PathBuf,
    syncer: Option<Syncer>,
    since_sync: u64,
    committed: bool,
}

impl BlobStage for FsStage {
    fn write(&mut self, chunk: Bytes) -> io::Result<()> {
        self.file.write_all(&chunk)?;
        self.since_sync += chunk.len() as u64;
        if self.since_sync >= SYNC_EVERY {
            self.since_sync = 0;
            if self.syncer.is_none() {
                self.syncer = Some(Syncer::start(self.file.try_clone()?));
            }
            if let Some(syncer) = &self.syncer {
                syncer.nudge();
            }
        }
        Ok(())
    }

    fn commit(mut self: Box<Self>, digest: &Digest) -> io::Result<()> {
        if let Some(syncer) = &mut self.syncer {
            syncer.stop();
        }
        self.file.sync_all()?;
        install(&self.blobs, &self.path, digest)?;
        self.committed = true;
        Ok(())
    }
}

impl Drop for FsStage {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_file(&self.path);
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
