//! Statement payloads (the log's leaves) and the checkpoint.
//!
//! Every payload carries its own `type` field, which must equal the envelope's payload type:
//! a valid `status` payload can never be presented as a `release` (PAE binds the type, and the
//! payload says it again). `Statement::decode` is the only way to read a payload; it applies the
//! strict codec and then each type's structural checks.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::bytes::{KeyId, PublicKeyBytes, Sha256};
use crate::codec::{self, CodecError};
use crate::digest::Digest;
use crate::names::{ChannelName, FileName, Kind, NameError, PackageName, Version};
use crate::witness_policy::{WitnessGroup, WitnessKey, WitnessPolicy};
use crate::Timestamp;

/// Largest encoded payload accepted.
pub const MAX_PAYLOAD_BYTES: usize = 512 * 1024;
/// Most keys a root may list.
pub const MAX_ROOT_KEYS: usize = 64;
/// Most files one release may hold (a release with every field at its cap still fits the log's
/// 64 KiB entry limit; `every_statement_at_its_caps_fits_one_log_entry` checks it).
pub const MAX_RELEASE_FILES: usize = 64;
/// Most dependency lines one release may declare.
pub const MAX_DEPENDENCIES: usize = 512;
/// Longest free-text metadata field.
pub const MAX_TEXT_LEN: usize = 4096;
/// Most bytes of text a release's metadata may hold in all (every field and dependency line).
pub const MAX_METADATA_TEXT_BYTES: usize = 16 * 1024;
/// Longest origin (log identity) string.
pub const MAX_ORIGIN_LEN: usize = 128;
/// The most a root may allow a checkpoint to claim (`Root::max_checkpoint_validity`): 400 days.
pub const MAX_CHECKPOINT_VALIDITY: u64 = 400 * 86_400;

/// The payload types airlock signs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PayloadType {
    #[serde(rename = "airlock.root.v3")]
    Root,
    #[serde(rename = "airlock.release.v2")]
    Release,
    #[serde(rename = "airlock.status.v2")]
    Status,
    #[serde(rename = "airlock.channel.v2")]
    Channel,
}

impl PayloadType {
    /// All payload types.
    pub const ALL: [PayloadType; 4] = [Self::Root, Self::Release, Self::Status, Self::Channel];

    /// The string used in envelopes and in the payload's `type` field.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Root => "airlock.root.v3",
            Self::Release => "airlock.release.v2",
            Self::Status => "airlock.status.v2",
            Self::Channel => "airlock.channel.v2",
        }
    }

    /// Parses an envelope's payload type.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == text)
    }
}

impl fmt::Display for PayloadType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a payload was refused.
#[derive(Debug, thiserror::Error)]
pub enum StatementError {
    #[error("unknown payload type {0:?}")]
    UnknownType(String),
    #[error("payload says it is {inner} but the envelope says {outer}")]
    TypeMismatch { outer: String, inner: PayloadType },
    #[error(transparent)]
    Codec(#[from] CodecError),
    #[error(transparent)]
    Name(#[from] NameError),
    #[error("invalid {what}: {detail}")]
    Invalid { what: &'static str, detail: String },
}

fn invalid(what: &'static str, detail: impl Into<String>) -> StatementError {
    StatementError::Invalid { what, detail: detail.into() }
}

/// A role: which keys may sign for it, and how many distinct ones must.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Role {
    pub keys: Vec<KeyId>,
    pub threshold: u32,
}

/// The three roles a root defines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Roles {
    /// Offline keys that sign the next root.
    pub root: Role,
    /// Reviewers who sign releases, status changes and channel moves.
    pub publisher: Role,
    /// The server's online key that signs checkpoints.
    pub log: Role,
}

/// The trust root: which keys hold which role, from `version` until `expires`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Root {
    #[serde(rename = "type")]
    pub payload_type: PayloadType,
    /// The log identity; every checkpoint names it.
    pub origin: String,
    pub version: u64,
    pub expires: Timestamp,
    /// BLAKE3 of the payload of root version N-1: the roots form a hash chain back to version
    /// 1, so a site pinned on any version authenticates the roots before it. Present exactly
    /// when the version is above 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<Digest>,
    /// The longest validity (expires-at minus issued-at, in seconds) any checkpoint may claim
    /// under this root: online checkpoints are short-lived, a bundle's may last the time
    /// between deliveries, never longer than this.
    pub max_checkpoint_validity: u64,
    pub keys: Vec<PublicKeyBytes>,
    pub roles: Roles,
    /// Witnesses that cosign checkpoints (c2sp.org/tlog-cosignature), each under its own name.
    /// This and the next two fields are the root's witness policy (c2sp.org/tlog-policy, see
    /// `witness_policy`); each is absent from the encoding when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub witnesses: Vec<WitnessKey>,
    /// Groups of witnesses and earlier groups, each with its threshold.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub witness_groups: Vec<WitnessGroup>,
    /// The witness or group whose cosignature a client, mirror or bundle import needs before it
    /// accepts a checkpoint; absent: none (the log's signature alone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub witness_quorum: Option<String>,
    /// A name for people for each listed key (who holds it), shown in history and reports.
    /// Absent from the encoding when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub key_names: Vec<KeyName>,
}

