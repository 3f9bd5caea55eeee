//! Signing and verifying signed notes (c2sp.org/signed-note) with Ed25519: the log's checkpoint
//! signatures. A note key id is the first four bytes of SHA-256(name ‖ "\n" ‖ 0x01 ‖ public key);
//! it only picks the candidate key, and the signature decides.

use std::collections::{BTreeMap, BTreeSet};

use airlock_proto::{KeyId, Note, NoteError, NoteSignature, Role};
use sha2::{Digest as _, Sha256};

use crate::keyfile::{PublicKey, SecretKey};
use crate::threshold::ThresholdError;

/// The signature type byte of Ed25519 in note key ids.
const ED25519: u8 = 0x01;

/// The note key id of `key` under `name`.
pub fn note_key_id(name: &str, key: &PublicKey) -> [u8; 4] {
    key_id(name, ED25519, key)
}

/// A signed-note key id: the first four bytes of SHA-256(name ‖ "\n" ‖ signature type ‖ key).
pub(crate) fn key_id(name: &str, signature_type: u8, key: &PublicKey) -> [u8; 4] {
    let mut hasher = Sha256::new();
    hasher.update(name.as_bytes());
    hasher.update(b"\n");
    hasher.update([signature_type]);
    hasher.update(key.to_bytes());
    let hash = hasher.finalize();
    [hash[0], hash[1], hash[2], hash[3]]
}

/// The verifier key string of `key` under `name` (`name+<key id hex>+base64(0x01 ‖ key)`), the
/// form standard note tools are configured with.
pub fn verifier_key(name: &str, key: &PublicKey) -> String {
    format_verifier_key(name, ED25519, key)
}

