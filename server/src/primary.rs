//! A primary: the registry that signs its own log. It verifies each submitted statement against
//! the registry state (the one fold, in `keys`), appends it with its tree nodes and a freshly
//! signed checkpoint in one durable batch, and re-signs the checkpoint as it ages. Appends are
//! serialised by the state lock.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use airlock_keys::{
    sign_note, ApplyError, Prepared, RegistryState, RoleName, SecretKey, TrustedRoot, UnverifiedRoot,
    Verified,
};
use airlock_proto::api::{LogSnapshot, SNAPSHOT_FORMAT};
use airlock_proto::merkle::{self, Frontier, Hash, NodeSource};
use airlock_proto::{Checkpoint, Clock, Digest, Envelope, Hash32, Note, Sha256, Statement, Timestamp};
use anyhow::Context;

use airlock_client::remote::WitnessAnswer;
use airlock_client::{Remote, TlsOptions};

use crate::log_keys::{KeyChoice, LogKeys};
use crate::registry::{leaf_batch, locked, Overlay};
use crate::scan_policy::{Reviewed, ScanPolicy};
use crate::snapshot;
use crate::store::Expected;
use crate::store::Store;

/// What an accepted statement became.
#[derive(Debug, Clone)]
pub struct Appended {
    pub index: u64,
    pub size: u64,
    pub checkpoint: Vec<u8>,
    /// True when the identical statement was already logged (nothing was appended).
    pub existing: bool,
}

/// Why a statement was not appended. Each names what failed.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// The statement does not verify or does not apply to the state.
    #[error("{0}")]
    Rejected(String),
    /// It contradicts what the log holds (a name@version already logged with other bytes).
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// The registry that signs its log.
#[derive(Debug)]
pub struct Primary {
    store: Arc<Store>,
    /// The log keys; locked after the state lock when both are held.
    keys: Mutex<LogKeys>,
    state: Mutex<RegistryState>,
    origin: String,
    validity: Duration,
    clock: Clock,
    witnesses: Vec<WitnessClient>,
    scan: ScanPolicy,
    /// Leaves replayed at open, after the saved fold.
    replayed: u64,
}

/// A witness the primary sends each new checkpoint to, and the size it last knew it to hold.
#[derive(Debug)]
struct WitnessClient {
    url: String,
    remote: Remote,
    holds: Mutex<u64>,
}

impl WitnessClient {
    /// Asks the witness to cosign `note` (a checkpoint of `size` leaves): from the size it holds,
    /// with the consistency proof to `size`. One retry when it holds another size than assumed.
    async fn cosign(
        &self,
        proof_from: &(dyn Fn(u64) -> anyhow::Result<Vec<Hash>> + Sync),
        note: &[u8],
        size: u64,
    ) -> anyhow::Result<Vec<u8>> {
        let mut old = *locked(&self.holds);
        for _ in 0..2 {
            anyhow::ensure!(old <= size, "witness {} holds size {old}, beyond this log's {size}", self.url);
            let proof = if old == 0 || old == size {
                Vec::new()
            } else {
                proof_from(old)?.into_iter().map(Hash32).collect()
            };
            let body = crate::witness::request_body(old, &proof, note);
            match self.remote.add_checkpoint(body).await? {
                WitnessAnswer::Cosigned(line) => {
                    *locked(&self.holds) = size;
                    return Ok(line);
                }
                WitnessAnswer::Holds(held) => old = held,
            }
        }
        anyhow::bail!("witness {} did not agree on the size it holds", self.url)
    }
}

/// Leaves replayed per page at start.
const REPLAY_PAGE: u64 = 4096;

