//! Checking that one statement is in the log, given only a pinned root: the answer to a submit,
//! and later offline proofs. The checkpoint meets the same origin, signature and freshness rules
//! as every checkpoint the log verifier accepts; the inclusion proof leads from the exact leaf
//! bytes to its root hash.

use airlock_proto::merkle::{leaf_hash, verify_inclusion};
use airlock_proto::{Hash32, Statement, Timestamp};

use crate::log::{check_fresh, check_origin, decode_checkpoint, Decoded, ExpiredCheckpoint, LogError};
use crate::trust::TrustedRoot;
use crate::verified::Verified;

/// A statement proven to be leaf `index` of the tree a valid checkpoint commits to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Included {
    pub index: u64,
    pub size: u64,
    pub root_hash: Hash32,
    /// The checkpoint envelope that vouches for the tree.
    pub checkpoint: Vec<u8>,
}

/// What a registry answered about one leaf: where it is, the checkpoint, and the proof.
#[derive(Debug, Clone, Copy)]
pub struct InclusionClaim<'a> {
    pub leaf: &'a [u8],
    pub index: u64,
    pub size: u64,
    pub checkpoint: &'a [u8],
    pub proof: &'a [Hash32],
}

/// Whether the checkpoint must be fresh: a submit answer is checked at the current time; an
/// offline proof is evidence of what the log committed to when it signed, and stays so after the
/// checkpoint expires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    At(Timestamp),
    Historic,
}

/// Verifies `claim` against `root`. When the leaf is itself the next root (a root rotation just
/// logged), the checkpoint is checked against that root if it verifies as the successor of
/// `root`: a rotation may change the log key.
pub fn verify_included(
    root: &TrustedRoot,
    claim: InclusionClaim<'_>,
    freshness: Freshness,
) -> Result<Verified<Included>, LogError> {
    let Decoded { checkpoint, note } = decode_checkpoint(claim.checkpoint)?;
    let successor = next_root(root, claim.leaf);
    let in_force: &TrustedRoot = successor.as_deref().unwrap_or(root);
    check_origin(&checkpoint, in_force)?;
    crate::log::check_signed(in_force, &note)?;
    if checkpoint.size != claim.size {
        return Err(LogError::SizeMismatch { claimed: claim.size, checkpoint: checkpoint.size });
    }
    if let Freshness::At(now) = freshness {
        check_fresh(&checkpoint, in_force, now, ExpiredCheckpoint::Refuse)?;
    }
    let proof: Vec<[u8; 32]> = claim.proof.iter().map(|h| h.0).collect();
    verify_inclusion(&leaf_hash(claim.leaf), claim.index, claim.size, &proof, &checkpoint.root_hash.0)
        .map_err(|e| LogError::Inclusion { index: claim.index, size: claim.size, detail: e.to_string() })?;
    Ok(Verified::new(Included {
        index: claim.index,
        size: claim.size,
        root_hash: checkpoint.root_hash,
        checkpoint: claim.checkpoint.to_vec(),
    }))
}

/// The leaf as the verified successor of `root`, if it is one.
fn next_root(root: &TrustedRoot, leaf: &[u8]) -> Option<Verified<TrustedRoot>> {
    let envelope = airlock_proto::Envelope::from_bytes(leaf).ok()?;
    match Statement::decode(&envelope.payload_type, &envelope.payload).ok()? {
        Statement::Root(_) => root.next(leaf).ok(),
        _ => None,
    }
}
