//! Statement builders: each returns an unsigned [`Envelope`] ready for signing
//! (`airlock_keys::sign_envelope`), approval by other key holders and submission.
//!
//! Every builder encodes its payload and decodes it back with [`Statement::decode`], so a
//! builder never hands out a statement the log would refuse on its structure (an invalid name,
//! a root whose thresholds cannot be met, text with control characters). Times are parameters:
//! the caller passes `published_at`, `issued_at` and `expires`, usually from its
//! [`airlock_proto::Clock`].

use airlock_keys::RoleName;
use airlock_proto::{
    ChannelAction, ChannelName, ChannelStatement, CodecError, Digest, Envelope, FileEntry, FileName, KeyId,
    KeyName, Kind, Metadata, PackageName, PayloadType, PublicKeyBytes, Release, Role, Roles, Root, Statement,
    StatementError, Status, StatusAction, Timestamp, Version, WitnessGroup, WitnessKey,
};

use crate::publish::FileDigests;

/// Why a statement could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Statement(#[from] StatementError),
    #[error(transparent)]
    Codec(#[from] CodecError),
    #[error("root version {requested} does not follow version {current}")]
    NotNext { current: u64, requested: u64 },
    #[error("expected a root statement, found {0}")]
    NotARoot(String),
    #[error("the current root's {role} role names key {id}, which the root does not list")]
    UnlistedKey { role: &'static str, id: KeyId },
}

/// Encodes `statement`, checks it as the log will, and wraps it in an unsigned envelope.
fn seal(statement: Statement) -> Result<Envelope, BuildError> {
    let (payload_type, payload) = statement.encode()?;
    Statement::decode(payload_type.as_str(), &payload)?;
    Ok(Envelope::unsigned(payload_type.as_str(), payload))
}

/// The entry of a release for a file published under `filename`.
pub fn file_entry(filename: FileName, digests: FileDigests) -> FileEntry {
    FileEntry { filename, size: digests.size, blake3: digests.blake3, sha256: digests.sha256 }
}

/// An unsigned release of `files` (one or several; each file name once).
pub fn release(
    kind: Kind,
    name: PackageName,
    version: Version,
    files: Vec<FileEntry>,
    metadata: Metadata,
    published_at: Timestamp,
) -> Result<Envelope, BuildError> {
    seal(Statement::Release(Release {
        payload_type: PayloadType::Release,
        kind,
        name,
        version,
        files,
        metadata,
        published_at,
    }))
}

/// An unsigned release for one file.
pub fn release_envelope(
    kind: Kind,
    name: PackageName,
    version: Version,
    file: (FileName, FileDigests),
    metadata: Metadata,
    published_at: Timestamp,
) -> Result<Envelope, BuildError> {
    let (filename, digests) = file;
    release(kind, name, version, vec![file_entry(filename, digests)], metadata, published_at)
}

/// An unsigned status statement: yank, unyank or revoke the release `kind` `name`==`version`,
/// saying why. `supersedes` is the leaf of the release's latest status statement in the
/// verified log (`RegistryState::latest_status_leaf`), `None` for the first.
pub fn status(
    kind: Kind,
    name: PackageName,
    version: Version,
    action: StatusAction,
    reason: impl Into<String>,
    issued_at: Timestamp,
    supersedes: Option<u64>,
) -> Result<Envelope, BuildError> {
    seal(Statement::Status(Status {
        payload_type: PayloadType::Status,
        kind,
        name,
        version,
        action,
        reason: reason.into(),
        issued_at,
        supersedes,
    }))
}

/// An unsigned channel statement: add the release `kind` `name`==`version` to `channel`, or
/// remove it.
/// `supersedes` is the leaf of the latest channel statement for that channel, kind and name in
/// the verified log (`RegistryState::latest_channel_leaf`), `None` for the first.
pub fn channel(
    channel: ChannelName,
    action: ChannelAction,
    kind: Kind,
    name: PackageName,
    version: Version,
    issued_at: Timestamp,
    supersedes: Option<u64>,
) -> Result<Envelope, BuildError> {
    seal(Statement::Channel(ChannelStatement {
        payload_type: PayloadType::Channel,
        channel,
        action,
        kind,
        name,
        version,
        issued_at,
        supersedes,
    }))
}

/// A role as the root builders take it: the public keys that hold it and how many distinct ones
/// must sign.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleKeys {
    pub keys: Vec<PublicKeyBytes>,
    pub threshold: u32,
}

