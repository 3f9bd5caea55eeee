//! Durable file writes: temp file in the target's directory, fsync, rename, fsync the directory.
//! A reader never sees a partial file, and a crash leaves either the old file or the new one.
//! Past its first 4 MiB a file is written with `O_DIRECT` where the filesystem takes it
//! (`direct.rs`), until anything seeks in it.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::direct::Switch;

/// A file being written; becomes visible at its path only on `commit`. Dropped uncommitted, the
/// temp file is removed.
#[derive(Debug)]
pub struct AtomicFile {
    file: File,
    temp: PathBuf,
    target: PathBuf,
    committed: bool,
    write_back: WriteBack,
    direct: Switch,
}

/// Starts syncing a file being written every `WRITE_BACK_EVERY` bytes, on another thread, so
/// the disk writes while more bytes arrive and the final sync is short.
#[derive(Debug, Default)]
pub struct WriteBack {
    /// Bytes written since write-back last started.
    unsynced: u64,
    /// The write-back in flight, if any: a sync of what was written before it started.
    pending: Option<std::thread::JoinHandle<io::Result<()>>>,
}

impl WriteBack {
    /// Writes `data` to `file` at its position, in pieces, so that write-back of a large buffer
    /// starts before its end.
    pub fn write(&mut self, mut file: &File, data: &[u8]) -> io::Result<()> {
        for piece in data.chunks(WRITE_BACK_EVERY as usize) {
            file.write_all(piece)?;
            self.wrote(file, piece.len())?;
        }
        Ok(())
    }

    /// Counts `len` more bytes written to `file`; starts a sync of them when enough have gathered
    /// and no sync is still running.
    pub fn wrote(&mut self, file: &File, len: usize) -> io::Result<()> {
        self.unsynced += len as u64;
        if self.unsynced >= WRITE_BACK_EVERY && self.pending.as_ref().is_none_or(|w| w.is_finished()) {
            self.wait()?;
            let file = file.try_clone()?;
            self.pending = Some(std::thread::spawn(move || file.sync_data()));
            self.unsynced = 0;
        }
        Ok(())
    }

    /// Waits for the sync in flight, if any (the caller still syncs the whole file).
    pub fn wait(&mut self) -> io::Result<()> {
        match self.pending.take() {
            Some(pending) => pending.join().map_err(|_| io::Error::other("write-back panicked"))?,
            None => Ok(()),
        }
    }
}

/// Bytes written between write-backs of a large file: the disk writes while more bytes arrive,
/// so the sync at commit is short.
const WRITE_BACK_EVERY: u64 = 32 << 20;

fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

impl AtomicFile {
    /// Starts writing `target` (mode 0644 unless `mode` says otherwise).
    pub fn create(target: &Path, mode: u32) -> io::Result<Self> {
        use std::os::unix::fs::OpenOptionsExt;
        let name = target.file_name().ok_or_else(|| io::Error::other("output path has no file name"))?;
        let temp =
            parent_of(target).join(format!(".{}.tmp-{}", name.to_string_lossy(), hex::encode(rand_bytes())));
        let file = OpenOptions::new().write(true).create_new(true).mode(mode).open(&temp)?;
        Ok(Self {
            file,
            temp,
            target: target.to_path_buf(),
            committed: false,
            write_back: WriteBack::default(),
            direct: Switch::default(),
        })
    }

    /// Appends bytes: up to `DIRECT_FROM` through the page cache, the rest directly where the
    /// filesystem allows.
    pub fn write_all_bytes(&mut self, data: &[u8]) -> io::Result<()> {
        let Self { file, write_back, direct, .. } = self;
        direct.write(file, data, |head| write_back.write(file, head))
    }

    /// Writes what the direct writer holds; from here the file is written through the page
    /// cache (after a seek the position is no longer where direct writes may start).
    fn end_direct(&mut self) -> io::Result<()> {
        self.direct.end(&mut self.file)
    }

    /// Syncs and moves the file into place, then syncs the directory.
    pub fn commit(mut self) -> io::Result<()> {
        self.end_direct()?;
        self.write_back.wait()?;
        self.file.sync_all()?;
        fs::rename(&self.temp, &self.target)?;
        self.committed = true;
        File::open(parent_of(&self.target))?.sync_all()
    }
}

impl io::Write for AtomicFile {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.write_all_bytes(data)?;
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl io::Seek for AtomicFile {
    fn seek(&mut self, position: io::SeekFrom) -> io::Result<u64> {
        // The file's position must count every byte given: the direct writer's too.
        self.end_direct()?;
        self.file.seek(position)
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_file(&self.temp);
        }
    }
}

