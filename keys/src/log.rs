//! The log verifier: trusted state + new checkpoint + new leaves -> new trusted state, or the
//! reason it refused. The server (following an upstream), the client (pull) and bundle import
//! all call `TrustedLog::update`.
//!
//! Rules (see docs/protocol.md): the checkpoint names the root's origin and is signed by a
//! threshold of the log role of the root in force after the new leaves; its size never shrinks
//! (rollback); the same size must carry the same root hash (fork); the new leaves appended to the
//! stored frontier must reproduce the checkpoint's root hash (consistency); the checkpoint must
//! not be expired; the clock must not be behind the newest checkpoint seen.

use std::fmt;

use airlock_proto::merkle::{leaf_hash, Frontier};
use airlock_proto::note::MAX_NOTE_BYTES;
use airlock_proto::{Checkpoint, Hash32, Note, NoteError, StatementError, Timestamp};

use crate::registry::{ApplyError, RegistryState};
use crate::threshold::ThresholdError;
use crate::trust::TrustedRoot;
use crate::verified::Verified;

/// Allowed clock skew, in seconds, when comparing the local clock with issued-at times.
pub const CLOCK_SKEW: u64 = 300;

/// The parts of a checkpoint an operator needs to see in evidence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointSummary {
    pub size: u64,
    pub root_hash: Hash32,
    pub issued_at: Timestamp,
    /// The signed note, as served, so the evidence can be re-verified elsewhere.
    pub note: String,
}

impl fmt::Display for CheckpointSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "size {} root {} issued {}", self.size, self.root_hash, self.issued_at)
    }
}

/// Why an update was refused. `is_security()` marks the ones that are evidence of a registry
/// that lied (rollback, fork, inconsistent leaves): they carry both checkpoints.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("checkpoint note: {0}")]
    CheckpointEncoding(NoteError),
    #[error("checkpoint text: {0}")]
    CheckpointPayload(StatementError),
    #[error("checkpoint names origin {found:?}, the pinned root names {expected:?}")]
    WrongOrigin { expected: String, found: String },
    #[error("checkpoint signature: {0}")]
    CheckpointSignature(ThresholdError),
    #[error("checkpoint is stale: it expired at {expires_at}, the time is now {now}")]
    Stale { expires_at: Timestamp, now: Timestamp },
    #[error("the local clock ({now}) is behind the newest checkpoint seen (issued {newest}); check the system clock")]
    ClockBehind { now: Timestamp, newest: Timestamp },
    #[error("checkpoint claims to be issued at {issued_at}, ahead of the local clock ({now})")]
    FromTheFuture { issued_at: Timestamp, now: Timestamp },
    #[error("the root in force (version {version}) expired at {expires}")]
    RootExpired { version: u64, expires: Timestamp },
    #[error("checkpoint claims {} of validity (issued {issued_at}, expires {expires_at}); root version {version} allows at most {}", airlock_proto::clock::format_duration(.expires_at.saturating_sub(*.issued_at)), airlock_proto::clock::format_duration(*.allowed))]
    ValidityTooLong { issued_at: Timestamp, expires_at: Timestamp, allowed: u64, version: u64 },
    #[error("expected {expected} new leaves for checkpoint size {size}, got {got}")]
    LeafCount { expected: u64, got: u64, size: u64 },
    #[error("{0}")]
    Leaf(ApplyError),
    #[error("the registry is behind: it serves the log at size {offered}, and size {trusted} was already verified here; its checkpoint matches the verified log at that size (a lagging mirror, not a rollback), so nothing changed")]
    Behind { offered: u64, trusted: u64 },
    #[error("SECURITY ERROR: rollback: the registry offered a checkpoint smaller than one already verified\n  trusted: {trusted}\n  offered: {offered}")]
    Rollback { trusted: CheckpointSummary, offered: CheckpointSummary },
    #[error("SECURITY ERROR: fork: two checkpoints of the same size with different root hashes\n  trusted: {trusted}\n  offered: {offered}")]
    Fork { trusted: CheckpointSummary, offered: CheckpointSummary },
    #[error("SECURITY ERROR: inconsistent log: the new leaves do not extend the verified prefix to the offered checkpoint (computed root {computed})\n  trusted: {trusted}\n  offered: {offered}")]
    Inconsistent { trusted: CheckpointSummary, offered: CheckpointSummary, computed: Hash32 },
    #[error("{0}")]
    Witnesses(crate::cosignature::WitnessError),
    #[error("the log of {size} leaves holds root versions up to {reached}, short of the pinned version {pinned}: it cannot be authenticated from the pinned root")]
    NotAnchored { pinned: u64, reached: u64, size: u64 },
    #[error("the registry's root chain does not verify from the root in force: {0}")]
    Roots(crate::trust::TrustError),
    #[error("this update was abandoned after a refused leaf; start again")]
    Abandoned,
    #[error("the evidence proves nothing: {0}")]
    NoEvidence(String),
    #[error("a checkpoint of size {offered} is not older than the verified size {trusted}")]
    NotOlder { offered: u64, trusted: u64 },
    #[error("the answer is for tree size {claimed}, its checkpoint for size {checkpoint}")]
    SizeMismatch { claimed: u64, checkpoint: u64 },
    #[error("inclusion proof of leaf {index} in the tree of {size} leaves: {detail}")]
    Inclusion { index: u64, size: u64, detail: String },
    #[error("SECURITY ERROR: the log contradicts itself: {source}\n  offered: {offered}")]
    Conflict { source: ApplyError, offered: CheckpointSummary },
}

