//! Following a registry's log: fetch the checkpoint, check its signature before any leaf is
//! fetched, fetch the new leaves page by page folding each as it arrives, and return the
//! extended state. Nothing is trusted before the one log verifier accepts the whole.

use airlock_keys::{ExpiredCheckpoint, LogError};
use airlock_proto::api::{Evidence, EVIDENCE_FORMAT, MAX_SAVED_LOG_BYTES};
use airlock_proto::{Checkpoint, Clock};

use crate::progress::Reporter;
use crate::remote::{Remote, RemoteError};
use crate::state::{ClientLog, WarmState};

/// Why an update failed: the registry could not be read, or what it served did not verify.
#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    #[error(transparent)]
    Remote(#[from] RemoteError),
    #[error(transparent)]
    Log(#[from] LogError),
    /// A SECURITY ERROR, with the evidence that shows it.
    #[error("{error}")]
    Security { error: LogError, evidence: Box<Evidence> },
    /// The saved state could not be read or repaired.
    #[error("saved state: {0}")]
    State(String),
    #[error("checkpoint is stale: it expired at {expires_at}, the time is now {now}; the server declares an operator's UNSAFE extension until {until}. Accept it only knowingly: --unsafe-accept-server-extension")]
    Extension { expires_at: u64, now: u64, until: u64 },
}

/// Whether to accept a checkpoint the server serves past its expiry under an operator's
/// declared unsafe extension. Refusing is the default; accepting turns freeze protection off
/// until the extension ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ServerExtension {
    #[default]
    Refuse,
    UnsafeAccept,
}

/// What an update saw besides the new state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Notices {
    /// The server declared an unsafe extension until this time.
    pub extension_until: Option<u64>,
    /// The expired checkpoint was accepted under that extension.
    pub accepted_expired: bool,
}

/// The root of the tree over `leaves`.
fn tree_root(leaves: &[Vec<u8>]) -> airlock_proto::Hash32 {
    let mut tree = airlock_proto::merkle::MemoryTree::new();
    for leaf in leaves {
        tree.push(airlock_proto::merkle::leaf_hash(leaf));
    }
    airlock_proto::Hash32(tree.root())
}

/// The saved leaves fetched again when the file lost some: they must reproduce the verified
/// root hash, leaf for leaf.
async fn refetch_leaves(
    remote: &Remote,
    state: &ClientLog,
    reporter: &dyn Reporter,
) -> Result<Option<Vec<Vec<u8>>>, FollowError> {
    let Some(damage) = state.leaves.damage() else { return Ok(None) };
    let size = state.log.size();
    let progress = reporter.count("saved log leaves, fetched again", size);
    let mut all = Vec::new();
    remote
        .leaves_each(0, size, MAX_SAVED_LOG_BYTES, progress.as_ref(), |page| {
            all.extend(page);
            Ok::<(), FollowError>(())
        })
        .await?;
    progress.finish();
    let computed = tree_root(&all);
    if all.len() as u64 != size || computed != state.log.root_hash() {
        return Err(FollowError::State(format!(
            "{damage}; the {} leaves the registry served again hash to {computed}, the verified log of {size} to {}",
            all.len(),
            state.log.root_hash()
        )));
    }
    Ok(Some(all))
}

/// Brings `state` up to the registry's newest checkpoint, judging freshness at `clock`'s time.
/// On any error `state` is unchanged.
pub async fn update(
    remote: &Remote,
    state: &ClientLog,
    clock: &Clock,
    reporter: &dyn Reporter,
) -> Result<ClientLog, FollowError> {
    Ok(update_with(remote, state, clock, reporter, ServerExtension::Refuse).await?.0)
}

/// `update`, deciding what to do with a declared unsafe extension.
pub async fn update_with(
    remote: &Remote,
    state: &ClientLog,
    clock: &Clock,
    reporter: &dyn Reporter,
    extension: ServerExtension,
) -> Result<(ClientLog, Notices), FollowError> {
    let (checkpoint_bytes, extension_until) = remote.checkpoint_with_extension().await?;
    update_to(remote, state, clock, reporter, (checkpoint_bytes, extension_until), extension).await
}

/// A registry's checkpoint as offered: the bytes and the unsafe extension it declares, if any.
pub type Offered = (Vec<u8>, Option<u64>);

/// What `confirm` found.
#[derive(Debug)]
pub enum Confirmed {
    /// The registry serves the same tree: `warm` with the confirmed head. `changed` says whether
    /// the checkpoint differs from the saved one (only then is the head worth writing).
    Warm { warm: Box<WarmState>, notices: Notices, changed: bool },
    /// The fold must judge this checkpoint (`update_offered`): new leaves, or anything to refuse
    /// and report, with evidence for a security error.
    Fold(Offered),
}

/// The rule for an expired checkpoint under `extension` and what the registry declared.
fn expired_rule(extension: ServerExtension, extension_until: Option<u64>) -> ExpiredCheckpoint {
    match (extension, extension_until) {
        (ServerExtension::UnsafeAccept, Some(until)) => ExpiredCheckpoint::UnsafeAcceptUntil(until),
        _ => ExpiredCheckpoint::Refuse,
    }
}