/// The name of one of a root's keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyName {
    pub key: KeyId,
    pub name: String,
}

/// Longest key name.
pub const MAX_KEY_NAME_LEN: usize = 64;

/// One file of a release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    pub filename: FileName,
    pub size: u64,
    pub blake3: Digest,
    pub sha256: Sha256,
}

/// What is known about a release beyond its files.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    pub summary: Option<String>,
    pub requires_python: Option<String>,
    pub dependencies: Vec<String>,
    pub comfyui: Option<String>,
    pub source_url: Option<String>,
    pub source_commit: Option<String>,
    /// The license the release declares (an SPDX expression or the license's name).
    pub license: Option<String>,
    /// The BLAKE3 of the scan report (a stored blob) the server re-made and matched at publish.
    pub scan_report: Option<Digest>,
    /// Findings of that report that the approvers accept, by rule, file and line: the server's
    /// scan policy admits a release with findings it would otherwise refuse only when each is
    /// listed here, in the statement the approvers sign.
    pub acknowledged_findings: Vec<FindingRef>,
}

/// One scan finding, named by rule, file and line.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct FindingRef {
    pub rule: String,
    pub file: String,
    pub line: Option<u32>,
}

impl fmt::Display for FindingRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{} at {}:{line}", self.rule, self.file),
            None if self.file.is_empty() => write!(f, "{}", self.rule),
            None => write!(f, "{} at {}", self.rule, self.file),
        }
    }
}

/// Most findings one release may acknowledge.
pub const MAX_ACKNOWLEDGED_FINDINGS: usize = 256;

/// A release: kind, name, version and the files it holds. Immutable once logged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Release {
    #[serde(rename = "type")]
    pub payload_type: PayloadType,
    pub kind: Kind,
    pub name: PackageName,
    pub version: Version,
    pub files: Vec<FileEntry>,
    pub metadata: Metadata,
    pub published_at: Timestamp,
}

/// What a status statement does to a release.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StatusAction {
    Yank,
    Unyank,
    Revoke,
}

/// What a channel statement does: add a release to a channel, or remove it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChannelAction {
    Add,
    Remove,
}

/// Yank, unyank or revoke a logged release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    #[serde(rename = "type")]
    pub payload_type: PayloadType,
    pub kind: Kind,
    pub name: PackageName,
    pub version: Version,
    pub action: StatusAction,
    pub reason: String,
    pub issued_at: Timestamp,
    /// The leaf of the latest status statement of this release that this one follows; `None`
    /// for the first. A statement signed before a newer one was logged names a stale leaf and
    /// is refused, so statuses cannot be replayed out of order.
    pub supersedes: Option<u64>,
}

/// Add a logged release to a named channel, or remove it. A channel holds a set of releases
/// (several versions of one name may be in it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelStatement {
    #[serde(rename = "type")]
    pub payload_type: PayloadType,
    pub channel: ChannelName,
    pub action: ChannelAction,
    pub kind: Kind,
    pub name: PackageName,
    pub version: Version,
    pub issued_at: Timestamp,
    /// The leaf of the latest channel statement for this channel, kind and name that this one
    /// follows; `None` for the first. A stale one is refused, so a channel cannot be moved back
    /// by a statement signed earlier.
    pub supersedes: Option<u64>,
}

