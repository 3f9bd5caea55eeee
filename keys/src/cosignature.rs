//! Witness cosignatures on checkpoint notes (c2sp.org/tlog-cosignature). A witness signs
//! `cosignature/v1\ntime <t>\n` followed by the checkpoint's note text, and adds a line under its
//! own name whose bytes are the key id, the time (big-endian u64) and the Ed25519 signature. The
//! key id is the first four bytes of SHA-256(name ‖ "\n" ‖ 0x04 ‖ public key).

use airlock_proto::{Note, NoteError, NoteSignature, Timestamp};

use crate::keyfile::{PublicKey, SecretKey};

/// The signature type byte of tlog-cosignature/v1 in key ids.
const COSIGNATURE_V1: u8 = 0x04;

/// The key id of a witness key under its name.
pub fn witness_key_id(name: &str, key: &PublicKey) -> [u8; 4] {
    crate::note::key_id(name, COSIGNATURE_V1, key)
}

/// The verifier key string of a witness key (`name+<key id hex>+base64(0x04 ‖ key)`), the form
/// tlog-policy files name witnesses with.
pub fn witness_verifier_key(name: &str, key: &PublicKey) -> String {
    crate::note::format_verifier_key(name, COSIGNATURE_V1, key)
}

/// Parses a witness verifier key string (signature type 0x04), checking its key id.
pub fn parse_witness_verifier_key(text: &str) -> Result<(String, PublicKey), String> {
    crate::note::parse_verifier_key_of(text, COSIGNATURE_V1)
}

fn signed_message(text: &str, time: Timestamp) -> Vec<u8> {
    format!("cosignature/v1\ntime {time}\n{text}").into_bytes()
}

/// Cosigns `note` as the witness `name` at `time` and adds the cosignature line.
pub fn cosign(note: &mut Note, name: &str, key: &SecretKey, time: Timestamp) -> Result<(), NoteError> {
    let signature = key.sign(&signed_message(note.text(), time));
    let mut bytes = time.to_be_bytes().to_vec();
    bytes.extend_from_slice(&signature);
    note.add_signature(NoteSignature {
        name: name.to_owned(),
        key_id: witness_key_id(name, &key.public()),
        signature: bytes,
    })
}

/// The time of the valid cosignature `name` with `key` put on `note`, if it carries one.
pub fn cosigned_at(note: &Note, name: &str, key: &PublicKey) -> Option<Timestamp> {
    let id = witness_key_id(name, key);
    note.signatures().iter().filter(|line| line.name == name && line.key_id == id).find_map(|line| {
        let (time, signature) = line.signature.split_at_checked(8)?;
        let time = Timestamp::from_be_bytes(time.try_into().ok()?);
        key.verify_strict(&signed_message(note.text(), time), signature).ok().map(|()| time)
    })
}

/// Why a checkpoint was refused for its witnesses: the quorum rule it did not meet, the
/// witnesses whose cosignature verified, and the ones whose cosignature is missing (or does not
/// verify).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the checkpoint lacks the witness quorum [{quorum}]: valid cosignatures from {}; missing: {}",
    list(valid),
    list(missing)
)]
pub struct WitnessError {
    pub quorum: String,
    pub valid: Vec<String>,
    pub missing: Vec<String>,
}

fn list(names: &[String]) -> String {
    if names.is_empty() {
        "none".to_owned()
    } else {
        names.join(", ")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_cosignature_verifies_for_its_text_name_and_key_only() {
        let (witness, other) = (SecretKey::generate(), SecretKey::generate());
        let mut note = Note::new("log.example\n3\nAAAA\n").unwrap();
        cosign(&mut note, "w1.example", &witness, 1_700_000_000).unwrap();
        let parsed = Note::parse(&note.to_bytes()).unwrap();
        assert_eq!(cosigned_at(&parsed, "w1.example", &witness.public()), Some(1_700_000_000));
        assert_eq!(cosigned_at(&parsed, "w2.example", &witness.public()), None);
        assert_eq!(cosigned_at(&parsed, "w1.example", &other.public()), None);
        let moved = String::from_utf8(note.to_bytes()).unwrap().replacen("\n3\n", "\n4\n", 1);
        assert_eq!(
            cosigned_at(&Note::parse(moved.as_bytes()).unwrap(), "w1.example", &witness.public()),
            None
        );
    }
}
