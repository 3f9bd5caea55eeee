//! `GET`/`HEAD`/`PUT /v1/blobs/blake3/<hex>`: streaming blob download (with `Range`) and upload.

use std::sync::Arc;

use airlock_client::direct::Filling;
use airlock_proto::api::{routes, BlobStored};
use airlock_proto::Digest;
use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Method, Response, StatusCode};
use hyper::body::Incoming;

use crate::app::App;
use crate::auth::{Caller, Scope};
use crate::config::ReadAccess;
use crate::error::ApiError;
use crate::http::body::{self, Body};
use crate::http::small_blobs;
use crate::store::{BlobLookup, BlobRead, Expected, Store};
use crate::zero_copy::Sends;

/// Parses the hex path segment of a blob URL.
pub fn parse_digest(hex: &str) -> Result<Digest, ApiError> {
    Digest::from_hex(hex).map_err(|e| ApiError::BadRequest(format!("invalid blob address: {e}")))
}

/// Serves a blob. It is visible when a logged release references it, or to a publisher.
pub async fn get(
    app: &App,
    method: &Method,
    headers: &HeaderMap,
    caller: &Caller,
    digest: Digest,
    sends: Option<&Sends>,
) -> Result<Response<Body>, ApiError> {
    let scope = match app.config.read_access {
        ReadAccess::TokenRequired => Some(caller.require(Scope::Read)?),
        // With open reads a request without a token reads as anonymous; a malformed or unknown
        // token is a 401 (checked for every request in `dispatch`).
        ReadAccess::Open => caller.scope(),
    };
    let not_found = || ApiError::NotFound(format!("blob {digest} not found"));
    let (record, logged) = match app.store.lookup_blob(&digest)? {
        BlobLookup::Visible(record) => (record, true),
        BlobLookup::Unlogged(record) if scope >= Some(Scope::Publish) => (record, false),
        BlobLookup::Absent { referenced: true } if app.registry.mirror().is_some() => {
            return Err(ApiError::NotFound(format!(
                "this mirror does not carry blob {digest}: it holds only some releases; fetch it from the upstream"
            )))
        }
        BlobLookup::Unlogged(_) | BlobLookup::Absent { .. } => return Err(not_found()),
    };
    // A small logged blob: answered from memory, read (and checked) by the first GET that needs
    // its bytes.
    let small = logged && record.size <= small_blobs::MAX_BLOB && app.config.blob_redirect.is_none();
    let remembered = if small { app.small_blobs.get(&digest) } else { None };
    let (etag, sha256) = match &remembered {
        Some(blob) => (blob.etag.clone(), blob.sha256.clone()),
        None => (
            HeaderValue::from_str(&format!("\"{digest}\"")).map_err(|e| ApiError::Internal(e.into()))?,
            HeaderValue::from_str(&record.sha256.to_hex()).map_err(|e| ApiError::Internal(e.into()))?,
        ),
    };
    let not_modified = headers.get(header::IF_NONE_MATCH) == Some(&etag);
    let remembered = match remembered {
        None if small && method == Method::GET && !not_modified => {
            let bytes = read_whole(app, &digest, record.size).await?;
            let read = small_blobs::SmallBlob { bytes, etag: etag.clone(), sha256: sha256.clone() };
            Some(app.small_blobs.remember(&digest, read))
        }
        other => other,
    };
    let range = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    if let Some(blob) = remembered {
        return answer(method, not_modified, range, etag, sha256, record.size, |start, len| {
            Ok(body::full(blob.bytes.slice(start as usize..(start + len) as usize)))
        });
    }
    let redirect = app.config.blob_redirect.filter(|_| method == Method::GET && logged && !not_modified);
    if let Some(valid_for) = redirect {
        // The client fetches the bytes from the store itself (and checks them, as always).
        let (store, wanted) = (Arc::clone(&app.store), digest);
        let signed = tokio::task::spawn_blocking(move || store.presign_blob(&wanted, valid_for)).await??;
        if let Some(location) = signed {
            // A fresh answer: the signed URL expires, so nothing may keep it (not the blob's
            // year-long caching).
            return Response::builder()
                .status(StatusCode::TEMPORARY_REDIRECT)
                .header(header::LOCATION, location)
                .header(header::CACHE_CONTROL, "no-store")
                .header(header::ETAG, etag)
                .header(routes::SHA256_HEADER, sha256)
                .body(body::empty())
                .map_err(|e| ApiError::Internal(e.into()));
        }
    }
    if !app.store.blobs_are_remote() {
        return answer(method, not_modified, range, etag, sha256, record.size, |start, len| {
            file_range_body(app, &digest, start, len, sends)
        });
    }
    // Opening an object waits for the store's answer: off the async workers.
    let (store, method, range, size) =
        (Arc::clone(&app.store), method.clone(), range.map(str::to_owned), record.size);
    tokio::task::spawn_blocking(move || {
        answer(&method, not_modified, range.as_deref(), etag, sha256, size, |start, len| {
            range_body(&store, &digest, start, len)
        })
    })
    .await?
}

