//! The registry service: the log, the blob store and the registry state behind one API that
//! the HTTP layer calls. Appends are serialised by one lock; each is one durable batch.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
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
use crate::mirror::Mirror;
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

/// The registry: storage, the log and what this server does with it.
#[derive(Debug)]
pub struct Service {
    db: Db,
    blobs: BlobStore,
    mode: Mode,
    origin: String,
    config: Config,
}

/// A primary signs its own log; a mirror serves another registry's log and never signs.
#[derive(Debug)]
enum Mode {
    Primary {
        /// The online key that signs checkpoints.
        log_key: SecretKey,
        state: Mutex<RegistryState>,
    },
    Mirror {
        /// The verified view of the upstream's log (its registry state is the one served).
        trusted: Mutex<Verified<TrustedLog>>,
        /// Follows the upstream over the network; `None` for a bundle-fed mirror.
        follower: Option<Arc<Mirror>>,
    },
}

/// Locks a mutex whose holder may have panicked. Every change to the guarded values is a single
/// assignment or an infallible `commit` made after the durable write, so a poisoned value is
/// still consistent.
fn locked<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The tree as stored, plus nodes about to be written.
struct Overlay<'a> {
    db: &'a Db,
    pending: &'a HashMap<(u32, u64), Hash>,
}

impl NodeSource for Overlay<'_> {
    type Error = anyhow::Error;
    fn node(&self, level: u32, index: u64) -> anyhow::Result<Hash> {
        match self.pending.get(&(level, index)) {
            Some(hash) => Ok(*hash),
            None => self.db.node(level, index),
        }
    }
}

/// Everything a leaf changes in storage: the leaf, its tree nodes, and the digest index of the
/// files of a release (which decides blob visibility).
fn leaf_batch(index: u64, leaf: Vec<u8>, nodes: Vec<(u32, u64, Hash)>, statement: &Statement) -> LeafBatch {
    let digests = match statement {
        Statement::Release(r) => r.files.iter().map(|f| f.blake3).collect(),
        _ => Vec::new(),
    };
    LeafBatch { index, leaf, nodes, digests }
}

impl Service {
    /// Opens the data directory. On an empty log, the root file in `config.root` becomes leaf 0.
    pub fn open(config: Config) -> anyhow::Result<Self> {
        let data = config.data.clone();
        let is_mirror = config.mirror || config.upstream.is_some();
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
        let mode = if is_mirror {
            let checkpoint = db.checkpoint()?;
            let trusted = TrustedLog::restore(pinned, &leaves, checkpoint.as_deref(), 0)
                .context("the mirrored log does not verify")?;
            let follower = match &config.upstream {
                Some(url) => Some(Arc::new(Mirror::new(url, config.upstream_limits)?)),
                None => None,
            };
            Mode::Mirror { trusted: Mutex::new(trusted), follower }
        } else {
            let log_key = read_secret_key(&data.join(LOG_KEY_FILE)).with_context(|| {
                format!("cannot load the log key; run `airlockd init --data {}` first", data.display())
            })?;
            let mut state = RegistryState::new(pinned);
            for (index, leaf) in leaves.iter().enumerate() {
                state.apply(leaf).with_context(|| format!("stored log leaf {index} does not verify"))?;
            }
            Mode::Primary { log_key, state: Mutex::new(state) }
        };
        drop(leaves);
        let service = Self { db, blobs, mode, origin, config };
        if let Mode::Primary { log_key, state } = &service.mode {
            let public = log_key.public();
            let mut state = locked(state);
            anyhow::ensure!(
                state.root().authorises(&public, RoleName::Log),
                "this server's log key {} is not in the root's log role",
                public.id()
            );
            if size == 0 {
                let prepared = state.prepare(&pinned_bytes)?;
                service.append_prepared(log_key, &mut state, prepared, pinned_bytes)?;
            }
        }
        Ok(service)
    }

