//! A mirror: serves another registry's log, byte for byte, after verifying it with the same log
//! verifier every client uses. It never signs anything. Its log changes in three ways — a sync
//! from the upstream (`follow.rs`), a bundle import (`import.rs`), a newer checkpoint for the
//! same tree — and all three go through the one [`MirrorWriter`], one at a time.

pub mod follow;
pub mod import;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use airlock_keys::{cosign, read_secret_key, RegistryState, SecretKey, TrustedLog, TrustedRoot, Verified};
use airlock_proto::api::MirrorStatus;
use airlock_proto::merkle;
use airlock_proto::{Checkpoint, Clock, Envelope, Note, Statement, Timestamp};
use anyhow::Context;

use crate::config::{CarryFilter, Config};
use crate::registry::{leaf_batch, locked, Overlay};
use crate::store::Store;

/// Why a mirror has no checkpoint to serve.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("this mirror has not synced from its upstream yet")]
    NotSynced,
    #[error("stale: this mirror's newest upstream checkpoint expired at {expired_at}; it cannot vouch for freshness{}", last_error.as_ref().map_or_else(String::new, |e| format!(" (last sync error: {e})")))]
    Stale { expired_at: Timestamp, last_error: Option<String> },
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// A mirror's verified view of its upstream and the one writer that changes it.
#[derive(Debug)]
pub struct Mirror {
    store: Arc<Store>,
    trusted: Mutex<Verified<TrustedLog>>,
    writer: Arc<tokio::sync::Mutex<()>>,
    status: Mutex<MirrorStatus>,
    /// Replaced by `airlockd reload`; a wider one leaves a backfill for the next sync.
    carry: std::sync::RwLock<Arc<CarryFilter>>,
    /// The carry filter widened (or may have): the next sync fetches the blobs of every carried
    /// release it lacks, not only those of new leaves.
    backfill: std::sync::atomic::AtomicBool,
    unsafe_extension: Option<u64>,
    clock: Clock,
    /// The site's own witness: a name and key with which the mirror cosigns each checkpoint it
    /// verified (a cosignature, never a log signature).
    witness: Option<(String, SecretKey)>,
    /// Leaves replayed at open, after the saved fold.
    replayed: u64,
}

impl Mirror {
    /// Re-verifies the stored log from the pinned root.
    pub fn open(store: Arc<Store>, config: &Config, pinned: Verified<TrustedRoot>) -> anyhow::Result<Self> {
        let data = &config.data;
        let resumed = crate::snapshot::read(data, &store).and_then(|saved| {
            saved.map(|saved| TrustedLog::resume(pinned.clone(), saved)).transpose().map_err(Into::into)
        });
        let (base, refused) = match resumed {
            Ok(Some(base)) => (base, false),
            Ok(None) => (TrustedLog::restore(pinned, &[], None, 0)?, false),
            Err(why) => {
                crate::snapshot::refused(data, &why);
                (TrustedLog::restore(pinned, &[], None, 0)?, true)
            }
        };
        let (from, size) = (base.size(), store.log_size()?);
        let leaves = store.leaves(from, size, usize::MAX)?;
        anyhow::ensure!(leaves.len() as u64 == size - from, "stored log leaves {from}..{size} are missing");
        let checkpoint = store.checkpoint()?;
        let trusted = base
            .restore_onto(&leaves, checkpoint.as_deref(), 0)
            .context("the mirrored log does not verify")?;
        let replayed = size - from;
        tracing::info!(resumed = from, replayed, "opening the mirrored log");
        // The size and lag are derived when the status is read.
        let status =
            MirrorStatus { upstream: config.upstream.clone().unwrap_or_default(), ..MirrorStatus::default() };
        let mirror = Self {
            store,
            trusted: Mutex::new(trusted),
            writer: Arc::new(tokio::sync::Mutex::new(())),
            status: Mutex::new(status),
            carry: std::sync::RwLock::new(Arc::new(config.carry.clone())),
            backfill: std::sync::atomic::AtomicBool::new(false),
            unsafe_extension: config.unsafe_serve_expired_checkpoint_for.map(|d| d.as_secs()),
            clock: config.clock.clone(),
            witness: match &config.mirror_witness {
                Some((name, path)) => Some((
                    name.clone(),
                    read_secret_key(path)
                        .with_context(|| format!("cannot load the witness key {}", path.display()))?,
                )),
                None => None,
            },
            replayed,
        };
        if size > 0 && (refused || replayed >= crate::snapshot::SNAPSHOT_AFTER_REPLAY) {
            crate::snapshot::write(data, &mirror.snapshot())?;
        }
        Ok(mirror)
    }