impl LogError {
    /// True for errors that prove the registry misbehaved.
    pub fn is_security(&self) -> bool {
        matches!(
            self,
            Self::Rollback { .. } | Self::Fork { .. } | Self::Inconsistent { .. } | Self::Conflict { .. }
        )
    }
}

/// What a client or mirror trusts about a log: the fold of its leaves, the frontier of the
/// tree over them, and the newest checkpoint that verified.
#[derive(Debug, Clone)]
pub struct TrustedLog {
    pub(crate) registry: RegistryState,
    pub(crate) frontier: Frontier,
    pub(crate) checkpoint: Option<Vec<u8>>,
    pub(crate) newest_issued_at: Timestamp,
}

pub(crate) struct Decoded {
    pub(crate) checkpoint: Checkpoint,
    pub(crate) note: Note,
}

/// The freshness rules every checkpoint meets at `now`: it claims no more validity than the
/// root allows, is not issued in the future (beyond the allowed skew), not expired (unless an
/// unsafe extension is chosen), under a root that has not expired.
pub(crate) fn check_fresh(
    checkpoint: &Checkpoint,
    root: &TrustedRoot,
    now: Timestamp,
    expired: ExpiredCheckpoint,
) -> Result<(), LogError> {
    let allowed = root.root().max_checkpoint_validity;
    if checkpoint.expires_at.saturating_sub(checkpoint.issued_at) > allowed {
        return Err(LogError::ValidityTooLong {
            issued_at: checkpoint.issued_at,
            expires_at: checkpoint.expires_at,
            allowed,
            version: root.root().version,
        });
    }
    if checkpoint.issued_at > now.saturating_add(CLOCK_SKEW) {
        return Err(LogError::FromTheFuture { issued_at: checkpoint.issued_at, now });
    }
    // The end of an unsafe extension comes from an unauthenticated header: it is capped here
    // against the signed expiry, whatever the server declares.
    let cap = checkpoint.expires_at.saturating_add(MAX_UNSAFE_EXTENSION);
    let extended = matches!(expired, ExpiredCheckpoint::UnsafeAcceptUntil(until) if now < until.min(cap));
    if checkpoint.expires_at <= now && !extended {
        return Err(LogError::Stale { expires_at: checkpoint.expires_at, now });
    }
    if root.is_expired(now) {
        return Err(LogError::RootExpired { version: root.root().version, expires: root.root().expires });
    }
    Ok(())
}

