//! Signing envelopes and the one threshold function.

use std::collections::{BTreeMap, BTreeSet};

use airlock_proto::{Envelope, KeyId, Role, Signature, SignatureBytes};

use crate::keyfile::{PublicKey, SecretKey};

/// Why a threshold was not met. Names the role, what was needed, and what each signature did.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{role} threshold not met: {valid} valid signature(s) from distinct {role} keys, {needed} needed{}", describe(.problems))]
pub struct ThresholdError {
    pub role: &'static str,
    pub needed: u32,
    pub valid: usize,
    /// One line per signature that did not count, saying why.
    pub problems: Vec<String>,
}

fn describe(problems: &[String]) -> String {
    if problems.is_empty() {
        String::new()
    } else {
        format!(" ({})", problems.join("; "))
    }
}

/// Signs `envelope` with `key` (over PAE of its type and payload) and appends the signature.
/// A second signature by the same key replaces nothing and is not added twice.
pub fn sign_envelope(envelope: &mut Envelope, key: &SecretKey) {
    let public = key.public();
    let signature =
        Signature { key_id: public.id(), sig: SignatureBytes(key.sign(&envelope.signed_bytes())) };
    if !envelope.signatures.iter().any(|s| s.key_id == signature.key_id) {
        envelope.signatures.push(signature);
    }
}

/// The one threshold function. Counts the distinct keys of `role` (looked up in `keys`, which
/// maps verifier-computed key ids to keys) whose signature over PAE verifies strictly. A
/// signature listed twice, a key listed under two ids, a key outside the role, or a signature
/// made by another key than the one it names all count zero. Returns the set of keys counted.
pub fn check_threshold(
    envelope: &Envelope,
    role_name: &'static str,
    role: &Role,
    keys: &BTreeMap<KeyId, PublicKey>,
) -> Result<BTreeSet<KeyId>, ThresholdError> {
    let message = envelope.signed_bytes();
    let mut counted = BTreeSet::new();
    let mut problems = Vec::new();
    for signature in &envelope.signatures {
        let id = signature.key_id;
        if !role.keys.contains(&id) {
            problems.push(format!("key {id} is not a {role_name} key"));
            continue;
        }
        let Some(public) = keys.get(&id) else {
            problems.push(format!("key {id} is not listed in the root"));
            continue;
        };
        // The map is keyed by computed ids, but do not rely on the caller: recompute.
        let real_id = public.id();
        if counted.contains(&real_id) {
            problems.push(format!("key {real_id} signed more than once (counted once)"));
            continue;
        }
        match crate::preverify::verify(public, &message, &signature.sig.0) {
            Ok(()) => {
                counted.insert(real_id);
            }
            Err(_) => problems.push(format!("signature claiming key {id} does not verify")),
        }
    }
    if counted.len() >= role.threshold as usize {
        Ok(counted)
    } else {
        Err(ThresholdError { role: role_name, needed: role.threshold, valid: counted.len(), problems })
    }
}