    /// Leaves replayed at open: those after the saved fold, or every one without it.
    pub fn replayed_at_open(&self) -> u64 {
        self.replayed
    }

    /// The verified log as a snapshot.
    pub fn snapshot(&self) -> airlock_proto::api::LogSnapshot {
        locked(&self.trusted).snapshot()
    }

    /// The store under the mirror.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// The clock the mirror reads.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// Which releases this mirror carries the blobs of.
    pub fn carry(&self) -> Arc<CarryFilter> {
        Arc::clone(&self.carry.read().unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    /// Puts a new carry filter in force; returns whether it differs from the old one. Blobs the
    /// new one carries and the store lacks are fetched by the next sync (`take_backfill`); blobs
    /// it no longer carries stay until garbage collection.
    pub fn set_carry(&self, carry: CarryFilter) -> bool {
        let mut current = self.carry.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        if **current == carry {
            return false;
        }
        *current = Arc::new(carry);
        self.backfill.store(true, std::sync::atomic::Ordering::SeqCst);
        true
    }

    /// Whether a backfill is due, clearing the flag (`request_backfill` sets it again when the
    /// backfill fails).
    pub fn take_backfill(&self) -> bool {
        self.backfill.swap(false, std::sync::atomic::Ordering::SeqCst)
    }

    /// Leaves a backfill for the next sync.
    pub fn request_backfill(&self) {
        self.backfill.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Runs `f` with the registry state of the verified log.
    pub fn with_state<R>(&self, f: impl FnOnce(&RegistryState) -> R) -> R {
        f(locked(&self.trusted).registry())
    }

    /// Leaves this mirror serves.
    pub fn size(&self) -> u64 {
        locked(&self.trusted).size()
    }

    /// Waits for the writer (async callers: sync).
    pub async fn writer(self: &Arc<Self>) -> MirrorWriter {
        let guard = Arc::clone(&self.writer).lock_owned().await;
        MirrorWriter { mirror: Arc::clone(self), _guard: guard }
    }

    /// Waits for the writer (blocking callers: bundle import). Must not be called on an async
    /// worker thread.
    pub fn blocking_writer(self: &Arc<Self>) -> MirrorWriter {
        let guard = Arc::clone(&self.writer).blocking_lock_owned();
        MirrorWriter { mirror: Arc::clone(self), _guard: guard }
    }

    /// The lag and last sync outcome.
    pub fn status(&self) -> MirrorStatus {
        let mut status = locked(&self.status).clone();
        status.size = self.size();
        status.lag_leaves = status.upstream_size.saturating_sub(status.size);
        status
    }

    /// Records what the upstream offered (size and issue time) for the status.
    pub fn note_upstream(&self, upstream_size: u64, upstream_issued_at: Timestamp) {
        let served = locked(&self.trusted).checkpoint_payload().map_or(0, |c| c.issued_at);
        let mut status = locked(&self.status);
        status.upstream_size = upstream_size;
        status.lag_seconds = if served == 0 { 0 } else { upstream_issued_at.saturating_sub(served) };
    }

    /// Records the outcome of a sync attempt.
    pub fn note_attempt(&self, error: Option<String>) {
        let now = self.clock.now();
        let mut status = locked(&self.status);
        status.last_attempt_at = Some(now);
        if error.is_none() {
            status.last_success_at = Some(now);
        }
        status.last_error = error;
    }

    /// The checkpoint to serve: the upstream's, byte for byte, while it is fresh. Past expiry a
    /// stale error, unless the operator's unsafe extension is in force, whose end is then
    /// declared to clients.
    pub fn checkpoint(&self) -> Result<(Vec<u8>, Option<Timestamp>), CheckpointError> {
        let bytes = self.store.checkpoint()?.ok_or(CheckpointError::NotSynced)?;
        // A checkpoint this server stored after signing or verifying it.
        let current = Checkpoint::from_note_unverified(&bytes).map_err(anyhow::Error::from)?;
        let now = self.clock.now();
        if now < current.expires_at {
            return Ok((bytes, None));
        }
        match self.unsafe_extension {
            Some(extension) if now < current.expires_at.saturating_add(extension) => {
                let until = current.expires_at.saturating_add(extension);
                tracing::warn!(
                    expired_at = current.expires_at,
                    until,
                    "UNSAFE: serving an expired upstream checkpoint under the operator's extension"
                );
                Ok((bytes, Some(until)))
            }
            _ => Err(CheckpointError::Stale {
                expired_at: current.expires_at,
                last_error: locked(&self.status).last_error.clone(),
            }),
        }
    }
}

/// The one writer of a mirror: whoever holds it may change the log, and nobody else.
#[derive(Debug)]
pub struct MirrorWriter {
    mirror: Arc<Mirror>,
    _guard: tokio::sync::OwnedMutexGuard<()>,
}

impl MirrorWriter {
    /// The mirror being written.
    pub fn mirror(&self) -> &Arc<Mirror> {
        &self.mirror
    }

    /// The verified view the next change must extend.
    pub fn trusted(&self) -> Verified<TrustedLog> {
        locked(&self.mirror.trusted).clone()
    }

    /// Makes verified upstream leaves visible: every leaf, its tree nodes and indexes and the
    /// checkpoint the verifier kept, in one synced batch, then the new state in memory. The
    /// caller has made every referenced blob durable first. Blocking.
    pub fn commit(&self, leaves: &[Vec<u8>], next: Verified<TrustedLog>) -> anyhow::Result<()> {
        let store = self.mirror.store.as_ref();
        let start = store.log_size()?;
        anyhow::ensure!(
            start == locked(&self.mirror.trusted).size(),
            "the stored log and the mirror state differ"
        );
        anyhow::ensure!(
            start + leaves.len() as u64 == next.size(),
            "mirrored leaves do not follow the stored log"
        );
        let mut checkpoint = next.checkpoint().context("a verified log has a checkpoint")?.to_vec();
        if let Some((name, key)) = &self.mirror.witness {
            // Only what the verifier just accepted, which extends everything accepted before.
            let mut note = Note::parse(&checkpoint)?;
            cosign(&mut note, name, key, self.mirror.clock.now())?;
            checkpoint = note.to_bytes();
        }
        let mut pending = HashMap::new();
        let mut changes = Vec::with_capacity(leaves.len());
        for (offset, leaf) in leaves.iter().enumerate() {
            let index = start + offset as u64;
            let overlay = Overlay { store, pending: &pending };
            let nodes = merkle::nodes_completed_by_append(&overlay, index, merkle::leaf_hash(leaf))?;
            pending.extend(nodes.iter().map(|&(level, i, hash)| ((level, i), hash)));
            let envelope = Envelope::from_bytes(leaf)?;
            let statement = Statement::decode(&envelope.payload_type, &envelope.payload)?;
            changes.push(leaf_batch(index, leaf.clone(), nodes, &statement));
        }
        store.append(&changes, &checkpoint)?;
        *locked(&self.mirror.trusted) = next;
        Ok(())
    }
}