/// Who must have signed a checkpoint under `root`: the log role's threshold, and the root's
/// witness policy. Every path that accepts a checkpoint asks this one function.
pub(crate) fn check_signed(root: &TrustedRoot, note: &Note) -> Result<(), LogError> {
    root.check_checkpoint(note).map_err(LogError::CheckpointSignature)?;
    root.check_witnesses(note).map_err(LogError::Witnesses)
}

/// The origin rule: a checkpoint names the origin of the root it is checked against.
pub(crate) fn check_origin(checkpoint: &Checkpoint, root: &TrustedRoot) -> Result<(), LogError> {
    if checkpoint.origin != root.origin() {
        return Err(LogError::WrongOrigin {
            expected: root.origin().to_owned(),
            found: checkpoint.origin.clone(),
        });
    }
    Ok(())
}

pub(crate) fn decode_checkpoint(bytes: &[u8]) -> Result<Decoded, LogError> {
    if bytes.len() > MAX_NOTE_BYTES {
        return Err(LogError::CheckpointEncoding(NoteError::TooLarge { len: bytes.len() }));
    }
    let note = Note::parse(bytes).map_err(LogError::CheckpointEncoding)?;
    let checkpoint = Checkpoint::from_text(note.text()).map_err(LogError::CheckpointPayload)?;
    Ok(Decoded { checkpoint, note })
}

fn summary(checkpoint: &Checkpoint, bytes: &[u8]) -> CheckpointSummary {
    CheckpointSummary {
        size: checkpoint.size,
        root_hash: checkpoint.root_hash,
        issued_at: checkpoint.issued_at,
        note: String::from_utf8_lossy(bytes).into_owned(),
    }
}

impl TrustedLog {
    /// The state before any leaf: only the pinned root is trusted.
    pub fn new(pinned: Verified<TrustedRoot>) -> Self {
        Self {
            registry: RegistryState::new(pinned),
            frontier: Frontier::new(),
            checkpoint: None,
            newest_issued_at: 0,
        }
    }

    /// Rebuilds a trusted state from stored leaves and the stored checkpoint, re-verifying all
    /// of it (used when loading client state from disk).
    pub fn restore(
        pinned: Verified<TrustedRoot>,
        leaves: &[Vec<u8>],
        checkpoint: Option<&[u8]>,
        newest_issued_at: Timestamp,
    ) -> Result<Verified<Self>, LogError> {
        Self::new(pinned).restore_onto(leaves, checkpoint, newest_issued_at)
    }

    /// `restore` on top of this trusted state: the stored leaves after it, and the stored
    /// checkpoint (used when a saved snapshot is older than the stored log).
    pub fn restore_onto(
        &self,
        leaves: &[Vec<u8>],
        checkpoint: Option<&[u8]>,
        newest_issued_at: Timestamp,
    ) -> Result<Verified<Self>, LogError> {
        match checkpoint {
            None if leaves.is_empty() => Ok(Verified::new(self.clone())),
            None => Err(LogError::LeafCount { expected: 0, got: leaves.len() as u64, size: self.size() }),
            Some(bytes) => {
                let mut restored = self.apply(bytes, leaves, Freshness::Ignore)?;
                restored.newest_issued_at = restored.newest_issued_at.max(newest_issued_at);
                Ok(Verified::new(restored))
            }
        }
    }

    /// Verifies `checkpoint_bytes` (a signed checkpoint envelope) and `new_leaves` (the leaves
    /// from `self.size()` up to the checkpoint's size) at time `now`. Returns the new trusted
    /// state; on error `self` is untouched and still the trusted state.
    pub fn update(
        &self,
        checkpoint_bytes: &[u8],
        new_leaves: &[Vec<u8>],
        now: Timestamp,
    ) -> Result<Verified<Self>, LogError> {
        self.update_with(checkpoint_bytes, new_leaves, now, ExpiredCheckpoint::Refuse)
    }

