//! Fixture builder for the attack tests: keys by role, roots, statements, leaves, checkpoints,
//! and a `Fixture` that plays the registry (its keys and the leaves it has logged).

#![allow(dead_code)]

use airlock_keys::{sign_envelope, sign_note, LogError, SecretKey, TrustedLog, TrustedRoot, Verified};
use airlock_proto::merkle::{leaf_hash, MemoryTree};
use airlock_proto::{
    ChannelName, ChannelStatement, Checkpoint, Digest, Envelope, FileEntry, FileName, Hash32, Kind, Metadata,
    Note, PackageName, PayloadType, PublicKeyBytes, Release, Role, Roles, Root, Sha256, Statement, Status,
    StatusAction, Timestamp, Version,
};

/// The time every fixture is built at; updates run a minute later.
pub const NOW: Timestamp = 1_700_000_000;
pub const LATER: Timestamp = NOW + 60;
pub const DAY: u64 = 86_400;
pub const YEAR: u64 = 365 * DAY;
pub const ORIGIN: &str = "airlock.test/log";

/// The keys of one role and how many distinct ones must sign.
#[derive(Debug)]
pub struct RoleKeys {
    pub keys: Vec<SecretKey>,
    pub threshold: u32,
}

impl RoleKeys {
    pub fn new(count: usize, threshold: u32) -> Self {
        Self { keys: (0..count).map(|_| SecretKey::generate()).collect(), threshold }
    }

    /// The first `threshold` keys: just enough to sign.
    pub fn quorum(&self) -> Vec<&SecretKey> {
        self.keys.iter().take(self.threshold as usize).collect()
    }

    fn role(&self) -> Role {
        Role { keys: self.keys.iter().map(|k| k.public().id()).collect(), threshold: self.threshold }
    }
}

/// The keys one root version lists, by role.
#[derive(Debug)]
pub struct KeySet {
    pub root: RoleKeys,
    pub publisher: RoleKeys,
    pub log: RoleKeys,
}

impl KeySet {
    /// `(count, threshold)` for the root, publisher and log roles.
    pub fn new(root: (usize, u32), publisher: (usize, u32), log: (usize, u32)) -> Self {
        Self {
            root: RoleKeys::new(root.0, root.1),
            publisher: RoleKeys::new(publisher.0, publisher.1),
            log: RoleKeys::new(log.0, log.1),
        }
    }

    /// One key per role, threshold 1.
    pub fn single() -> Self {
        Self::new((1, 1), (1, 1), (1, 1))
    }

    /// The root statement that lists these keys.
    pub fn root(&self, version: u64, expires: Timestamp) -> Root {
        let all = self.root.keys.iter().chain(&self.publisher.keys).chain(&self.log.keys);
        Root {
            payload_type: PayloadType::Root,
            origin: ORIGIN.to_owned(),
            version,
            expires,
            previous: None,
            max_checkpoint_validity: 45 * DAY,
            keys: all.map(|k| PublicKeyBytes(k.public().to_bytes())).collect(),
            roles: Roles { root: self.root.role(), publisher: self.publisher.role(), log: self.log.role() },
            witnesses: Vec::new(),
            witness_groups: Vec::new(),
            witness_quorum: None,
            key_names: Vec::new(),
        }
    }
}

/// `statement` encoded into an envelope signed by `signers`.
pub fn envelope(statement: &Statement, signers: &[&SecretKey]) -> Envelope {
    let (payload_type, payload) = statement.encode().unwrap();
    signed(Envelope::unsigned(payload_type.as_str(), payload), signers)
}

/// `envelope` with `signers`' signatures added.
pub fn signed(mut envelope: Envelope, signers: &[&SecretKey]) -> Envelope {
    for key in signers {
        sign_envelope(&mut envelope, key);
    }
    envelope
}

/// Leaf bytes: the signed envelope, encoded.
pub fn leaf(statement: &Statement, signers: &[&SecretKey]) -> Vec<u8> {
    envelope(statement, signers).to_bytes().unwrap()
}

/// `root` naming the payload digest of `previous` (a root leaf) as its previous root.
pub fn chained(root: Root, previous: &[u8]) -> Root {
    Root { previous: Some(Envelope::from_bytes(previous).unwrap().payload_digest()), ..root }
}