/// The body of `len` bytes of a blob from `start`: read in one go when small, else streamed.
fn range_body(store: &Store, digest: &Digest, start: u64, len: u64) -> Result<Body, ApiError> {
    if len <= INLINE_MAX {
        return Ok(body::full(store.read_blob(digest, start, len)?));
    }
    Ok(body::blob_stream(store.open_blob(digest, start, len)?, len))
}

/// `range_body` for a blob in a file: sent from the file without a copy where the connection
/// can (`sends`), else read into pooled buffers, its cold parts directly from the device when
/// this is the blob's first read in a while (`RecentReads`).
fn file_range_body(
    app: &App,
    digest: &Digest,
    start: u64,
    len: u64,
    sends: Option<&Sends>,
) -> Result<Body, ApiError> {
    if len <= INLINE_MAX {
        return range_body(&app.store, digest, start, len);
    }
    Ok(match (app.store.open_blob(digest, start, len)?, sends) {
        // From the file to the socket without a copy through this process.
        (BlobRead::File { file, len }, Some(sends)) => crate::zero_copy::body(file, len, sends)?,
        (BlobRead::File { file, len }, None) => {
            let cold_direct = app.recent_reads.first_read(digest);
            body::file_stream(file, start, len, app.buffers.clone(), cold_direct)
        }
        (blob, _) => body::blob_stream(blob, len),
    })
}

/// The whole of a small blob, read into memory (off the async workers from an object store).
async fn read_whole(app: &App, digest: &Digest, size: u64) -> Result<Bytes, ApiError> {
    if !app.store.blobs_are_remote() {
        return Ok(app.store.read_blob(digest, 0, size)?);
    }
    let (store, digest) = (Arc::clone(&app.store), *digest);
    Ok(tokio::task::spawn_blocking(move || store.read_blob(&digest, 0, size)).await??)
}

/// The answer to a blob GET or HEAD of a blob of `size` bytes: 304 when the request's
/// `If-None-Match` matched (`not_modified`), else the `range` asked for (206) or the whole (200),
/// its bytes from `body` (start, length) unless the method is HEAD.
fn answer(
    method: &Method,
    not_modified: bool,
    range: Option<&str>,
    etag: HeaderValue,
    sha256: HeaderValue,
    size: u64,
    body: impl FnOnce(u64, u64) -> Result<Body, ApiError>,
) -> Result<Response<Body>, ApiError> {
    let mut response = Response::new(body::empty());
    let answer_headers = response.headers_mut();
    answer_headers.insert(header::ETAG, etag);
    answer_headers
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=31536000, immutable"));
    answer_headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    answer_headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(routes::OCTET_STREAM));
    answer_headers.insert(routes::SHA256_HEADER, sha256);
    if not_modified {
        *response.status_mut() = StatusCode::NOT_MODIFIED;
        return Ok(response);
    }
    let range = match range {
        None => None,
        Some(value) => airlock_proto::api::query::parse_range(value, size)?,
    };
    let (start, len) = match range {
        None => (0, size),
        Some((start, end)) => {
            *response.status_mut() = StatusCode::PARTIAL_CONTENT;
            let content_range = HeaderValue::from_str(&format!("bytes {start}-{end}/{size}"))
                .map_err(|e| ApiError::Internal(e.into()))?;
            response.headers_mut().insert(header::CONTENT_RANGE, content_range);
            (start, end - start + 1)
        }
    };
    response.headers_mut().insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    if method != Method::HEAD {
        *response.body_mut() = body(start, len)?;
    }
    Ok(response)
}