/// The three roles of a root, as public keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootRoles {
    pub root: RoleKeys,
    pub publisher: RoleKeys,
    pub log: RoleKeys,
}

impl RootRoles {
    /// The roles of `root`, each key id looked up in the keys the root lists.
    pub fn of(root: &Root) -> Result<Self, BuildError> {
        let role = |name: &'static str, role: &Role| -> Result<RoleKeys, BuildError> {
            let keys = role
                .keys
                .iter()
                .map(|id| {
                    root.keys
                        .iter()
                        .find(|key| KeyId::of(key) == *id)
                        .copied()
                        .ok_or(BuildError::UnlistedKey { role: name, id: *id })
                })
                .collect::<Result<_, _>>()?;
            Ok(RoleKeys { keys, threshold: role.threshold })
        };
        Ok(Self {
            root: role("root", &root.roles.root)?,
            publisher: role("publisher", &root.roles.publisher)?,
            log: role("log", &root.roles.log)?,
        })
    }

    /// One role.
    pub fn get(&self, role: RoleName) -> &RoleKeys {
        match role {
            RoleName::Root => &self.root,
            RoleName::Publisher => &self.publisher,
            RoleName::Log => &self.log,
        }
    }

    fn get_mut(&mut self, role: RoleName) -> &mut RoleKeys {
        match role {
            RoleName::Root => &mut self.root,
            RoleName::Publisher => &mut self.publisher,
            RoleName::Log => &mut self.log,
        }
    }

    /// The keys each role names, every key listed once (root keys first, then publisher, then
    /// log keys, in the order given), and the roles naming their keys by id.
    fn to_keys_and_roles(&self) -> (Vec<PublicKeyBytes>, Roles) {
        let mut keys: Vec<PublicKeyBytes> = Vec::new();
        let mut role = |role: &RoleKeys| {
            for key in &role.keys {
                if !keys.contains(key) {
                    keys.push(*key);
                }
            }
            Role { keys: role.keys.iter().map(KeyId::of).collect(), threshold: role.threshold }
        };
        let roles = Roles { root: role(&self.root), publisher: role(&self.publisher), log: role(&self.log) };
        (keys, roles)
    }
}

/// Everything a root states, before it is encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RootParts {
    origin: String,
    version: u64,
    previous: Option<Digest>,
    max_checkpoint_validity: u64,
    roles: RootRoles,
    witnesses: Witnesses,
    names: Vec<KeyName>,
    expires: Timestamp,
}

impl RootParts {
    /// The unsigned root; names of keys it does not list are dropped.
    fn seal(&self) -> Result<Envelope, BuildError> {
        let (keys, roles) = self.roles.to_keys_and_roles();
        let key_names =
            self.names.iter().filter(|n| keys.iter().any(|k| KeyId::of(k) == n.key)).cloned().collect();
        seal(Statement::Root(Root {
            payload_type: PayloadType::Root,
            origin: self.origin.clone(),
            version: self.version,
            expires: self.expires,
            previous: self.previous,
            max_checkpoint_validity: self.max_checkpoint_validity,
            keys,
            roles,
            witnesses: self.witnesses.keys.clone(),
            witness_groups: self.witnesses.groups.clone(),
            witness_quorum: self.witnesses.quorum.clone(),
            key_names,
        }))
    }
}

/// A root's witness policy (c2sp.org/tlog-policy): the witnesses, their groups, and the witness
/// or group whose cosignature a checkpoint needs (`None`: none).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Witnesses {
    pub keys: Vec<WitnessKey>,
    pub groups: Vec<WitnessGroup>,
    pub quorum: Option<String>,
}

/// The name of the group [`Witnesses::k_of_all`] defines.
pub const K_OF_ALL_GROUP: &str = "witnesses";

impl Witnesses {
    /// The simplest policy: `k` of all `keys` must cosign (a group named `witnesses`); `k == 0`
    /// needs no cosignature.
    pub fn k_of_all(keys: Vec<WitnessKey>, k: u32) -> Self {
        if k == 0 {
            return Self { keys, groups: Vec::new(), quorum: None };
        }
        let members = keys.iter().map(|w| w.name.clone()).collect();
        let group = WitnessGroup { name: K_OF_ALL_GROUP.to_owned(), threshold: k, members };
        Self { keys, groups: vec![group], quorum: Some(K_OF_ALL_GROUP.to_owned()) }
    }
}