/// A decoded log statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Statement {
    Root(Root),
    Release(Release),
    Status(Status),
    Channel(ChannelStatement),
}

impl Statement {
    /// Decodes `payload` as the type named by `payload_type` (the envelope's), and checks that
    /// the payload names the same type and is structurally valid.
    pub fn decode(payload_type: &str, payload: &[u8]) -> Result<Self, StatementError> {
        let outer = PayloadType::parse(payload_type)
            .ok_or_else(|| StatementError::UnknownType(payload_type.to_owned()))?;
        let statement = match outer {
            PayloadType::Root => Self::Root(codec::decode("root payload", payload, MAX_PAYLOAD_BYTES)?),
            PayloadType::Release => {
                Self::Release(codec::decode("release payload", payload, MAX_PAYLOAD_BYTES)?)
            }
            PayloadType::Status => Self::Status(codec::decode("status payload", payload, MAX_PAYLOAD_BYTES)?),
            PayloadType::Channel => {
                Self::Channel(codec::decode("channel payload", payload, MAX_PAYLOAD_BYTES)?)
            }
        };
        let inner = statement.payload_type();
        if inner != outer {
            return Err(StatementError::TypeMismatch { outer: payload_type.to_owned(), inner });
        }
        statement.check()?;
        Ok(statement)
    }

    /// Encodes the payload and returns it with its payload type.
    pub fn encode(&self) -> Result<(PayloadType, Vec<u8>), CodecError> {
        let bytes = match self {
            Self::Root(v) => codec::encode("root payload", v)?,
            Self::Release(v) => codec::encode("release payload", v)?,
            Self::Status(v) => codec::encode("status payload", v)?,
            Self::Channel(v) => codec::encode("channel payload", v)?,
        };
        Ok((self.payload_type(), bytes))
    }

    /// The type the payload names itself.
    pub fn payload_type(&self) -> PayloadType {
        match self {
            Self::Root(v) => v.payload_type,
            Self::Release(v) => v.payload_type,
            Self::Status(v) => v.payload_type,
            Self::Channel(v) => v.payload_type,
        }
    }

    fn check(&self) -> Result<(), StatementError> {
        match self {
            Self::Root(root) => root.check(),
            Self::Release(release) => release.check(),
            Self::Status(status) => {
                PackageName::new(status.kind, status.name.as_str())?;
                check_text("status reason", &status.reason)
            }
            Self::Channel(channel) => {
                PackageName::new(channel.kind, channel.name.as_str())?;
                Ok(())
            }
        }
    }
}

fn check_text(what: &'static str, text: &str) -> Result<(), StatementError> {
    if text.len() > MAX_TEXT_LEN {
        return Err(invalid(what, format!("longer than {MAX_TEXT_LEN} bytes")));
    }
    if text.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return Err(invalid(what, "contains control characters"));
    }
    Ok(())
}

/// Checks an origin string: 1-128 printable ASCII characters without spaces or `+` (the origin
/// is also the key name of the log's checkpoint signatures, and key names exclude both).
pub fn check_origin(origin: &str) -> Result<(), StatementError> {
    if origin.is_empty()
        || origin.len() > MAX_ORIGIN_LEN
        || !origin.bytes().all(|b| b.is_ascii_graphic() && b != b'+')
    {
        return Err(invalid(
            "origin",
            format!("{origin:?} must be 1-{MAX_ORIGIN_LEN} printable ASCII characters other than '+'"),
        ));
    }
    Ok(())
}

