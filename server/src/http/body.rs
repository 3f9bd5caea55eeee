//! Response bodies and request-body reading with caps and idle timeouts.

use std::fs::File;
use std::io;
use std::time::Duration;

use airlock_client::direct::{AlignedPool, RangeRead};

use bytes::Bytes;
use futures_util::TryStreamExt;
use http::{header, Response, StatusCode};
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use serde::Serialize;

use airlock_proto::api::{routes, ErrorBody};

use crate::error::ApiError;
use crate::store::{BlobRead, ChunkRead};

/// Every response body.
pub type Body = BoxBody<Bytes, io::Error>;

/// Read size for streaming files: large reads are what make blob downloads fast.
pub const FILE_CHUNK: usize = 2 << 20;
/// Chunks read ahead of the socket per download.
const READ_AHEAD: usize = 4;

/// A body of fixed bytes.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).map_err(|never| match never {}).boxed()
}

/// An empty body.
pub fn empty() -> Body {
    full(Bytes::new())
}

/// A JSON response.
pub fn json<T: Serialize>(status: StatusCode, value: &T) -> Response<Body> {
    let bytes = serde_json::to_vec_pretty(value).unwrap_or_else(|_| b"{}".to_vec());
    let mut response = Response::new(full(bytes));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static(routes::JSON));
    response
}

/// A signed note (the checkpoint), exact bytes.
pub fn note(bytes: Vec<u8>) -> Response<Body> {
    let mut response = Response::new(full(bytes));
    response.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static(routes::NOTE));
    response
}

/// A response of opaque bytes.
pub fn bytes(bytes: Vec<u8>) -> Response<Body> {
    let mut response = Response::new(full(bytes));
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, header::HeaderValue::from_static(routes::OCTET_STREAM));
    response
}

/// A CBOR response of exact bytes.
pub fn cbor(bytes: Vec<u8>) -> Response<Body> {
    let mut response = Response::new(full(bytes));
    response.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static(routes::CBOR));
    response
}

/// Streams `len` bytes of an opened blob range. A blocking thread reads large chunks straight
/// into fresh buffers (one copy, no zeroing) and hands them over a small bounded channel, so disk
/// reads overlap socket writes and memory stays bounded.
pub fn blob_stream(blob: BlobRead, len: u64) -> Body {
    if let BlobRead::Chunks(ChunkRead { chunks, .. }) = blob {
        return chunk_stream(chunks, len);
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<Bytes>>(READ_AHEAD);
    tokio::task::spawn_blocking(move || {
        use std::io::Read;
        let mut reader = blob.into_reader();
        let mut remaining = len;
        while remaining > 0 {
            let want = remaining.min(FILE_CHUNK as u64);
            let mut chunk = Vec::with_capacity(usize::try_from(want).unwrap_or(FILE_CHUNK));
            let item = match (&mut reader).take(want).read_to_end(&mut chunk) {
                Ok(0) => {
                    Err(io::Error::new(io::ErrorKind::UnexpectedEof, "blob file is shorter than its record"))
                }
                Ok(n) => {
                    remaining -= n as u64;
                    Ok(Bytes::from(chunk))
                }
                Err(e) => Err(e),
            };
            let failed = item.is_err();
            if tx.blocking_send(item).is_err() || failed {
                return; // The client went away, or the read failed.
            }
        }
    });
    receiver_body(rx)
}

/// Streams `len` bytes of a blob file from `start`: a blocking thread reads them a pooled buffer
/// at a time (`RangeRead`: from the page cache, or the cold parts directly from the device when
/// `cold_direct`) and hands them over a small bounded channel, so disk reads overlap socket
/// writes and memory stays bounded.
pub fn file_stream(file: File, start: u64, len: u64, buffers: AlignedPool, cold_direct: bool) -> Body {
    let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<Bytes>>(READ_AHEAD);
    tokio::task::spawn_blocking(move || {
        let mut reader = RangeRead::new(file, start, len, buffers, cold_direct);
        while let Some(item) = reader.next_chunk().transpose() {
            let failed = item.is_err();
            if tx.blocking_send(item).is_err() || failed {
                return; // The client went away, or the read failed.
            }
        }
    });
    receiver_body(rx)
}

/// A body of the chunks a channel delivers.
fn receiver_body(rx: tokio::sync::mpsc::Receiver<io::Result<Bytes>>) -> Body {
    let stream =
        futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) });
    StreamBody::new(stream.map_ok(Frame::data)).boxed()
}

