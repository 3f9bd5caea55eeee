//! What this server is: a primary (it signs its log) or a mirror (it serves another registry's
//! log). Both sit over the same store, the same registry fold and the same verifier; this enum
//! answers the reads they share, and the helpers below are what both use to write the log.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use airlock_keys::{RegistryState, TrustedRoot};
use airlock_proto::merkle::{Hash, NodeSource};
use airlock_proto::{Statement, Timestamp};
use anyhow::Context;

use crate::config::Config;
use crate::log_keys::LogKeys;
use crate::mirror::{CheckpointError, Mirror};
use crate::primary::Primary;
use crate::store::{LeafBatch, Store};

pub use crate::log_keys::{LOG_KEY_FILE, LOG_PUB_FILE};

/// A primary or a mirror.
#[derive(Debug)]
pub enum Registry {
    Primary(Box<Primary>),
    Mirror(Arc<Mirror>),
}

impl Registry {
    /// Opens the registry over `store`, pinned on the root file in the config (any version: a
    /// later one authenticates the roots before it through their hash chain), or on leaf 0 of
    /// the stored log when none is given.
    pub fn open(config: &Config, store: Arc<Store>) -> anyhow::Result<Self> {
        let size = store.log_size()?;
        let pinned_bytes = match config.root.as_deref() {
            Some(path) => read_root_file(path)?,
            None if size == 0 => anyhow::bail!("the log is empty: pass --root ROOT_FILE to start it"),
            None => store.leaf(0)?.context("log leaf 0 missing from storage")?,
        };
        let pinned = TrustedRoot::pin(&pinned_bytes).context("the root does not verify")?;
        if config.is_mirror() {
            Ok(Self::Mirror(Arc::new(Mirror::open(store, config, pinned)?)))
        } else {
            let data = &config.data;
            let primary = Primary::open(
                store,
                data,
                LogKeys::load(data)?,
                (pinned, pinned_bytes),
                config.checkpoint_validity,
                config.clock.clone(),
                &config.witnesses,
            )?
            .with_scan_policy(config.scan.clone());
            Ok(Self::Primary(Box::new(primary)))
        }
    }

    /// Leaves replayed at open: those after the saved fold, or every one without it.
    pub fn replayed_at_open(&self) -> u64 {
        match self {
            Self::Primary(primary) => primary.replayed_at_open(),
            Self::Mirror(mirror) => mirror.replayed_at_open(),
        }
    }

    /// The verified fold as a snapshot (`crate::snapshot`).
    pub fn snapshot(&self) -> anyhow::Result<airlock_proto::api::LogSnapshot> {
        match self {
            Self::Primary(primary) => primary.snapshot(),
            Self::Mirror(mirror) => Ok(mirror.snapshot()),
        }
    }

    /// Runs `f` while no statement can be logged: under a primary's state lock (a submit checks
    /// its release's blobs and appends under it), or holding a mirror's writer (a sync or an
    /// import holds it from its first read to its commit). Blocking: never on an async worker.
    /// `f` is given the state, which stays as it is until `f` returns.
    pub fn holding_appends<R>(&self, f: impl FnOnce(&RegistryState) -> R) -> R {
        match self {
            Self::Primary(primary) => primary.with_state(f),
            Self::Mirror(mirror) => {
                let _writer = mirror.blocking_writer();
                mirror.with_state(f)
            }
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
/// files of a release and its scan report (which decides blob visibility).
pub(crate) fn leaf_batch(
    index: u64,
    leaf: Vec<u8>,
    nodes: Vec<(u32, u64, Hash)>,
    statement: &Statement,
) -> LeafBatch {
    let digests = match statement {
        Statement::Release(r) => r.files.iter().map(|f| f.blake3).chain(r.metadata.scan_report).collect(),
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