impl Root {
    /// Structural checks: no key listed twice, role keys are listed keys, thresholds possible.
    /// (Key validity — weak keys — is checked by `airlock-keys` when a root is loaded.)
    pub fn check(&self) -> Result<(), StatementError> {
        check_origin(&self.origin)?;
        if self.version == 0 {
            return Err(invalid("root", "version must be at least 1"));
        }
        if (self.version == 1) != self.previous.is_none() {
            return Err(invalid(
                "root",
                "must name the previous root's payload digest exactly when its version is above 1",
            ));
        }
        if self.max_checkpoint_validity == 0 || self.max_checkpoint_validity > MAX_CHECKPOINT_VALIDITY {
            return Err(invalid(
                "root",
                format!(
                    "max checkpoint validity {} s is outside 1..={MAX_CHECKPOINT_VALIDITY} s",
                    self.max_checkpoint_validity
                ),
            ));
        }
        if self.keys.len() > MAX_ROOT_KEYS {
            return Err(invalid(
                "root",
                format!("lists {} keys, over the cap of {MAX_ROOT_KEYS}", self.keys.len()),
            ));
        }
        let mut ids = BTreeSet::new();
        for key in &self.keys {
            if !ids.insert(KeyId::of(key)) {
                return Err(invalid("root", format!("public key {key} is listed twice")));
            }
        }
        for (name, role) in self.roles.named() {
            let mut seen = BTreeSet::new();
            for id in &role.keys {
                if !ids.contains(id) {
                    return Err(invalid(
                        "root",
                        format!("role {name} names key {id}, which the root does not list"),
                    ));
                }
                if !seen.insert(*id) {
                    return Err(invalid("root", format!("role {name} names key {id} twice")));
                }
            }
            if role.threshold == 0 || role.threshold as usize > role.keys.len() {
                return Err(invalid(
                    "root",
                    format!("role {name} has threshold {} with {} keys", role.threshold, role.keys.len()),
                ));
            }
        }
        self.check_witnesses()
    }

    fn check_witnesses(&self) -> Result<(), StatementError> {
        self.witness_policy().check().map_err(|reason| invalid("root", reason))?;
        self.check_key_names()
    }

    fn check_key_names(&self) -> Result<(), StatementError> {
        let listed: BTreeSet<KeyId> = self.keys.iter().map(KeyId::of).collect();
        let (mut keys, mut names) = (BTreeSet::new(), BTreeSet::new());
        for entry in &self.key_names {
            let valid = !entry.name.is_empty()
                && entry.name.len() <= MAX_KEY_NAME_LEN
                && entry.name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-@".contains(&b));
            if !valid {
                return Err(invalid(
                    "root",
                    format!(
                        "key name {:?} is not 1-{MAX_KEY_NAME_LEN} letters, digits, '.', '_', '-' or '@'",
                        entry.name
                    ),
                ));
            }
            if !listed.contains(&entry.key) {
                return Err(invalid(
                    "root",
                    format!("key name {} is for key {}, which the root does not list", entry.name, entry.key),
                ));
            }
            if !keys.insert(entry.key) || !names.insert(entry.name.as_str()) {
                return Err(invalid("root", format!("key name {} is given twice", entry.name)));
            }
        }
        Ok(())
    }

    /// The name given to `key`, if any.
    pub fn key_name(&self, key: &KeyId) -> Option<&str> {
        self.key_names.iter().find(|n| n.key == *key).map(|n| n.name.as_str())
    }

    /// The root's witness policy.
    pub fn witness_policy(&self) -> WitnessPolicy<'_> {
        WitnessPolicy {
            witnesses: &self.witnesses,
            groups: &self.witness_groups,
            quorum: self.witness_quorum.as_deref(),
        }
    }
}

