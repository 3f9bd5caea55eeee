//! Saving and resuming a verified fold without its leaves. A snapshot is only as good as the
//! store that kept it: the caller seals it (`airlock_proto::api::seal`) and, where it can, binds
//! it to the stored tree (a primary compares the frontier's root with its own tree). What can be
//! checked here without the leaves is checked: the root chain is walked again from the pinned
//! root, every reference points inside the log, and a client's checkpoint must carry the log
//! role's signature and the frontier's root hash.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use airlock_proto::api::{
    FoldSnapshot, LogSnapshot, SnapshotChannel, SnapshotRelease, SnapshotRoot, SnapshotStatus,
    PAYLOAD_ENTRY_BYTES, SNAPSHOT_FORMAT,
};
use airlock_proto::merkle::Frontier;
use airlock_proto::{Digest, Hash32, Timestamp};

use crate::log::{check_origin, decode_checkpoint, ExpiredCheckpoint, LogError, TrustedLog};
use crate::registry::{ApplyError, RegistryState, ReleaseKey, ReleaseRecord, ReleaseStatus};
use crate::trust::TrustedRoot;
use crate::verified::Verified;

/// Why a snapshot was refused. The caller rebuilds the state from the log instead.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("snapshot format {found}, this build reads format {SNAPSHOT_FORMAT}")]
    Format { found: u32 },
    #[error("the snapshot's root chain does not verify from the pinned root: {0}")]
    Roots(ApplyError),
    #[error("the snapshot is inconsistent: {0}")]
    Inconsistent(String),
    #[error("the snapshot's checkpoint: {0}")]
    Checkpoint(LogError),
}

fn inconsistent(what: impl Into<String>) -> SnapshotError {
    SnapshotError::Inconsistent(what.into())
}

impl ReleaseRecord {
    /// The record as a snapshot (or a client's index) holds it.
    pub fn to_snapshot(&self) -> SnapshotRelease {
        SnapshotRelease {
            leaf: self.leaf_index,
            release: self.release.clone(),
            status: match &self.status {
                ReleaseStatus::Active => SnapshotStatus::Active,
                ReleaseStatus::Yanked { reason } => SnapshotStatus::Yanked(reason.clone()),
                ReleaseStatus::Revoked { reason } => SnapshotStatus::Revoked(reason.clone()),
            },
        }
    }

    /// A record read back from a snapshot or an index; whoever reads it checks its leaf against
    /// the log it claims.
    pub fn from_snapshot(saved: SnapshotRelease) -> Self {
        let status = match saved.status {
            SnapshotStatus::Active => ReleaseStatus::Active,
            SnapshotStatus::Yanked(reason) => ReleaseStatus::Yanked { reason },
            SnapshotStatus::Revoked(reason) => ReleaseStatus::Revoked { reason },
        };
        Self { release: saved.release, leaf_index: saved.leaf, status }
    }
}

impl RegistryState {
    /// The state as a snapshot.
    pub fn snapshot(&self) -> FoldSnapshot {
        let key = |k: &ReleaseKey| k.clone();
        let mut payloads: Vec<(u64, &Digest)> = self.payloads.iter().map(|(d, leaf)| (*leaf, d)).collect();
        payloads.sort_unstable();
        let mut packed = Vec::with_capacity(payloads.len() * PAYLOAD_ENTRY_BYTES);
        for (leaf, digest) in payloads {
            packed.extend_from_slice(digest.as_bytes());
            packed.extend_from_slice(&leaf.to_be_bytes());
        }
        let mut status_leaves: Vec<_> = self.status_leaves.iter().map(|(k, leaf)| (key(k), *leaf)).collect();
        status_leaves.sort_unstable();
        let mut channel_leaves: Vec<_> =
            self.channel_leaves.iter().map(|(k, leaf)| (k.clone(), *leaf)).collect();
        channel_leaves.sort_unstable();
        FoldSnapshot {
            size: self.size,
            roots: self.snapshot_roots(),
            releases: self.releases.values().map(ReleaseRecord::to_snapshot).collect(),
            payloads: serde_bytes::ByteBuf::from(packed),
            channels: self
                .channels
                .iter()
                .map(|(channel, held)| SnapshotChannel {
                    channel: channel.clone(),
                    held: held.iter().map(key).collect(),
                })
                .collect(),
            status_leaves,
            channel_leaves,
        }
    }

