//! The HTTP surface: requests are parsed into an `Endpoint` first, then dispatched.

pub mod blobs;
pub mod body;
pub mod log;
pub mod query;
pub mod releases;

use std::convert::Infallible;
use std::sync::Arc;

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;

use crate::auth;
use crate::config::ReadAccess;
use crate::error::ApiError;
use crate::service::Service;
use body::Body;
use query::Query;

/// Longest request path accepted.
const MAX_PATH_LEN: usize = 1024;

/// Every route the server answers.
#[derive(Debug, PartialEq, Eq)]
enum Endpoint<'a> {
    Health,
    Blob(&'a str),
    Checkpoint,
    Leaves,
    InclusionProof,
    ConsistencyProof,
    CurrentRoot,
    Statements,
    ReleasesOf { kind: &'a str, name: &'a str },
    Release { kind: &'a str, name: &'a str, version: &'a str },
    ReleaseByDigest(&'a str),
    MirrorSync,
    MirrorStatus,
    MirrorImport,
}

fn route(path: &str) -> Option<Endpoint<'_>> {
    let segments: Vec<&str> = path.strip_prefix('/')?.split('/').collect();
    if segments.iter().any(|s| s.is_empty() || *s == "." || *s == "..") {
        return None;
    }
    Some(match segments.as_slice() {
        ["healthz"] => Endpoint::Health,
        ["v1", "blobs", "blake3", hex] => Endpoint::Blob(hex),
        ["v1", "log", "checkpoint"] => Endpoint::Checkpoint,
        ["v1", "log", "leaves"] => Endpoint::Leaves,
        ["v1", "log", "proof", "inclusion"] => Endpoint::InclusionProof,
        ["v1", "log", "proof", "consistency"] => Endpoint::ConsistencyProof,
        ["v1", "roots", "current"] => Endpoint::CurrentRoot,
        ["v1", "statements"] => Endpoint::Statements,
        ["v1", "mirror", "sync"] => Endpoint::MirrorSync,
        ["v1", "mirror", "status"] => Endpoint::MirrorStatus,
        ["v1", "mirror", "import"] => Endpoint::MirrorImport,
        ["v1", "releases", "by-digest", digest] => Endpoint::ReleaseByDigest(digest),
        ["v1", "releases", kind, name] => Endpoint::ReleasesOf { kind, name },
        ["v1", "releases", kind, name, version] => Endpoint::Release { kind, name, version },
        _ => return None,
    })
}

/// Handles one request; never fails (errors become responses).
pub async fn handle(service: Arc<Service>, request: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let response = match dispatch(&service, request).await {
        Ok(response) => response,
        Err(error) => body::error_response(&error),
    };
    Ok(response)
}

async fn dispatch(service: &Arc<Service>, request: Request<Incoming>) -> Result<Response<Body>, ApiError> {
    let (parts, request_body) = request.into_parts();
    let path = parts.uri.path();
    if path.len() > MAX_PATH_LEN {
        return Err(ApiError::BadRequest("request path is too long".to_owned()));
    }
    let endpoint = route(path).ok_or_else(|| ApiError::NotFound(format!("no such endpoint: {path}")))?;
    let query = Query::parse(parts.uri.query())?;
    let method = &parts.method;
    let headers = &parts.headers;
    let read = || -> Result<(), ApiError> {
        if service.config().read_access == ReadAccess::TokenRequired {
            auth::require(service, headers, auth::Scope::Read)?;
        }
        Ok(())
    };
    let is_get = *method == Method::GET || *method == Method::HEAD;
    match endpoint {
        Endpoint::Health if is_get => Ok(body::json(StatusCode::OK, &serde_json::json!({ "status": "ok" }))),
        Endpoint::Blob(hex) if is_get => {
            blobs::get(service, method, headers, blobs::parse_digest(hex)?).await
        }
        Endpoint::Blob(hex) if *method == Method::PUT => {
            blobs::put(service, headers, blobs::parse_digest(hex)?, request_body).await
        }
        Endpoint::Statements if *method == Method::POST => log::submit(service, headers, request_body).await,
        Endpoint::Checkpoint if is_get => read().and_then(|()| log::checkpoint(service)),
        Endpoint::Leaves if is_get => read().and_then(|()| log::leaves(service, &query)),
        Endpoint::InclusionProof if is_get => read().and_then(|()| log::inclusion(service, &query)),
        Endpoint::ConsistencyProof if is_get => read().and_then(|()| log::consistency(service, &query)),
        Endpoint::CurrentRoot if is_get => read().map(|()| log::current_root(service)),
        Endpoint::ReleasesOf { kind, name } if is_get => {
            read().and_then(|()| releases::list(service, kind, name))
        }
        Endpoint::Release { kind, name, version } if is_get => {
            read().and_then(|()| releases::one(service, kind, name, version))
        }
        Endpoint::ReleaseByDigest(digest) if is_get => {
            read().and_then(|()| releases::by_digest(service, digest))
        }
        Endpoint::MirrorSync if *method == Method::POST => {
            auth::require(service, headers, auth::Scope::Admin)?;
            let follower = service
                .follower()
                .ok_or_else(|| ApiError::NotFound("this server is not a mirror".to_owned()))?;
            let report =
                follower.sync_once(service).await.map_err(|e| ApiError::Unprocessable(format!("{e:#}")))?;
            Ok(body::json(StatusCode::OK, &report))
        }
        Endpoint::MirrorStatus if is_get => {
            read()?;
            let follower = service
                .follower()
                .ok_or_else(|| ApiError::NotFound("this server is not a mirror".to_owned()))?;
            Ok(body::json(StatusCode::OK, &follower.status(service)))
        }
        Endpoint::MirrorImport if *method == Method::POST => import(service, headers, request_body).await,
        _ => Err(ApiError::MethodNotAllowed),
    }
}

/// `POST /v1/mirror/import`: a bundle streamed into a running mirror (admin scope).
async fn import(
    service: &Arc<Service>,
    headers: &http::HeaderMap,
    mut request_body: Incoming,
) -> Result<Response<Body>, ApiError> {
    auth::require(service, headers, auth::Scope::Admin)?;
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    let worker = Arc::clone(service);
    let task = tokio::task::spawn_blocking(move || {
        crate::bundle::import(&worker, crate::bundle::ChannelReader::new(rx))
    });
    let idle = service.config().limits.body_idle_timeout;
    let mut read_error = None;
    loop {
        match body::next_frame(&mut request_body, idle).await {
            Ok(Some(chunk)) => {
                if tx.send(chunk).await.is_err() {
                    break; // The importer stopped early (it refused the bundle).
                }
            }
            Ok(None) => break,
            Err(e) => {
                read_error = Some(e);
                break;
            }
        }
    }
    drop(tx);
    let outcome = task.await.map_err(|e| ApiError::Internal(e.into()))?;
    if let Some(e) = read_error {
        return Err(e);
    }
    match outcome {
        Ok(report) => Ok(body::json(StatusCode::OK, &report)),
        Err(crate::bundle::ImportError::Internal(e)) => Err(ApiError::Internal(e)),
        Err(crate::bundle::ImportError::NotAMirror) => {
            Err(ApiError::Forbidden(crate::bundle::ImportError::NotAMirror.to_string()))
        }
        Err(e) => Err(ApiError::Unprocessable(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traversal_in_any_segment_is_not_routed() {
        for path in
            ["/v1/blobs/blake3/../..", "/v1/blobs/blake3/.", "/v1//log/checkpoint", "/../etc/passwd", "v1"]
        {
            assert_eq!(route(path), None, "{path}");
        }
        assert_eq!(route("/v1/log/checkpoint"), Some(Endpoint::Checkpoint));
    }
}