    /// `update`, with an explicit choice about expired checkpoints. `UnsafeAcceptUntil` is the
    /// break-glass an operator or user chooses knowingly; every other check still applies.
    pub fn update_with(
        &self,
        checkpoint_bytes: &[u8],
        new_leaves: &[Vec<u8>],
        now: Timestamp,
        expired: ExpiredCheckpoint,
    ) -> Result<Verified<Self>, LogError> {
        if now.saturating_add(CLOCK_SKEW) < self.newest_issued_at {
            return Err(LogError::ClockBehind { now, newest: self.newest_issued_at });
        }
        let next = self.apply(checkpoint_bytes, new_leaves, Freshness::Enforce(now, expired))?;
        Ok(Verified::new(next))
    }

    fn apply(
        &self,
        checkpoint_bytes: &[u8],
        new_leaves: &[Vec<u8>],
        freshness: Freshness,
    ) -> Result<Self, LogError> {
        let mut pending = self.begin(checkpoint_bytes)?;
        pending.push(new_leaves)?;
        pending.finish(freshness)
    }

    /// Checks a checkpoint before any leaf is fetched: its origin, and the log role's signature
    /// and the witness policy of the newest root reachable from the root in force through
    /// `newer_roots` (root envelopes as the registry serves them at `GET /v1/roots`, each checked
    /// as the next root of the one before; older ones are skipped). Returns the checkpoint's size,
    /// now a claim the log key signed, so a caller fetches leaves only for a signed size. The
    /// full verification (`update`) still checks everything.
    pub fn precheck(&self, checkpoint_bytes: &[u8], newer_roots: &[Vec<u8>]) -> Result<u64, LogError> {
        let Decoded { checkpoint, note } = decode_checkpoint(checkpoint_bytes)?;
        check_origin(&checkpoint, self.registry.root())?;
        let path = self.registry.root().walk_path(newer_roots).map_err(LogError::Roots)?;
        let check = |root: &TrustedRoot| check_signed(root, &note);
        // The checkpoint may be older than a root the chain already lists (a rotation logged
        // between the two requests): any root on the path that verifies it will do. The error
        // reported is the newest root's (the path always holds the root in force).
        let mut newest_first = path.iter().rev();
        let newest = newest_first.next().unwrap_or(self.registry.root());
        match check(newest) {
            Err(e) if !newest_first.any(|root| check(root).is_ok()) => Err(e),
            _ => Ok(checkpoint.size),
        }
    }

    /// Starts an update to `checkpoint_bytes` whose new leaves are then given page by page
    /// (`PendingUpdate::push`), each folded as it arrives, and checked as a whole by `finish`.
    /// A checkpoint no larger than the trusted one is judged here (signature first).
    pub fn begin_update(&self, checkpoint_bytes: &[u8]) -> Result<PendingUpdate, LogError> {
        self.begin(checkpoint_bytes)
    }

    fn begin(&self, checkpoint_bytes: &[u8]) -> Result<PendingUpdate, LogError> {
        let Decoded { checkpoint, note } = decode_checkpoint(checkpoint_bytes)?;
        check_origin(&checkpoint, self.registry.root())?;
        let size = self.frontier.size();
        // A security error is evidence against the log, so it is raised only for checkpoints the
        // log role really signed: the signature is checked before any of them.
        if checkpoint.size <= size {
            self.registry.root().check_checkpoint(&note).map_err(LogError::CheckpointSignature)?;
            if checkpoint.size < size {
                return Err(LogError::Rollback {
                    trusted: self.trusted_summary(),
                    offered: summary(&checkpoint, checkpoint_bytes),
                });
            }
            if checkpoint.root_hash.0 != self.frontier.root() {
                return Err(LogError::Fork {
                    trusted: self.trusted_summary(),
                    offered: summary(&checkpoint, checkpoint_bytes),
                });
            }
        }
        Ok(PendingUpdate {
            base: self.clone(),
            next: self.clone(),
            checkpoint,
            note,
            checkpoint_bytes: checkpoint_bytes.to_vec(),
            conflict: None,
            failed: false,
            held: None,
        })
    }