pub fn root_leaf(root: Root, signers: &[&SecretKey]) -> Vec<u8> {
    leaf(&Statement::Root(root), signers)
}

/// A wheel release of one file whose bytes are `content`.
pub fn release(name: &str, version: &str, content: &[u8]) -> Statement {
    Statement::Release(Release {
        payload_type: PayloadType::Release,
        kind: Kind::Wheel,
        name: PackageName::new(Kind::Wheel, name).unwrap(),
        version: Version::new(version).unwrap(),
        files: vec![FileEntry {
            filename: FileName::new(&format!("{}-{version}-py3-none-any.whl", name.replace('-', "_")))
                .unwrap(),
            size: content.len() as u64,
            blake3: Digest::of(content),
            sha256: Sha256([0; 32]),
        }],
        metadata: Metadata::default(),
        published_at: NOW,
    })
}

pub fn status(name: &str, version: &str, action: StatusAction, supersedes: Option<u64>) -> Statement {
    Statement::Status(Status {
        payload_type: PayloadType::Status,
        kind: Kind::Wheel,
        name: PackageName::new(Kind::Wheel, name).unwrap(),
        version: Version::new(version).unwrap(),
        action,
        reason: "test".to_owned(),
        issued_at: NOW,
        supersedes,
    })
}

pub fn channel(channel: &str, name: &str, version: &str, supersedes: Option<u64>) -> Statement {
    channel_move(channel, airlock_proto::ChannelAction::Add, name, version, supersedes)
}

/// A channel statement adding or removing a release.
pub fn channel_move(
    channel: &str,
    action: airlock_proto::ChannelAction,
    name: &str,
    version: &str,
    supersedes: Option<u64>,
) -> Statement {
    Statement::Channel(ChannelStatement {
        payload_type: PayloadType::Channel,
        channel: ChannelName::new(channel).unwrap(),
        action,
        kind: Kind::Wheel,
        name: PackageName::new(Kind::Wheel, name).unwrap(),
        version: Version::new(version).unwrap(),
        issued_at: NOW,
        supersedes,
    })
}

/// Merkle root over `leaves`.
pub fn tree_root(leaves: &[Vec<u8>]) -> Hash32 {
    let mut tree = MemoryTree::new();
    for leaf in leaves {
        tree.push(leaf_hash(leaf));
    }
    Hash32(tree.root())
}

/// A checkpoint note of `origin` with any size and root hash, signed by `signers` under the
/// origin as key name.
pub fn checkpoint_note_of(
    origin: &str,
    size: u64,
    root_hash: Hash32,
    issued_at: Timestamp,
    expires_at: Timestamp,
    signers: &[&SecretKey],
) -> Note {
    let checkpoint = Checkpoint { origin: origin.to_owned(), size, root_hash, issued_at, expires_at };
    let mut note = Note::new(checkpoint.to_text()).unwrap();
    for signer in signers {
        sign_note(&mut note, origin, signer).unwrap();
    }
    note
}

/// A checkpoint note with any size and root hash, signed by `signers`.
pub fn checkpoint_note(
    size: u64,
    root_hash: Hash32,
    issued_at: Timestamp,
    expires_at: Timestamp,
    signers: &[&SecretKey],
) -> Note {
    checkpoint_note_of(ORIGIN, size, root_hash, issued_at, expires_at, signers)
}

/// A checkpoint over all of `leaves`, valid from `issued_at` to `expires_at`.
pub fn checkpoint(
    leaves: &[Vec<u8>],
    issued_at: Timestamp,
    expires_at: Timestamp,
    signers: &[&SecretKey],
) -> Vec<u8> {
    checkpoint_note(leaves.len() as u64, tree_root(leaves), issued_at, expires_at, signers).to_bytes()
}

/// The registry side of a test: the current keys and every leaf logged so far (leaf 0 is root
/// v1). Its checkpoints are issued at `NOW` and valid for a day.
#[derive(Debug)]
pub struct Fixture {
    pub keys: KeySet,
    pub version: u64,
    pub leaves: Vec<Vec<u8>>,
}

impl Fixture {
    /// Single keys, root v1 valid for a year.
    pub fn new() -> Self {
        Self::with_keys(KeySet::single())
    }