/// The longest validity a checkpoint may claim under a root unless its creator says otherwise:
/// 45 days, room for a monthly delivery across the air gap.
pub const DEFAULT_MAX_CHECKPOINT_VALIDITY: u64 = 45 * 86_400;

/// The first root (version 1) of the log `origin`, as `airlock root create` writes it,
/// allowing checkpoints [`DEFAULT_MAX_CHECKPOINT_VALIDITY`]. Each root-role key holder then
/// signs it.
pub fn root(
    origin: &str,
    roles: &RootRoles,
    witnesses: &Witnesses,
    expires: Timestamp,
) -> Result<Envelope, BuildError> {
    root_named(origin, roles, witnesses, &[], expires, DEFAULT_MAX_CHECKPOINT_VALIDITY)
}

/// `root`, with a name for people for the keys it lists (names of keys it does not list are
/// dropped) and the longest validity a checkpoint may claim, in seconds.
pub fn root_named(
    origin: &str,
    roles: &RootRoles,
    witnesses: &Witnesses,
    names: &[KeyName],
    expires: Timestamp,
    max_checkpoint_validity: u64,
) -> Result<Envelope, BuildError> {
    RootParts {
        origin: origin.to_owned(),
        version: 1,
        previous: None,
        max_checkpoint_validity,
        roles: roles.clone(),
        witnesses: witnesses.clone(),
        names: names.to_vec(),
        expires,
    }
    .seal()
}

/// Root version N+1, starting from root N's content (`current`, a root envelope): same origin,
/// keys, names, witnesses, thresholds, checkpoint validity and expiry until changed, and the
/// BLAKE3 of N's payload as `previous`. The result must be signed by the root role of both N
/// and N+1.
pub fn next_root(current: &Envelope) -> Result<NextRoot, BuildError> {
    let Statement::Root(root) = Statement::decode(&current.payload_type, &current.payload)? else {
        return Err(BuildError::NotARoot(current.payload_type.clone()));
    };
    Ok(NextRoot {
        current: root.version,
        version: root.version.checked_add(1),
        parts: RootParts {
            origin: root.origin.clone(),
            version: 0,
            previous: Some(current.payload_digest()),
            max_checkpoint_validity: root.max_checkpoint_validity,
            roles: RootRoles::of(&root)?,
            witnesses: Witnesses {
                keys: root.witnesses.clone(),
                groups: root.witness_groups.clone(),
                quorum: root.witness_quorum.clone(),
            },
            names: root.key_names.clone(),
            expires: root.expires,
        },
    })
}

/// The builder [`next_root`] returns.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct NextRoot {
    current: u64,
    /// `None` when the current version is the last one `u64` can count.
    version: Option<u64>,
    parts: RootParts,
}

impl NextRoot {
    /// Adds or replaces key names (kept for keys the new root still lists).
    pub fn names(mut self, names: &[KeyName]) -> Self {
        for name in names {
            self.parts.names.retain(|n| n.key != name.key && n.name != name.name);
            self.parts.names.push(name.clone());
        }
        self
    }

    /// Replaces the witnesses and their quorum.
    pub fn witnesses(mut self, witnesses: Witnesses) -> Self {
        self.parts.witnesses = witnesses;
        self
    }

    /// States the version explicitly; [`NextRoot::build`] refuses any but the current + 1.
    pub fn version(mut self, version: u64) -> Self {
        self.version = Some(version);
        self
    }

    /// Replaces the keys and threshold of `role`.
    pub fn role(mut self, role: RoleName, keys: Vec<PublicKeyBytes>, threshold: u32) -> Self {
        *self.parts.roles.get_mut(role) = RoleKeys { keys, threshold };
        self
    }

    /// Replaces the keys of `role`, keeping its threshold.
    pub fn keys(mut self, role: RoleName, keys: Vec<PublicKeyBytes>) -> Self {
        self.parts.roles.get_mut(role).keys = keys;
        self
    }

    /// Replaces the threshold of `role`, keeping its keys.
    pub fn threshold(mut self, role: RoleName, threshold: u32) -> Self {
        self.parts.roles.get_mut(role).threshold = threshold;
        self
    }

    /// Replaces the expiry.
    pub fn expires(mut self, expires: Timestamp) -> Self {
        self.parts.expires = expires;
        self
    }

    /// Replaces the longest validity a checkpoint may claim, in seconds.
    pub fn max_checkpoint_validity(mut self, secs: u64) -> Self {
        self.parts.max_checkpoint_validity = secs;
        self
    }