    /// The upstream follower of a mirror.
    pub fn follower(&self) -> Option<Arc<Mirror>> {
        match &self.mode {
            Mode::Mirror { follower, .. } => follower.clone(),
            Mode::Primary { .. } => None,
        }
    }

    /// Whether this server mirrors another registry (and refuses writes of its own).
    pub fn is_mirror(&self) -> bool {
        matches!(self.mode, Mode::Mirror { .. })
    }

    /// The log key and state of a primary; a mirror refuses writes.
    fn primary(&self) -> Result<(&SecretKey, &Mutex<RegistryState>), ApiError> {
        match &self.mode {
            Mode::Primary { log_key, state } => Ok((log_key, state)),
            Mode::Mirror { .. } => Err(ApiError::Forbidden(format!(
                "this server mirrors {}; publish upstream",
                self.config.upstream.as_deref().unwrap_or("another registry")
            ))),
        }
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
        match &self.mode {
            Mode::Primary { state, .. } => f(&locked(state)),
            Mode::Mirror { trusted, .. } => f(locked(trusted).registry()),
        }
    }

    /// The current root's envelope bytes.
    pub fn current_root(&self) -> Vec<u8> {
        self.with_state(|state| state.root().envelope_bytes().to_vec())
    }

    /// Verifies a statement against the state and appends it. Blocking (fsync).
    pub fn submit(&self, leaf: Vec<u8>) -> Result<Appended, ApiError> {
        let (log_key, state) = self.primary()?;
        let mut state = locked(state);
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
        Ok(self.append_prepared(log_key, &mut state, prepared, leaf)?)
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
        log_key: &SecretKey,
        state: &mut RegistryState,
        prepared: airlock_keys::Prepared,
        leaf: Vec<u8>,
    ) -> anyhow::Result<Appended> {
        let index = prepared.index();
        let nodes = merkle::nodes_completed_by_append(&self.db, index, merkle::leaf_hash(&leaf))?;
        let pending = nodes.iter().map(|&(level, i, hash)| ((level, i), hash)).collect();
        let root_hash = merkle::root_from_source(&Overlay { db: &self.db, pending: &pending }, index + 1)?;
        let checkpoint = self.sign_checkpoint(log_key, index + 1, root_hash, now())?;
        self.db.append(&[leaf_batch(index, leaf, nodes, prepared.statement())], &checkpoint)?;
        state.commit(prepared);
        Ok(Appended { index, size: index + 1, checkpoint, existing: false })
    }

    fn sign_checkpoint(
        &self,
        log_key: &SecretKey,
        size: u64,
        root_hash: Hash,
        issued_at: Timestamp,
    ) -> anyhow::Result<Vec<u8>> {
        let checkpoint = Checkpoint {
            payload_type: PayloadType::Checkpoint,
            origin: self.origin.clone(),
            size,
            root_hash: Hash32(root_hash),
            issued_at,
            expires_at: issued_at + self.config.checkpoint_validity.as_secs(),
        };
        let mut envelope = Envelope::unsigned(PayloadType::Checkpoint.as_str(), checkpoint.encode()?);
        sign_envelope(&mut envelope, log_key);
        Ok(envelope.to_bytes()?)
    }

