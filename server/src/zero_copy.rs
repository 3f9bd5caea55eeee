//! Zero-copy blob bodies on plain HTTP/1 connections: the file's bytes go from the page cache to
//! the socket by `sendfile(2)`, never through airlockd's memory.
//!
//! hyper owns the HTTP framing and writes every response through the connection's I/O object, so
//! the file travels beside it. A zero-copy body yields, for each chunk of the file, a slice of
//! [`PLACEHOLDER`] of the chunk's length and queues the chunk (file, offset, length) on the
//! connection's [`Sends`]. hyper queues body bytes without copying them (its vectored write
//! strategy, which `server.rs` sets), so the placeholder's own address reaches [`ZeroCopyIo`]:
//! there, instead of writing the placeholder, it sends the queued chunk from the file. Headers and
//! other bodies are written as usual, in order. A placeholder slice that does not match the chunk
//! at the head of the queue (its position within the chunk) fails the connection rather than send
//! anything else.
//!
//! Only plain HTTP/1 connections carry a `Sends` (h2 and TLS copy every byte into their frames or
//! records), and only the filesystem backend has a file to send from.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Frame;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;

use crate::http::body::Body;
use crate::traffic::Counted;

/// Set when the kernel refused `sendfile` for a blob file (a filesystem without it): the answer
/// that met it fails, and later ones copy.
static REFUSED: AtomicBool = AtomicBool::new(false);

/// Whether zero-copy bodies may be used: not once `sendfile` was refused.
pub fn available() -> bool {
    !REFUSED.load(Ordering::Relaxed)
}

/// Chunk size of a zero-copy body: each chunk is one queued send and one body frame.
const CHUNK: usize = 4 << 20;
/// Chunks start at a rotating offset into the placeholder, so a queued chunk is matched by where
/// its slice starts as well as by the queue's order.
const TAGS: usize = 4096;

/// Stands in for file bytes in hyper's write queue; never read. Zero-initialised, so it occupies
/// no memory until touched.
static PLACEHOLDER: [u8; CHUNK + TAGS] = [0; CHUNK + TAGS];

fn placeholder_offset(slice: &[u8]) -> Option<usize> {
    let start = PLACEHOLDER.as_ptr() as usize;
    let at = slice.as_ptr() as usize;
    (!slice.is_empty() && at >= start && at < start + PLACEHOLDER.len()).then(|| at - start)
}

/// One chunk of a file waiting to be sent.
#[derive(Debug)]
struct Chunk {
    file: Arc<File>,
    /// File offset of the next byte to send.
    position: u64,
    /// Offset of the chunk's first byte in the placeholder.
    tag: usize,
    len: usize,
    sent: usize,
}

/// A connection's queue of file chunks: the bodies push, the connection's writer sends.
#[derive(Debug, Clone, Default)]
pub struct Sends(Arc<Mutex<SendQueue>>);

#[derive(Debug, Default)]
struct SendQueue {
    chunks: VecDeque<Chunk>,
    next_tag: usize,
}

impl Sends {
    fn queue(&self) -> std::sync::MutexGuard<'_, SendQueue> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A body of `len` bytes of `file` from its current position, sent by the connection's
/// `ZeroCopyIo`.
pub fn body(file: File, len: u64, sends: &Sends) -> io::Result<Body> {
    use std::io::Seek;
    let mut file = file;
    let position = file.stream_position()?;
    // `sendfile` reads the file on the async worker: ask the kernel to read the range ahead now,
    // so that the sends find it in the page cache (a hint; its failure changes nothing).
    let _ =
        rustix::fs::fadvise(&file, position, std::num::NonZeroU64::new(len), rustix::fs::Advice::WillNeed);
    Ok(ZeroCopyBody { file: Arc::new(file), position, remaining: len, sends: sends.clone() }.boxed())
}

struct ZeroCopyBody {
    file: Arc<File>,
    position: u64,
    remaining: u64,
    sends: Sends,
}

impl hyper::body::Body for ZeroCopyBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        if self.remaining == 0 {
            return Poll::Ready(None);
        }
        let len = usize::try_from(self.remaining).unwrap_or(CHUNK).min(CHUNK);
        let tag = {
            let mut queue = self.sends.queue();
            let tag = queue.next_tag;
            queue.next_tag = (tag + 1) % TAGS;
            let chunk = Chunk { file: Arc::clone(&self.file), position: self.position, tag, len, sent: 0 };
            queue.chunks.push_back(chunk);
            tag
        };
        self.position += len as u64;
        self.remaining -= len as u64;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(&PLACEHOLDER[tag..tag + len])))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        hyper::body::SizeHint::with_exact(self.remaining)
    }
}

