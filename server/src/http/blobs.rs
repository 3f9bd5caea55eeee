//! `GET`/`HEAD`/`PUT /v1/blobs/blake3/<hex>`: streaming blob download (with `Range`) and upload.

use std::sync::Arc;

use airlock_proto::Digest;
use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Method, Response, StatusCode};
use hyper::body::Incoming;

use crate::auth::{self, Scope};
use crate::config::ReadAccess;
use crate::error::ApiError;
use crate::http::body::{self, Body};
use crate::service::Service;
use crate::store::blobs::FinishError;

/// Parses the hex path segment of a blob URL.
pub fn parse_digest(hex: &str) -> Result<Digest, ApiError> {
    Digest::from_hex(hex).map_err(|e| ApiError::BadRequest(format!("invalid blob address: {e}")))
}

/// Serves a blob. It is visible when a logged release references it, or to a publisher.
pub async fn get(
    service: &Service,
    method: &Method,
    headers: &HeaderMap,
    digest: Digest,
) -> Result<Response<Body>, ApiError> {
    let scope = match service.config().read_access {
        ReadAccess::TokenRequired => Some(auth::require(service, headers, Scope::Read)?),
        // With open reads a missing or unknown token reads as anonymous.
        ReadAccess::Open => auth::scope_of(service, headers).unwrap_or(None),
    };
    let not_found = || ApiError::NotFound(format!("blob {digest} not found"));
    let referenced = service.db().digest_leaf(&digest)?.is_some();
    let Some(record) = service.db().blob(&digest)? else {
        if referenced && service.is_mirror() {
            return Err(ApiError::NotFound(format!(
                "this mirror does not carry blob {digest}: it holds only some releases; fetch it from the upstream"
            )));
        }
        return Err(not_found());
    };
    if !referenced && scope < Some(Scope::Publish) {
        return Err(not_found());
    }
    let etag = format!("\"{digest}\"");
    let mut builder = Response::builder()
        .header(header::ETAG, &etag)
        .header(header::CACHE_CONTROL, "public, max-age=31536000, immutable")
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .header("x-airlock-sha256", record.sha256.to_hex());
    if headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()) == Some(etag.as_str()) {
        return builder
            .status(StatusCode::NOT_MODIFIED)
            .body(body::empty())
            .map_err(|e| ApiError::Internal(e.into()));
    }
    let (start, len, status) = match headers.get(header::RANGE).and_then(|v| v.to_str().ok()) {
        None => (0, record.size, StatusCode::OK),
        Some(value) => match parse_range(value, record.size)? {
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
    } else {
        let file = std::fs::File::open(service.blobs().path(&digest))?;
        body::file_stream(file, start, len)
    };
    builder.body(body).map_err(|e| ApiError::Internal(e.into()))
}

/// Parses a single `bytes=` range against `size`. `Ok(None)` means "serve the whole blob" (a
/// form we do not support, such as several ranges); an unsatisfiable range is a 416.
fn parse_range(value: &str, size: u64) -> Result<Option<(u64, u64)>, ApiError> {
    let Some(spec) = value.strip_prefix("bytes=") else { return Ok(None) };
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((first, last)) = spec.trim().split_once('-') else { return Ok(None) };
    let unsatisfiable = ApiError::RangeNotSatisfiable { size };
    let parse =
        |s: &str| s.parse::<u64>().map_err(|_| ApiError::BadRequest(format!("invalid range {value:?}")));
    let (start, end) = if first.is_empty() {
        let suffix = parse(last)?;
        if suffix == 0 || size == 0 {
            return Err(unsatisfiable);
        }
        (size.saturating_sub(suffix), size - 1)
    } else {
        let start = parse(first)?;
        let end =
            if last.is_empty() { size.saturating_sub(1) } else { parse(last)?.min(size.saturating_sub(1)) };
        (start, end)
    };
    if start >= size || start > end {
        return Err(unsatisfiable);
    }
    Ok(Some((start, end)))
}

