//! Evidence of a SECURITY ERROR: written by every command that follows a log when the registry
//! is caught misbehaving, and `airlock evidence verify FILE --root ROOT`, which checks such a file
//! offline and says what it proves, so nobody need trust whoever reported it.

use std::path::{Path, PathBuf};

use airlock_client::follow::FollowError;
use airlock_client::fsutil;
use airlock_proto::api::{Evidence, EVIDENCE_FORMAT, MAX_SAVED_LOG_BYTES};
use airlock_proto::codec;
use anyhow::Context as _;
use clap::Subcommand;
use serde_json::json;

use super::Context;

#[derive(Debug, Subcommand)]
pub enum EvidenceCommand {
    /// Check an evidence file offline against a pinned root and say what it proves (exit 0 when
    /// it proves that the log misbehaved, 3 when it proves nothing).
    Verify {
        file: PathBuf,
        #[arg(long)]
        root: PathBuf,
    },
}

/// Writes the evidence a SECURITY ERROR in `error`'s chain carries, if any, under
/// `STATE_DIR/evidence/`, and returns its path.
pub fn write_if_any(error: &anyhow::Error, state_dir: &Path, now: u64) -> Option<PathBuf> {
    let evidence = error.chain().find_map(|cause| match cause.downcast_ref::<FollowError>() {
        Some(FollowError::Security { evidence, .. }) => Some(evidence),
        _ => None,
    })?;
    let dir = state_dir.join("evidence");
    std::fs::create_dir_all(&dir).ok()?;
    let bytes = codec::encode("evidence", evidence.as_ref()).ok()?;
    let digest = airlock_proto::Digest::of(&bytes).to_hex();
    let path = dir.join(format!("{now}-{}.evidence", &digest[..16]));
    fsutil::write_atomic(&path, &bytes, 0o644).ok()?;
    Some(path)
}

pub fn evidence(command: EvidenceCommand, context: &Context) -> anyhow::Result<()> {
    let EvidenceCommand::Verify { file, root } = command;
    let bytes = fsutil::read_capped(&file, MAX_SAVED_LOG_BYTES as u64)?;
    let evidence: Evidence = codec::decode("evidence", &bytes, MAX_SAVED_LOG_BYTES)
        .with_context(|| format!("{} is not an evidence file", file.display()))?;
    anyhow::ensure!(
        evidence.format == EVIDENCE_FORMAT,
        "evidence format {} is not {EVIDENCE_FORMAT}",
        evidence.format
    );
    let pinned = super::publish::load_root(&root)?;
    let leaves: Vec<Vec<u8>> = evidence.leaves.iter().map(|l| l.to_vec()).collect();
    let proven = airlock_keys::verify_evidence(
        pinned,
        evidence.trusted.as_deref().map(|b| b.as_slice()),
        &evidence.offered,
        &leaves,
    )
    // What the file fails to prove is a failed verification (exit 3), never itself a security
    // error about the log.
    .map_err(|e| if e.is_security() { airlock_keys::LogError::NoEvidence(e.to_string()) } else { e })?;
    context.finish(
        &json!({ "proves": format!("{proven:?}").to_lowercase(), "detail": proven.to_string(), "reported": evidence.what }),
        format!("{}: proves {proven}\nreported as: {}", file.display(), evidence.what),
    );
    Ok(())
}
