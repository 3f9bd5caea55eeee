//! Reads that bypass the page cache where a file is read once: a bundle read ahead from start
//! to end, and the cold parts of a stored blob's range sent to a client.

use std::fs::File;
use std::io::{self, IoSliceMut, Read};
use std::num::NonZeroU64;
use std::os::unix::fs::FileExt;
use std::sync::mpsc::{self, Receiver, SyncSender};

use bytes::Bytes;
use rustix::fs::OFlags;

use super::pool::{Aligned, AlignedPool};
use super::{refused, BUFFER, BUFFERS};

/// Reads a file from start to end on its own thread, a buffer at a time and up to `BUFFERS`
/// buffers ahead of the caller, so the disk's time overlaps the caller's work (checking and
/// storing a bundle's blobs). The reads bypass the page cache (`O_DIRECT`) where the filesystem
/// takes it: a large file read once need not pass through it.
#[derive(Debug)]
pub struct ReadAhead {
    full: Receiver<io::Result<(Aligned, usize)>>,
    empty: SyncSender<Aligned>,
    current: Option<(Aligned, usize)>,
    at: usize,
    done: bool,
}

impl ReadAhead {
    pub fn new(mut file: File) -> Self {
        if let Ok(flags) = rustix::fs::fcntl_getfl(&file) {
            // Refused: the reads go through the page cache.
            let _ = rustix::fs::fcntl_setfl(&file, flags | OFlags::DIRECT);
        }
        let (full_tx, full) = mpsc::sync_channel(BUFFERS);
        let (empty, empty_rx) = mpsc::sync_channel::<Aligned>(BUFFERS + 1);
        std::thread::spawn(move || {
            let mut buffer = Aligned::new();
            loop {
                let read = read_full(&mut file, buffer.bytes_mut());
                let last = !matches!(read, Ok(n) if n == BUFFER);
                // A send that fails means the reader was dropped: stop reading.
                if full_tx.send(read.map(|n| (buffer, n))).is_err() || last {
                    return;
                }
                buffer = match empty_rx.try_recv() {
                    Ok(buffer) => buffer,
                    Err(_) => Aligned::new(),
                };
            }
        });
        Self { full, empty, current: None, at: 0, done: false }
    }
}

/// Fills `buffer` from `file` unless the file ends first; returns the bytes read. A read the
/// kernel refuses with `EINVAL` (a file whose position is no longer aligned) turns `O_DIRECT`
/// off and goes on through the page cache.
fn read_full(file: &mut File, buffer: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match file.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => refused(file, e)?,
        }
    }
    Ok(filled)
}

impl io::Read for ReadAhead {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        loop {
            if let Some((buffer, len)) = &self.current {
                if self.at < *len {
                    let n = out.len().min(len - self.at);
                    out[..n].copy_from_slice(&buffer.bytes(*len)[self.at..self.at + n]);
                    self.at += n;
                    return Ok(n);
                }
            }
            if let Some((buffer, _)) = self.current.take() {
                // The reading thread may be gone (the file ended): then the buffer is dropped.
                let _ = self.empty.try_send(buffer);
            }
            if self.done {
                return Ok(0);
            }
            match self.full.recv() {
                Ok(Ok((buffer, len))) => {
                    self.done = len < BUFFER;
                    (self.current, self.at) = (Some((buffer, len)), 0);
                }
                // The thread stops after an error, so a read after it fails too: the file is
                // never taken as ending there.
                Ok(Err(e)) => return Err(e),
                Err(_) => {
                    return Err(io::Error::other("the read-ahead thread stopped after an error or a panic"))
                }
            }
        }
    }
}

/// The unit of a direct read's position and length: the page size, a multiple of the logical
/// block size of the devices in use.
const PAGE: u64 = 4096;

/// Reads a range of a stored file a pool buffer at a time (a blob sent to a client). What the
/// page cache holds is read from it: one copy, and it stays there for the next reader. A cold
/// part, where the caller allows it, is read from the device straight into the buffer
/// (`O_DIRECT`): a blob read once (an export, a mirror's sync) then costs no page-cache copy and
/// does not push out of the cache what is read often.
///
/// Whether a part is cold is asked of the kernel for the first byte of each buffer
/// (`preadv2(RWF_NOWAIT)`, which fails with `EAGAIN` for a page the cache does not hold). That
/// question itself reads the page into the cache, so after a direct read the page is dropped
/// again: the file is left as cold as it was found.
#[derive(Debug)]
pub struct RangeRead {
    file: File,
    pos: u64,
    end: u64,
    cold_direct: bool,
    direct_on: bool,
    pool: AlignedPool,
}