impl Primary {
    /// Replays the stored log into the registry state, checks the log key is in the root's log
    /// role, and on an empty log appends the pinned root as leaf 0.
    pub fn open(
        store: Arc<Store>,
        data: &Path,
        mut keys: LogKeys,
        pinned: (Verified<TrustedRoot>, Vec<u8>),
        validity: Duration,
        clock: Clock,
        witness_urls: &[String],
    ) -> anyhow::Result<Self> {
        let (pinned, pinned_bytes) = pinned;
        let origin = pinned.origin().to_owned();
        let size = store.log_size()?;
        let resumed = snapshot::read(data, &store).and_then(|saved| {
            saved
                .map(|saved| RegistryState::resume(pinned.clone(), saved.fold))
                .transpose()
                .map_err(Into::into)
        });
        let (mut state, from, refused) = match resumed {
            Ok(Some(state)) => {
                let from = state.size();
                (state, from, false)
            }
            Ok(None) => (RegistryState::new(pinned), 0, false),
            Err(why) => {
                snapshot::refused(data, &why);
                (RegistryState::new(pinned), 0, true)
            }
        };
        tracing::info!(resumed = from, replayed = size - from, "opening the log");
        // The leaves after the snapshot, page by page, each folded while the signatures of its
        // next chunk are checked on the other cores.
        let mut next = from;
        while next < size {
            let end = size.min(next + REPLAY_PAGE);
            let page = store.leaves(next, end, usize::MAX)?;
            anyhow::ensure!(page.len() as u64 == end - next, "stored log leaves {next}..{end} are missing");
            let root = state.root().clone();
            let mut index = next;
            airlock_keys::preverify::pipelined(&root, &page, |chunk| {
                for leaf in chunk {
                    state.apply(leaf).with_context(|| format!("stored log leaf {index} does not verify"))?;
                    index += 1;
                }
                anyhow::Ok(())
            })?;
            next = end;
        }
        anyhow::ensure!(
            size == 0 || state.is_anchored(),
            "the stored log does not reach root version {} of the given root file",
            state.pinned().root().version
        );
        anyhow::ensure!(
            size > 0 || state.pinned().root().version == 1,
            "a new log starts with root version 1; the root file is version {}",
            state.pinned().root().version
        );
        let root = state.root();
        match keys.for_root(|key| root.authorises(key, RoleName::Log))? {
            Some(KeyChoice::Current) => {}
            // The root that lists the next key was logged, and the server stopped before it
            // moved the key into place: finish the rotation.
            Some(KeyChoice::Next(next)) => keys.promote(*next)?,
            None => anyhow::bail!(
                "this server's log key {} is not in the log role of root version {}, and no next key (airlockd key rotate) is",
                keys.current().public().id(),
                root.root().version
            ),
        }
        let allowed = state.root().root().max_checkpoint_validity;
        anyhow::ensure!(
            validity.as_secs() <= allowed,
            "this server signs checkpoints valid for {} (--checkpoint-validity), over the {} root version {} allows",
            airlock_proto::clock::format_duration(validity.as_secs()),
            airlock_proto::clock::format_duration(allowed),
            state.root().root().version
        );
        let needed = state.root().root().roles.log.threshold;
        anyhow::ensure!(
            needed == 1,
            "the root's log role needs {needed} signatures on each checkpoint; this server signs with one log key"
        );
        let witnesses = witness_urls
            .iter()
            .map(|url| {
                Ok(WitnessClient {
                    url: url.clone(),
                    remote: Remote::new(url, None, &TlsOptions::default())?,
                    holds: Mutex::new(0),
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let keys = Mutex::new(keys);
        let scan = ScanPolicy::default();
        let primary = Self {
            store,
            keys,
            state: Mutex::new(state),
            origin,
            validity,
            clock,
            witnesses,
            scan,
            replayed: size - from,
        };
        if size == 0 {
            let mut state = locked(&primary.state);
            let prepared = state.prepare(&pinned_bytes)?;
            primary.append(&mut state, prepared, pinned_bytes, KeyChoice::Current)?;
        }
        if size > 0 && (refused || size - from >= snapshot::SNAPSHOT_AFTER_REPLAY) {
            snapshot::write(data, &primary.snapshot()?)?;
        }
        Ok(primary)
    }

    /// Leaves replayed at open: those after the saved fold, or every one without it.
    pub fn replayed_at_open(&self) -> u64 {
        self.replayed
    }

    /// The fold and the stored tree's frontier at its size, as a snapshot.
    pub fn snapshot(&self) -> anyhow::Result<LogSnapshot> {
        // The fold is copied under the lock; the frontier is read from the stored tree (append
        // only) after it is released.
        let fold = locked(&self.state).snapshot();
        Ok(LogSnapshot {
            format: SNAPSHOT_FORMAT,
            frontier: Frontier::from_source(self.store.as_ref(), fold.size)?,
            fold,
            checkpoint: None,
            newest_issued_at: 0,
        })
    }

    /// Sets the scan policy applied to node releases.
    pub fn with_scan_policy(mut self, scan: ScanPolicy) -> Self {
        self.scan = scan;
        self
    }

    /// The scan policy applied to node releases.
    pub fn scan_policy(&self) -> &ScanPolicy {
        &self.scan
    }

    /// The scan policy's review of a leaf (outside the state lock: scanning a pack takes time).
    fn review(&self, leaf: &[u8]) -> Result<Option<Reviewed>, String> {
        let Ok(envelope) = Envelope::from_bytes(leaf) else { return Ok(None) };
        match Statement::decode(&envelope.payload_type, &envelope.payload) {
            Ok(Statement::Release(release)) => self.scan.review(&self.store, &release),
            _ => Ok(None),
        }
    }

    /// Stores the report the scan policy made, under the digest the release records.
    fn store_report(&self, report: &Reviewed) -> Result<(), SubmitError> {
        if self.store.blob(&report.digest)?.is_some() {
            return Ok(());
        }
        let expected = Expected::address(report.digest, report.bytes.len() as u64);
        self.store
            .ingest(expected)
            .and_then(|ingest| ingest.from_reader(report.bytes.as_slice()))
            .map_err(|e| SubmitError::Internal(anyhow::anyhow!("storing the scan report: {e}")))?;
        Ok(())
    }

    /// Runs `f` with the registry state.
    pub fn with_state<R>(&self, f: impl FnOnce(&RegistryState) -> R) -> R {
        f(&locked(&self.state))
    }

    /// Verifies a statement against the state and appends it. Blocking (fsync).
    pub fn submit(&self, leaf: Vec<u8>) -> Result<Appended, SubmitError> {
        let reviewed = self.review(&leaf);
        let mut state = locked(&self.state);
        let now = self.clock.now();
        let prepared = match state.prepare(&leaf) {
            Ok(prepared) => prepared,
            Err(e) => match e.existing_leaf() {
                Some(existing)
                    if matches!(e, ApplyError::Duplicate { .. })
                        || self.store.leaf(existing)?.as_deref() == Some(&leaf) =>
                {
                    let checkpoint = self.store.checkpoint()?.context("log has no checkpoint")?;
                    return Ok(Appended { index: existing, size: state.size(), checkpoint, existing: true });
                }
                Some(_) => return Err(SubmitError::Conflict(e.to_string())),
                None => return Err(SubmitError::Rejected(e.to_string())),
            },
        };
        // While the root in force is expired, only the next root is taken: it is what ends the
        // lapse (it carries the old root role's signatures, which do not expire).
        let mut signer = KeyChoice::Current;
        let root = state.root();
        if root.is_expired(now) && !matches!(prepared.statement(), Statement::Root(_)) {
            return Err(SubmitError::Rejected(format!(
                "the root in force (version {}) expired at {}; submit the next root first",
                root.root().version,
                root.root().expires
            )));
        }
        match prepared.statement() {
            Statement::Release(release) => {
                for file in &release.files {
                    self.check_blob(&file.blake3, file.size, &file.sha256, file.filename.as_str())?;
                }
                if let Some(report) = reviewed.map_err(SubmitError::Rejected)? {
                    self.store_report(&report)?;
                }
            }
            Statement::Root(_) => {
                let next = UnverifiedRoot::parse(&leaf).map_err(|e| SubmitError::Rejected(e.to_string()))?;
                let Some(choice) = locked(&self.keys).for_root(|key| next.authorises(key, RoleName::Log))?
                else {
                    return Err(SubmitError::Rejected(format!(
                        "the new root's log role lists neither this server's log key {} nor a next key written by `airlockd key rotate`",
                        locked(&self.keys).current().public().id()
                    )));
                };
                signer = choice;
                let (version, expires) = (next.root().version, next.root().expires);
                if expires <= now {
                    return Err(SubmitError::Rejected(format!(
                        "the new root (version {version}) expired at {expires}, before it could be logged at {now}"
                    )));
                }
                let allowed = next.root().max_checkpoint_validity;
                if self.validity.as_secs() > allowed {
                    return Err(SubmitError::Rejected(format!(
                        "the new root allows checkpoints valid for at most {}; this server signs them for {} (--checkpoint-validity)",
                        airlock_proto::clock::format_duration(allowed),
                        airlock_proto::clock::format_duration(self.validity.as_secs())
                    )));
                }
                let needed = next.root().roles.log.threshold;
                if needed > 1 {
                    return Err(SubmitError::Rejected(format!(
                        "the new root needs {needed} log signatures on each checkpoint; this server signs with one log key"
                    )));
                }
            }
            Statement::Status(_) | Statement::Channel(_) => {}
        }
        Ok(self.append(&mut state, prepared, leaf, signer)?)
    }

    fn check_blob(&self, digest: &Digest, size: u64, sha256: &Sha256, name: &str) -> Result<(), SubmitError> {
        let record = self.store.blob(digest)?.ok_or_else(|| {
            SubmitError::Rejected(format!("file {name}: blob {digest} has not been uploaded"))
        })?;
        if record.size != size {
            return Err(SubmitError::Rejected(format!(
                "file {name}: blob {digest} is {} bytes, the statement says {size}",
                record.size
            )));
        }
        if record.sha256 != *sha256 {
            return Err(SubmitError::Rejected(format!(
                "file {name}: blob {digest} has sha256 {}, the statement says {sha256}",
                record.sha256
            )));
        }
        Ok(())
    }

    /// Appends a prepared leaf with its checkpoint, signed by `signer`: the next log key when the
    /// leaf is the root that lists it, which then becomes the current key.
    fn append(
        &self,
        state: &mut RegistryState,
        prepared: Prepared,
        leaf: Vec<u8>,
        signer: KeyChoice,
    ) -> anyhow::Result<Appended> {
        let index = prepared.index();
        let nodes = merkle::nodes_completed_by_append(self.store.as_ref(), index, merkle::leaf_hash(&leaf))?;
        let pending: HashMap<(u32, u64), Hash> =
            nodes.iter().map(|&(level, i, hash)| ((level, i), hash)).collect();
        let overlay = Overlay { store: self.store.as_ref(), pending: &pending };
        let root_hash = merkle::root_from_source(&overlay, index + 1)?;
        let next_key = match &signer {
            KeyChoice::Next(key) => Some(key.as_ref()),
            KeyChoice::Current => None,
        };
        let checkpoint = self.sign_checkpoint(index + 1, root_hash, self.clock.now(), &overlay, next_key)?;
        self.store.append(&[leaf_batch(index, leaf, nodes, prepared.statement())], &checkpoint)?;
        state.commit(prepared);
        if let KeyChoice::Next(key) = signer {
            // The root is durable; a failure here is repaired on the next start (`open`).
            if let Err(e) = locked(&self.keys).promote(*key) {
                tracing::error!(
                    error = format!("{e:#}"),
                    "the log key rotation is logged but the key files were not moved; restart to finish it"
                );
            }
        }
        Ok(Appended { index, size: index + 1, checkpoint, existing: false })
    }

    /// Signs the checkpoint of the tree `source` holds at `size` and has the witnesses cosign it.
    /// `key` overrides the current log key (the next one, at the root leaf that lists it).
    fn sign_checkpoint<S: NodeSource<Error = anyhow::Error> + Sync>(
        &self,
        size: u64,
        root_hash: Hash,
        issued_at: Timestamp,
        source: &S,
        key: Option<&SecretKey>,
    ) -> anyhow::Result<Vec<u8>> {
        self.sign_checkpoint_for(size, root_hash, issued_at, self.validity.as_secs(), source, key)
    }

    fn sign_checkpoint_for<S: NodeSource<Error = anyhow::Error> + Sync>(
        &self,
        size: u64,
        root_hash: Hash,
        issued_at: Timestamp,
        validity: u64,
        source: &S,
        key: Option<&SecretKey>,
    ) -> anyhow::Result<Vec<u8>> {
        let checkpoint = Checkpoint {
            origin: self.origin.clone(),
            size,
            root_hash: Hash32(root_hash),
            issued_at,
            expires_at: issued_at.saturating_add(validity),
        };
        let mut note = Note::new(checkpoint.to_text())?;
        match key {
            Some(key) => sign_note(&mut note, &self.origin, key)?,
            None => sign_note(&mut note, &self.origin, locked(&self.keys).current())?,
        }
        Ok(self.cosigned(note.to_bytes(), size, source))
    }

    /// The note with the cosignature of every configured witness that gives one. A witness that
    /// is unreachable or refuses is logged; the note is stored without its cosignature, and
    /// clients whose root needs it refuse it until a later checkpoint is cosigned. Blocking: it
    /// runs on the blocking threads appends and re-signing run on.
    fn cosigned<S: NodeSource<Error = anyhow::Error> + Sync>(
        &self,
        note: Vec<u8>,
        size: u64,
        source: &S,
    ) -> Vec<u8> {
        if self.witnesses.is_empty() {
            return note;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!("no runtime to reach the witnesses; checkpoint stored without cosignatures");
            return note;
        };
        let mut out = note.clone();
        for witness in &self.witnesses {
            let proof_from = |old: u64| merkle::consistency_proof(source, old, size);
            match runtime.block_on(witness.cosign(&proof_from, &note, size)) {
                Ok(line) => out.extend_from_slice(&line),
                Err(e) => {
                    tracing::warn!(witness = %witness.url, error = format!("{e:#}"), "no cosignature for the checkpoint")
                }
            }
        }
        out
    }

    /// The checkpoint to serve, re-signed first if half of its validity has passed.
    pub fn checkpoint(&self) -> anyhow::Result<Vec<u8>> {
        let _one_writer = locked(&self.state);
        let bytes = self.store.checkpoint()?.context("log has no checkpoint")?;
        // A checkpoint this server stored after signing or verifying it.
        let current = Checkpoint::from_note_unverified(&bytes)?;
        let now = self.clock.now();
        let half_life = self.validity.as_secs() / 2;
        if now < current.issued_at.saturating_add(half_life) && now >= current.issued_at {
            return Ok(bytes);
        }
        let fresh =
            self.sign_checkpoint(current.size, current.root_hash.0, now, self.store.as_ref(), None)?;
        self.store.put_checkpoint(&fresh)?;
        Ok(fresh)
    }

    /// A checkpoint of the current log valid for `valid_for` seconds from now, for a bundle
    /// carried across the air gap: signed (and cosigned) like any other, but not stored, so that
    /// online clients keep getting short-lived ones. Refused beyond the root's
    /// `max_checkpoint_validity`. Blocking (it may call the witnesses).
    pub fn checkpoint_valid_for(&self, valid_for: u64) -> Result<Vec<u8>, SubmitError> {
        let state = locked(&self.state);
        let root = state.root().root();
        if valid_for == 0 || valid_for > root.max_checkpoint_validity {
            return Err(SubmitError::Rejected(format!(
                "a checkpoint valid for {} is outside what root version {} allows (1s to {})",
                airlock_proto::clock::format_duration(valid_for),
                root.version,
                airlock_proto::clock::format_duration(root.max_checkpoint_validity)
            )));
        }
        let bytes = self.store.checkpoint()?.context("log has no checkpoint")?;
        let current = Checkpoint::from_note_unverified(&bytes).map_err(anyhow::Error::from)?;
        let now = self.clock.now();
        Ok(self.sign_checkpoint_for(
            current.size,
            current.root_hash.0,
            now,
            valid_for,
            self.store.as_ref(),
            None,
        )?)
    }

    /// Leaves in the log.
    pub fn size(&self) -> u64 {
        locked(&self.state).size()
    }
}