impl Roles {
    /// The roles with their names, for messages.
    pub fn named(&self) -> [(&'static str, &Role); 3] {
        [("root", &self.root), ("publisher", &self.publisher), ("log", &self.log)]
    }
}

/// The latest time a statement may state: 9999-12-31T23:59:59Z (later times have no RFC 3339
/// form, which the Python index and lock files need).
pub const MAX_TIMESTAMP: Timestamp = 253_402_300_799;

impl Release {
    fn check(&self) -> Result<(), StatementError> {
        PackageName::new(self.kind, self.name.as_str())?;
        if self.published_at > MAX_TIMESTAMP {
            return Err(invalid(
                "release",
                format!("published_at {} is after the year 9999", self.published_at),
            ));
        }
        if self.files.is_empty() || self.files.len() > MAX_RELEASE_FILES {
            return Err(invalid("release", format!("must hold 1 to {MAX_RELEASE_FILES} files")));
        }
        let mut names = BTreeSet::new();
        for file in &self.files {
            if !names.insert(file.filename.as_str()) {
                return Err(invalid("release", format!("file {} is listed twice", file.filename)));
            }
        }
        let m = &self.metadata;
        if m.dependencies.len() > MAX_DEPENDENCIES {
            return Err(invalid("release", format!("over {MAX_DEPENDENCIES} dependencies")));
        }
        if m.acknowledged_findings.len() > MAX_ACKNOWLEDGED_FINDINGS {
            return Err(invalid(
                "release",
                format!("acknowledges over {MAX_ACKNOWLEDGED_FINDINGS} findings"),
            ));
        }
        let mut total = 0;
        for text in [&m.summary, &m.requires_python, &m.comfyui, &m.source_url, &m.source_commit, &m.license]
            .into_iter()
            .flatten()
            .chain(&m.dependencies)
            .chain(m.acknowledged_findings.iter().flat_map(|f| [&f.rule, &f.file]))
        {
            check_text("release metadata", text)?;
            total += text.len();
        }
        if total > MAX_METADATA_TEXT_BYTES {
            return Err(invalid(
                "release",
                format!("metadata holds {total} bytes of text, over the cap of {MAX_METADATA_TEXT_BYTES}"),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn release() -> Release {
        Release {
            payload_type: PayloadType::Release,
            kind: Kind::Wheel,
            name: PackageName::new(Kind::Wheel, "demo-pkg").unwrap(),
            version: Version::new("1.0.0").unwrap(),
            files: vec![FileEntry {
                filename: FileName::new("demo_pkg-1.0.0-py3-none-any.whl").unwrap(),
                size: 3,
                blake3: Digest::of(b"abc"),
                sha256: Sha256([0; 32]),
            }],
            metadata: Metadata::default(),
            published_at: 1_700_000_000,
        }
    }

    fn status() -> Status {
        Status {
            payload_type: PayloadType::Status,
            kind: Kind::Wheel,
            name: PackageName::new(Kind::Wheel, "demo-pkg").unwrap(),
            version: Version::new("1.0.0").unwrap(),
            action: StatusAction::Yank,
            reason: "broken".into(),
            issued_at: 1,
            supersedes: None,
        }
    }

    #[test]
    fn release_round_trips() {
        let statement = Statement::Release(release());
        let (ty, bytes) = statement.encode().unwrap();
        assert_eq!(Statement::decode(ty.as_str(), &bytes).unwrap(), statement);
    }

    #[test]
    fn payload_type_confusion_status_as_release_rejected() {
        let (_, bytes) = Statement::Status(status()).encode().unwrap();
        let err = Statement::decode(PayloadType::Release.as_str(), &bytes).unwrap_err();
        assert!(matches!(err, StatementError::Codec(_)), "{err}");
        // A release payload whose own type field lies is refused too.
        let mut lying = release();
        lying.payload_type = PayloadType::Status;
        let bytes = codec::encode("x", &lying).unwrap();
        assert!(Statement::decode(PayloadType::Release.as_str(), &bytes).is_err());
    }

    #[test]
    fn non_normalised_wheel_name_in_release_rejected() {
        #[derive(Serialize)]
        struct Raw<'a> {
            #[serde(rename = "type")]
            payload_type: PayloadType,
            kind: Kind,
            name: &'a str,
            version: &'a str,
            files: &'a [FileEntry],
            metadata: Metadata,
            published_at: u64,
        }
        let base = release();
        for name in ["Demo_Pkg", "demo_pkg", "../x", "demo/pkg"] {
            let raw = Raw {
                payload_type: PayloadType::Release,
                kind: Kind::Wheel,
                name,
                version: "1.0.0",
                files: &base.files,
                metadata: Metadata::default(),
                published_at: 1,
            };
            let bytes = codec::encode("raw", &raw).unwrap();
            assert!(Statement::decode(PayloadType::Release.as_str(), &bytes).is_err(), "accepted {name}");
        }
    }

    #[test]
    fn release_with_duplicate_file_names_rejected() {
        let mut r = release();
        r.files.push(r.files[0].clone());
        let (ty, bytes) = Statement::Release(r).encode().unwrap();
        assert!(Statement::decode(ty.as_str(), &bytes).is_err());
    }
}
