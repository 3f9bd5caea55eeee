//! Writes that bypass the page cache (`O_DIRECT`) for the bulk of a large file written once from
//! start to end: a blob the server stores (upload, sync, import), a bundle or a blob the client
//! writes, the client's state. The bytes go from aligned buffers straight to the device, so a
//! large file costs no page-cache copy and no write-back work, and leaves the page cache to what
//! is being read. The writes run on their own thread, so the device's time overlaps whatever
//! produces the bytes (hashing, receiving). A filesystem that refuses `O_DIRECT` (or a write it
//! refuses) gets the same bytes through the page cache.

use std::fs::File;
use std::io::{self, Write};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::thread::JoinHandle;

use bytes::Bytes;
use rustix::fs::OFlags;

mod pool;
mod read;

use pool::Aligned;
pub use pool::{AlignedPool, Filling};
pub use read::{RangeRead, ReadAhead};

/// Bytes gathered before one direct write. File offsets of direct writes are multiples of it.
pub const BUFFER: usize = 1 << 20;
/// Bytes of a file written through the page cache before the rest goes directly to the device:
/// small files never leave the page-cache path, and the switch falls on a buffer boundary.
pub const DIRECT_FROM: u64 = 4 * BUFFER as u64;
/// The alignment of the buffers: above the logical block size of any device in use.
const ALIGN: usize = 64 << 10;
/// Buffers per stage: one filling, the others queued for or in the write.
const BUFFERS: usize = 3;

/// Where a file written from its start stands: its first `DIRECT_FROM` bytes go through the
/// page cache (by the owner's own writes, with its write-back), the rest to a `DirectWriter`
/// where the filesystem takes `O_DIRECT`. The one switch for every such file.
#[derive(Debug)]
pub enum Switch {
    /// This many bytes written, all through the page cache.
    Before(u64),
    On(DirectWriter),
    /// Through the page cache from here: the filesystem refused `O_DIRECT`, or `end` was called.
    Off,
}

impl Default for Switch {
    fn default() -> Self {
        Self::Before(0)
    }
}

impl Switch {
    /// Appends `bytes` at the end of `file`: what comes before `DIRECT_FROM` through `buffered`,
    /// the rest directly.
    pub fn write(
        &mut self,
        file: &File,
        bytes: &[u8],
        buffered: impl FnOnce(&[u8]) -> io::Result<()>,
    ) -> io::Result<()> {
        let at = self.before_direct(file, bytes, buffered)?;
        match self {
            Self::On(writer) if at < bytes.len() => writer.write(&bytes[at..]),
            _ => Ok(()),
        }
    }

    /// `write` for a chunk that may be a whole aligned pool buffer: that goes to the writer
    /// without a copy.
    pub fn write_shared(
        &mut self,
        file: &File,
        chunk: &Bytes,
        buffered: impl FnOnce(&[u8]) -> io::Result<()>,
    ) -> io::Result<()> {
        let at = self.before_direct(file, chunk, buffered)?;
        match self {
            Self::On(writer) if at < chunk.len() => writer.write_shared(&chunk.slice(at..)),
            _ => Ok(()),
        }
    }

    /// Writes the part of `bytes` that goes through the page cache, turning direct writes on
    /// when `DIRECT_FROM` is reached; returns how many bytes that took.
    fn before_direct(
        &mut self,
        file: &File,
        bytes: &[u8],
        buffered: impl FnOnce(&[u8]) -> io::Result<()>,
    ) -> io::Result<usize> {
        match self {
            Self::On(_) => Ok(0),
            Self::Off => buffered(bytes).map(|()| bytes.len()),
            Self::Before(written) => {
                let head = usize::try_from(DIRECT_FROM - *written).unwrap_or(usize::MAX).min(bytes.len());
                buffered(&bytes[..head])?;
                *written += head as u64;
                if *written == DIRECT_FROM && head < bytes.len() {
                    *self = start(file)?.map_or(Self::Off, Self::On);
                }
                Ok(head)
            }
        }
    }

    /// Writes what the direct writer holds; from here the file is written through the page
    /// cache. The caller syncs.
    pub fn end(&mut self, file: &mut File) -> io::Result<()> {
        match std::mem::replace(self, Self::Off) {
            Self::On(writer) => writer.finish(file),
            Self::Before(_) | Self::Off => Ok(()),
        }
    }
}