    /// Judges a checkpoint smaller than the trusted one (which `update` refused as a rollback),
    /// given `prefix_root`, the root of this log's own verified leaves at that smaller size. It
    /// must carry the signature of the log role in force at that size. With that root it is the
    /// same log, behind (`Behind`, not a security error; `Stale` once expired at `now`); with
    /// another root it stays a rollback (a security error).
    pub fn judge_older(
        &self,
        checkpoint_bytes: &[u8],
        now: Timestamp,
        prefix_root: impl FnOnce(u64) -> Option<Hash32>,
    ) -> LogError {
        let Decoded { checkpoint, note } = match decode_checkpoint(checkpoint_bytes) {
            Ok(decoded) => decoded,
            Err(e) => return e,
        };
        if let Err(e) = check_origin(&checkpoint, self.registry.root()) {
            return e;
        }
        let trusted = self.frontier.size();
        if checkpoint.size >= trusted {
            return LogError::NotOlder { offered: checkpoint.size, trusted };
        }
        // Signed by the log role of the root in force at that size (before a later rotation).
        let root = self.registry.root_at(checkpoint.size);
        if let Err(e) = root.check_checkpoint(&note) {
            return LogError::CheckpointSignature(e);
        }
        if prefix_root(checkpoint.size) != Some(checkpoint.root_hash) {
            return LogError::Rollback {
                trusted: self.trusted_summary(),
                offered: summary(&checkpoint, checkpoint_bytes),
            };
        }
        // The same log, behind: a lagging mirror, or a replay of an old checkpoint. An expired
        // one is stale, whichever it is.
        if checkpoint.expires_at <= now {
            return LogError::Stale { expires_at: checkpoint.expires_at, now };
        }
        LogError::Behind { offered: checkpoint.size, trusted }
    }

    fn trusted_summary(&self) -> CheckpointSummary {
        match self.checkpoint.as_deref().map(|b| (decode_checkpoint(b), b)) {
            Some((Ok(decoded), bytes)) => summary(&decoded.checkpoint, bytes),
            _ => CheckpointSummary {
                size: self.frontier.size(),
                root_hash: Hash32(self.frontier.root()),
                issued_at: 0,
                note: String::new(),
            },
        }
    }

    /// Number of leaves verified.
    pub fn size(&self) -> u64 {
        self.frontier.size()
    }

    /// The registry state folded from the verified leaves.
    pub fn registry(&self) -> &RegistryState {
        &self.registry
    }

    /// Root hash of the verified tree.
    pub fn root_hash(&self) -> Hash32 {
        Hash32(self.frontier.root())
    }

    /// The newest verified checkpoint envelope, if any.
    pub fn checkpoint(&self) -> Option<&[u8]> {
        self.checkpoint.as_deref()
    }

    /// The newest issued-at of any verified checkpoint.
    pub fn newest_issued_at(&self) -> Timestamp {
        self.newest_issued_at
    }

    /// The decoded newest checkpoint.
    pub fn checkpoint_payload(&self) -> Option<Checkpoint> {
        self.checkpoint.as_deref().and_then(|b| decode_checkpoint(b).ok()).map(|d| d.checkpoint)
    }
}

