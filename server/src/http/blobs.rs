//! `GET`/`HEAD`/`PUT /v1/blobs/blake3/<hex>`: streaming blob download (with `Range`) and upload.

use std::sync::Arc;

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
use crate::store::{BlobLookup, BlobRead, Expected};
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
    let etag = format!("\"{digest}\"");
    let mut builder = Response::builder()
        .header(header::ETAG, &etag)
        .header(header::CACHE_CONTROL, "public, max-age=31536000, immutable")
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::CONTENT_TYPE, routes::OCTET_STREAM)
        .header(routes::SHA256_HEADER, record.sha256.to_hex());
    if headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()) == Some(etag.as_str()) {
        return builder
            .status(StatusCode::NOT_MODIFIED)
            .body(body::empty())
            .map_err(|e| ApiError::Internal(e.into()));
    }
    if let (Some(valid_for), true, true) = (app.config.blob_redirect, method == Method::GET, logged) {
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
                .header(header::ETAG, &etag)
                .header(routes::SHA256_HEADER, record.sha256.to_hex())
                .body(body::empty())
                .map_err(|e| ApiError::Internal(e.into()));
        }
    }
    let (start, len, status) = match headers.get(header::RANGE).and_then(|v| v.to_str().ok()) {
        None => (0, record.size, StatusCode::OK),
        Some(value) => match airlock_proto::api::query::parse_range(value, record.size)? {
            None => (0, record.size, StatusCode::OK),
            Some((start, end)) => {
                builder =
                    builder.header(header::CONTENT_RANGE, format!("bytes {start}-{end}/{}", record.size));
                (start, end - start + 1, StatusCode::PARTIAL_CONTENT)
            }
        },
    };
    builder = builder.status(status).header(header::CONTENT_LENGTH, len);
    let body = if method == Method::HEAD {
        body::empty()
    } else if app.store.blobs_are_remote() {
        // Opening an object waits for the store's answer: off the async workers.
        let store = Arc::clone(&app.store);
        tokio::task::spawn_blocking(move || -> std::io::Result<Body> {
            Ok(if len <= INLINE_MAX {
                body::full(store.read_blob(&digest, start, len)?)
            } else {
                body::blob_stream(store.open_blob(&digest, start, len)?, len)
            })
        })
        .await??
    } else if len <= INLINE_MAX {
        body::full(app.store.read_blob(&digest, start, len)?)
    } else {
        match (app.store.open_blob(&digest, start, len)?, sends) {
            // From the file to the socket without a copy through this process.
            (BlobRead::File { file, len }, Some(sends)) => crate::zero_copy::body(file, len, sends)?,
            (blob, _) => body::blob_stream(blob, len),
        }
    };
    builder.body(body).map_err(|e| ApiError::Internal(e.into()))
}

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
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(16);
    let writer_task = tokio::task::spawn_blocking(move || {
        while let Some(chunk) = rx.blocking_recv() {
            ingest.write(chunk)?;
        }
        ingest.finish()
    });
    let mut received = 0u64;
    let mut stopped_at = None;
    while let Some(chunk) = body::next_frame(&mut request_body, idle).await? {
        received += chunk.len() as u64;
        if received > max {
            return Err(ApiError::TooLarge(format!("blob is over the {max}-byte cap")));
        }
        // Once the ingest stopped (a full disk, say), some more of the body is read and dropped
        // so that the client gets the answer that names why, not a reset connection.
        match stopped_at {
            None if tx.send(chunk).await.is_err() => stopped_at = Some(received),
            Some(at) if received - at > body::MAX_DRAIN_BYTES => break,
            _ => {}
        }
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