    /// Adds `key` to `role` (nothing when the role already holds it).
    pub fn add_key(mut self, role: RoleName, key: PublicKeyBytes) -> Self {
        let keys = &mut self.parts.roles.get_mut(role).keys;
        if !keys.contains(&key) {
            keys.push(key);
        }
        self
    }

    /// Removes the key with id `id` from every role; false when no role held it.
    pub fn remove_key(&mut self, id: &KeyId) -> bool {
        let mut removed = false;
        for role in [RoleName::Root, RoleName::Publisher, RoleName::Log] {
            let keys = &mut self.parts.roles.get_mut(role).keys;
            let before = keys.len();
            keys.retain(|key| KeyId::of(key) != *id);
            removed |= keys.len() != before;
        }
        removed
    }

    /// The roles the next root will define, as changed so far.
    pub fn roles(&self) -> &RootRoles {
        &self.parts.roles
    }

    /// The unsigned next root. Keys no role names any more are no longer listed.
    pub fn build(self) -> Result<Envelope, BuildError> {
        let expected = self.current.checked_add(1);
        let version = match self.version {
            Some(version) if Some(version) == expected => version,
            requested => {
                return Err(BuildError::NotNext {
                    current: self.current,
                    requested: requested.unwrap_or(self.current),
                })
            }
        };
        RootParts { version, ..self.parts }.seal()
    }
}

#[cfg(test)]
mod tests {
    use airlock_keys::{sign_envelope, SecretKey, TrustedRoot};
    use airlock_proto::{Digest, Sha256};

    use super::*;

    fn decode(envelope: &Envelope) -> Statement {
        assert!(envelope.signatures.is_empty(), "builders return unsigned envelopes");
        Statement::decode(&envelope.payload_type, &envelope.payload).unwrap()
    }

    fn name(text: &str) -> PackageName {
        PackageName::new(Kind::Wheel, text).unwrap()
    }

    fn digests(bytes: &[u8]) -> FileDigests {
        FileDigests { size: bytes.len() as u64, blake3: Digest::of(bytes), sha256: Sha256([7; 32]) }
    }

    fn public(key: &SecretKey) -> PublicKeyBytes {
        PublicKeyBytes(key.public().to_bytes())
    }

    #[test]
    fn release_of_one_file_decodes_back() {
        let metadata = Metadata { summary: Some("a pack".into()), ..Metadata::default() };
        let envelope = release_envelope(
            Kind::Wheel,
            name("demo"),
            Version::new("1.0").unwrap(),
            (FileName::new("demo-1.0-py3-none-any.whl").unwrap(), digests(b"demo")),
            metadata.clone(),
            1_700_000_000,
        )
        .unwrap();
        assert_eq!(envelope.payload_type, PayloadType::Release.as_str());
        let Statement::Release(release) = decode(&envelope) else { panic!("not a release") };
        assert_eq!(
            (release.kind, release.name.as_str(), release.version.as_str()),
            (Kind::Wheel, "demo", "1.0")
        );
        assert_eq!(release.published_at, 1_700_000_000);
        assert_eq!(release.metadata, metadata);
        assert_eq!(release.files.len(), 1);
        assert_eq!(release.files[0].filename.as_str(), "demo-1.0-py3-none-any.whl");
        assert_eq!((release.files[0].size, release.files[0].blake3), (4, Digest::of(b"demo")));
        assert_eq!(release.files[0].sha256, Sha256([7; 32]));
    }

    #[test]
    fn release_of_several_files_keeps_their_order_and_refuses_a_name_twice() {
        let files = vec![
            file_entry(FileName::new("a.whl").unwrap(), digests(b"a")),
            file_entry(FileName::new("b.whl").unwrap(), digests(b"b")),
        ];
        let envelope = release(
            Kind::Node,
            PackageName::new(Kind::Node, "impact-pack").unwrap(),
            Version::new("2.0").unwrap(),
            files.clone(),
            Metadata::default(),
            5,
        )
        .unwrap();
        let Statement::Release(decoded) = decode(&envelope) else { panic!("not a release") };
        assert_eq!(decoded.files, files);
        assert_eq!(decoded.kind, Kind::Node);

        let twice = vec![files[0].clone(), files[0].clone()];
        let refused =
            release(Kind::Wheel, name("demo"), Version::new("1").unwrap(), twice, Metadata::default(), 5);
        assert!(matches!(refused, Err(BuildError::Statement(_))), "{refused:?}");
        let none =
            release(Kind::Wheel, name("demo"), Version::new("1").unwrap(), vec![], Metadata::default(), 5);
        assert!(none.is_err());
    }