/// Upload buffers (1 MiB each) that may wait for the writer.
const UPLOAD_BATCHES: usize = 4;

/// Ranges up to this size are read in one go and sent from memory; larger ones are streamed.
const INLINE_MAX: u64 = 64 << 10;

/// Receives a blob through the one ingest path: streamed to the backend while hashed, then
/// checked against the digest in the URL. A mismatch is a 400 and leaves nothing behind.
pub async fn put(
    app: &Arc<App>,
    headers: &HeaderMap,
    caller: &Caller,
    digest: Digest,
    mut request_body: Incoming,
) -> Result<Response<Body>, ApiError> {
    caller.require(Scope::Publish)?;
    if app.registry.mirror().is_some() {
        return Err(ApiError::Forbidden("this server is a mirror; publish upstream".to_owned()));
    }
    let idle = app.config.limits.body_idle_timeout;
    if let Some(record) = app.store.blob_uploaded_again(&digest)? {
        // Read (and discard) what the client sends so it sees the answer, not a reset.
        let mut discarded = 0u64;
        while let Some(chunk) = body::next_frame(&mut request_body, idle).await? {
            discarded += chunk.len() as u64;
            if discarded > record.size {
                return Err(ApiError::BadRequest(format!("blob {digest} is {} bytes", record.size)));
            }
        }
        return Ok(stored_response(
            StatusCode::OK,
            &BlobStored { digest, size: record.size, sha256: record.sha256 },
        ));
    }
    let max = app.config.limits.max_blob_bytes;
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > max) {
        return Err(ApiError::TooLarge(format!("blob is over the {max}-byte cap")));
    }
    let mut ingest = app.store.ingest(Expected::address(digest, max))?;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(UPLOAD_BATCHES);
    let writer_task = tokio::task::spawn_blocking(move || {
        while let Some(batch) = rx.blocking_recv() {
            ingest.write(batch)?;
        }
        ingest.finish()
    });
    let mut received = 0u64;
    let mut stopped_at = None;
    // The body's frames (at most hyper's read buffer, 64 KiB) are copied into aligned 1 MiB
    // buffers from a pool: one hand-over to each hashing thread a buffer, which the filesystem
    // backend then writes directly without another copy (`airlock_client::direct`). A buffer
    // is taken when bytes arrive for it.
    let mut batch: Option<Filling> = None;
    while let Some(chunk) = body::next_frame(&mut request_body, idle).await? {
        received += chunk.len() as u64;
        if received > max {
            return Err(ApiError::TooLarge(format!("blob is over the {max}-byte cap")));
        }
        // Once the ingest stopped (a full disk, say), some more of the body is read and dropped
        // so that the client gets the answer that names why, not a reset connection.
        if let Some(at) = stopped_at {
            if received - at > body::MAX_DRAIN_BYTES {
                break;
            }
            continue;
        }
        let mut rest = &chunk[..];
        while !rest.is_empty() && stopped_at.is_none() {
            let filling = batch.get_or_insert_with(|| app.buffers.take());
            rest = &rest[filling.push(rest)..];
            if filling.is_full() {
                let full = batch.take().map(Filling::freeze).unwrap_or_default();
                if tx.send(full).await.is_err() {
                    stopped_at = Some(received);
                }
            }
        }
    }
    if let Some(filling) = batch.filter(|_| stopped_at.is_none()) {
        // A send that fails means the writer stopped; its error is the answer.
        let _ = tx.send(filling.freeze()).await;
    }
    drop(tx);
    let stored = writer_task.await??;
    tracing::info!(digest = %stored.digest, size = stored.size, "blob stored");
    Ok(stored_response(
        StatusCode::CREATED,
        &BlobStored { digest: stored.digest, size: stored.size, sha256: stored.sha256 },
    ))
}

fn stored_response(status: StatusCode, stored: &BlobStored) -> Response<Body> {
    let mut response = body::json(status, stored);
    response.headers_mut().insert(
        header::LOCATION,
        HeaderValue::from_str(&routes::blob_path(&stored.digest)).unwrap_or(HeaderValue::from_static("/")),
    );
    response
}