/// Confirms without the fold that the registry still serves the log `warm` stands for: its
/// checkpoint is of the same tree and passes every rule the fold would apply
/// (`TrustedHead::confirm`). Otherwise hands the fetched checkpoint back for the fold.
pub async fn confirm(
    remote: &Remote,
    warm: WarmState,
    clock: &Clock,
    extension: ServerExtension,
) -> Result<Confirmed, FollowError> {
    let (checkpoint_bytes, extension_until) = remote.checkpoint_with_extension().await?;
    let now = clock.now();
    match warm.head.confirm(&checkpoint_bytes, now, expired_rule(extension, extension_until)) {
        Ok(Some(head)) => {
            let accepted_expired = head.checkpoint_payload().is_some_and(|c| c.expires_at <= now);
            let changed = head.checkpoint() != warm.head.checkpoint();
            let notices = Notices { extension_until, accepted_expired };
            Ok(Confirmed::Warm { warm: Box::new(warm.with_head(head)), notices, changed })
        }
        Ok(None) | Err(_) => Ok(Confirmed::Fold((checkpoint_bytes, extension_until))),
    }
}

/// `update_with` to a checkpoint already fetched (`Confirmed::Fold`).
pub async fn update_offered(
    remote: &Remote,
    state: &ClientLog,
    clock: &Clock,
    reporter: &dyn Reporter,
    offered: Offered,
    extension: ServerExtension,
) -> Result<(ClientLog, Notices), FollowError> {
    update_to(remote, state, clock, reporter, offered, extension).await
}

/// `update` to a checkpoint the caller fetched: `POST /v1/admin/checkpoint`'s long-lived one for
/// a bundle, verified like any other.
pub async fn update_to_checkpoint(
    remote: &Remote,
    state: &ClientLog,
    clock: &Clock,
    reporter: &dyn Reporter,
    checkpoint_bytes: Vec<u8>,
) -> Result<ClientLog, FollowError> {
    Ok(update_to(remote, state, clock, reporter, (checkpoint_bytes, None), ServerExtension::Refuse).await?.0)
}

async fn update_to(
    remote: &Remote,
    state: &ClientLog,
    clock: &Clock,
    reporter: &dyn Reporter,
    offered: Offered,
    extension: ServerExtension,
) -> Result<(ClientLog, Notices), FollowError> {
    let (checkpoint_bytes, extension_until) = offered;
    let expired = expired_rule(extension, extension_until);
    let refetched = refetch_leaves(remote, state, reporter).await?;
    let have = state.log.size();
    // The size is read unverified only to see whether leaves are needed at all.
    let offered_size = Checkpoint::from_note_unverified(&checkpoint_bytes).ok().map(|c| c.size);
    let result = match offered_size {
        Some(size) if size > have => {
            // Before any leaf is fetched, the log key must have signed this size: checked with the
            // newest root the registry's root chain leads to from ours.
            let roots = remote.roots().await?;
            let size = state.log.precheck(&checkpoint_bytes, &roots)?;
            let mut pending = state.log.begin_update(&checkpoint_bytes)?;
            let mut new_leaves = Vec::new();
            let budget = MAX_SAVED_LOG_BYTES
                .saturating_sub(usize::try_from(state.leaves.bytes()).unwrap_or(usize::MAX));
            let progress = reporter.count("log leaves", size - have);
            remote
                .leaves_each(have, size, budget, progress.as_ref(), |page| {
                    pending.push(&page)?;
                    new_leaves.extend(page);
                    Ok::<(), FollowError>(())
                })
                .await?;
            progress.finish();
            // One reading of the time: the verifier and the notices see the same instant.
            let now = clock.now();
            (pending.finish_at(now, expired), new_leaves, now)
        }
        _ => {
            let now = clock.now();
            (state.log.update_with(&checkpoint_bytes, &[], now, expired), Vec::new(), now)
        }
    };
    let (result, new_leaves, now) = result;
    let log = match result {
        Ok(log) => log,
        Err(LogError::Stale { expires_at, now }) if extension_until.is_some() => {
            return Err(FollowError::Extension { expires_at, now, until: extension_until.unwrap_or(0) })
        }
        Err(error) => {
            // An older checkpoint: a lagging mirror if it matches our own leaves at that size.
            let error = match error {
                LogError::Rollback { .. } => {
                    // Our own leaves at that size, as fetched again or as saved; a leaves file
                    // that cannot be read is a state error, never evidence of a rollback.
                    let mut unreadable = None;
                    let judged = state.log.judge_older(&checkpoint_bytes, now, |size| match &refetched {
                        Some(all) => all.get(..size as usize).map(tree_root),
                        None => state
                            .leaves
                            .read(0..size)
                            .map(|p| tree_root(&p))
                            .map_err(|e| unreadable = Some(e))
                            .ok(),
                    });
                    if let Some(e) = unreadable {
                        return Err(FollowError::State(format!("{e:#}")));
                    }
                    judged
                }
                other => other,
            };
            if !error.is_security() {
                return Err(FollowError::Log(error));
            }
            // Evidence that stands on its own: both checkpoints and the leaves behind them.
            let evidence = Evidence {
                format: EVIDENCE_FORMAT,
                what: error.to_string(),
                trusted: state.log.checkpoint().map(|c| serde_bytes::ByteBuf::from(c.to_vec())),
                offered: serde_bytes::ByteBuf::from(checkpoint_bytes),
                leaves: match &refetched {
                    Some(all) => all.clone(),
                    None => state.leaves.all().map_err(|e| FollowError::State(format!("{e:#}")))?,
                }
                .into_iter()
                .chain(new_leaves)
                .map(serde_bytes::ByteBuf::from)
                .collect(),
            };
            return Err(FollowError::Security { error, evidence: Box::new(evidence) });
        }
    };
    let accepted_expired = log.checkpoint_payload().is_some_and(|c| c.expires_at <= now);
    Ok((state.advanced(log, new_leaves, refetched), Notices { extension_until, accepted_expired }))
}
