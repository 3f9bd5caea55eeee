//! The registry state: the fold of the log's leaves. One piece of code, used by the server when
//! it accepts a statement and by every client and mirror when it follows a log.
//!
//! Applying a leaf has two steps so that a caller can make its storage durable in between:
//! `prepare` checks everything against the current state and changes nothing; `commit` applies
//! a prepared leaf and cannot fail.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use airlock_proto::envelope::MAX_ENTRY_BYTES;
use airlock_proto::{
    ChannelAction, ChannelName, CodecError, Digest, Envelope, Kind, PackageName, Release, Statement,
    StatementError, StatusAction, Version,
};

use crate::threshold::ThresholdError;
use crate::trust::{RoleName, TrustError, TrustedRoot};
use crate::verified::Verified;

/// Identifies a release: kind, name and version.
pub type ReleaseKey = (Kind, PackageName, Version);

/// Whether a release may be installed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReleaseStatus {
    Active,
    Yanked { reason: String },
    Revoked { reason: String },
}

/// A logged release and what later statements said about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseRecord {
    pub release: Release,
    pub leaf_index: u64,
    pub status: ReleaseStatus,
}

/// Why a leaf was refused. Each variant names the check that failed.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("leaf {index}: envelope: {source}")]
    Envelope { index: u64, source: CodecError },
    #[error("leaf {index}: payload: {source}")]
    Payload { index: u64, source: StatementError },
    #[error(
        "leaf {index}: the statement is {len} bytes, over the log's entry limit of {MAX_ENTRY_BYTES} bytes"
    )]
    TooLarge { index: u64, len: usize },
    #[error("leaf 0 must be the pinned root, byte for byte")]
    FirstLeafNotPinnedRoot,
    #[error("leaf 0 must be root version 1 (the pinned root is version {pinned}): {detail}")]
    FirstLeafNotARoot { pinned: u64, detail: String },
    #[error("leaf {index}: root version {version} has payload {found}, the pinned root version {version} has payload {pinned}: this is not the log the pinned root belongs to")]
    NotThePinnedRoot { index: u64, version: u64, pinned: Digest, found: Digest },
    #[error("leaf {index}: {source}")]
    Root { index: u64, source: TrustError },
    #[error("leaf {index}: {source}")]
    Signatures { index: u64, source: ThresholdError },
    #[error("leaf {index}: {kind} {name}=={version} is already logged at leaf {existing}; a logged release is immutable")]
    AlreadyLogged { index: u64, kind: Kind, name: PackageName, version: Version, existing: u64 },
    #[error("leaf {index}: {kind} {name}=={version} is not a logged release")]
    UnknownRelease { index: u64, kind: Kind, name: PackageName, version: Version },
    #[error("leaf {index}: this exact statement is already logged at leaf {existing}")]
    Duplicate { index: u64, existing: u64 },
    #[error("leaf {index}: this {what} statement follows {}, but the latest is {}: it was signed before a newer one was logged, or is out of order; sign it again against the current log", leaf_name(*found), leaf_name(*latest))]
    Superseded { index: u64, what: &'static str, found: Option<u64>, latest: Option<u64> },
    #[error("leaf {index}: {kind} {name}=={version} is {} channel {channel}", if *present { "already in" } else { "not in" })]
    Channel {
        index: u64,
        channel: ChannelName,
        kind: Kind,
        name: PackageName,
        version: Version,
        present: bool,
    },
    #[error("leaf {index}: {kind} {name}=={version} is revoked; revocation is final")]
    Revoked { index: u64, kind: Kind, name: PackageName, version: Version },
}

fn leaf_name(leaf: Option<u64>) -> String {
    leaf.map_or_else(|| "none (it claims to be the first)".to_owned(), |leaf| format!("leaf {leaf}"))
}

impl ApplyError {
    /// True when the leaf contradicts what the log already holds (the same name@version with
    /// other bytes): seen in a log, this is evidence of a misbehaving registry.
    pub fn is_conflict(&self) -> bool {
        matches!(self, Self::AlreadyLogged { .. } | Self::Duplicate { .. })
    }

