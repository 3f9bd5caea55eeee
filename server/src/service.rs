//! The registry service: the log, the blob store and the registry state behind one API that
//! the HTTP layer calls. Appends are serialised by one lock; each is one durable batch.

use std::path::Path;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use airlock_keys::{
    read_secret_key, sign_envelope, ApplyError, RegistryState, RoleName, SecretKey, TrustedLog, TrustedRoot,
    Verified,
};
use airlock_proto::merkle::{self, Hash, NodeSource};
use airlock_proto::{Checkpoint, Digest, Envelope, Hash32, PayloadType, Statement, Timestamp};
use anyhow::Context;

use crate::config::Config;
use crate::error::ApiError;
use crate::store::{BlobRecord, BlobStore, Db, LeafBatch, StoredBlob};

/// Current time in integer seconds.
pub fn now() -> Timestamp {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// File names inside the data directory.
pub const LOG_KEY_FILE: &str = "log.key";
pub const LOG_PUB_FILE: &str = "log.pub";
pub const DB_DIR: &str = "db";

/// What an accepted statement became.
#[derive(Debug, Clone)]
pub struct Appended {
    pub index: u64,
    pub size: u64,
    pub checkpoint: Vec<u8>,
    /// True when the identical statement was already logged (nothing was appended).
    pub existing: bool,
}

/// The registry: storage, state and the log key.
#[derive(Debug)]
pub struct Service {
    db: Db,
    blobs: BlobStore,
    /// The online key that signs checkpoints; a mirror has none (it serves its upstream's).
    log_key: Option<SecretKey>,
    state: Mutex<RegistryState>,
    /// A mirror's verified view of its upstream's log.
    mirror: Option<Mutex<Verified<TrustedLog>>>,
    follower: Option<std::sync::Arc<crate::mirror::Mirror>>,
    origin: String,
    config: Config,
}

/// The tree as stored, plus nodes about to be written.
struct Overlay<'a> {
    db: &'a Db,
    pending: &'a [(u32, u64, Hash)],
}

impl NodeSource for Overlay<'_> {
    type Error = anyhow::Error;
    fn node(&self, level: u32, index: u64) -> anyhow::Result<Hash> {
        match self.pending.iter().find(|(l, i, _)| *l == level && *i == index) {
            Some((_, _, hash)) => Ok(*hash),
            None => self.db.node(level, index),
        }
    }
}