/// Passes on `len` bytes of chunks as they arrive (an object store's response): no thread and
/// no copy. A stream that ends short ends the body with an error, so the client sees a cut.
fn chunk_stream(chunks: tokio::sync::mpsc::Receiver<io::Result<Bytes>>, len: u64) -> Body {
    let stream = futures_util::stream::unfold((chunks, len), |(mut chunks, remaining)| async move {
        if remaining == 0 {
            return None;
        }
        let item = match chunks.recv().await {
            None => {
                Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the blob ended before its recorded size"))
            }
            Some(Err(e)) => Err(e),
            Some(Ok(mut chunk)) => {
                chunk.truncate(usize::try_from(remaining).unwrap_or(usize::MAX));
                Ok(chunk)
            }
        };
        let left = match &item {
            Ok(chunk) => remaining - chunk.len() as u64,
            Err(_) => 0,
        };
        Some((item, (chunks, left)))
    });
    StreamBody::new(stream.map_ok(Frame::data)).boxed()
}

/// The error response for `error`, logging internals instead of sending them.
pub fn error_response(error: &ApiError) -> Response<Body> {
    match error {
        ApiError::Internal(inner) => tracing::error!(error = format!("{inner:#}"), "internal error"),
        ApiError::InsufficientStorage(why) => tracing::error!(error = why.as_str(), "storage full"),
        _ => {}
    }
    let mut response = json(error.status(), &ErrorBody { error: error.to_string(), code: error.code() });
    if let ApiError::RangeNotSatisfiable { size } = error {
        if let Ok(value) = header::HeaderValue::from_str(&format!("bytes */{size}")) {
            response.headers_mut().insert(header::CONTENT_RANGE, value);
        }
    }
    if matches!(error, ApiError::Unauthorized(_)) {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
    }
    response
}

/// How much of a request body is still read (and dropped) after the server has refused it, so
/// that the client reads the answer rather than a reset connection. Past it the connection is
/// closed: a refused multi-gigabyte upload is not read to its end.
pub const MAX_DRAIN_BYTES: u64 = 256 << 20;

/// Waits for the next body frame, failing after `idle` without one.
pub async fn next_frame(body: &mut Incoming, idle: Duration) -> Result<Option<Bytes>, ApiError> {
    loop {
        match tokio::time::timeout(idle, body.frame()).await {
            Err(_) => return Err(ApiError::Timeout),
            Ok(None) => return Ok(None),
            Ok(Some(Err(e))) => {
                return Err(ApiError::BadRequest(format!("could not read request body: {e}")))
            }
            Ok(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    return Ok(Some(data));
                }
                // Trailers: skip.
            }
        }
    }
}

/// Reads a whole small body, refusing more than `cap` bytes.
pub async fn read_capped(body: &mut Incoming, cap: usize, idle: Duration) -> Result<Vec<u8>, ApiError> {
    let mut out = Vec::new();
    while let Some(chunk) = next_frame(body, idle).await? {
        if out.len() + chunk.len() > cap {
            return Err(ApiError::TooLarge(format!("request body is over the {cap}-byte cap")));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// A blocking reader over request-body chunks sent from the async side.
#[derive(Debug)]
pub struct ChannelReader {
    rx: tokio::sync::mpsc::Receiver<Bytes>,
    current: Bytes,
}

impl ChannelReader {
    /// Reads what is sent on `rx` until the sender is dropped.
    pub fn new(rx: tokio::sync::mpsc::Receiver<Bytes>) -> Self {
        Self { rx, current: Bytes::new() }
    }
}

impl io::Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(chunk) => self.current = chunk,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}