/// A plain TCP connection whose placeholder slices are sent from their files.
#[derive(Debug)]
pub struct ZeroCopyIo {
    stream: Counted<TcpStream>,
    sends: Sends,
}

impl ZeroCopyIo {
    pub fn new(stream: Counted<TcpStream>, sends: Sends) -> Self {
        Self { stream, sends }
    }

    /// Sends (part of) the chunk at the head of the queue, which `slice` stands for.
    fn poll_send_file(
        &mut self,
        cx: &mut Context<'_>,
        slice: &[u8],
        offset: usize,
    ) -> Poll<io::Result<usize>> {
        let mut queue = self.sends.queue();
        let Some(chunk) = queue.chunks.front_mut() else {
            return Poll::Ready(Err(out_of_step("no chunk is queued")));
        };
        if offset != chunk.tag + chunk.sent || chunk.sent + slice.len() != chunk.len {
            return Poll::Ready(Err(out_of_step("the write does not match the queued chunk")));
        }
        let socket = self.stream.get_ref();
        loop {
            std::task::ready!(socket.poll_write_ready(cx))?;
            let sent = socket.try_io(Interest::WRITABLE, || {
                let mut position = chunk.position;
                rustix::fs::sendfile(socket, &*chunk.file, Some(&mut position), slice.len())
                    .map_err(io::Error::from)
            });
            match sent {
                Ok(0) => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "blob file is shorter than its record",
                    )))
                }
                Ok(n) => {
                    chunk.position += n as u64;
                    chunk.sent += n;
                    if chunk.sent == chunk.len {
                        queue.chunks.pop_front();
                    }
                    self.stream.count_sent_zero_copy(n as u64);
                    return Poll::Ready(Ok(n));
                }
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) => {
                    continue
                }
                Err(e) => {
                    if matches!(e.kind(), io::ErrorKind::InvalidInput | io::ErrorKind::Unsupported)
                        && !REFUSED.swap(true, Ordering::Relaxed)
                    {
                        tracing::warn!(error = %e, "sendfile is refused here: --zero-copy is off from now on");
                    }
                    return Poll::Ready(Err(e));
                }
            }
        }
    }
}

fn out_of_step(what: &str) -> io::Error {
    io::Error::other(format!("zero-copy send out of step: {what}"))
}

impl AsyncRead for ZeroCopyIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for ZeroCopyIo {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[IoSlice::new(data)])
    }

    /// Writes the slices before the first placeholder as one `writev`, or, when a placeholder
    /// comes first, sends its chunk from the file.
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buffers: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match buffers.iter().position(|b| placeholder_offset(b).is_some()) {
            Some(0) => {
                let offset = placeholder_offset(&buffers[0]).unwrap_or_default();
                this.poll_send_file(cx, &buffers[0], offset)
            }
            Some(first) => Pin::new(&mut this.stream).poll_write_vectored(cx, &buffers[..first]),
            None => Pin::new(&mut this.stream).poll_write_vectored(cx, buffers),
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    /// A file `sendfile` refuses (a directory stands in for a filesystem without it): the write
    /// fails and zero-copy bodies are off from then on.
    #[tokio::test]
    async fn a_refused_sendfile_fails_the_answer_and_turns_zero_copy_off() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = tokio::net::TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let sends = Sends::default();
        let mut io = ZeroCopyIo::new(Counted::new(server, crate::traffic::Traffic::default()), sends.clone());
        let dir = tempfile::tempdir().unwrap();
        let mut body = body(File::open(dir.path()).unwrap(), 10, &sends).unwrap();
        let frame = body.frame().await.unwrap().unwrap();
        let placeholder = frame.into_data().unwrap();
        assert!(available());
        let error = io.write_all(&placeholder).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidInput, "{error}");
        assert!(!available(), "zero-copy stays on after sendfile was refused");
        drop(client);
    }
}
