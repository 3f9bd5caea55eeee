//! The filesystem blob backend: bytes under `blobs/<2 hex>/<64 hex>`; the 256 fan-out
//! directories are made when the backend opens, so storing a blob never makes a directory.
//!
//! A blob is staged in a temp file under `tmp/`, synced, renamed into place, and the directory
//! synced. The first 4 MiB of a stage go through the page cache; past them the stage writes
//! with `O_DIRECT` (`airlock_client::direct`) where the filesystem takes it. A batch (`commit_batch`, a mirror sync) syncs the filesystem once before its renames
//! and once after, instead of three syncs a blob. A stage that is not committed is removed when dropped, and `tmp/` is emptied when the
//! backend opens, so a crash leaves nothing visible that was not committed.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use airlock_proto::Digest;
use bytes::Bytes;

use super::backend::{BlobBackend, BlobRead, BlobStage, Parked};
use airlock_client::direct::Switch;
use airlock_client::fsutil::WriteBack;

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
        let mut created = false;
        for first in 0..=255u8 {
            let dir = blobs.join(hex::encode([first]));
            if !dir.is_dir() {
                fs::create_dir_all(&dir)?;
                created = true;
            }
        }
        if created {
            fsync_dir(&blobs)?;
        }
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
    blobs.join(&hex[0..2]).join(hex)
}

/// Renames a temp file to its blob path; returns that directory and whether it had to be made
/// again (the backend makes every fan-out directory when it opens, so only one removed by hand
/// since then is missing).
fn place(blobs: &Path, temp: &Path, digest: &Digest) -> io::Result<(PathBuf, bool)> {
    let target = blob_path(blobs, digest);
    let parent = target.parent().ok_or_else(|| io::Error::other("blob path has no parent"))?.to_owned();
    match fs::rename(temp, &target) {
        Err(e) if e.kind() == io::ErrorKind::NotFound && !parent.is_dir() => {
            fs::create_dir_all(&parent)?;
            fs::rename(temp, &target)?;
            Ok((parent, true))
        }
        other => other.map(|()| (parent, false)),
    }
}

/// Flushes every file and directory change on the filesystem holding `dir` to stable storage
/// (syncfs(2)): one call for a whole batch of blobs.
fn sync_filesystem(dir: &Path) -> io::Result<()> {
    rustix::fs::syncfs(File::open(dir)?).map_err(io::Error::from)
}

/// Renames a synced temp file to its blob path and syncs the directories it changed.
fn install(blobs: &Path, temp: &Path, digest: &Digest) -> io::Result<()> {
    let (parent, created) = place(blobs, temp, digest)?;
    fsync_dir(&parent)?;
    if created {
        // The fan-out directory was new (made since the backend opened: removed by hand).
        fsync_dir(blobs)?;
    }
    Ok(())
}

impl BlobBackend for FsBackend {
    fn stage(&self, _digest: &Digest) -> io::Result<Box<dyn BlobStage>> {
        let path = self.tmp.join(format!("stage-{}", hex::encode(rand::random::<[u8; 16]>())));
        let file = OpenOptions::new().write(true).create_new(true).open(&path)?;
        Ok(Box::new(FsStage {
            file,
            direct: Switch::default(),
            write_back: WriteBack::default(),
            path,
            blobs: self.blobs.clone(),
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
            for blob in fs::read_dir(first.path())? {
                let blob = blob?;
                if let Some(digest) = blob.file_name().to_str().and_then(|n| Digest::from_hex(n).ok()) {
                    out.push(digest);
                }
            }
        }
        out.sort();
        Ok(out)
    }

    fn commit_batch(&self, parked: Vec<(Parked, Digest)>) -> io::Result<()> {
        let mut files = Vec::with_capacity(parked.len());
        for (parked, digest) in parked {
            let file = parked
                .0
                .downcast::<ParkedFile>()
                .map_err(|_| io::Error::other("a stage parked by another backend"))?;
            files.push((file, digest));
        }
        // Every staged byte durable, then every rename, then durable again: two syncs a batch.
        sync_filesystem(&self.tmp)?;
        let mut placed = Vec::with_capacity(files.len());
        let mut result = Ok(());
        for (file, digest) in &mut files {
            match place(&self.blobs, &file.path, digest) {
                Ok(_) => {
                    file.placed = true;
                    placed.push(*digest);
                }
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        let result = result.and_then(|()| sync_filesystem(&self.blobs));
        if result.is_err() {
            for digest in &placed {
                let _ = self.delete(digest);
            }
        }
        result
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

/// A stage: a temp file, its write-back (a thread only once the blob is large enough to need
/// one, so that a small blob costs none) and its switch to direct writes.
#[derive(Debug)]
struct FsStage {
    file: File,
    /// Past its first `DIRECT_FROM` bytes, where the filesystem takes `O_DIRECT`, the blob goes
    /// to the device directly.
    direct: Switch,
    /// Write-back of the bytes written through the page cache, started as they go, so the
    /// sync at commit is short.
    write_back: WriteBack,
    path: PathBuf,
    blobs: PathBuf,
    committed: bool,
}

impl BlobStage for FsStage {
    /// The first `DIRECT_FROM` bytes through the page cache, then the rest directly.
    fn write(&mut self, chunk: Bytes) -> io::Result<()> {
        let Self { file, write_back, direct, .. } = self;
        direct.write_shared(file, &chunk, |head| write_back.write(file, head))
    }

    fn commit(mut self: Box<Self>, digest: &Digest) -> io::Result<()> {
        self.finish_writes()?;
        self.file.sync_all()?;
        install(&self.blobs, &self.path, digest)?;
        self.committed = true;
        Ok(())
    }

    fn park(mut self: Box<Self>) -> io::Result<Parked> {
        self.finish_writes()?;
        // The file closes with the stage; the parked file owns the temp path from here.
        self.committed = true;
        Ok(Parked(Box::new(ParkedFile { path: self.path.clone(), placed: false })))
    }
}

impl FsStage {
    /// Writes the direct tail and waits for the write-back in flight; the caller syncs.
    fn finish_writes(&mut self) -> io::Result<()> {
        self.direct.end(&mut self.file)?;
        self.write_back.wait()
    }
}

/// A parked stage: a closed temp file, removed when dropped unless a batch placed it.
#[derive(Debug)]
struct ParkedFile {
    path: PathBuf,
    placed: bool,
}

impl Drop for ParkedFile {
    fn drop(&mut self) {
        if !self.placed {
            let _ = fs::remove_file(&self.path);
        }
    }
}

impl Drop for FsStage {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_file(&self.path);
        }
    }
}