    pub fn with_keys(keys: KeySet) -> Self {
        Self::with_root_expiry(keys, NOW + YEAR)
    }

    pub fn with_root_expiry(keys: KeySet, expires: Timestamp) -> Self {
        let v1 = root_leaf(keys.root(1, expires), &keys.root.quorum());
        Self { keys, version: 1, leaves: vec![v1] }
    }

    /// The exact bytes of root v1 (the pinned root, leaf 0).
    pub fn root_bytes(&self) -> &[u8] {
        &self.leaves[0]
    }

    pub fn pinned(&self) -> Verified<TrustedRoot> {
        TrustedRoot::pin(self.root_bytes()).unwrap()
    }

    /// A client that pinned root v1 and has seen nothing else.
    pub fn empty_log(&self) -> TrustedLog {
        TrustedLog::new(self.pinned())
    }

    /// A client that has verified every leaf logged so far.
    pub fn synced_log(&self) -> TrustedLog {
        accepted(&self.empty_log(), &self.checkpoint(), &self.leaves, LATER)
    }

    /// A release signed by the current publisher quorum, its content named after it.
    pub fn release(&self, name: &str, version: &str) -> Vec<u8> {
        let content = format!("{name}=={version}");
        leaf(&release(name, version, content.as_bytes()), &self.keys.publisher.quorum())
    }

    pub fn push(&mut self, leaf: Vec<u8>) {
        self.leaves.push(leaf);
    }

    /// A checkpoint over every leaf so far, signed by the current log quorum.
    pub fn checkpoint(&self) -> Vec<u8> {
        self.checkpoint_of(&self.leaves)
    }

    /// A checkpoint over `leaves` (another history), signed by the current log quorum.
    pub fn checkpoint_of(&self, leaves: &[Vec<u8>]) -> Vec<u8> {
        checkpoint(leaves, NOW, NOW + DAY, &self.keys.log.quorum())
    }

    /// Root v(N+1) listing `next`, signed by the current root quorum and by `next`'s.
    pub fn next_root(&self, next: &KeySet, expires: Timestamp) -> Vec<u8> {
        let mut signers = self.keys.root.quorum();
        signers.extend(next.root.quorum());
        root_leaf(self.chain(next.root(self.version + 1, expires)), &signers)
    }

    /// The last root logged (leaf bytes).
    pub fn last_root(&self) -> &[u8] {
        self.leaves
            .iter()
            .rev()
            .find(|leaf| Envelope::from_bytes(leaf).unwrap().payload_type == PayloadType::Root.as_str())
            .unwrap()
    }

    /// `root` naming the last logged root's payload digest as its previous root (the hash
    /// chain every root after version 1 carries).
    pub fn chain(&self, root: Root) -> Root {
        chained(root, self.last_root())
    }

    /// Logs root v(N+1) with `next` as its keys and returns the keys rotated out.
    pub fn rotate(&mut self, next: KeySet, expires: Timestamp) -> KeySet {
        let leaf = self.next_root(&next, expires);
        self.push(leaf);
        self.version += 1;
        std::mem::replace(&mut self.keys, next)
    }
}

/// Applies an update that must succeed and returns the new trusted state.
pub fn accepted(log: &TrustedLog, checkpoint: &[u8], leaves: &[Vec<u8>], now: Timestamp) -> TrustedLog {
    match log.update(checkpoint, leaves, now) {
        Ok(next) => next.into_inner(),
        Err(err) => panic!("update refused: {err}"),
    }
}

/// Applies an update that must be refused, checks that the trusted state did not move, and
/// returns the reason.
pub fn refused(log: &TrustedLog, checkpoint: &[u8], leaves: &[Vec<u8>], now: Timestamp) -> LogError {
    let before = (log.size(), log.root_hash(), log.checkpoint().map(<[u8]>::to_vec), log.newest_issued_at());
    let err = match log.update(checkpoint, leaves, now) {
        Ok(next) => panic!("update accepted at size {}", next.size()),
        Err(err) => err,
    };
    let after = (log.size(), log.root_hash(), log.checkpoint().map(<[u8]>::to_vec), log.newest_issued_at());
    assert_eq!(before, after, "a refused update changed the trusted state");
    err
}