    /// Resumes the state a snapshot holds, pinned on `pinned`: the root chain is walked again
    /// (leaf 0 by the pinned-root rules, each later root as the next of the one before), and every
    /// leaf, release and channel it names must lie inside the log it claims.
    pub fn resume(pinned: Verified<TrustedRoot>, snapshot: FoldSnapshot) -> Result<Self, SnapshotError> {
        let size = snapshot.size;
        let mut state = Self::resume_roots(pinned, &snapshot.roots, size)?;
        let inside = |leaf: u64, what: &str| {
            if leaf < size {
                Ok(leaf)
            } else {
                Err(inconsistent(format!("{what} names leaf {leaf} of a log of {size}")))
            }
        };
        let packed = snapshot.payloads.as_slice();
        if Some(packed.len() as u64) != size.checked_mul(PAYLOAD_ENTRY_BYTES as u64) {
            return Err(inconsistent(format!("{} payload bytes for a log of {size}", packed.len())));
        }
        // The payload index is built on another core while the releases are placed.
        let (payloads, releases) = std::thread::scope(|scope| {
            let payloads = scope.spawn(|| payload_index(packed, size));
            let releases = release_maps(snapshot.releases, size);
            (payloads.join().unwrap_or_else(|_| Err(inconsistent("the payload index failed"))), releases)
        });
        state.payloads = payloads?;
        (state.releases, state.by_digest) = releases?;
        let known = |key: &ReleaseKey| {
            if state.releases.contains_key(key) {
                Ok(key.clone())
            } else {
                Err(inconsistent(format!("{} {}=={} is named but not logged", key.0, key.1, key.2)))
            }
        };
        let mut channels = BTreeMap::new();
        for c in &snapshot.channels {
            let held = c.held.iter().map(known).collect::<Result<BTreeSet<_>, _>>()?;
            channels.insert(c.channel.clone(), held);
        }
        let mut status_leaves = HashMap::new();
        for (key, leaf) in &snapshot.status_leaves {
            status_leaves.insert(known(key)?, inside(*leaf, "a status")?);
        }
        let mut channel_leaves = HashMap::new();
        for (key, leaf) in snapshot.channel_leaves {
            channel_leaves.insert(key, inside(leaf, "a channel statement")?);
        }
        state.channels = channels;
        state.status_leaves = status_leaves;
        state.channel_leaves = channel_leaves;
        Ok(state)
    }
}

/// The payload index from its packed entries (digest, leaf), each leaf inside the log.
fn payload_index(packed: &[u8], size: u64) -> Result<HashMap<Digest, u64>, SnapshotError> {
    let mut payloads = HashMap::with_capacity(packed.len() / PAYLOAD_ENTRY_BYTES);
    for entry in packed.chunks_exact(PAYLOAD_ENTRY_BYTES) {
        let (digest, leaf) = entry.split_at(32);
        let leaf = u64::from_be_bytes(leaf.try_into().unwrap_or_default());
        if leaf >= size {
            return Err(inconsistent(format!("a payload names leaf {leaf} of a log of {size}")));
        }
        let digest = Digest::from_bytes(digest.try_into().unwrap_or_default());
        if payloads.insert(digest, leaf).is_some() {
            return Err(inconsistent(format!("a payload is listed twice (leaf {leaf})")));
        }
    }
    Ok(payloads)
}

/// The release map (built in bulk: releases are saved in key order) and the digest index, which
/// lists a file's releases in log order as the fold built it.
#[allow(clippy::type_complexity)]
fn release_maps(
    releases: Vec<SnapshotRelease>,
    size: u64,
) -> Result<(BTreeMap<ReleaseKey, ReleaseRecord>, HashMap<Digest, Vec<ReleaseKey>>), SnapshotError> {
    let count = releases.len();
    let mut records = Vec::with_capacity(count);
    let mut files: Vec<(u64, Digest, ReleaseKey)> = Vec::with_capacity(count);
    for r in releases {
        let leaf = r.leaf;
        if leaf >= size {
            return Err(inconsistent(format!("a release names leaf {leaf} of a log of {size}")));
        }
        let key = (r.release.kind, r.release.name.clone(), r.release.version.clone());
        for file in &r.release.files {
            files.push((leaf, file.blake3, key.clone()));
        }
        records.push((key, ReleaseRecord::from_snapshot(r)));
    }
    let map: BTreeMap<ReleaseKey, ReleaseRecord> = records.into_iter().collect();
    if map.len() != count {
        return Err(inconsistent(format!("{} releases are listed twice", count - map.len())));
    }
    files.sort_unstable_by_key(|(leaf, _, _)| *leaf);
    let mut by_digest: HashMap<Digest, Vec<ReleaseKey>> = HashMap::with_capacity(files.len());
    for (_, digest, key) in files {
        by_digest.entry(digest).or_default().push(key);
    }
    Ok((map, by_digest))
}

