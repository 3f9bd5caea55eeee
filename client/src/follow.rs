//! Following a registry's log: fetch the checkpoint and the new leaves, verify them with the one
//! log verifier, and return the extended state. Nothing is trusted before `TrustedLog::update`
//! accepts it.

use airlock_keys::LogError;
use airlock_proto::{Checkpoint, Envelope};

use crate::progress::Progress;
use crate::remote::{Remote, RemoteError};
use crate::state::ClientLog;

/// Why an update failed: the registry could not be read, or what it served did not verify.
#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    #[error(transparent)]
    Remote(#[from] RemoteError),
    #[error("{0}")]
    Log(#[from] LogError),
}

/// Current time in integer seconds.
pub fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Brings `state` up to the registry's newest checkpoint. On any error `state` is unchanged.
pub async fn update(
    remote: &Remote,
    state: &ClientLog,
    show_progress: bool,
) -> Result<ClientLog, FollowError> {
    let checkpoint_bytes = remote.checkpoint().await?;
    // Read the size before verification only to know how many leaves to fetch; the verifier
    // checks everything, including this size.
    let offered_size = Envelope::from_bytes(&checkpoint_bytes)
        .ok()
        .and_then(|e| Checkpoint::decode(&e.payload_type, &e.payload).ok())
        .map(|c| c.size);
    let have = state.log.size();
    let new_leaves = match offered_size {
        Some(size) if size > have => {
            let progress = Progress::count("log leaves", size - have, show_progress);
            let leaves = remote.leaves(have, size, &progress).await?;
            progress.finish();
            leaves
        }
        _ => Vec::new(),
    };
    let log = state.log.update(&checkpoint_bytes, &new_leaves, now())?;
    let mut leaves = state.leaves.clone();
    leaves.extend(new_leaves);
    Ok(ClientLog { log, leaves })
}