impl RangeRead {
    /// `len` bytes of `file` from `start`; `cold_direct` allows direct reads of the cold parts.
    pub fn new(file: File, start: u64, len: u64, pool: AlignedPool, cold_direct: bool) -> Self {
        if cold_direct {
            // No read-ahead: the cold check then reads in the one page it asks about.
            let _ = rustix::fs::fadvise(&file, 0, None, rustix::fs::Advice::Random);
        }
        Self { file, pos: start, end: start.saturating_add(len), cold_direct, direct_on: false, pool }
    }

    /// The next piece of the range (at most a buffer), `None` after its end. A file that ends
    /// before the range does is an `UnexpectedEof`.
    pub fn next_chunk(&mut self) -> io::Result<Option<Bytes>> {
        if self.pos >= self.end {
            return Ok(None);
        }
        let direct = self.cold_direct && !self.cached(self.pos)?;
        let chunk = match if direct { self.read_direct()? } else { None } {
            Some(chunk) => chunk,
            None => self.read_buffered()?,
        };
        if chunk.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the file ends before the range it was asked for",
            ));
        }
        self.pos += chunk.len() as u64;
        Ok(Some(chunk))
    }

    /// Whether the page cache holds the byte at `at`. A kernel that cannot answer turns direct
    /// reads off (everything through the page cache).
    fn cached(&mut self, at: u64) -> io::Result<bool> {
        self.set_direct(false)?;
        let mut byte = [0u8];
        match rustix::io::preadv2(
            &self.file,
            &mut [IoSliceMut::new(&mut byte)],
            at,
            rustix::io::ReadWriteFlags::NOWAIT,
        ) {
            Ok(_) => Ok(true),
            Err(rustix::io::Errno::AGAIN) => Ok(false),
            Err(rustix::io::Errno::INTR) => Ok(true),
            Err(rustix::io::Errno::OPNOTSUPP | rustix::io::Errno::INVAL | rustix::io::Errno::NOSYS) => {
                self.cold_direct = false;
                Ok(true)
            }
            Err(e) => Err(e.into()),
        }
    }

    fn set_direct(&mut self, on: bool) -> io::Result<()> {
        if self.direct_on == on {
            return Ok(());
        }
        let flags = rustix::fs::fcntl_getfl(&self.file)?;
        let flags = if on { flags | OFlags::DIRECT } else { flags - OFlags::DIRECT };
        rustix::fs::fcntl_setfl(&self.file, flags)?;
        self.direct_on = on;
        Ok(())
    }

    /// Up to a buffer from the position through the page cache.
    fn read_buffered(&mut self) -> io::Result<Bytes> {
        self.set_direct(false)?;
        let want = usize::try_from(self.end - self.pos).unwrap_or(BUFFER).min(BUFFER);
        let mut filling = self.pool.take();
        let (file, pos) = (&self.file, self.pos);
        filling.fill_with(|buffer| read_at_full(file, &mut buffer[..want], pos, false))?;
        Ok(filling.freeze())
    }

    /// Up to a buffer from the position, read from the device: from the page the position is in,
    /// whole pages, the bytes before the position then left out. `None` when the filesystem
    /// does not take `O_DIRECT` or the device refuses the read for its alignment (`EINVAL`):
    /// from then on everything goes through the page cache.
    fn read_direct(&mut self) -> io::Result<Option<Bytes>> {
        let from = self.pos - self.pos % PAGE;
        let pages = (self.end - from).div_ceil(PAGE) * PAGE;
        let want = usize::try_from(pages).unwrap_or(BUFFER).min(BUFFER);
        let mut filling = self.pool.take();
        let read = self.set_direct(true).and_then(|()| {
            filling.fill_with(|buffer| read_at_full(&self.file, &mut buffer[..want], from, true))
        });
        match read {
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::INVAL.raw_os_error()) => {
                self.cold_direct = false;
                self.set_direct(false)?;
                return Ok(None);
            }
            other => other?,
        }
        // The page the question read into the cache goes again.
        let page = NonZeroU64::new(PAGE);
        let _ = rustix::fs::fadvise(&self.file, from, page, rustix::fs::Advice::DontNeed);
        let read = filling.freeze();
        let skip = usize::try_from(self.pos - from).unwrap_or(0);
        let keep = usize::try_from(self.end - from).unwrap_or(usize::MAX).min(read.len());
        Ok(Some(if keep <= skip { Bytes::new() } else { read.slice(skip..keep) }))
    }
}