/// Turns `O_DIRECT` on for `file` (whose length must be a multiple of `BUFFER`) and starts the
/// thread that writes to it. `None` when the filesystem refuses `O_DIRECT`.
fn start(file: &File) -> io::Result<Option<DirectWriter>> {
    let flags = rustix::fs::fcntl_getfl(file)?;
    match rustix::fs::fcntl_setfl(file, flags | OFlags::DIRECT) {
        Ok(()) => Ok(Some(DirectWriter::start(file.try_clone()?))),
        Err(rustix::io::Errno::INVAL) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Handles an I/O error of a direct read or write: `EINVAL` while `O_DIRECT` is on (a device
/// whose blocks the buffer does not fit, or a position a short transfer left unaligned) turns
/// it off, so the caller goes on through the page cache; anything else is the error.
fn refused(file: &File, error: io::Error) -> io::Result<()> {
    if error.raw_os_error() != Some(rustix::io::Errno::INVAL.raw_os_error()) {
        return Err(error);
    }
    let flags = rustix::fs::fcntl_getfl(file)?;
    if !flags.contains(OFlags::DIRECT) {
        return Err(error);
    }
    Ok(rustix::fs::fcntl_setfl(file, flags - OFlags::DIRECT)?)
}

/// Writes all of `bytes` at the file's position. A write the kernel refuses with `EINVAL`
/// (a device whose blocks the buffer does not fit, or a short write that left the position
/// unaligned) turns `O_DIRECT` off for the file and goes on through the page cache.
fn write_all(file: &mut File, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        match file.write(bytes) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => refused(file, e)?,
        }
    }
    Ok(())
}

/// What the writing thread is given: its own buffer back to reuse, or a full aligned buffer
/// shared with others (an upload's), written without a copy.
#[derive(Debug)]
enum Full {
    Own(Aligned),
    Shared(Bytes),
}

/// Gathers chunks into aligned buffers and writes each full one on its own thread; `finish`
/// writes the tail. A chunk that is already a full aligned buffer at an aligned position goes to
/// the thread as it is.
#[derive(Debug)]
pub struct DirectWriter {
    filling: Option<Aligned>,
    len: usize,
    allocated: usize,
    full: Option<SyncSender<Full>>,
    empty: Receiver<Aligned>,
    writer: Option<JoinHandle<io::Result<()>>>,
}

impl DirectWriter {
    fn start(mut file: File) -> Self {
        let (full_tx, full_rx) = mpsc::sync_channel::<Full>(BUFFERS);
        let (empty_tx, empty_rx) = mpsc::sync_channel::<Aligned>(BUFFERS);
        let writer = std::thread::spawn(move || {
            for full in full_rx {
                match full {
                    Full::Own(buffer) => {
                        write_all(&mut file, buffer.bytes(BUFFER))?;
                        let _ = empty_tx.send(buffer);
                    }
                    Full::Shared(bytes) => write_all(&mut file, &bytes)?,
                }
            }
            Ok(())
        });
        Self {
            filling: None,
            len: 0,
            allocated: 0,
            full: Some(full_tx),
            empty: empty_rx,
            writer: Some(writer),
        }
    }

    /// Appends `chunk`: without a copy when it is a whole aligned buffer and nothing is waiting
    /// in the buffer being filled, else as `write` does.
    pub fn write_shared(&mut self, chunk: &Bytes) -> io::Result<()> {
        if self.len > 0 || chunk.len() != BUFFER || chunk.as_ptr().align_offset(ALIGN) != 0 {
            return self.write(chunk);
        }
        self.send(Full::Shared(chunk.clone()))
    }

    fn send(&mut self, full: Full) -> io::Result<()> {
        let Some(sender) = &self.full else { return Err(self.stop()) };
        if sender.send(full).is_err() {
            return Err(self.stop());
        }
        Ok(())
    }

    /// Appends `bytes`; every buffer they fill goes to the writing thread.
    pub fn write(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            let mut buffer = match self.filling.take() {
                Some(buffer) => buffer,
                None if self.allocated < BUFFERS => {
                    self.allocated += 1;
                    Aligned::new()
                }
                None => match self.empty.recv() {
                    Ok(buffer) => buffer,
                    Err(_) => return Err(self.stop()),
                },
            };
            let n = bytes.len().min(BUFFER - self.len);
            buffer.bytes_mut()[self.len..self.len + n].copy_from_slice(&bytes[..n]);
            self.len += n;
            bytes = &bytes[n..];
            if self.len < BUFFER {
                self.filling = Some(buffer);
                continue;
            }
            self.len = 0;
            self.send(Full::Own(buffer))?;
        }
        Ok(())
    }

    /// Stops the writing thread after what it was given and returns why it stopped early.
    fn stop(&mut self) -> io::Error {
        match self.join() {
            Err(e) => e,
            Ok(()) => io::Error::other("the direct writer stopped"),
        }
    }

    fn join(&mut self) -> io::Result<()> {
        self.full = None;
        match self.writer.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(io::Error::other("the direct writer panicked")),
            None => Err(io::Error::other("the direct writer stopped after an error")),
        }
    }

    /// Waits until every full buffer is written, then writes the tail (less than a buffer, so
    /// not aligned) through the page cache, with `O_DIRECT` turned off. The caller syncs.
    pub fn finish(mut self, file: &mut File) -> io::Result<()> {
        self.join()?;
        if let Some(buffer) = self.filling.take() {
            let flags = rustix::fs::fcntl_getfl(&*file)?;
            rustix::fs::fcntl_setfl(&*file, flags - OFlags::DIRECT)?;
            file.write_all(buffer.bytes(self.len))?;
        }
        Ok(())
    }
}

