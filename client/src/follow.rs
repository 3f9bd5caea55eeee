//! Following a registry's log: fetch the checkpoint and the new leaves, verify them with the one
//! log verifier, and return the extended state. Nothing is trusted before `TrustedLog::update`
//! accepts it.

use airlock_keys::{ExpiredCheckpoint, LogError};
use airlock_proto::{Checkpoint, Clock};

use crate::progress::Reporter;
use crate::remote::{Remote, RemoteError};
use crate::state::ClientLog;

/// Why an update failed: the registry could not be read, or what it served did not verify.
#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    #[error(transparent)]
    Remote(#[from] RemoteError),
    #[error(transparent)]
    Log(#[from] LogError),
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

/// The root of the tree over the first `size` of `leaves`.
fn prefix_root(leaves: &[Vec<u8>], size: u64) -> Option<airlock_proto::Hash32> {
    let prefix = leaves.get(..usize::try_from(size).ok()?)?;
    let mut tree = airlock_proto::merkle::MemoryTree::new();
    for leaf in prefix {
        tree.push(airlock_proto::merkle::leaf_hash(leaf));
    }
    Some(airlock_proto::Hash32(tree.root()))
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
    // Read the size before verification only to know how many leaves to fetch; the verifier
    // checks everything, including this size.
    let offered_size = Checkpoint::from_note_unverified(&checkpoint_bytes).ok().map(|c| c.size);
    let have = state.log.size();
    let new_leaves = match offered_size {
        Some(size) if size > have => {
            let progress = reporter.count("log leaves", size - have);
            let leaves = remote.leaves(have, size, progress.as_ref()).await?;
            progress.finish();
            leaves
        }
        _ => Vec::new(),
    };
    let expired = match (extension, extension_until) {
        (ServerExtension::UnsafeAccept, Some(until)) => ExpiredCheckpoint::UnsafeAcceptUntil(until),
        _ => ExpiredCheckpoint::Refuse,
    };
    // One reading of the time: the checks below and the verifier see the same instant.
    let now = clock.now();
    let log = match state.log.update_with(&checkpoint_bytes, &new_leaves, now, expired) {
        Err(LogError::Stale { expires_at, now }) if extension_until.is_some() => {
            return Err(FollowError::Extension { expires_at, now, until: extension_until.unwrap_or(0) })
        }
        // An older checkpoint: a lagging mirror if it matches our own leaves at that size.
        Err(LogError::Rollback { .. }) => {
            return Err(FollowError::Log(
                state.log.judge_older(&checkpoint_bytes, |size| prefix_root(&state.leaves, size)),
            ))
        }
        other => other?,
    };
    let accepted_expired = log.checkpoint_payload().is_some_and(|c| c.expires_at <= now);
    let mut leaves = state.leaves.clone();
    leaves.extend(new_leaves);
    Ok((ClientLog { log, leaves }, Notices { extension_until, accepted_expired }))
}
