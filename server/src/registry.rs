//! What this server is: a primary (it signs its log) or a mirror (it serves another registry's
//! log). Both sit over the same store, the same registry fold and the same verifier; this enum
//! answers the reads they share, and the helpers below are what both use to write the log.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use airlock_keys::{read_secret_key, RegistryState, TrustedRoot};
use airlock_proto::merkle::{Hash, NodeSource};
use airlock_proto::{Statement, Timestamp};
use anyhow::Context;

use crate::config::Config;
use crate::mirror::{CheckpointError, Mirror};
use crate::primary::Primary;
use crate::store::{LeafBatch, Store};

/// File names inside the data directory.
pub const LOG_KEY_FILE: &str = "log.key";
pub const LOG_PUB_FILE: &str = "log.pub";

/// A primary or a mirror.
#[derive(Debug)]
pub enum Registry {
    Primary(Box<Primary>),
    Mirror(Arc<Mirror>),
}

impl Registry {
    /// Opens the registry over `store`: the pinned root is leaf 0 of a stored log, or the root
    /// file in the config when the log is empty.
    pub fn open(config: &Config, store: Arc<Store>) -> anyhow::Result<Self> {
        let size = store.log_size()?;
        let pinned_bytes = if size == 0 {
            let path =
                config.root.as_deref().context("the log is empty: pass --root ROOT_FILE to start it")?;
            read_root_file(path)?
        } else {
            store.leaf(0)?.context("log leaf 0 missing from storage")?
        };
        let pinned = TrustedRoot::pin(&pinned_bytes).context("the root does not verify")?;
        if size > 0 {
            if let Some(path) = config.root.as_deref() {
                let given = read_root_file(path)?;
                anyhow::ensure!(
                    given == pinned_bytes,
                    "{} is not the root this server was started with (leaf 0); the log keeps its first root",
                    path.display()
                );
            }
        }
        if config.is_mirror() {
            Ok(Self::Mirror(Arc::new(Mirror::open(store, config, pinned)?)))
        } else {
            let data = &config.data;
            let log_key = read_secret_key(&data.join(LOG_KEY_FILE)).with_context(|| {
                format!("cannot load the log key; run `airlockd init --data {}` first", data.display())
            })?;
            let primary = Primary::open(
                store,
                log_key,
                (pinned, pinned_bytes),
                config.checkpoint_validity,
                config.clock.clone(),
                &config.witnesses,
            )?;
            Ok(Self::Primary(Box::new(primary)))
        }
    }

    /// Runs `f` with the registry state (releases, statuses, channels, the root in force).
    pub fn with_state<R>(&self, f: impl FnOnce(&RegistryState) -> R) -> R {
        match self {
            Self::Primary(primary) => primary.with_state(f),
            Self::Mirror(mirror) => mirror.with_state(f),
        }
    }

    /// The checkpoint to serve, and the end of an unsafe extension if one is in force.
    pub fn checkpoint(&self) -> Result<(Vec<u8>, Option<Timestamp>), CheckpointError> {
        match self {
            Self::Primary(primary) => Ok((primary.checkpoint()?, None)),
            Self::Mirror(mirror) => mirror.checkpoint(),
        }
    }

    /// Every logged root's envelope, oldest first.
    pub fn root_chain(&self) -> Vec<Vec<u8>> {
        self.with_state(RegistryState::root_chain)
    }

    /// The current root's envelope bytes.
    pub fn current_root(&self) -> Vec<u8> {
        self.with_state(|state| state.root().envelope_bytes().to_vec())
    }

    /// Leaves in the log this server serves.
    pub fn size(&self) -> u64 {
        match self {
            Self::Primary(primary) => primary.size(),
            Self::Mirror(mirror) => mirror.size(),
        }
    }

    /// The mirror, if this server is one.
    pub fn mirror(&self) -> Option<&Arc<Mirror>> {
        match self {
            Self::Mirror(mirror) => Some(mirror),
            Self::Primary(_) => None,
        }
    }

    /// The primary, if this server is one.
    pub fn primary(&self) -> Option<&Primary> {
        match self {
            Self::Primary(primary) => Some(primary),
            Self::Mirror(_) => None,
        }
    }
}

/// Locks a mutex whose holder may have panicked. Every change to the guarded values is a single
/// assignment or an infallible `commit` made after the durable write, so a poisoned value is
/// still consistent.
pub(crate) fn locked<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The tree as stored, plus nodes about to be written.
pub(crate) struct Overlay<'a> {
    pub(crate) store: &'a Store,
    pub(crate) pending: &'a HashMap<(u32, u64), Hash>,
}

impl NodeSource for Overlay<'_> {
    type Error = anyhow::Error;
    fn node(&self, level: u32, index: u64) -> anyhow::Result<Hash> {
        match self.pending.get(&(level, index)) {
            Some(hash) => Ok(*hash),
            None => self.store.node(level, index),
        }
    }
}

/// Everything a leaf changes in storage: the leaf, its tree nodes, and the digest index of the
/// files of a release (which decides blob visibility).
pub(crate) fn leaf_batch(
    index: u64,
    leaf: Vec<u8>,
    nodes: Vec<(u32, u64, Hash)>,
    statement: &Statement,
) -> LeafBatch {
    let digests = match statement {
        Statement::Release(r) => r.files.iter().map(|f| f.blake3).collect(),
        _ => Vec::new(),
    };
    LeafBatch { index, leaf, nodes, digests }
}

/// Reads a root file (at most 1 MiB).
pub fn read_root_file(path: &Path) -> anyhow::Result<Vec<u8>> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read root file {}", path.display()))?;
    anyhow::ensure!(bytes.len() <= 1 << 20, "root file {} is over 1 MiB", path.display());
    Ok(bytes)
}