impl RegistryState {
    /// The logged roots with their leaves.
    pub(crate) fn snapshot_roots(&self) -> Vec<SnapshotRoot> {
        self.roots
            .iter()
            .map(|(leaf, root)| SnapshotRoot {
                leaf: *leaf,
                envelope: serde_bytes::ByteBuf::from(root.envelope_bytes().to_vec()),
            })
            .collect()
    }

    /// A state of `size` leaves holding only its roots, walked again from the pinned root (leaf 0
    /// by the pinned-root rules, each later root as the next of the one before).
    pub(crate) fn resume_roots(
        pinned: Verified<TrustedRoot>,
        roots: &[SnapshotRoot],
        size: u64,
    ) -> Result<Self, SnapshotError> {
        let mut state = Self::new(pinned);
        for (n, root) in roots.iter().enumerate() {
            let leaf = root.leaf;
            if leaf >= size || state.roots.last().is_some_and(|(before, _)| *before >= leaf) {
                return Err(inconsistent(format!("a root at leaf {leaf} of a log of {size}, out of order")));
            }
            let next = if n == 0 {
                if leaf != 0 {
                    return Err(inconsistent(format!("the first root is at leaf {leaf}, not 0")));
                }
                state.first_root(&root.envelope).map_err(SnapshotError::Roots)?
            } else {
                let next = state
                    .root()
                    .next(&root.envelope)
                    .map_err(|source| SnapshotError::Roots(ApplyError::Root { index: leaf, source }))?
                    .into_inner();
                state.check_pinned_version(leaf, &next).map_err(SnapshotError::Roots)?;
                next
            };
            state.roots.push((leaf, next));
        }
        if size > 0 && state.roots.is_empty() {
            return Err(inconsistent("a log of leaves with no root"));
        }
        state.size = size;
        Ok(state)
    }
}

impl TrustedLog {
    /// The verified log as a snapshot.
    pub fn snapshot(&self) -> LogSnapshot {
        LogSnapshot {
            format: SNAPSHOT_FORMAT,
            fold: self.registry.snapshot(),
            frontier: self.frontier.clone(),
            checkpoint: self.checkpoint.clone().map(serde_bytes::ByteBuf::from),
            newest_issued_at: self.newest_issued_at,
        }
    }

    /// Resumes a verified log from a snapshot its caller sealed: the fold as
    /// `RegistryState::resume` checks it, anchored on the pinned root, with a checkpoint the log
    /// role of the root in force signed for exactly the frontier's size and root hash.
    pub fn resume(
        pinned: Verified<TrustedRoot>,
        snapshot: LogSnapshot,
    ) -> Result<Verified<Self>, SnapshotError> {
        if snapshot.format != SNAPSHOT_FORMAT {
            return Err(SnapshotError::Format { found: snapshot.format });
        }
        let registry = RegistryState::resume(pinned, snapshot.fold)?;
        let frontier = snapshot.frontier;
        if frontier.size() != registry.size() {
            return Err(inconsistent(format!(
                "the frontier is of {} leaves, the fold of {}",
                frontier.size(),
                registry.size()
            )));
        }
        let checkpoint = snapshot.checkpoint.map(serde_bytes::ByteBuf::into_vec);
        match &checkpoint {
            None if registry.size() == 0 => {}
            None => return Err(inconsistent("a log of leaves with no checkpoint")),
            Some(bytes) => check_snapshot_checkpoint(&registry, &frontier, bytes)?,
        }
        Ok(Verified::new(Self {
            registry,
            frontier,
            checkpoint,
            newest_issued_at: snapshot.newest_issued_at,
        }))
    }
}