/// Reads into all of `buffer` from `at` unless the file ends first; returns the bytes read. A
/// direct read (`direct`) that comes back short of a whole page has met the file's end.
fn read_at_full(file: &File, buffer: &mut [u8], at: u64, direct: bool) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match file.read_at(&mut buffer[filled..], at + filled as u64) {
            Ok(0) => break,
            Ok(n) => {
                filled += n;
                if direct && !(filled as u64).is_multiple_of(PAGE) {
                    break;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::direct::tests::pattern;

    /// A file read ahead on another thread reads as the file, through reads of odd sizes.
    #[test]
    fn a_file_read_ahead_reads_whole_and_in_order() {
        let dir = tempfile::tempdir().unwrap();
        for len in [5 * BUFFER + 777, 2 * BUFFER, 0] {
            let path = dir.path().join(format!("bundle-{len}.tar"));
            let bytes = pattern(len);
            std::fs::write(&path, &bytes).unwrap();
            let mut reader = ReadAhead::new(File::open(&path).unwrap());
            let mut read = Vec::new();
            let mut piece = vec![0u8; 300_007];
            loop {
                let n = Read::read(&mut reader, &mut piece).unwrap();
                if n == 0 {
                    break;
                }
                read.extend_from_slice(&piece[..n]);
            }
            assert!(read == bytes, "the {len} bytes read ahead differ");
            assert_eq!(Read::read(&mut reader, &mut piece).unwrap(), 0, "the end stays the end");
        }
    }

    /// A file of `len` bytes written directly, so none of it is in the page cache; `None`, and
    /// a line saying the test is skipped, where the filesystem refuses `O_DIRECT` or keeps
    /// everything in memory (tmpfs).
    fn cold_file(dir: &std::path::Path, len: usize) -> Option<(std::path::PathBuf, Vec<u8>)> {
        let path = dir.join(format!("cold-{len}"));
        let bytes = pattern(len);
        let file = File::create(&path).unwrap();
        let flags = rustix::fs::fcntl_getfl(&file).unwrap();
        let skipped = || {
            eprintln!("skipped: the temp directory's filesystem has no cold reads (tmpfs, or no O_DIRECT)")
        };
        if rustix::fs::fcntl_setfl(&file, flags | OFlags::DIRECT).is_err() {
            skipped();
            return None;
        }
        let mut aligned = Aligned::new();
        for (i, piece) in bytes.chunks(BUFFER).enumerate() {
            let whole = piece.len().div_ceil(PAGE as usize) * PAGE as usize;
            aligned.bytes_mut()[..piece.len()].copy_from_slice(piece);
            file.write_all_at(&aligned.bytes(whole)[..whole], (i * BUFFER) as u64).unwrap();
        }
        file.set_len(len as u64).unwrap();
        file.sync_all().unwrap();
        if cached(&path, len as u64 / 2) {
            skipped();
            return None;
        }
        Some((path, bytes))
    }

    /// Whether the page cache holds the byte at `at` of the file at `path`. Asking reads the
    /// page in when it does not: it is dropped again, so asking changes nothing.
    fn cached(path: &std::path::Path, at: u64) -> bool {
        let file = File::open(path).unwrap();
        rustix::fs::fadvise(&file, 0, None, rustix::fs::Advice::Random).unwrap();
        let mut byte = [0u8];
        let flags = rustix::io::ReadWriteFlags::NOWAIT;
        match rustix::io::preadv2(&file, &mut [IoSliceMut::new(&mut byte)], at, flags) {
            Ok(_) => true,
            Err(rustix::io::Errno::AGAIN) => {
                std::thread::sleep(std::time::Duration::from_millis(20));
                let page = at - at % PAGE;
                rustix::fs::fadvise(&file, page, NonZeroU64::new(PAGE), rustix::fs::Advice::DontNeed)
                    .unwrap();
                false
            }
            Err(e) => panic!("preadv2: {e}"),
        }
    }

    fn read_range(path: &std::path::Path, start: u64, len: u64, cold_direct: bool) -> io::Result<Vec<u8>> {
        let pool = AlignedPool::default();
        let mut reader = RangeRead::new(File::open(path).unwrap(), start, len, pool, cold_direct);
        let mut read = Vec::new();
        while let Some(chunk) = reader.next_chunk()? {
            assert!(chunk.len() <= BUFFER, "a chunk is at most a buffer");
            read.extend_from_slice(&chunk);
        }
        Ok(read)
    }

    /// Every range of a cold file, aligned or not, reads as its bytes whichever way it is read;
    /// a range past the file's end is an error, not a short read.
    #[test]
    fn ranges_read_exactly_their_bytes_cold_or_through_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        let len = 3 * BUFFER + 5000;
        let ranges =
            [(0, len), (1, len - 1), (4095, 2 * BUFFER + 2), (BUFFER + 4096, BUFFER), (len - 7, 7), (17, 1)];
        for cold_direct in [true, false] {
            let Some((path, bytes)) = cold_file(dir.path(), len) else { return };
            for (start, n) in ranges {
                let read = read_range(&path, start as u64, n as u64, cold_direct).unwrap();
                assert!(read == bytes[start..start + n], "{n} bytes from {start} (direct: {cold_direct})");
            }
            for (start, n) in [(0, len + 1), (len - 10, 11), (len, 1)] {
                let error = read_range(&path, start as u64, n as u64, cold_direct).unwrap_err();
                assert_eq!(error.kind(), io::ErrorKind::UnexpectedEof, "{n} bytes from {start}");
            }
        }
    }

    /// A cold file read with direct reads allowed is left out of the page cache, the pages the
    /// cold check read in included; read without, it is in the cache after.
    #[test]
    fn a_cold_range_read_directly_stays_out_of_the_page_cache() {
        let dir = tempfile::tempdir().unwrap();
        let len = 4 * BUFFER;
        let Some((path, bytes)) = cold_file(dir.path(), len) else { return };
        assert!(read_range(&path, 1000, (len - 1000) as u64, true).unwrap() == bytes[1000..]);
        // The middle of each buffer, and the pages the check asked about (one per buffer).
        for at in
            [BUFFER / 2, BUFFER + BUFFER / 2, 3 * BUFFER + 12_345, 1000, BUFFER + 1000, 2 * BUFFER + 1000]
        {
            assert!(!cached(&path, at as u64), "byte {at} was read into the page cache");
        }
        assert!(read_range(&path, 0, len as u64, false).unwrap() == bytes);
        assert!(cached(&path, (BUFFER + BUFFER / 2) as u64), "read without direct reads, the file is cached");
    }

    /// Bytes this thread has had read from storage (page-cache hits not counted); `None`
    /// where the kernel does not account for them.
    fn read_from_storage() -> Option<u64> {
        let io = std::fs::read_to_string("/proc/thread-self/io").ok()?;
        io.lines().find_map(|line| line.strip_prefix("read_bytes: ")).and_then(|n| n.trim().parse().ok())
    }

    /// A range the page cache holds is read from it, not from the device, even with direct
    /// reads allowed; a cold one is read from the device.
    #[test]
    fn a_cached_range_is_read_from_the_page_cache() {
        let dir = tempfile::tempdir().unwrap();
        let len = 2 * BUFFER;
        let Some((path, bytes)) = cold_file(dir.path(), len) else { return };
        let Some(before) = read_from_storage() else {
            eprintln!("skipped: the kernel does not count bytes read from storage");
            return;
        };
        assert!(read_range(&path, 0, len as u64, true).unwrap() == bytes);
        let cold = read_from_storage().unwrap() - before;
        assert!(cold >= len as u64, "a cold range is read from the device: {cold} bytes");
        assert!(read_range(&path, 0, len as u64, false).unwrap() == bytes, "read into the cache");
        assert!(cached(&path, 100) && cached(&path, (BUFFER + 100) as u64));
        let before = read_from_storage().unwrap();
        assert!(read_range(&path, 1, len as u64 - 1, true).unwrap() == bytes[1..]);
        assert_eq!(read_from_storage().unwrap() - before, 0, "a cached range is read from the cache");
    }
}