/// Receives a blob: streamed to a temp file while hashed, then checked against the digest in the
/// URL. A mismatch is a 400 and leaves nothing behind.
pub async fn put(
    service: &Arc<Service>,
    headers: &HeaderMap,
    digest: Digest,
    mut request_body: Incoming,
) -> Result<Response<Body>, ApiError> {
    auth::require(service, headers, Scope::Publish)?;
    if service.is_mirror() {
        return Err(ApiError::Forbidden("this server is a mirror; publish upstream".to_owned()));
    }
    let idle = service.config().limits.body_idle_timeout;
    if let Some(record) = service.db().blob(&digest)? {
        // Read (and discard) what the client sends so it sees the answer, not a reset.
        let mut discarded = 0u64;
        while let Some(chunk) = body::next_frame(&mut request_body, idle).await? {
            discarded += chunk.len() as u64;
            if discarded > record.size {
                return Err(ApiError::BadRequest(format!("blob {digest} is {} bytes", record.size)));
            }
        }
        return Ok(stored_response(StatusCode::OK, &digest, record.size, &record.sha256));
    }
    let max = service.config().limits.max_blob_bytes;
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > max) {
        return Err(ApiError::TooLarge(format!("blob is over the {max}-byte cap")));
    }
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(16);
    let writer_service = Arc::clone(service);
    let writer_task = tokio::task::spawn_blocking(move || {
        let mut writer = writer_service.blobs().begin()?;
        while let Some(chunk) = rx.blocking_recv() {
            writer.write_bytes(chunk)?;
        }
        Ok::<_, std::io::Error>(writer)
    });
    let mut received = 0u64;
    while let Some(chunk) = body::next_frame(&mut request_body, idle).await? {
        received += chunk.len() as u64;
        if received > max {
            return Err(ApiError::TooLarge(format!("blob is over the {max}-byte cap")));
        }
        if tx.send(chunk).await.is_err() {
            break;
        }
    }
    drop(tx);
    let writer = writer_task.await.map_err(|e| ApiError::Internal(e.into()))??;
    if writer.size() != received {
        return Err(ApiError::Internal(anyhow::anyhow!("blob writer stopped early")));
    }
    let finish_service = Arc::clone(service);
    let stored = tokio::task::spawn_blocking(move || {
        let stored = writer.finish(finish_service.blobs(), &digest)?;
        finish_service.record_blob(&stored).map_err(|e| FinishError::Io(std::io::Error::other(e)))?;
        Ok::<_, FinishError>(stored)
    })
    .await
    .map_err(|e| ApiError::Internal(e.into()))?
    .map_err(|e| match e {
        FinishError::DigestMismatch { .. } => ApiError::BadRequest(e.to_string()),
        FinishError::Io(io) => ApiError::Internal(io.into()),
    })?;
    tracing::info!(digest = %stored.digest, size = stored.size, "blob stored");
    Ok(stored_response(StatusCode::CREATED, &stored.digest, stored.size, &stored.sha256))
}

fn stored_response(
    status: StatusCode,
    digest: &Digest,
    size: u64,
    sha256: &airlock_proto::Sha256,
) -> Response<Body> {
    let mut response = body::json(
        status,
        &serde_json::json!({ "digest": digest.to_string(), "size": size, "sha256": sha256.to_hex() }),
    );
    response.headers_mut().insert(
        header::LOCATION,
        HeaderValue::from_str(&format!("/v1/blobs/blake3/{}", digest.to_hex()))
            .unwrap_or(HeaderValue::from_static("/")),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100).ok().flatten(), Some((0, 9)));
        assert_eq!(parse_range("bytes=90-", 100).ok().flatten(), Some((90, 99)));
        assert_eq!(parse_range("bytes=-10", 100).ok().flatten(), Some((90, 99)));
        assert_eq!(parse_range("bytes=0-1000", 100).ok().flatten(), Some((0, 99)));
        assert!(parse_range("bytes=100-", 100).is_err());
        assert!(parse_range("bytes=5-2", 100).is_err());
        assert_eq!(parse_range("bytes=0-1,5-6", 100).ok().flatten(), None);
        assert!(parse_range("bytes=x-1", 100).is_err());
    }
}
