//! Purging a revoked release's blobs (`airlockd purge NAME==VERSION`, `POST /v1/admin/purge`).
//!
//! A revoked release keeps its blobs (the log still names them) until an operator purges them.
//! Refused unless the release is revoked; a file that a release which is not revoked also holds
//! is kept. Mirrors and bundle imports need no blobs of revoked releases, so a purge upstream
//! never stops a sync. Done while no statement can be logged, so the release's status and the
//! holders of each file cannot change under it.

use airlock_keys::{RegistryState, ReleaseRecord, ReleaseStatus};
use airlock_proto::api::{GcReason, GcRemoved, PurgeReport, PurgeRequest};

use crate::registry::Registry;
use crate::store::Store;

/// Why a purge was refused.
#[derive(Debug, thiserror::Error)]
pub enum PurgeError {
    #[error("no logged release {0}")]
    NotFound(String),
    #[error("{0} is both a wheel and a node pack: say which with --kind")]
    Ambiguous(String),
    #[error(
        "{what} is {status}, not revoked: only a revoked release's blobs can be purged (revoke it first)"
    )]
    NotRevoked { what: String, status: &'static str },
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// Purges the blobs of the revoked release `wanted` names. Blocking.
pub fn purge(store: &Store, registry: &Registry, wanted: &PurgeRequest) -> Result<PurgeReport, PurgeError> {
    registry.holding_appends(|state| {
        let record = find(state, wanted)?;
        let release = &record.release;
        let what = format!("{} {}=={}", release.kind, release.name, release.version);
        let status = match record.status {
            ReleaseStatus::Revoked { .. } => None,
            ReleaseStatus::Active => Some("active"),
            ReleaseStatus::Yanked { .. } => Some("yanked"),
        };
        if let Some(status) = status {
            return Err(PurgeError::NotRevoked { what, status });
        }
        let mut report = PurgeReport {
            kind: release.kind,
            name: release.name.clone(),
            version: release.version.clone(),
            removed: Vec::new(),
            kept_shared: Vec::new(),
        };
        for file in &release.files {
            // The holder preferred for a digest is one that is not revoked, when there is one.
            let shared = state
                .release_by_digest(&file.blake3)
                .is_some_and(|holder| !matches!(holder.status, ReleaseStatus::Revoked { .. }));
            if shared {
                report.kept_shared.push(file.blake3);
            } else if let Some(bytes) = store.purge_blob(&file.blake3)? {
                tracing::info!(target: crate::audit::TARGET, digest = %file.blake3, bytes, release = what, "blob purged");
                report.removed.push(GcRemoved { digest: file.blake3, bytes, reason: GcReason::Purged });
            }
        }
        Ok(report)
    })
}

fn find<'a>(state: &'a RegistryState, wanted: &PurgeRequest) -> Result<&'a ReleaseRecord, PurgeError> {
    let what = format!("{}=={}", wanted.name, wanted.version);
    let kinds = match wanted.kind {
        Some(kind) => vec![kind],
        None => vec![airlock_proto::Kind::Wheel, airlock_proto::Kind::Node],
    };
    let mut found = kinds.into_iter().filter_map(|kind| {
        let name = airlock_proto::PackageName::new(kind, &wanted.name).ok()?;
        state.release(kind, &name, &wanted.version)
    });
    match (found.next(), found.next()) {
        (Some(record), None) => Ok(record),
        (Some(_), Some(_)) => Err(PurgeError::Ambiguous(what)),
        (None, _) => Err(PurgeError::NotFound(what)),
    }
}