    /// The checkpoint to serve, and the end of an unsafe extension if one is in force.
    ///
    /// A primary re-signs its checkpoint first if half of its validity has passed. A mirror
    /// serves its upstream's checkpoint byte for byte while it is fresh; past expiry it answers a
    /// stale error, unless the operator's unsafe extension is in force, whose end is then
    /// declared to clients.
    pub fn checkpoint(&self) -> Result<(Vec<u8>, Option<Timestamp>), ApiError> {
        let now = now();
        match &self.mode {
            Mode::Primary { log_key, state } => {
                let _one_writer = locked(state);
                let bytes = self.db.checkpoint()?.context("log has no checkpoint")?;
                let current = decode_checkpoint(&bytes)?;
                let half_life = self.config.checkpoint_validity.as_secs() / 2;
                if now < current.issued_at.saturating_add(half_life) {
                    return Ok((bytes, None));
                }
                let fresh = self.sign_checkpoint(log_key, current.size, current.root_hash.0, now)?;
                self.db.put_checkpoint(&fresh)?;
                Ok((fresh, None))
            }
            Mode::Mirror { follower, .. } => {
                let bytes = self.db.checkpoint()?.ok_or_else(|| {
                    ApiError::Unavailable("this mirror has not synced from its upstream yet".to_owned())
                })?;
                let current = decode_checkpoint(&bytes)?;
                if now < current.expires_at {
                    return Ok((bytes, None));
                }
                match self.config.unsafe_serve_expired_checkpoint_for {
                    Some(extension) if now < current.expires_at + extension.as_secs() => {
                        let until = current.expires_at + extension.as_secs();
                        tracing::warn!(
                            expired_at = current.expires_at,
                            until,
                            "UNSAFE: serving an expired upstream checkpoint under the operator's extension"
                        );
                        Ok((bytes, Some(until)))
                    }
                    _ => {
                        let last_error = follower
                            .as_ref()
                            .and_then(|f| f.status(self).last_error)
                            .map_or_else(String::new, |e| format!(" (last sync error: {e})"));
                        Err(ApiError::Unavailable(format!(
                            "stale: this mirror's newest upstream checkpoint expired at {}; it cannot vouch for freshness{last_error}",
                            current.expires_at
                        )))
                    }
                }
            }
        }
    }

    fn trusted(&self) -> anyhow::Result<&Mutex<Verified<TrustedLog>>> {
        match &self.mode {
            Mode::Mirror { trusted, .. } => Ok(trusted),
            Mode::Primary { .. } => anyhow::bail!("not a mirror"),
        }
    }

    /// A mirror's verified view of its upstream (`None` on a primary).
    pub fn mirrored_log(&self) -> Option<Verified<TrustedLog>> {
        self.trusted().ok().map(|trusted| locked(trusted).clone())
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
        let mut trusted = locked(self.trusted()?);
        let start = self.db.log_size()?;
        anyhow::ensure!(
            start + leaves.len() as u64 == next.size(),
            "mirrored leaves do not follow the stored log"
        );
        let mut pending = HashMap::new();
        let mut changes = Vec::with_capacity(leaves.len());
        for (offset, leaf) in leaves.iter().enumerate() {
            let index = start + offset as u64;
            let overlay = Overlay { db: &self.db, pending: &pending };
            let nodes = merkle::nodes_completed_by_append(&overlay, index, merkle::leaf_hash(leaf))?;
            pending.extend(nodes.iter().map(|&(level, i, hash)| ((level, i), hash)));
            let envelope = Envelope::from_bytes(leaf)?;
            let statement = Statement::decode(&envelope.payload_type, &envelope.payload)?;
            changes.push(leaf_batch(index, leaf.clone(), nodes, &statement));
        }
        self.db.append(&changes, checkpoint)?;
        *trusted = next;
        Ok(())
    }

    /// Replaces a mirror's stored checkpoint with a newer one for the same tree.
    pub fn refresh_mirrored_checkpoint(
        &self,
        checkpoint: &[u8],
        next: Verified<TrustedLog>,
    ) -> anyhow::Result<()> {
        let mut trusted = locked(self.trusted()?);
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

fn decode_checkpoint(bytes: &[u8]) -> anyhow::Result<Checkpoint> {
    let envelope = Envelope::from_bytes(bytes)?;
    Ok(Checkpoint::decode(&envelope.payload_type, &envelope.payload)?)
}

/// Reads a root file (at most 1 MiB).
pub fn read_root_file(path: &Path) -> anyhow::Result<Vec<u8>> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read root file {}", path.display()))?;
    anyhow::ensure!(bytes.len() <= 1 << 20, "root file {} is over 1 MiB", path.display());
    Ok(bytes)
}