/// An update in progress: the checkpoint decoded and, for a larger one, its new leaves folded
/// page by page as they arrive (`push`), so that a bad leaf is refused before the rest is
/// fetched. `finish` checks the whole: the leaf count, the log signature and witness policy of
/// the root in force after the leaves, the tree root, any held contradiction, freshness.
#[derive(Debug)]
pub struct PendingUpdate {
    base: TrustedLog,
    next: TrustedLog,
    checkpoint: Checkpoint,
    note: Note,
    checkpoint_bytes: Vec<u8>,
    conflict: Option<ApplyError>,
    /// Set once `push` failed: the folded state is then incomplete, so nothing may finish it.
    failed: bool,
    /// A long page pushed but not yet folded: it is folded at the next `push` or at `finish`,
    /// while the signatures of the page after it are checked on the other cores.
    held: Option<Held>,
}

/// A page waiting to be folded, and the thread checking its signatures ahead of the fold.
#[derive(Debug)]
struct Held {
    leaves: std::sync::Arc<Vec<Vec<u8>>>,
    checked: std::thread::JoinHandle<()>,
}

/// Pages at least this long are held for the next `push` (see `PendingUpdate::push`); shorter
/// ones are folded at once.
const HOLD_FROM: usize = 1024;
/// Most leaves held at once: of a longer push (a bundle's whole segment) only the last this many
/// are held; the rest is folded at once through `preverify::pipelined`, so what is checked
/// ahead stays small and at most one part is copied.
const HOLD_MAX: usize = 4096;

impl PendingUpdate {
    /// The size the checkpoint claims (signed only once `finish` or `precheck` says so).
    pub fn size(&self) -> u64 {
        self.checkpoint.size
    }

    /// Leaves pushed so far (folded, or held to be folded).
    pub fn pushed(&self) -> u64 {
        self.next.frontier.size() + self.held.as_ref().map_or(0, |held| held.leaves.len() as u64)
    }

    /// Folds the next leaves. More leaves than the checkpoint covers fails at once, and so does a
    /// leaf the fold refuses for anything but a contradiction (a contradiction is held until
    /// `finish` has checked the checkpoint that claims it). A page of `HOLD_FROM` leaves or
    /// more is the exception: its signatures are checked on the other cores while the page
    /// pushed before it is folded, and it is folded itself at the next `push` or at `finish`,
    /// which then fail for its leaves. A long run of pages thus keeps every core busy, and a bad
    /// leaf still stops the update one page later.
    pub fn push(&mut self, leaves: &[Vec<u8>]) -> Result<(), LogError> {
        if self.failed {
            return Err(LogError::Abandoned);
        }
        let result = self.push_inner(leaves);
        self.failed = result.is_err();
        if self.failed {
            // Nothing will fold a held page now: wait for its check rather than leave the
            // thread running.
            if let Some(held) = self.held.take() {
                let _ = held.checked.join();
            }
        }
        result
    }

    fn push_inner(&mut self, leaves: &[Vec<u8>]) -> Result<(), LogError> {
        let have = self.base.frontier.size();
        let expected = self.checkpoint.size.saturating_sub(have);
        let got = self.pushed() - have + leaves.len() as u64;
        if got > expected {
            return Err(LogError::LeafCount { expected, got, size: self.checkpoint.size });
        }
        if self.conflict.is_some() {
            self.fold_held()?;
            return self.fold(leaves);
        }
        if leaves.len() < HOLD_FROM {
            self.fold_held()?;
            let root = self.next.registry.root().clone();
            return crate::preverify::pipelined(&root, leaves, |chunk| self.fold(chunk));
        }
        let (now, last) = leaves.split_at(leaves.len().saturating_sub(HOLD_MAX));
        if !now.is_empty() {
            self.fold_held()?;
            let root = self.next.registry.root().clone();
            crate::preverify::pipelined(&root, now, |chunk| self.fold(chunk))?;
        }
        // The root in force before the held part: one that part rotates to is seen in the fold,
        // which checks any signature not checked ahead itself.
        let root = self.next.registry.root().clone();
        let part = std::sync::Arc::new(last.to_vec());
        let ahead = std::sync::Arc::clone(&part);
        let checked = std::thread::spawn(move || crate::preverify::page(&root, &ahead));
        match self.held.replace(Held { leaves: part, checked }) {
            Some(before) => self.fold_checked(before),
            None => Ok(()),
        }
    }