    /// The leaf that already holds this statement or release, if that is why it was refused.
    pub fn existing_leaf(&self) -> Option<u64> {
        match self {
            Self::AlreadyLogged { existing, .. } | Self::Duplicate { existing, .. } => Some(*existing),
            _ => None,
        }
    }
}

/// A leaf that passed every check against a given state, ready to commit.
#[derive(Debug)]
pub struct Prepared {
    index: u64,
    payload: Digest,
    change: Change,
    statement: Statement,
}

#[derive(Debug)]
enum Change {
    Root(Box<TrustedRoot>),
    Release,
    Status(ReleaseKey, ReleaseStatus),
    Channel(ChannelName, ReleaseKey, ChannelAction),
}

impl Prepared {
    /// The leaf index this was prepared for.
    pub fn index(&self) -> u64 {
        self.index
    }

    /// The decoded statement.
    pub fn statement(&self) -> &Statement {
        &self.statement
    }
}

/// The registry state after some number of leaves.
#[derive(Debug, Clone)]
pub struct RegistryState {
    pub(crate) pinned: TrustedRoot,
    pub(crate) size: u64,
    pub(crate) releases: BTreeMap<ReleaseKey, ReleaseRecord>,
    pub(crate) by_digest: HashMap<Digest, Vec<ReleaseKey>>,
    /// BLAKE3 of every logged payload, to refuse a replayed statement.
    pub(crate) payloads: HashMap<Digest, u64>,
    /// The releases each channel holds.
    pub(crate) channels: BTreeMap<ChannelName, BTreeSet<ReleaseKey>>,
    /// The leaf of the latest status statement of each release.
    pub(crate) status_leaves: HashMap<ReleaseKey, u64>,
    /// The leaf of the latest channel statement of each channel, kind and name.
    pub(crate) channel_leaves: HashMap<ChannelKey, u64>,
    /// Every root logged so far with its leaf index, oldest first.
    pub(crate) roots: Vec<(u64, TrustedRoot)>,
}

/// Identifies what a channel statement moves: the channel, kind and name.
pub type ChannelKey = (ChannelName, Kind, PackageName);

/// Which of the releases holding one file (in log order) answers for it: the first that is not
/// revoked, else the first. The fold and a client's index both choose with this.
pub fn preferred_holder<T>(holders: &[T], record: impl Fn(&T) -> &ReleaseRecord) -> Option<usize> {
    holders
        .iter()
        .position(|h| !matches!(record(h).status, ReleaseStatus::Revoked { .. }))
        .or((!holders.is_empty()).then_some(0))
}

impl RegistryState {
    /// The state of an empty log that will start with `pinned` as leaf 0.
    pub fn new(pinned: Verified<TrustedRoot>) -> Self {
        let pinned = pinned.into_inner();
        Self {
            pinned,
            size: 0,
            releases: BTreeMap::new(),
            by_digest: HashMap::new(),
            payloads: HashMap::new(),
            channels: BTreeMap::new(),
            status_leaves: HashMap::new(),
            channel_leaves: HashMap::new(),
            roots: Vec::new(),
        }
    }

    /// Number of leaves folded in.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The root in force: the last one logged (the pinned root before leaf 0).
    pub fn root(&self) -> &TrustedRoot {
        self.roots.last().map_or(&self.pinned, |(_, root)| root)
    }

    /// Looks a release up by kind, name and version.
    pub fn release(&self, kind: Kind, name: &PackageName, version: &Version) -> Option<&ReleaseRecord> {
        self.releases.get(&(kind, name.clone(), version.clone()))
    }

    /// Finds a release that holds a file with this BLAKE3 digest, preferring one that is not
    /// revoked when several releases share the file.
    pub fn release_by_digest(&self, digest: &Digest) -> Option<&ReleaseRecord> {
        let records: Vec<&ReleaseRecord> =
            self.by_digest.get(digest)?.iter().filter_map(|key| self.releases.get(key)).collect();
        preferred_holder(&records, |r| r).map(|i| records[i])
    }

