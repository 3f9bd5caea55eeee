//! Offline proofs of one release (C2SP tlog-proof files): made from the client's verified view
//! of the log, and checked later without the log — by an auditor who holds only a root.

use airlock_keys::{verify_included, Freshness, Included, InclusionClaim, LogError, TrustedRoot, Verified};
use airlock_proto::proof::TlogProof;
use airlock_proto::{Checkpoint, Clock, Envelope, Note, Statement};
use anyhow::Context;

use crate::pull::{resolve, Target};
use crate::remote::Remote;
use crate::state::ClientLog;

/// What a proof file proves once it verified: the statement it carries and where it is.
#[derive(Debug, Clone)]
pub struct ProvenStatement {
    pub statement: Statement,
    pub included: Verified<Included>,
}

/// Builds the proof of a logged release from `state` (already brought up to date): the leaf's
/// exact bytes as the entry, its inclusion proof in the tree of the state's checkpoint (fetched
/// from the registry and verified here before anything is written), and that checkpoint.
pub async fn prove(
    remote: &Remote,
    state: &ClientLog,
    target: &Target,
    clock: &Clock,
) -> anyhow::Result<(TlogProof, ProvenStatement)> {
    let (record, _) = resolve(state.log.registry(), target, None)?;
    let index = record.leaf_index;
    let size = state.log.size();
    let leaf = state.leaves.get(index).with_context(|| format!("the verified state lacks leaf {index}"))?;
    let checkpoint = state.log.checkpoint().context("the verified state has no checkpoint")?.to_vec();
    let hashes = remote.inclusion_proof(index, size).await?.hashes;
    let proof = TlogProof { extra: Some(leaf), index, hashes, checkpoint };
    let proven = check(state.log.registry().root(), &proof, Freshness::At(clock.now()))?;
    Ok((proof, proven))
}

/// Checks a proof file against `root`, offline: the checkpoint's log signatures, the inclusion
/// proof of the entry, and that the entry is an airlock statement. The checkpoint may have
/// expired since: the proof shows what the log committed to when it signed.
pub fn verify_file(root: &TrustedRoot, bytes: &[u8]) -> anyhow::Result<ProvenStatement> {
    let proof = TlogProof::parse(bytes)?;
    check(root, &proof, Freshness::Historic)
}

fn check(root: &TrustedRoot, proof: &TlogProof, freshness: Freshness) -> anyhow::Result<ProvenStatement> {
    let leaf = proof.extra.as_deref().context("the proof does not carry the statement (no extra line)")?;
    // The size the proof is for is the checkpoint's; a checkpoint that does not even parse is
    // refused with the verifier's own errors.
    let note = Note::parse(&proof.checkpoint).map_err(LogError::CheckpointEncoding)?;
    let size = Checkpoint::from_text(note.text()).map_err(LogError::CheckpointPayload)?.size;
    let claim = InclusionClaim {
        leaf,
        index: proof.index,
        size,
        checkpoint: &proof.checkpoint,
        proof: &proof.hashes,
    };
    let included = verify_included(root, claim, freshness)?;
    let envelope = Envelope::from_bytes(leaf).context("the proven entry is not a signed statement")?;
    let statement = Statement::decode(&envelope.payload_type, &envelope.payload)?;
    Ok(ProvenStatement { statement, included })
}