impl Drop for DirectWriter {
    fn drop(&mut self) {
        self.full = None;
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read as _;

    use super::*;

    pub(super) fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8).collect()
    }

    fn read(path: &std::path::Path) -> Vec<u8> {
        let mut bytes = Vec::new();
        File::open(path).unwrap().read_to_end(&mut bytes).unwrap();
        bytes
    }

    fn direct(file: &File) -> bool {
        rustix::fs::fcntl_getfl(file).unwrap().contains(OFlags::DIRECT)
    }

    /// Whole buffers, a tail and odd pieces come out as the bytes that went in, with the
    /// file's `O_DIRECT` on while the writer runs and off after the tail.
    #[test]
    fn writes_exactly_the_bytes_given() {
        let dir = tempfile::tempdir().unwrap();
        for len in [0, 1, BUFFER - 1, BUFFER, 5 * BUFFER + 4097] {
            let path = dir.path().join(format!("blob-{len}"));
            let mut file = File::create(&path).unwrap();
            let Some(mut writer) = start(&file).unwrap() else {
                eprintln!("skipped: the temp directory's filesystem refuses O_DIRECT");
                return;
            };
            assert!(direct(&file));
            let bytes = pattern(len);
            for piece in bytes.chunks(65_521) {
                writer.write(piece).unwrap();
            }
            writer.finish(&mut file).unwrap();
            assert_eq!(direct(&file), len % BUFFER == 0, "O_DIRECT is turned off for a tail only");
            file.sync_all().unwrap();
            assert_eq!(read(&path), bytes, "{len} bytes");
        }
    }

    /// Whole pool buffers are written as they are, between copied pieces that leave the
    /// position unaligned and aligned again; the bytes come out in order, and every buffer
    /// returns to the pool once written and dropped.
    #[test]
    fn pool_buffers_are_written_without_a_copy_between_copied_pieces() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blob");
        let mut file = File::create(&path).unwrap();
        let Some(mut writer) = start(&file).unwrap() else {
            eprintln!("skipped: the temp directory's filesystem refuses O_DIRECT");
            return;
        };
        let pool = AlignedPool::default();
        let whole = |seed: usize| {
            let mut filling = pool.take();
            let bytes = pattern(BUFFER + seed);
            assert_eq!(filling.push(&bytes[seed..]), BUFFER);
            assert!(filling.is_full());
            filling.freeze()
        };
        let mut expected = Vec::new();
        let pieces = [
            whole(1),
            whole(2),
            Bytes::from(pattern(100)),
            whole(3),
            Bytes::from(pattern(BUFFER - 100)),
            whole(4),
        ];
        for piece in &pieces {
            writer.write_shared(piece).unwrap();
            expected.extend_from_slice(piece);
        }
        // The third pool buffer came at an unaligned position and was copied, with the pieces
        // around it, into two buffers of the writer's own; the other three went as they were
        // (copying all of them would have taken all three buffers it may hold).
        assert_eq!(writer.allocated, 2, "pool buffers at aligned positions are not copied");
        writer.finish(&mut file).unwrap();
        drop(pieces);
        assert_eq!(read(&path), expected);
        assert_eq!(pool.0.lock().unwrap().len(), 4, "every pool buffer came back");
    }

    /// A write the kernel refuses for its alignment goes on through the page cache.
    #[test]
    fn a_refused_direct_write_goes_through_the_page_cache() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blob");
        let mut file = File::create(&path).unwrap();
        let flags = rustix::fs::fcntl_getfl(&file).unwrap();
        if rustix::fs::fcntl_setfl(&file, flags | OFlags::DIRECT).is_err() {
            eprintln!("skipped: the temp directory's filesystem refuses O_DIRECT");
            return;
        }
        let aligned = Aligned::new();
        // One byte past an aligned start, and an odd length: no block device takes that directly.
        let bytes = &aligned.memory[aligned.start + 1..aligned.start + 1 + 10_000];
        let mut probe = File::create(dir.path().join("probe")).unwrap();
        rustix::fs::fcntl_setfl(&probe, flags | OFlags::DIRECT).unwrap();
        if probe.write(bytes).is_ok() {
            eprintln!("skipped: the temp directory's filesystem takes unaligned direct writes (tmpfs)");
            return;
        }
        write_all(&mut file, bytes).unwrap();
        assert!(!direct(&file), "O_DIRECT is off after the refusal");
        assert_eq!(read(&path), bytes);
    }
}
