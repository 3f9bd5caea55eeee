//! `GET /v1/releases/...`: look releases up by name, by name and version, or by digest.
//! These answers are for people and scripts; clients that install verify through the log.

use airlock_keys::{ReleaseRecord, ReleaseStatus};
use airlock_proto::{Digest, Kind, PackageName, Version};
use http::{Response, StatusCode};
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::http::body::{self, Body};
use crate::service::Service;

fn status_json(status: &ReleaseStatus) -> Value {
    match status {
        ReleaseStatus::Active => json!({ "state": "active" }),
        ReleaseStatus::Yanked { reason } => json!({ "state": "yanked", "reason": reason }),
        ReleaseStatus::Revoked { reason } => json!({ "state": "revoked", "reason": reason }),
    }
}

/// The JSON form of a release record.
pub fn record_json(record: &ReleaseRecord) -> Value {
    let r = &record.release;
    json!({
        "kind": r.kind,
        "name": r.name,
        "version": r.version,
        "leaf_index": record.leaf_index,
        "status": status_json(&record.status),
        "published_at": r.published_at,
        "files": r.files.iter().map(|f| json!({
            "filename": f.filename,
            "size": f.size,
            "blake3": f.blake3.to_string(),
            "sha256": f.sha256.to_hex(),
        })).collect::<Vec<_>>(),
        "metadata": serde_json::to_value(&r.metadata).unwrap_or(Value::Null),
    })
}

fn parse_name(kind: &str, name: &str) -> Result<(Kind, PackageName), ApiError> {
    let kind: Kind =
        kind.parse().map_err(|e: airlock_proto::NameError| ApiError::BadRequest(e.to_string()))?;
    let name = PackageName::normalize(kind, name).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    Ok((kind, name))
}

/// `GET /v1/releases/<kind>/<name>`
pub fn list(service: &Service, kind: &str, name: &str) -> Result<Response<Body>, ApiError> {
    let (kind, name) = parse_name(kind, name)?;
    let records: Vec<Value> = service.with_state(|s| s.releases_of(kind, &name).map(record_json).collect());
    if records.is_empty() {
        return Err(ApiError::NotFound(format!("no {kind} named {name} is logged")));
    }
    Ok(body::json(StatusCode::OK, &json!({ "kind": kind, "name": name, "releases": records })))
}

/// `GET /v1/releases/<kind>/<name>/<version>`
pub fn one(service: &Service, kind: &str, name: &str, version: &str) -> Result<Response<Body>, ApiError> {
    let (kind, name) = parse_name(kind, name)?;
    let version = Version::new(version).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    service
        .with_state(|s| s.release(kind, &name, &version).map(record_json))
        .map(|v| body::json(StatusCode::OK, &v))
        .ok_or_else(|| ApiError::NotFound(format!("{kind} {name}=={version} is not logged")))
}

/// `GET /v1/releases/by-digest/blake3:<hex>`
pub fn by_digest(service: &Service, digest: &str) -> Result<Response<Body>, ApiError> {
    let digest: Digest = digest.parse().map_err(|e| ApiError::BadRequest(format!("invalid digest: {e}")))?;
    service
        .with_state(|s| s.release_by_digest(&digest).map(record_json))
        .map(|v| body::json(StatusCode::OK, &v))
        .ok_or_else(|| ApiError::NotFound(format!("no logged release holds {digest}")))
}