impl Service {
    /// Opens the data directory. On an empty log, the root file in `config.root` becomes leaf 0.
    pub fn open(config: Config) -> anyhow::Result<Self> {
        let data = config.data.clone();
        let is_mirror = config.mirror || config.upstream.is_some();
        let log_key = if is_mirror {
            None
        } else {
            Some(read_secret_key(&data.join(LOG_KEY_FILE)).with_context(|| {
                format!("cannot load the log key; run `airlockd init --data {}` first", data.display())
            })?)
        };
        let db = Db::open(&data.join(DB_DIR))?;
        let blobs = BlobStore::open(&data)
            .with_context(|| format!("cannot open blob store in {}", data.display()))?;
        let size = db.log_size()?;
        let pinned_bytes = if size == 0 {
            let path =
                config.root.as_deref().context("the log is empty: pass --root ROOT_FILE to start it")?;
            read_root_file(path)?
        } else {
            db.leaf(0)?.context("log leaf 0 missing from storage")?
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
        let origin = pinned.origin().to_owned();
        let leaves = (0..size)
            .map(|index| db.leaf(index)?.with_context(|| format!("log leaf {index} missing from storage")))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let (state, mirror) = if is_mirror {
            let checkpoint = db.checkpoint()?;
            let trusted = TrustedLog::restore(pinned, &leaves, checkpoint.as_deref(), 0)
                .context("the mirrored log does not verify")?;
            (trusted.registry().clone(), Some(Mutex::new(trusted)))
        } else {
            let mut state = RegistryState::new(pinned);
            for (index, leaf) in leaves.iter().enumerate() {
                state.apply(leaf).with_context(|| format!("stored log leaf {index} does not verify"))?;
            }
            (state, None)
        };
        drop(leaves);
        let follower = match &config.upstream {
            Some(url) => Some(std::sync::Arc::new(crate::mirror::Mirror::new(url, config.upstream_limits)?)),
            None => None,
        };
        let service = Self { db, blobs, log_key, state: Mutex::new(state), mirror, follower, origin, config };
        if !is_mirror {
            service.check_log_key()?;
            if size == 0 {
                let mut state = service.lock_state();
                let prepared = state.prepare(&pinned_bytes)?;
                service.append_prepared(&mut state, prepared, pinned_bytes)?;
            }
        }
        Ok(service)
    }

    /// The upstream follower of a mirror.
    pub fn follower(&self) -> Option<std::sync::Arc<crate::mirror::Mirror>> {
        self.follower.clone()
    }

    /// Whether this server mirrors an upstream (and refuses writes of its own).
    pub fn is_mirror(&self) -> bool {
        self.mirror.is_some()
    }

    fn primary_key(&self) -> Result<&SecretKey, ApiError> {
        self.log_key.as_ref().ok_or_else(|| {
            ApiError::Forbidden(format!(
                "this server mirrors {}; publish upstream",
                self.config.upstream.as_deref().unwrap_or("its upstream")
            ))
        })
    }

    fn check_log_key(&self) -> anyhow::Result<()> {
        let state = self.lock_state();
        let public = self.primary_key().map_err(|e| anyhow::anyhow!("{e}"))?.public();
        anyhow::ensure!(
            state.root().authorises(&public, RoleName::Log),
            "this server's log key {} is not in the root's log role",
            public.id()
        );
        Ok(())
    }

    fn lock_state(&self) -> std::sync::MutexGuard<'_, RegistryState> {
        // A panic while holding the lock leaves the state as it was before `commit` (commit
        // cannot fail), so the poisoned value is still consistent.
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The configuration the service runs with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The database.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// The blob store.
    pub fn blobs(&self) -> &BlobStore {
        &self.blobs
    }

    /// Runs `f` with the registry state (releases, statuses, channels, the root in force).
    pub fn with_state<R>(&self, f: impl FnOnce(&RegistryState) -> R) -> R {
        f(&self.lock_state())
    }

    /// The current root's envelope bytes.
    pub fn current_root(&self) -> Vec<u8> {
        self.lock_state().root().envelope_bytes().to_vec()
    }

    /// Verifies a statement against the state and appends it. Blocking (fsync).
    pub fn submit(&self, leaf: Vec<u8>) -> Result<Appended, ApiError> {
        let log_key = self.primary_key()?;
        let mut state = self.lock_state();
        let root = state.root();
        if root.is_expired(now()) {
            return Err(ApiError::Unprocessable(format!(
                "the root in force (version {}) expired at {}; sign a new root first",
                root.root().version,
                root.root().expires
            )));
        }
        let prepared = match state.prepare(&leaf) {
            Ok(prepared) => prepared,
            Err(e) => match e.existing_leaf() {
                Some(existing)
                    if matches!(e, ApplyError::Duplicate { .. })
                        || self.db.leaf(existing)?.as_deref() == Some(&leaf) =>
                {
                    let checkpoint = self.db.checkpoint()?.context("log has no checkpoint")?;
                    return Ok(Appended { index: existing, size: state.size(), checkpoint, existing: true });
                }
                Some(_) => return Err(ApiError::Conflict(e.to_string())),
                None => return Err(ApiError::Unprocessable(e.to_string())),
            },
        };
        match prepared.statement() {
            Statement::Release(release) => {
                for file in &release.files {
                    self.check_blob(&file.blake3, file.size, &file.sha256, file.filename.as_str())?;
                }
            }
            Statement::Root(_) => {
                let next = TrustedRoot::parse(&leaf).map_err(|e| ApiError::Unprocessable(e.to_string()))?;
                if !next.authorises(&log_key.public(), RoleName::Log) {
                    return Err(ApiError::Unprocessable(
                        "the new root does not authorise this server's log key".to_owned(),
                    ));
                }
            }
            Statement::Status(_) | Statement::Channel(_) => {}
        }
        Ok(self.append_prepared(&mut state, prepared, leaf)?)
    }

    fn check_blob(
        &self,
        digest: &Digest,
        size: u64,
        sha256: &airlock_proto::Sha256,
        name: &str,
    ) -> Result<(), ApiError> {
        let record = self.db.blob(digest)?.ok_or_else(|| {
            ApiError::Unprocessable(format!("file {name}: blob {digest} has not been uploaded"))
        })?;
        if record.size != size {
            return Err(ApiError::Unprocessable(format!(
                "file {name}: blob {digest} is {} bytes, the statement says {size}",
                record.size
            )));
        }
        if record.sha256 != *sha256 {
            return Err(ApiError::Unprocessable(format!(
                "file {name}: blob {digest} has sha256 {}, the statement says {sha256}",
                record.sha256
            )));
        }
        Ok(())
    }

    fn append_prepared(
        &self,
        state: &mut RegistryState,
        prepared: airlock_keys::Prepared,
        leaf: Vec<u8>,
    ) -> anyhow::Result<Appended> {
        let index = prepared.index();
        let nodes = merkle::nodes_completed_by_append(&self.db, index, merkle::leaf_hash(&leaf))?;
        let root_hash = merkle::root_from_source(&Overlay { db: &self.db, pending: &nodes }, index + 1)?;
        let checkpoint = self.sign_checkpoint(index + 1, root_hash, now())?;
        let (release, digests) = match prepared.statement() {
            Statement::Release(r) => (
                Some((r.kind, r.name.clone(), r.version.clone())),
                r.files.iter().map(|f| f.blake3).collect(),
            ),
            _ => (None, Vec::new()),
        };
        self.db.append(&[LeafBatch { index, leaf, nodes, release, digests }], &checkpoint)?;
        state.commit(prepared);
        Ok(Appended { index, size: index + 1, checkpoint, existing: false })
    }

    fn sign_checkpoint(&self, size: u64, root_hash: Hash, issued_at: Timestamp) -> anyhow::Result<Vec<u8>> {
        let checkpoint = Checkpoint {
            payload_type: PayloadType::Checkpoint,
            origin: self.origin.clone(),
            size,
            root_hash: Hash32(root_hash),
            issued_at,
            expires_at: issued_at + self.config.checkpoint_validity.as_secs(),
        };
        let mut envelope = Envelope::unsigned(PayloadType::Checkpoint.as_str(), checkpoint.encode()?);
        sign_envelope(&mut envelope, self.primary_key().map_err(|e| anyhow::anyhow!("{e}"))?);
        Ok(envelope.to_bytes()?)
    }

    /// The newest checkpoint, re-signed first if half of its validity has passed.
    pub fn checkpoint(&self) -> anyhow::Result<Vec<u8>> {
        let _state = self.lock_state();
        let bytes = self.db.checkpoint()?.context("log has no checkpoint")?;
        if self.is_mirror() {
            // A mirror serves its upstream's signed checkpoint byte for byte.
            return Ok(bytes);
        }
        let envelope = Envelope::from_bytes(&bytes)?;
        let current = Checkpoint::decode(&envelope.payload_type, &envelope.payload)?;
        let now = now();
        let half_life = self.config.checkpoint_validity.as_secs() / 2;
        if now < current.issued_at.saturating_add(half_life) {
            return Ok(bytes);
        }
        let fresh = self.sign_checkpoint(current.size, current.root_hash.0, now)?;
        self.db.put_checkpoint(&fresh)?;
        Ok(fresh)
    }

    /// What a mirror answers for its checkpoint: the upstream's bytes while they are fresh; past
    /// expiry, a stale error — or, under the operator's unsafe extension, the bytes and the time
    /// the extension ends (declared to clients).
    pub fn mirror_checkpoint(&self) -> Result<(Vec<u8>, Option<Timestamp>), ApiError> {
        let bytes = self.db.checkpoint()?.ok_or_else(|| {
            ApiError::Unavailable("this mirror has not synced from its upstream yet".to_owned())
        })?;
        let envelope = Envelope::from_bytes(&bytes).map_err(anyhow::Error::from)?;
        let current =
            Checkpoint::decode(&envelope.payload_type, &envelope.payload).map_err(anyhow::Error::from)?;
        let now = now();
        if now < current.expires_at {
            return Ok((bytes, None));
        }
        let last_error = self
            .follower
            .as_ref()
            .and_then(|f| f.status(self).last_error)
            .map_or_else(String::new, |e| format!(" (last sync error: {e})"));
        match self.config.unsafe_serve_expired_checkpoint_for {
            Some(extension) if now < current.expires_at + extension.as_secs() => {
                let until = current.expires_at + extension.as_secs();
                tracing::warn!(expired_at = current.expires_at, until, "UNSAFE: serving an expired upstream checkpoint under the operator's extension");
                Ok((bytes, Some(until)))
            }
            _ => Err(ApiError::Unavailable(format!(
                "stale: this mirror's newest upstream checkpoint expired at {}; it cannot vouch for freshness{last_error}",
                current.expires_at
            ))),
        }
    }

    /// A mirror's verified view of its upstream (`None` on a primary).
    pub fn mirrored_log(&self) -> Option<Verified<TrustedLog>> {
        self.mirror.as_ref().map(|m| m.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone())
    }

    /// Makes verified upstream leaves visible on a mirror: every leaf, its tree nodes and indexes
    /// and the upstream's checkpoint in one synced batch, then the new state in memory. The
    /// caller has made every referenced blob durable first. Blocking.
    pub fn commit_mirrored(
        &self,
        leaves: &[Vec<u8>],
        checkpoint: &[u8],
        next: Verified<TrustedLog>,
    ) -> anyhow::Result<()> {
        let mirror = self.mirror.as_ref().context("not a mirror")?;
        let mut trusted = mirror.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let start = self.db.log_size()?;
        anyhow::ensure!(
            start + leaves.len() as u64 == next.size(),
            "mirrored leaves do not follow the stored log"
        );
        let mut pending: Vec<(u32, u64, Hash)> = Vec::new();
        let mut changes = Vec::with_capacity(leaves.len());
        for (offset, leaf) in leaves.iter().enumerate() {
            let index = start + offset as u64;
            let overlay = Overlay { db: &self.db, pending: &pending };
            let nodes = merkle::nodes_completed_by_append(&overlay, index, merkle::leaf_hash(leaf))?;
            pending.extend(nodes.iter().copied());
            let envelope = Envelope::from_bytes(leaf)?;
            let (release, digests) = match Statement::decode(&envelope.payload_type, &envelope.payload)? {
                Statement::Release(r) => (
                    Some((r.kind, r.name.clone(), r.version.clone())),
                    r.files.iter().map(|f| f.blake3).collect(),
                ),
                _ => (None, Vec::new()),
            };
            changes.push(LeafBatch { index, leaf: leaf.clone(), nodes, release, digests });
        }
        self.db.append(&changes, checkpoint)?;
        *self.lock_state() = next.registry().clone();
        *trusted = next;
        Ok(())
    }

    /// Replaces a mirror's stored checkpoint with a newer one for the same tree.
    pub fn refresh_mirrored_checkpoint(
        &self,
        checkpoint: &[u8],
        next: Verified<TrustedLog>,
    ) -> anyhow::Result<()> {
        let mirror = self.mirror.as_ref().context("not a mirror")?;
        let mut trusted = mirror.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        self.db.put_checkpoint(checkpoint)?;
        *trusted = next;
        Ok(())
    }

    /// Inclusion proof of leaf `index` in the tree of `size` leaves.
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, ApiError> {
        let log_size = self.db.log_size()?;
        if size > log_size || index >= size {
            return Err(ApiError::BadRequest(format!("need index < size <= {log_size}")));
        }
        Ok(merkle::inclusion_proof(&self.db, index, size)?)
    }

    /// Consistency proof between two tree sizes.
    pub fn consistency_proof(&self, old: u64, new: u64) -> Result<Vec<Hash>, ApiError> {
        let log_size = self.db.log_size()?;
        if old == 0 || old > new || new > log_size {
            return Err(ApiError::BadRequest(format!("need 0 < old <= new <= {log_size}")));
        }
        Ok(merkle::consistency_proof(&self.db, old, new)?)
    }

    /// Records a blob that is durable on disk.
    pub fn record_blob(&self, stored: &StoredBlob) -> anyhow::Result<()> {
        self.db.put_blob(
            &stored.digest,
            &BlobRecord { size: stored.size, sha256: stored.sha256, stored_at: now() },
        )
    }
}

/// Reads a root file (at most 1 MiB).
pub fn read_root_file(path: &Path) -> anyhow::Result<Vec<u8>> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read root file {}", path.display()))?;
    anyhow::ensure!(bytes.len() <= 1 << 20, "root file {} is over 1 MiB", path.display());
    Ok(bytes)
}
