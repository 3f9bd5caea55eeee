//! The client's trusted state on disk: one file per pinned root, holding the verified leaves and
//! the newest checkpoint. Loading re-verifies everything against the pinned root; saving is
//! atomic. A later rollback or fork is caught because the saved state is what the next update
//! must extend.

use std::path::{Path, PathBuf};

use airlock_keys::{TrustedLog, TrustedRoot, Verified};
use airlock_proto::api::{SavedLog, MAX_SAVED_LOG_BYTES};
use airlock_proto::codec;
use anyhow::Context;

use crate::fsutil;

/// Largest root file accepted.
pub const MAX_ROOT_FILE_BYTES: u64 = 1 << 20;

/// Where the client keeps state: `$AIRLOCK_HOME`, else `$HOME/.airlock`.
pub fn default_state_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("AIRLOCK_HOME") {
        return PathBuf::from(dir);
    }
    std::env::var_os("HOME")
        .map_or_else(|| PathBuf::from(".airlock"), |home| PathBuf::from(home).join(".airlock"))
}

/// The pinned root and where its log state lives.
#[derive(Debug)]
pub struct StateStore {
    pinned: Verified<TrustedRoot>,
    path: PathBuf,
}

impl StateStore {
    /// Loads the root file to pin; the state file is named by the root's BLAKE3.
    pub fn open(state_dir: &Path, root_file: &Path) -> anyhow::Result<Self> {
        let bytes = fsutil::read_capped(root_file, MAX_ROOT_FILE_BYTES)?;
        let pinned = TrustedRoot::pin(&bytes)
            .with_context(|| format!("root file {} does not verify", root_file.display()))?;
        let id = blake3::hash(&bytes).to_hex();
        let path = state_dir.join("logs").join(format!("{}.cbor", &id[..32]));
        Ok(Self { pinned, path })
    }

    /// The state file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Loads and re-verifies the saved state, or the empty state if there is none.
    pub fn load(&self) -> anyhow::Result<ClientLog> {
        if !self.path.exists() {
            let log = TrustedLog::restore(self.pinned.clone(), &[], None, 0)?;
            return Ok(ClientLog { log, leaves: Vec::new() });
        }
        let bytes = fsutil::read_capped(&self.path, MAX_SAVED_LOG_BYTES as u64)?;
        let saved: SavedLog = codec::decode("saved log", &bytes, MAX_SAVED_LOG_BYTES)
            .with_context(|| format!("state file {} is corrupt", self.path.display()))?;
        let leaves: Vec<Vec<u8>> = saved.leaves.into_iter().map(serde_bytes::ByteBuf::into_vec).collect();
        let log = TrustedLog::restore(
            self.pinned.clone(),
            &leaves,
            saved.checkpoint.as_deref().map(|b| b.as_slice()),
            saved.newest_issued_at,
        )
        .with_context(|| format!("state file {} does not verify", self.path.display()))?;
        Ok(ClientLog { log, leaves })
    }

    /// Saves a verified state atomically.
    pub fn save(&self, state: &ClientLog) -> anyhow::Result<()> {
        let saved = SavedLog {
            leaves: state.leaves.iter().cloned().map(serde_bytes::ByteBuf::from).collect(),
            checkpoint: state.log.checkpoint().map(|b| serde_bytes::ByteBuf::from(b.to_vec())),
            newest_issued_at: state.log.newest_issued_at(),
        };
        let bytes = codec::encode("saved log", &saved)?;
        if let Some(parent) = self.path.parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
        }
        fsutil::write_atomic(&self.path, &bytes, 0o600)
            .with_context(|| format!("cannot write {}", self.path.display()))
    }
}

/// A verified log with the leaves behind it (the client keeps every leaf so the next update can
/// be checked against the whole prefix, and so the state can be re-verified from scratch).
#[derive(Debug, Clone)]
pub struct ClientLog {
    pub log: Verified<TrustedLog>,
    pub leaves: Vec<Vec<u8>>,
}