    #[test]
    fn status_statements_carry_action_and_reason() {
        for action in [StatusAction::Yank, StatusAction::Unyank, StatusAction::Revoke] {
            let envelope = status(
                Kind::Wheel,
                name("demo"),
                Version::new("1.0").unwrap(),
                action,
                "CVE-2024-0001",
                42,
                Some(7),
            )
            .unwrap();
            assert_eq!(envelope.payload_type, PayloadType::Status.as_str());
            let Statement::Status(decoded) = decode(&envelope) else { panic!("not a status") };
            assert_eq!(decoded.action, action);
            assert_eq!(decoded.reason, "CVE-2024-0001");
            assert_eq!(decoded.supersedes, Some(7));
            assert_eq!(
                (decoded.name.as_str(), decoded.version.as_str(), decoded.issued_at),
                ("demo", "1.0", 42)
            );
        }
        let control = status(
            Kind::Wheel,
            name("demo"),
            Version::new("1.0").unwrap(),
            StatusAction::Yank,
            "bad\u{7}",
            1,
            None,
        );
        assert!(control.is_err(), "a reason with control characters must be refused");
    }

    #[test]
    fn channel_statement_names_the_release_and_channel() {
        let envelope = channel(
            ChannelName::new("prod").unwrap(),
            ChannelAction::Add,
            Kind::Wheel,
            name("demo"),
            Version::new("1.0").unwrap(),
            99,
            None,
        )
        .unwrap();
        assert_eq!(envelope.payload_type, PayloadType::Channel.as_str());
        let Statement::Channel(decoded) = decode(&envelope) else { panic!("not a channel statement") };
        assert_eq!(decoded.channel.as_str(), "prod");
        assert_eq!(
            (decoded.kind, decoded.name.as_str(), decoded.version.as_str()),
            (Kind::Wheel, "demo", "1.0")
        );
        assert_eq!(decoded.issued_at, 99);
    }

    struct Keys {
        root: SecretKey,
        alice: SecretKey,
        bob: SecretKey,
        log: SecretKey,
    }

    fn keys() -> Keys {
        Keys {
            root: SecretKey::generate(),
            alice: SecretKey::generate(),
            bob: SecretKey::generate(),
            log: SecretKey::generate(),
        }
    }

    fn first(keys: &Keys) -> (Envelope, Root) {
        let roles = RootRoles {
            root: RoleKeys { keys: vec![public(&keys.root)], threshold: 1 },
            publisher: RoleKeys { keys: vec![public(&keys.alice), public(&keys.bob)], threshold: 2 },
            log: RoleKeys { keys: vec![public(&keys.log)], threshold: 1 },
        };
        let envelope =
            root("registry.example.internal", &roles, &Witnesses::default(), 2_000_000_000).unwrap();
        let Statement::Root(decoded) = decode(&envelope) else { panic!("not a root") };
        (envelope, decoded)
    }

    #[test]
    fn first_root_lists_each_key_once_and_names_roles_by_id() {
        let keys = keys();
        let (mut envelope, decoded) = first(&keys);
        assert_eq!(
            (decoded.origin.as_str(), decoded.version, decoded.expires),
            ("registry.example.internal", 1, 2_000_000_000)
        );
        let listed = [&keys.root, &keys.alice, &keys.bob, &keys.log].map(public);
        assert_eq!(decoded.keys, listed);
        assert_eq!(decoded.roles.publisher.keys, vec![keys.alice.public().id(), keys.bob.public().id()]);
        assert_eq!(decoded.roles.publisher.threshold, 2);
        assert_eq!(RootRoles::of(&decoded).unwrap().get(RoleName::Log).keys, vec![public(&keys.log)]);
        // A key in two roles is listed once.
        let shared = RootRoles {
            root: RoleKeys { keys: vec![public(&keys.root)], threshold: 1 },
            publisher: RoleKeys { keys: vec![public(&keys.root)], threshold: 1 },
            log: RoleKeys { keys: vec![public(&keys.log)], threshold: 1 },
        };
        let Statement::Root(shared) = decode(&root("o", &shared, &Witnesses::default(), 1).unwrap()) else {
            panic!()
        };
        assert_eq!(shared.keys.len(), 2);
        // A threshold no set of keys can meet is refused.
        let mut impossible = RootRoles::of(&decoded).unwrap();
        impossible.log.threshold = 2;
        assert!(root("o", &impossible, &Witnesses::default(), 1).is_err());
        // Signed by its root key, it pins.
        sign_envelope(&mut envelope, &keys.root);
        TrustedRoot::pin(&envelope.to_bytes().unwrap()).unwrap();
    }