/// A temp-name suffix unique within this process and unlikely across processes: a counter and
/// the process id, mixed with the standard library's per-process random hash keys (no clock).
fn rand_bytes() -> [u8; 8] {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    hasher.write_u32(std::process::id());
    hasher.finish().to_le_bytes()
}

/// Writes `bytes` to `path` atomically and durably.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let mut file = AtomicFile::create(path, mode)?;
    file.write_all_bytes(bytes)?;
    file.commit()
}

/// The regular files in `dir` whose name ends in `.EXTENSION`, in name order; an error when there
/// are none.
pub fn files_with_extension(dir: &Path, extension: &str) -> anyhow::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", dir.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == extension) && p.is_file())
        .collect();
    files.sort();
    anyhow::ensure!(!files.is_empty(), "{} holds no .{extension} file", dir.display());
    Ok(files)
}

/// Reads a file of at most `cap` bytes, naming the file in errors.
pub fn read_capped(path: &Path, cap: u64) -> anyhow::Result<Vec<u8>> {
    use std::io::Read;
    let file = File::open(path).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    let mut bytes = Vec::new();
    file.take(cap + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    anyhow::ensure!(bytes.len() as u64 <= cap, "{} is over the {cap}-byte cap", path.display());
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uncommitted_file_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out.bin");
        let mut file = AtomicFile::create(&target, 0o644).unwrap();
        file.write_all_bytes(b"partial").unwrap();
        drop(file);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i.wrapping_mul(2_654_435_761) >> 9) as u8).collect()
    }

    /// A file past `DIRECT_FROM`, given in odd pieces, is written whole; the bytes past it went
    /// to the direct writer where the filesystem takes `O_DIRECT`. Dropped uncommitted, such a
    /// file leaves nothing either.
    #[test]
    fn a_large_file_is_written_whole_past_the_switch_to_direct_writes() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("large.bin");
        let bytes = pattern(9 * crate::direct::BUFFER + 123);
        let mut file = AtomicFile::create(&target, 0o644).unwrap();
        for piece in bytes.chunks(700_001) {
            file.write_all_bytes(piece).unwrap();
        }
        if matches!(file.direct, Switch::Off) {
            eprintln!("the temp directory's filesystem refuses O_DIRECT: written through the page cache");
        } else {
            assert!(matches!(file.direct, Switch::On(_)), "past DIRECT_FROM the direct writer is on");
        }
        file.commit().unwrap();
        assert!(fs::read(&target).unwrap() == bytes, "the committed bytes differ");

        let mut dropped = AtomicFile::create(&dir.path().join("dropped.bin"), 0o644).unwrap();
        dropped.write_all_bytes(&bytes).unwrap();
        drop(dropped);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1, "only the committed file is left");
    }

    /// A seek (a zip writer patching a header) first writes what the direct writer holds, so the
    /// position counts every byte given; the file goes on through the page cache.
    #[test]
    fn a_seek_during_direct_writes_sees_every_byte_written() {
        use std::io::{Seek, SeekFrom};
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("patched.bin");
        let mut bytes = pattern(6 * crate::direct::BUFFER + 5);
        let mut file = AtomicFile::create(&target, 0o644).unwrap();
        file.write_all_bytes(&bytes).unwrap();
        if matches!(file.direct, Switch::Off) {
            eprintln!("the temp directory's filesystem refuses O_DIRECT: written through the page cache");
        } else {
            assert!(
                matches!(file.direct, Switch::On(_)),
                "the direct writer holds bytes when the seek comes"
            );
        }
        // The seek that asks where the file stands must count what the direct writer holds.
        assert_eq!(file.stream_position().unwrap(), bytes.len() as u64);
        file.seek(SeekFrom::Start(10)).unwrap();
        file.write_all_bytes(b"HEAD").unwrap();
        file.seek(SeekFrom::End(0)).unwrap();
        file.write_all_bytes(&pattern(3 * crate::direct::BUFFER)).unwrap();
        assert!(matches!(file.direct, Switch::Off), "no direct writes after a seek");
        file.commit().unwrap();
        bytes[10..14].copy_from_slice(b"HEAD");
        bytes.extend(pattern(3 * crate::direct::BUFFER));
        assert!(fs::read(&target).unwrap() == bytes, "the patched bytes differ");
    }

    #[test]
    fn committed_file_replaces_target() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out.bin");
        fs::write(&target, b"old").unwrap();
        write_atomic(&target, b"new", 0o644).unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"new");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