    /// Folds the held page, if any.
    fn fold_held(&mut self) -> Result<(), LogError> {
        match self.held.take() {
            Some(held) => self.fold_checked(held),
            None => Ok(()),
        }
    }

    /// Folds a held page once its signatures are checked. A panic of the checking thread only
    /// costs the fast path: the fold checks every signature not remembered.
    fn fold_checked(&mut self, held: Held) -> Result<(), LogError> {
        let _ = held.checked.join();
        self.fold(&held.leaves)
    }

    /// Folds `leaves` in order; the tree takes every leaf, the state takes them until a
    /// contradiction is held.
    fn fold(&mut self, leaves: &[Vec<u8>]) -> Result<(), LogError> {
        for leaf in leaves {
            if self.conflict.is_none() {
                match self.next.registry.apply(leaf) {
                    Ok(()) => {}
                    // Hold a contradiction until the checkpoint proves the log really holds it.
                    Err(source) if source.is_conflict() => self.conflict = Some(source),
                    Err(source) => return Err(LogError::Leaf(source)),
                }
            }
            self.next.frontier.push(leaf_hash(leaf));
        }
        Ok(())
    }

    /// `finish` without the freshness rules: for checking evidence offline, where what matters
    /// is what the log signed, not when. Never use it to accept a log.
    pub fn finish_for_evidence(self) -> Result<TrustedLog, LogError> {
        self.finish(Freshness::Ignore)
    }

    /// Checks the whole update and returns the new trusted state.
    pub fn finish_at(
        self,
        now: Timestamp,
        expired: ExpiredCheckpoint,
    ) -> Result<Verified<TrustedLog>, LogError> {
        if now.saturating_add(CLOCK_SKEW) < self.base.newest_issued_at {
            return Err(LogError::ClockBehind { now, newest: self.base.newest_issued_at });
        }
        self.finish(Freshness::Enforce(now, expired)).map(Verified::new)
    }

    fn finish(mut self, freshness: Freshness) -> Result<TrustedLog, LogError> {
        if self.failed {
            return Err(LogError::Abandoned);
        }
        self.fold_held()?;
        let Self { base, mut next, checkpoint, note, checkpoint_bytes, conflict, failed: _, held: _ } = self;
        let size = base.frontier.size();
        let offered = || summary(&checkpoint, &checkpoint_bytes);
        let expected = checkpoint.size.saturating_sub(size);
        let got = next.frontier.size() - size;
        if got != expected {
            return Err(LogError::LeafCount { expected, got, size: checkpoint.size });
        }
        if !next.registry.is_anchored() {
            return Err(LogError::NotAnchored {
                pinned: next.registry.pinned().root().version,
                reached: next.registry.newest_logged_version(),
                size: checkpoint.size,
            });
        }
        let root = next.registry.root();
        check_signed(root, &note)?;
        let computed = next.frontier.root();
        if computed != checkpoint.root_hash.0 {
            return Err(LogError::Inconsistent {
                trusted: base.trusted_summary(),
                offered: offered(),
                computed: Hash32(computed),
            });
        }
        if let Some(source) = conflict {
            return Err(LogError::Conflict { source, offered: offered() });
        }
        if let Freshness::Enforce(now, expired) = freshness {
            check_fresh(&checkpoint, root, now, expired)?;
        }
        // Keep the newer of two valid checkpoints of the same size.
        let keep_old = checkpoint.size == size
            && base
                .checkpoint
                .as_deref()
                .and_then(|b| decode_checkpoint(b).ok())
                .is_some_and(|old| old.checkpoint.issued_at > checkpoint.issued_at);
        if !keep_old {
            next.checkpoint = Some(checkpoint_bytes);
        }
        next.newest_issued_at = next.newest_issued_at.max(checkpoint.issued_at);
        Ok(next)
    }
}

