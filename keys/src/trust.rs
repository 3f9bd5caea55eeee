//! Trusted roots: loading the pinned root and walking to the next version.

use std::collections::BTreeMap;

use airlock_proto::{CodecError, Digest, Envelope, KeyId, Role, Root, Statement, StatementError, Timestamp};

use crate::keyfile::{KeyError, PublicKey};
use crate::threshold::{check_threshold, ThresholdError};
use crate::verified::Verified;

/// The roles a root defines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoleName {
    Root,
    Publisher,
    Log,
}

impl RoleName {
    /// The role's name, for messages.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Root => "root",
            Self::Publisher => "publisher",
            Self::Log => "log",
        }
    }
}

/// Why a root was refused.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error("root envelope: {0}")]
    Codec(#[from] CodecError),
    #[error("root payload: {0}")]
    Statement(#[from] StatementError),
    #[error("expected a root statement, found {0}")]
    NotARoot(String),
    #[error("root lists an unusable public key {key}: {source}")]
    BadKey { key: String, source: KeyError },
    #[error("root version {found} does not follow version {current} (must be exactly {})", .current.checked_add(1).map_or_else(|| "one more, and none can follow the last version".to_owned(), |v| v.to_string()))]
    WrongVersion { current: u64, found: u64 },
    #[error("root version {version} is not signed by the {which} keys: {source}")]
    Signatures { version: u64, which: &'static str, source: ThresholdError },
    #[error("root version {version} names origin {found:?}, expected {expected:?}")]
    OriginChanged { version: u64, expected: String, found: String },
    #[error("root version {version} names previous root payload {}, but version {} has payload {expected}: the roots do not form one hash chain", .found.map_or_else(|| "none".to_owned(), |d| d.to_string()), .version.saturating_sub(1))]
    BrokenChain { version: u64, expected: Digest, found: Option<Digest> },
}

/// A root whose keys parsed (no weak keys) and whose signatures met its thresholds. The only
/// ways to get one are [`TrustedRoot::pin`] and [`TrustedRoot::next`], which check signatures.
#[derive(Debug, Clone)]
pub struct TrustedRoot {
    root: Root,
    keys: BTreeMap<KeyId, PublicKey>,
    /// The witnesses the root names, keys parsed (no weak keys).
    witnesses: Vec<(String, PublicKey)>,
    envelope_bytes: Vec<u8>,
    /// BLAKE3 of the payload: what the next root names as `previous`.
    payload_digest: Digest,
}

/// A root statement that decoded and whose keys parsed, but whose signatures nobody checked.
/// For tools that show, sign or inspect a root before it is complete; nothing may trust it.
#[derive(Debug, Clone)]
pub struct UnverifiedRoot(TrustedRoot);

impl UnverifiedRoot {
    /// Decodes and structurally checks a root without checking any signature.
    pub fn parse(envelope_bytes: &[u8]) -> Result<Self, TrustError> {
        TrustedRoot::decode(envelope_bytes).map(Self)
    }

    /// The root statement (unverified).
    pub fn root(&self) -> &Root {
        &self.0.root
    }

    /// Whether `key` is one of `role`'s keys in this (unverified) root.
    pub fn authorises(&self, key: &PublicKey, role: RoleName) -> bool {
        self.0.authorises(key, role)
    }

    /// Checks that `envelope` carries a threshold of `role`'s signatures of this root.
    pub fn check_role(&self, envelope: &Envelope, role: RoleName) -> Result<(), ThresholdError> {
        self.0.check_role(envelope, role)
    }
}

impl TrustedRoot {
    /// Loads a root the operator pins (a root file): it must be a well-formed root whose own
    /// root-role threshold signed it.
    pub fn pin(envelope_bytes: &[u8]) -> Result<Verified<Self>, TrustError> {
        let candidate = Self::decode(envelope_bytes)?;
        let envelope = Envelope::from_bytes(envelope_bytes)?;
        candidate.check_signed_by(&envelope, &candidate, "its own root")?;
        Ok(Verified::new(candidate))
    }

    /// The newest root reachable from `self` through `chain` (root envelopes, oldest first, as a
    /// registry serves them): each one newer than the last reached must verify as its next root;
    /// older ones are skipped. `self` when nothing newer is offered.
    pub fn walk(&self, chain: &[Vec<u8>]) -> Result<Verified<Self>, TrustError> {
        let mut path = self.walk_path(chain)?;
        Ok(Verified::new(path.pop().unwrap_or_else(|| self.clone())))
    }

    /// Every root on the way `walk` takes: `self`, then each newer root reached, oldest first.
    pub fn walk_path(&self, chain: &[Vec<u8>]) -> Result<Vec<Self>, TrustError> {
        let mut path = vec![self.clone()];
        for envelope in chain {
            let Ok(candidate) = Self::decode(envelope) else { continue };
            let last = path.last().unwrap_or(self);
            if candidate.root.version <= last.root.version {
                continue;
            }
            let next = last.next(envelope)?.into_inner();
            path.push(next);
        }
        Ok(path)
    }

    /// Verifies `envelope_bytes` as the successor of `self`: version exactly N+1, same origin,
    /// naming N's payload digest as `previous`, signed by a threshold of N's root keys and of
    /// its own.
    pub fn next(&self, envelope_bytes: &[u8]) -> Result<Verified<Self>, TrustError> {
        let candidate = Self::decode(envelope_bytes)?;
        if self.root.version.checked_add(1) != Some(candidate.root.version) {
            return Err(TrustError::WrongVersion {
                current: self.root.version,
                found: candidate.root.version,
            });
        }
        if candidate.root.previous != Some(self.payload_digest) {
            return Err(TrustError::BrokenChain {
                version: candidate.root.version,
                expected: self.payload_digest,
                found: candidate.root.previous,
            });
        }
        if candidate.root.origin != self.root.origin {
            return Err(TrustError::OriginChanged {
                version: candidate.root.version,
                expected: self.root.origin.clone(),
                found: candidate.root.origin,
            });
        }
        let envelope = Envelope::from_bytes(envelope_bytes)?;
        candidate.check_signed_by(&envelope, self, "the previous root")?;
        candidate.check_signed_by(&envelope, &candidate, "its own root")?;
        Ok(Verified::new(candidate))
    }

    /// Decodes and structurally checks a root without checking signatures.
    fn decode(envelope_bytes: &[u8]) -> Result<Self, TrustError> {
        let envelope = Envelope::from_bytes(envelope_bytes)?;
        let root = match Statement::decode(&envelope.payload_type, &envelope.payload)? {
            Statement::Root(root) => root,
            other => return Err(TrustError::NotARoot(other.payload_type().to_string())),
        };
        let mut keys = BTreeMap::new();
        for raw in &root.keys {
            let key = PublicKey::from_bytes(&raw.0)
                .map_err(|source| TrustError::BadKey { key: raw.to_hex(), source })?;
            keys.insert(key.id(), key);
        }
        let witnesses = root
            .witnesses
            .iter()
            .map(|w| {
                PublicKey::from_bytes(&w.key.0)
                    .map(|key| (w.name.clone(), key))
                    .map_err(|source| TrustError::BadKey { key: w.key.to_hex(), source })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let payload_digest = envelope.payload_digest();
        Ok(Self { root, keys, witnesses, envelope_bytes: envelope_bytes.to_vec(), payload_digest })
    }

    fn check_signed_by(
        &self,
        envelope: &Envelope,
        signer: &TrustedRoot,
        which: &'static str,
    ) -> Result<(), TrustError> {
        check_threshold(envelope, "root", &signer.root.roles.root, &signer.keys)
            .map(|_| ())
            .map_err(|source| TrustError::Signatures { version: self.root.version, which, source })
    }

    /// Checks that `envelope` carries a threshold of signatures of `role` in this root.
    pub fn check_role(&self, envelope: &Envelope, role: RoleName) -> Result<(), ThresholdError> {
        check_threshold(envelope, role.as_str(), self.role(role), &self.keys).map(|_| ())
    }

    /// The keys of `role` whose signature over `envelope` verifies (each once); empty when the
    /// threshold is not met.
    pub fn signers(&self, envelope: &Envelope, role: RoleName) -> Vec<KeyId> {
        check_threshold(envelope, role.as_str(), self.role(role), &self.keys)
            .map(|ids| ids.into_iter().collect())
            .unwrap_or_default()
    }

    /// Checks that a checkpoint note carries the log role's threshold of signatures, under the
    /// root's origin as key name.
    pub fn check_checkpoint(&self, note: &airlock_proto::Note) -> Result<(), ThresholdError> {
        crate::note::check_note_threshold(note, &self.root.origin, "log", &self.root.roles.log, &self.keys)
            .map(|_| ())
    }

    /// Checks that a checkpoint note carries valid cosignatures that meet the root's witness
    /// policy (c2sp.org/tlog-policy); the error states the rule and names every witness whose
    /// cosignature is missing or does not verify.
    pub fn check_witnesses(
        &self,
        note: &airlock_proto::Note,
    ) -> Result<(), crate::cosignature::WitnessError> {
        let policy = self.root.witness_policy();
        if policy.quorum.is_none() {
            return Ok(());
        }
        let (mut valid, mut missing) = (Vec::new(), Vec::new());
        for (name, key) in &self.witnesses {
            match crate::cosignature::cosigned_at(note, name, key) {
                Some(_) => valid.push(name.clone()),
                None => missing.push(name.clone()),
            }
        }
        if policy.is_met(&|name| valid.iter().any(|v| v == name)) {
            Ok(())
        } else {
            Err(crate::cosignature::WitnessError { quorum: policy.describe(), valid, missing })
        }
    }

    /// The role definition.
    pub fn role(&self, role: RoleName) -> &Role {
        match role {
            RoleName::Root => &self.root.roles.root,
            RoleName::Publisher => &self.root.roles.publisher,
            RoleName::Log => &self.root.roles.log,
        }
    }

    /// The key this root lists under `id`.
    pub fn key(&self, id: &airlock_proto::KeyId) -> Option<&PublicKey> {
        self.keys.get(id)
    }

    /// Whether `key` is one of `role`'s keys.
    pub fn authorises(&self, key: &PublicKey, role: RoleName) -> bool {
        self.role(role).keys.contains(&key.id()) && self.keys.contains_key(&key.id())
    }

    /// The root statement.
    pub fn root(&self) -> &Root {
        &self.root
    }

    /// The exact envelope bytes this root was loaded from.
    pub fn envelope_bytes(&self) -> &[u8] {
        &self.envelope_bytes
    }

    /// BLAKE3 of the root's payload (what the next root names as `previous`).
    pub fn payload_digest(&self) -> Digest {
        self.payload_digest
    }

    /// The log identity.
    pub fn origin(&self) -> &str {
        &self.root.origin
    }

    /// Whether this root has expired at `now`.
    pub fn is_expired(&self, now: Timestamp) -> bool {
        self.root.expires <= now
    }
}
