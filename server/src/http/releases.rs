//! `GET /v1/releases/...`: look releases up by name, by name and version, or by digest.
//! These answers are for people and scripts; clients that install verify through the log.

use airlock_keys::{RegistryState, ReleaseRecord, ReleaseStatus};
use airlock_proto::api::{ChannelList, ReleaseInfo, ReleaseList, ReleaseState};
use airlock_proto::{ChannelName, Digest, Kind, PackageName, Version};
use http::{Response, StatusCode};

use crate::app::App;
use crate::error::ApiError;
use crate::http::body::{self, Body};

/// The wire form of a release record, with the channels that hold it.
pub fn release_info(state: &RegistryState, record: &ReleaseRecord) -> ReleaseInfo {
    let r = &record.release;
    let key = (r.kind, r.name.clone(), r.version.clone());
    ReleaseInfo {
        kind: r.kind,
        name: r.name.clone(),
        version: r.version.clone(),
        leaf_index: record.leaf_index,
        status: match &record.status {
            ReleaseStatus::Active => ReleaseState::Active,
            ReleaseStatus::Yanked { reason } => ReleaseState::Yanked { reason: reason.clone() },
            ReleaseStatus::Revoked { reason } => ReleaseState::Revoked { reason: reason.clone() },
        },
        published_at: r.published_at,
        files: r.files.clone(),
        metadata: r.metadata.clone(),
        channels: state.channels_of(&key).cloned().collect(),
    }
}

fn parse_name(kind: &str, name: &str) -> Result<(Kind, PackageName), ApiError> {
    let kind: Kind =
        kind.parse().map_err(|e: airlock_proto::NameError| ApiError::BadRequest(e.to_string()))?;
    let name = PackageName::normalize(kind, name).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    Ok((kind, name))
}

/// `GET /v1/releases/<kind>/<name>`
pub fn list(app: &App, kind: &str, name: &str) -> Result<Response<Body>, ApiError> {
    let (kind, name) = parse_name(kind, name)?;
    let releases: Vec<ReleaseInfo> =
        app.registry.with_state(|s| s.releases_of(kind, &name).map(|r| release_info(s, r)).collect());
    if releases.is_empty() {
        return Err(ApiError::NotFound(format!("no {kind} named {name} is logged")));
    }
    Ok(body::json(StatusCode::OK, &ReleaseList { kind, name, releases }))
}

/// `GET /v1/releases/<kind>/<name>/<version>`
pub fn one(app: &App, kind: &str, name: &str, version: &str) -> Result<Response<Body>, ApiError> {
    let (kind, name) = parse_name(kind, name)?;
    let version = Version::new(version).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    app.registry
        .with_state(|s| s.release(kind, &name, &version).map(|r| release_info(s, r)))
        .map(|info| body::json(StatusCode::OK, &info))
        .ok_or_else(|| ApiError::NotFound(format!("{kind} {name}=={version} is not logged")))
}

/// `GET /v1/releases/by-digest/blake3:<hex>`
pub fn by_digest(app: &App, digest: &str) -> Result<Response<Body>, ApiError> {
    let digest: Digest = digest.parse().map_err(|e| ApiError::BadRequest(format!("invalid digest: {e}")))?;
    app.registry
        .with_state(|s| s.release_by_digest(&digest).map(|r| release_info(s, r)))
        .map(|info| body::json(StatusCode::OK, &info))
        .ok_or_else(|| ApiError::NotFound(format!("no logged release holds {digest}")))
}

/// `GET /v1/channels/<name>`: the releases a channel holds (an empty list for a channel that
/// holds none).
pub fn channel(app: &App, name: &str) -> Result<Response<Body>, ApiError> {
    let channel = ChannelName::new(name).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let releases =
        app.registry.with_state(|s| s.channel_releases(&channel).map(|r| release_info(s, r)).collect());
    Ok(body::json(StatusCode::OK, &ChannelList { channel, releases }))
}