    /// Every release that holds a file with this BLAKE3 digest, in log order.
    pub fn holders(&self, digest: &Digest) -> impl Iterator<Item = &ReleaseRecord> + use<'_> {
        self.by_digest.get(digest).into_iter().flatten().filter_map(|key| self.releases.get(key))
    }

    /// Every release of a name, ordered by version text: a range of the ordered release map, so
    /// its cost does not grow with the other projects.
    pub fn releases_of(
        &self,
        kind: Kind,
        name: &PackageName,
    ) -> impl Iterator<Item = &ReleaseRecord> + use<'_> {
        // "0" sorts before every other version: versions start with an ASCII letter or digit.
        let start = Version::new("0").ok().map(|low| (kind, name.clone(), low));
        let name = name.clone();
        start
            .into_iter()
            .flat_map(move |start| self.releases.range(start..))
            .take_while(move |((k, n, _), _)| *k == kind && *n == name)
            .map(|(_, record)| record)
    }

    /// Every release.
    pub fn releases(&self) -> impl Iterator<Item = &ReleaseRecord> {
        self.releases.values()
    }

    /// Whether `channel` holds the release `kind` `name`==`version`.
    pub fn channel_holds(
        &self,
        channel: &ChannelName,
        kind: Kind,
        name: &PackageName,
        version: &Version,
    ) -> bool {
        self.channels.get(channel).is_some_and(|held| held.contains(&(kind, name.clone(), version.clone())))
    }

    /// Whether `channel` holds a release; every release is in when no channel is given.
    pub fn in_channel(&self, record: &ReleaseRecord, channel: Option<&ChannelName>) -> bool {
        let r = &record.release;
        channel.is_none_or(|c| self.channel_holds(c, r.kind, &r.name, &r.version))
    }

    /// Whether a release is offered to installers: not revoked, and held by `channel` when one
    /// is given.
    pub fn offers(&self, record: &ReleaseRecord, channel: Option<&ChannelName>) -> bool {
        !matches!(record.status, ReleaseStatus::Revoked { .. }) && self.in_channel(record, channel)
    }

    /// The releases `channel` holds, ordered by kind, name and version text.
    pub fn channel_releases<'a>(&'a self, channel: &ChannelName) -> impl Iterator<Item = &'a ReleaseRecord> {
        self.channels.get(channel).into_iter().flatten().filter_map(|key| self.releases.get(key))
    }

    /// Every channel with at least one release, and the channels holding a given release.
    pub fn channels(&self) -> impl Iterator<Item = &ChannelName> {
        self.channels.iter().filter(|(_, held)| !held.is_empty()).map(|(name, _)| name)
    }

    /// The channels that hold the release `key`.
    pub fn channels_of<'a>(&'a self, key: &'a ReleaseKey) -> impl Iterator<Item = &'a ChannelName> {
        self.channels.iter().filter(move |(_, held)| held.contains(key)).map(|(name, _)| name)
    }

    /// The envelope of every root logged so far, oldest first (`GET /v1/roots`).
    pub fn root_chain(&self) -> Vec<Vec<u8>> {
        self.roots.iter().map(|(_, root)| root.envelope_bytes().to_vec()).collect()
    }

    /// The root in force for a checkpoint of `size` leaves: the last root logged before leaf
    /// `size` (the root in force now when `size` is at least the state's size).
    pub fn root_at(&self, size: u64) -> &TrustedRoot {
        self.roots.iter().rev().find(|(index, _)| *index < size).map_or(self.root(), |(_, root)| root)
    }

    /// The leaf of the latest status statement of a release: what the next one must name as
    /// `supersedes`.
    pub fn latest_status_leaf(&self, kind: Kind, name: &PackageName, version: &Version) -> Option<u64> {
        self.status_leaves.get(&(kind, name.clone(), version.clone())).copied()
    }

    /// The leaf of the latest channel statement of a channel, kind and name: what the next one
    /// must name as `supersedes`.
    pub fn latest_channel_leaf(&self, channel: &ChannelName, kind: Kind, name: &PackageName) -> Option<u64> {
        self.channel_leaves.get(&(channel.clone(), kind, name.clone())).copied()
    }

    /// Checks `leaf_bytes` as leaf number `self.size()` and returns what to commit.
    /// Changes nothing.
    pub fn prepare(&self, leaf_bytes: &[u8]) -> Result<Prepared, ApplyError> {
        let index = self.size;
        if leaf_bytes.len() > MAX_ENTRY_BYTES {
            return Err(ApplyError::TooLarge { index, len: leaf_bytes.len() });
        }
        let envelope =
            Envelope::from_bytes(leaf_bytes).map_err(|source| ApplyError::Envelope { index, source })?;
        let statement = Statement::decode(&envelope.payload_type, &envelope.payload)
            .map_err(|source| ApplyError::Payload { index, source })?;
        let payload = Digest::of(&envelope.payload);
        if index == 0 {
            let first = self.first_root(leaf_bytes)?;
            return Ok(Prepared { index, payload, change: Change::Root(Box::new(first)), statement });
        }
        if let Some(&existing) = self.payloads.get(&payload) {
            return Err(ApplyError::Duplicate { index, existing });
        }
        let change = match &statement {
            Statement::Root(_) => {
                let next =
                    self.root().next(leaf_bytes).map_err(|source| ApplyError::Root { index, source })?;
                self.check_pinned_version(index, &next)?;
                Change::Root(Box::new(next.into_inner()))
            }
            Statement::Release(release) => {
                let key = (release.kind, release.name.clone(), release.version.clone());
                if let Some(existing) = self.releases.get(&key) {
                    return Err(ApplyError::AlreadyLogged {
                        index,
                        kind: key.0,
                        name: key.1,
                        version: key.2,
                        existing: existing.leaf_index,
                    });
                }
                self.check_publisher(index, &envelope)?;
                Change::Release
            }
            Statement::Status(status) => {
                self.check_publisher(index, &envelope)?;
                let key = (status.kind, status.name.clone(), status.version.clone());
                let record = self.existing(index, &key)?;
                let new_status = match status.action {
                    StatusAction::Yank => ReleaseStatus::Yanked { reason: status.reason.clone() },
                    StatusAction::Unyank => ReleaseStatus::Active,
                    StatusAction::Revoke => ReleaseStatus::Revoked { reason: status.reason.clone() },
                };
                if matches!(record.status, ReleaseStatus::Revoked { .. }) {
                    return Err(ApplyError::Revoked { index, kind: key.0, name: key.1, version: key.2 });
                }
                let latest = self.status_leaves.get(&key).copied();
                if status.supersedes != latest {
                    return Err(ApplyError::Superseded {
                        index,
                        what: "status",
                        found: status.supersedes,
                        latest,
                    });
                }
                Change::Status(key, new_status)
            }
            Statement::Channel(channel) => {
                self.check_publisher(index, &envelope)?;
                let key = (channel.kind, channel.name.clone(), channel.version.clone());
                let record = self.existing(index, &key)?;
                // A revoked release cannot be added; it may still be removed.
                if channel.action == ChannelAction::Add
                    && matches!(record.status, ReleaseStatus::Revoked { .. })
                {
                    return Err(ApplyError::Revoked { index, kind: key.0, name: key.1, version: key.2 });
                }
                let present = self.channel_holds(&channel.channel, key.0, &key.1, &key.2);
                if present == (channel.action == ChannelAction::Add) {
                    return Err(ApplyError::Channel {
                        index,
                        channel: channel.channel.clone(),
                        kind: key.0,
                        name: key.1,
                        version: key.2,
                        present,
                    });
                }
                let latest =
                    self.channel_leaves.get(&(channel.channel.clone(), key.0, key.1.clone())).copied();
                if channel.supersedes != latest {
                    return Err(ApplyError::Superseded {
                        index,
                        what: "channel",
                        found: channel.supersedes,
                        latest,
                    });
                }
                Change::Channel(channel.channel.clone(), key, channel.action)
            }
        };
        Ok(Prepared { index, payload, change, statement })
    }

    /// Leaf 0. Pinned on version 1, it must be the pinned root byte for byte. Pinned on a later
    /// version K, it must be a version 1 root its own root role signed; it is authenticated when
    /// the log reaches version K: each root names its predecessor's payload digest, and version
    /// K must be the pinned one (`check_pinned_version`). Until then the state is not anchored.
    pub(crate) fn first_root(&self, leaf_bytes: &[u8]) -> Result<TrustedRoot, ApplyError> {
        let pinned = self.pinned.root().version;
        if pinned == 1 {
            if leaf_bytes != self.pinned.envelope_bytes() {
                return Err(ApplyError::FirstLeafNotPinnedRoot);
            }
            return Ok(self.pinned.clone());
        }
        let first = TrustedRoot::pin(leaf_bytes)
            .map_err(|e| ApplyError::FirstLeafNotARoot { pinned, detail: e.to_string() })?
            .into_inner();
        if first.root().version != 1 || first.origin() != self.pinned.origin() {
            return Err(ApplyError::FirstLeafNotARoot {
                pinned,
                detail: format!("it is version {} of origin {:?}", first.root().version, first.origin()),
            });
        }
        self.check_pinned_version(0, &first)?;
        Ok(first)
    }

    /// A logged root of the pinned version must be the pinned root.
    pub(crate) fn check_pinned_version(&self, index: u64, root: &TrustedRoot) -> Result<(), ApplyError> {
        let version = root.root().version;
        if version == self.pinned.root().version && root.payload_digest() != self.pinned.payload_digest() {
            return Err(ApplyError::NotThePinnedRoot {
                index,
                version,
                pinned: self.pinned.payload_digest(),
                found: root.payload_digest(),
            });
        }
        Ok(())
    }

    /// Whether the leaves folded so far reach the pinned root (always, once the log is not
    /// empty, for a state pinned on version 1). Before that, the roots logged so far are not
    /// yet authenticated, and no caller may trust the state.
    pub fn is_anchored(&self) -> bool {
        self.roots.iter().any(|(_, root)| root.root().version == self.pinned.root().version)
    }

    /// The version of the newest root logged so far (0 before leaf 0).
    pub fn newest_logged_version(&self) -> u64 {
        self.roots.last().map_or(0, |(_, root)| root.root().version)
    }

    /// The root the state was pinned on.
    pub fn pinned(&self) -> &TrustedRoot {
        &self.pinned
    }

    fn check_publisher(&self, index: u64, envelope: &Envelope) -> Result<(), ApplyError> {
        self.root()
            .check_role(envelope, RoleName::Publisher)
            .map_err(|source| ApplyError::Signatures { index, source })
    }

    fn existing(&self, index: u64, key: &ReleaseKey) -> Result<&ReleaseRecord, ApplyError> {
        self.releases.get(key).ok_or_else(|| ApplyError::UnknownRelease {
            index,
            kind: key.0,
            name: key.1.clone(),
            version: key.2.clone(),
        })
    }

    /// Applies a leaf prepared against this exact state.
    ///
    /// # Panics
    /// If `prepared` was made for another log size: that is a caller bug, never input-driven.
    pub fn commit(&mut self, prepared: Prepared) {
        assert_eq!(prepared.index, self.size, "prepared leaf committed out of order");
        let index = prepared.index;
        self.payloads.insert(prepared.payload, index);
        match (prepared.change, prepared.statement) {
            (Change::Root(root), _) => {
                self.roots.push((index, *root));
            }
            (Change::Release, Statement::Release(release)) => {
                let key = (release.kind, release.name.clone(), release.version.clone());
                for file in &release.files {
                    self.by_digest.entry(file.blake3).or_default().push(key.clone());
                }
                self.releases
                    .insert(key, ReleaseRecord { release, leaf_index: index, status: ReleaseStatus::Active });
            }
            (Change::Status(key, status), _) => {
                if let Some(record) = self.releases.get_mut(&key) {
                    record.status = status;
                }
                self.status_leaves.insert(key, index);
            }
            (Change::Channel(channel, key, action), _) => {
                self.channel_leaves.insert((channel.clone(), key.0, key.1.clone()), index);
                let held = self.channels.entry(channel).or_default();
                match action {
                    ChannelAction::Add => held.insert(key),
                    ChannelAction::Remove => held.remove(&key),
                };
            }
            (Change::Release, _) => {}
        }
        self.size += 1;
    }

    /// `prepare` then `commit`.
    pub fn apply(&mut self, leaf_bytes: &[u8]) -> Result<(), ApplyError> {
        let prepared = self.prepare(leaf_bytes)?;
        self.commit(prepared);
        Ok(())
    }
}