/// A verifier key string of `signature_type` (0x01 for log keys, 0x04 for witness keys).
pub(crate) fn format_verifier_key(name: &str, signature_type: u8, key: &PublicKey) -> String {
    use base64::Engine as _;
    let mut raw = vec![signature_type];
    raw.extend_from_slice(&key.to_bytes());
    format!(
        "{name}+{}+{}",
        hex::encode(key_id(name, signature_type, key)),
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

/// Parses a verifier key string (`name+<key id hex>+base64(0x01 ‖ key)`), checking that its key
/// id is the one the key computes to. Returns the name and the key.
pub fn parse_verifier_key(text: &str) -> Result<(String, PublicKey), String> {
    parse_verifier_key_of(text, ED25519)
}

/// Parses a verifier key string whose signature type must be `signature_type`.
pub(crate) fn parse_verifier_key_of(text: &str, signature_type: u8) -> Result<(String, PublicKey), String> {
    use base64::Engine as _;
    let mut parts = text.splitn(3, '+');
    let (Some(name), Some(id), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(format!("{text:?} is not a verifier key (name+id+key)"));
    };
    let raw = base64::engine::general_purpose::STANDARD
        .decode(key)
        .map_err(|_| format!("{text:?}: the key is not base64"))?;
    let (&[found], key) = raw.split_at(1.min(raw.len())) else {
        return Err(format!("{text:?}: the key is empty"));
    };
    if found != signature_type {
        return Err(format!(
            "{text:?}: a verifier key of signature type {found:#04x}, where type {signature_type:#04x} is needed"
        ));
    }
    let key = PublicKey::from_bytes(key).map_err(|e| format!("{text:?}: {e}"))?;
    if !airlock_proto::note::is_key_name_valid(name) || hex::encode(key_id(name, signature_type, &key)) != id
    {
        return Err(format!("{text:?}: the key id does not match the name and key"));
    }
    Ok((name.to_owned(), key))
}

/// Signs `note`'s text with `key` under `name` and adds the signature line.
pub fn sign_note(note: &mut Note, name: &str, key: &SecretKey) -> Result<(), NoteError> {
    let signature = key.sign(note.text().as_bytes());
    note.add_signature(NoteSignature {
        name: name.to_owned(),
        key_id: note_key_id(name, &key.public()),
        signature: signature.to_vec(),
    })
}

/// The threshold function for notes: counts the distinct keys of `role` that signed `note`'s
/// text under `name` with a signature that verifies strictly. Lines by other names or unknown
/// keys (witness cosignatures, for example) are skipped, not counted.
pub fn check_note_threshold(
    note: &Note,
    name: &str,
    role_name: &'static str,
    role: &Role,
    keys: &BTreeMap<KeyId, PublicKey>,
) -> Result<BTreeSet<KeyId>, ThresholdError> {
    let mut counted = BTreeSet::new();
    let mut problems = Vec::new();
    for id in &role.keys {
        let Some(public) = keys.get(id) else {
            problems.push(format!("key {id} is not listed in the root"));
            continue;
        };
        let real_id = public.id();
        if counted.contains(&real_id) {
            continue;
        }
        let note_id = note_key_id(name, public);
        let mut lines = note.signatures().iter().filter(|s| s.name == name && s.key_id == note_id).peekable();
        if lines.peek().is_none() {
            continue;
        }
        if lines.any(|line| public.verify_strict(note.text().as_bytes(), &line.signature).is_ok()) {
            counted.insert(real_id);
        } else {
            problems.push(format!("the signature line of {role_name} key {real_id} does not verify"));
        }
    }
    let known: Vec<[u8; 4]> =
        role.keys.iter().filter_map(|id| keys.get(id)).map(|key| note_key_id(name, key)).collect();
    for line in note.signatures().iter().filter(|s| s.name == name && !known.contains(&s.key_id)) {
        problems.push(format!(
            "a signature line with key id {} is not a {role_name} key",
            hex::encode(line.key_id)
        ));
    }
    if counted.len() >= role.threshold as usize {
        Ok(counted)
    } else {
        Err(ThresholdError { role: role_name, needed: role.threshold, valid: counted.len(), problems })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn role_of(keys: &[&PublicKey], threshold: u32) -> (Role, BTreeMap<KeyId, PublicKey>) {
        let role = Role { keys: keys.iter().map(|k| k.id()).collect(), threshold };
        (role, keys.iter().map(|k| (k.id(), **k)).collect())
    }

    #[test]
    fn signed_notes_meet_the_threshold_and_foreign_lines_are_skipped() {
        let (a, b, witness) = (SecretKey::generate(), SecretKey::generate(), SecretKey::generate());
        let mut note = Note::new("log.example\n1\nAAAA\n").unwrap();
        sign_note(&mut note, "log.example", &a).unwrap();
        sign_note(&mut note, "witness.example", &witness).unwrap();
        let (role, keys) = role_of(&[&a.public(), &b.public()], 1);
        let parsed = Note::parse(&note.to_bytes()).unwrap();
        assert_eq!(check_note_threshold(&parsed, "log.example", "log", &role, &keys).unwrap().len(), 1);
        let (two, keys) = role_of(&[&a.public(), &b.public()], 2);
        let err = check_note_threshold(&parsed, "log.example", "log", &two, &keys).unwrap_err();
        assert_eq!((err.valid, err.needed), (1, 2));
        // The same key signing under another name does not count for this name.
        let (role, keys) = role_of(&[&witness.public()], 1);
        assert!(check_note_threshold(&parsed, "log.example", "log", &role, &keys).is_err());
    }

    #[test]
    fn verifier_keys_parse_back_and_a_wrong_id_is_refused() {
        let key = SecretKey::generate();
        let text = verifier_key("log.example", &key.public());
        assert_eq!(parse_verifier_key(&text).unwrap(), ("log.example".to_owned(), key.public()));
        let other = verifier_key("other.example", &key.public()).replacen("other.example", "log.example", 1);
        assert!(parse_verifier_key(&other).is_err());
        assert!(parse_verifier_key("log.example").is_err());
    }

    #[test]
    fn a_signature_over_other_text_does_not_verify() {
        let a = SecretKey::generate();
        let mut note = Note::new("log.example\n1\nAAAA\n").unwrap();
        sign_note(&mut note, "log.example", &a).unwrap();
        let forged = String::from_utf8(note.to_bytes()).unwrap().replacen("\n1\n", "\n2\n", 1);
        let (role, keys) = role_of(&[&a.public()], 1);
        let err = check_note_threshold(
            &Note::parse(forged.as_bytes()).unwrap(),
            "log.example",
            "log",
            &role,
            &keys,
        )
        .unwrap_err();
        assert!(err.to_string().contains("does not verify"), "{err}");
    }
}