#[derive(Clone, Copy)]
enum Freshness {
    Enforce(Timestamp, ExpiredCheckpoint),
    Ignore,
}

/// The longest an expired checkpoint is ever accepted past its signed expiry under an unsafe
/// extension (7 days), whatever end a server declares.
pub const MAX_UNSAFE_EXTENSION: u64 = 7 * 86_400;

/// What to do with an expired checkpoint. The unsafe choice exists for break-glass situations
/// (an upstream unreachable for longer than a checkpoint lives) and must be chosen explicitly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpiredCheckpoint {
    /// Refuse it (`LogError::Stale`). The default everywhere.
    Refuse,
    /// Accept an expired checkpoint until this time. Freeze protection is off until then.
    UnsafeAcceptUntil(Timestamp),
}

/// What a piece of evidence proves about the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proven {
    /// Two checkpoints of the same size with different roots, both signed by the log.
    Fork,
    /// A signed checkpoint smaller than another signed one, whose root is not the root of the
    /// larger one's leaves at that size.
    Rollback,
    /// A signed checkpoint over leaves that contradict each other (the same release twice with
    /// other bytes, or one statement logged twice).
    Contradiction,
}

impl fmt::Display for Proven {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Fork => "a fork: the log signed two different trees of the same size",
            Self::Rollback => "a rollback to another history: the log signed a smaller tree that is not a prefix of a larger one it signed",
            Self::Contradiction => "a contradiction: the log signed a tree whose leaves contradict each other",
        })
    }
}

/// Checks evidence offline against a pinned root: `trusted` must verify (signature and root)
/// over the first leaves; then `offered`, signed by the log role in force at its size, must be
/// inconsistent with them. Returns what that proves, or the reason it proves nothing.
pub fn verify_evidence(
    pinned: Verified<TrustedRoot>,
    trusted: Option<&[u8]>,
    offered: &[u8],
    leaves: &[Vec<u8>],
) -> Result<Proven, LogError> {
    let trusted_size = match trusted {
        Some(bytes) => decode_checkpoint(bytes)?.checkpoint.size,
        None => 0,
    };
    let offered_size = decode_checkpoint(offered)?.checkpoint.size;
    let t = usize::try_from(trusted_size).map_err(|_| LogError::LeafCount {
        expected: trusted_size,
        got: 0,
        size: trusted_size,
    })?;
    let prefix = leaves.get(..t).ok_or(LogError::LeafCount {
        expected: trusted_size,
        got: leaves.len() as u64,
        size: trusted_size,
    })?;
    let base = TrustedLog::restore(pinned, prefix, trusted, 0)?.into_inner();
    if offered_size < trusted_size {
        let mut tree = airlock_proto::merkle::MemoryTree::new();
        for leaf in prefix {
            tree.push(leaf_hash(leaf));
        }
        let judged = base.judge_older(offered, 0, |size| tree.root_at(size).ok().map(Hash32));
        return match judged {
            LogError::Rollback { .. } => Ok(Proven::Rollback),
            LogError::Behind { .. } => {
                Err(LogError::NoEvidence("the smaller checkpoint is a prefix of the trusted one".to_owned()))
            }
            other => Err(other),
        };
    }
    let mut pending = match base.begin_update(offered) {
        Err(LogError::Fork { .. }) => return Ok(Proven::Fork),
        other => other?,
    };
    let o = usize::try_from(offered_size).unwrap_or(usize::MAX);
    let new = leaves.get(t..o).ok_or(LogError::LeafCount {
        expected: offered_size - trusted_size,
        got: leaves.len().saturating_sub(t) as u64,
        size: offered_size,
    })?;
    pending.push(new)?;
    match pending.finish_for_evidence() {
        Err(LogError::Conflict { .. }) => Ok(Proven::Contradiction),
        Err(e) => Err(e),
        Ok(_) => Err(LogError::NoEvidence(
            "the offered checkpoint extends the trusted one consistently".to_owned(),
        )),
    }
}