    #[test]
    fn next_root_starts_from_the_current_and_replaces_what_it_is_told() {
        let keys = keys();
        let (mut first_envelope, current) = first(&keys);
        let carol = SecretKey::generate();
        let new_root = SecretKey::generate();

        let unchanged = next_root(&first_envelope).unwrap().build().unwrap();
        let Statement::Root(same) = decode(&unchanged) else { panic!("not a root") };
        let previous = Some(first_envelope.payload_digest());
        assert_eq!(same, Root { version: 2, previous, ..current.clone() });

        let mut next = next_root(&first_envelope)
            .unwrap()
            .role(RoleName::Publisher, vec![public(&keys.alice), public(&carol)], 1)
            .keys(RoleName::Root, vec![public(&new_root)])
            .threshold(RoleName::Publisher, 2)
            .add_key(RoleName::Log, public(&carol))
            .max_checkpoint_validity(30 * 86_400)
            .expires(2_100_000_000);
        assert!(next.remove_key(&carol.public().id()), "carol held two roles");
        assert!(!next.remove_key(&carol.public().id()), "and now none");
        next = next.add_key(RoleName::Publisher, public(&carol));
        assert_eq!(next.roles().get(RoleName::Publisher).keys, vec![public(&keys.alice), public(&carol)]);
        let mut envelope = next.build().unwrap();
        let Statement::Root(decoded) = decode(&envelope) else { panic!("not a root") };
        assert_eq!(
            (decoded.version, decoded.expires, decoded.origin.as_str()),
            (2, 2_100_000_000, current.origin.as_str())
        );
        assert_eq!(decoded.roles.publisher.keys, vec![keys.alice.public().id(), carol.public().id()]);
        assert_eq!(decoded.roles.publisher.threshold, 2);
        assert_eq!(decoded.roles.root.keys, vec![new_root.public().id()]);
        assert_eq!(decoded.roles.log, current.roles.log);
        assert_eq!((decoded.previous, decoded.max_checkpoint_validity), (previous, 30 * 86_400));
        // The old root key and bob are no longer listed.
        assert_eq!(decoded.keys, [&new_root, &keys.alice, &carol, &keys.log].map(public));

        // Signed by the old and the new root role, the verifier walks to it.
        sign_envelope(&mut first_envelope, &keys.root);
        let pinned = TrustedRoot::pin(&first_envelope.to_bytes().unwrap()).unwrap();
        sign_envelope(&mut envelope, &keys.root);
        sign_envelope(&mut envelope, &new_root);
        let walked = pinned.next(&envelope.to_bytes().unwrap()).unwrap();
        assert_eq!(walked.root().version, 2);
    }

    #[test]
    fn next_root_refuses_a_version_that_does_not_follow() {
        let keys = keys();
        let (envelope, current) = first(&keys);
        assert!(next_root(&envelope).unwrap().version(2).build().is_ok());
        for version in [0, 1, 3, u64::MAX] {
            let refused = next_root(&envelope).unwrap().version(version).build();
            assert!(
                matches!(refused, Err(BuildError::NotNext { current: 1, requested }) if requested == version),
                "version {version}: {refused:?}"
            );
        }
        let wrap = |root: Root| {
            let (payload_type, payload) = Statement::Root(root).encode().unwrap();
            Envelope::unsigned(payload_type.as_str(), payload)
        };
        let last = Root { version: u64::MAX, previous: Some(Digest::of(b"n-1")), ..current.clone() };
        assert!(matches!(next_root(&wrap(last)).unwrap().build(), Err(BuildError::NotNext { .. })));
        // A statement that is not a root is not a base for the next one.
        let release = release_envelope(
            Kind::Wheel,
            name("demo"),
            Version::new("1.0").unwrap(),
            (FileName::new("demo-1.0-py3-none-any.whl").unwrap(), digests(b"demo")),
            Metadata::default(),
            1,
        )
        .unwrap();
        assert!(matches!(next_root(&release), Err(BuildError::NotARoot(_))));
    }
}