/// What a client needs to confirm that a registry still serves the log it verified, without its
/// fold: the root in force (walked again from the pinned root), the frontier and the newest
/// checkpoint. It answers only a checkpoint of its own size; a larger one needs the fold
/// (`TrustedLog`), which folds the new leaves.
#[derive(Debug, Clone)]
pub struct TrustedHead {
    /// A log whose fold holds only the roots: never given out, never given a leaf.
    log: TrustedLog,
}

impl TrustedHead {
    /// Resumes a head: `roots` (every logged root's envelope with its leaf, oldest first) walked
    /// from the pinned root, and a checkpoint the log role of the root in force signed for
    /// exactly `frontier`.
    pub fn resume(
        pinned: Verified<TrustedRoot>,
        roots: Vec<SnapshotRoot>,
        frontier: Frontier,
        checkpoint: Vec<u8>,
        newest_issued_at: Timestamp,
    ) -> Result<Verified<Self>, SnapshotError> {
        let registry = RegistryState::resume_roots(pinned, &roots, frontier.size())?;
        let log = TrustedLog { registry, frontier, checkpoint: None, newest_issued_at };
        check_snapshot_checkpoint(&log.registry, &log.frontier, &checkpoint)?;
        Ok(Verified::new(Self { log: TrustedLog { checkpoint: Some(checkpoint), ..log } }))
    }

    /// Confirms `checkpoint_bytes` at `now` under every rule `TrustedLog::update_with` applies
    /// to a checkpoint of the same size (signature and witnesses of the root in force, the same
    /// root hash, freshness, a clock not behind). `Ok(None)`: the checkpoint is of another size,
    /// and only the fold can judge it.
    pub fn confirm(
        &self,
        checkpoint_bytes: &[u8],
        now: Timestamp,
        expired: ExpiredCheckpoint,
    ) -> Result<Option<Verified<Self>>, LogError> {
        let offered = decode_checkpoint(checkpoint_bytes)?;
        if offered.checkpoint.size != self.log.size() {
            return Ok(None);
        }
        let log = self.log.update_with(checkpoint_bytes, &[], now, expired)?.into_inner();
        Ok(Some(Verified::new(Self { log })))
    }

    /// Number of leaves verified.
    pub fn size(&self) -> u64 {
        self.log.size()
    }

    /// The root in force.
    pub fn root(&self) -> &TrustedRoot {
        self.log.registry.root()
    }

    /// The newest verified checkpoint.
    pub fn checkpoint(&self) -> &[u8] {
        self.log.checkpoint.as_deref().unwrap_or_default()
    }

    /// The newest issued-at of any verified checkpoint.
    pub fn newest_issued_at(&self) -> Timestamp {
        self.log.newest_issued_at
    }

    /// The decoded newest checkpoint.
    pub fn checkpoint_payload(&self) -> Option<airlock_proto::Checkpoint> {
        self.log.checkpoint_payload()
    }

    /// What this head resumes from: every logged root with its leaf, and the frontier.
    pub fn parts(&self) -> (Vec<SnapshotRoot>, Frontier) {
        self.log.head_parts()
    }
}

impl TrustedLog {
    /// The parts of this log a `TrustedHead` resumes from: every logged root with its leaf, and
    /// the frontier.
    pub fn head_parts(&self) -> (Vec<SnapshotRoot>, Frontier) {
        (self.registry.snapshot_roots(), self.frontier.clone())
    }
}

/// A checkpoint saved with a fold: signed by the log role of the root in force and cosigned by its
/// witness quorum, for exactly the frontier's size and root hash.
fn check_snapshot_checkpoint(
    registry: &RegistryState,
    frontier: &Frontier,
    bytes: &[u8],
) -> Result<(), SnapshotError> {
    if !registry.is_anchored() {
        return Err(inconsistent("the fold does not reach the pinned root"));
    }
    let decoded = decode_checkpoint(bytes).map_err(SnapshotError::Checkpoint)?;
    check_origin(&decoded.checkpoint, registry.root()).map_err(SnapshotError::Checkpoint)?;
    crate::log::check_signed(registry.root(), &decoded.note).map_err(SnapshotError::Checkpoint)?;
    let (size, root_hash) = (decoded.checkpoint.size, decoded.checkpoint.root_hash);
    if size != frontier.size() || root_hash != Hash32(frontier.root()) {
        return Err(inconsistent(format!(
            "the checkpoint is for size {size} root {root_hash}, the frontier for size {} root {}",
            frontier.size(),
            Hash32(frontier.root())
        )));
    }
    Ok(())
}
