//! Interoperability with an independent implementation of the C2SP signed-note specification
//! (the `signed_note` crate, a port of Go's `sumdb/note`): checkpoints airlock signs verify
//! there, with the verifier key string airlock prints, and notes it signs verify here.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use airlock_keys::{check_note_threshold, sign_note, verifier_key, SecretKey};
use airlock_proto::{Checkpoint, Hash32, Note, Role};
use base64::Engine as _;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::EncodePrivateKey;

const SEED: [u8; 32] = [7; 32];
const ORIGIN: &str = "demo.airlock";

fn secret_key() -> SecretKey {
    let pem = ed25519_dalek::SigningKey::from_bytes(&SEED).to_pkcs8_pem(LineEnding::LF).unwrap();
    SecretKey::from_pkcs8_pem(&pem).unwrap()
}

fn checkpoint_text() -> String {
    Checkpoint {
        origin: ORIGIN.into(),
        size: 7,
        root_hash: Hash32([9; 32]),
        issued_at: 1_700_000_000,
        expires_at: 1_700_086_400,
    }
    .to_text()
}

#[test]
fn airlock_checkpoints_verify_with_the_standard_note_implementation() {
    let key = secret_key();
    let mut note = Note::new(checkpoint_text()).unwrap();
    sign_note(&mut note, ORIGIN, &key).unwrap();
    // The verifier key string is accepted as is: its key id is the one the spec computes.
    let verifier = signed_note::StandardVerifier::new(&verifier_key(ORIGIN, &key.public())).unwrap();
    let theirs = signed_note::Note::from_bytes(&note.to_bytes()).unwrap();
    let (verified, unverified) =
        theirs.verify(&signed_note::VerifierList::new(vec![Box::new(verifier)])).unwrap();
    assert_eq!((verified.len(), unverified.len()), (1, 0));
    assert_eq!(theirs.text(), checkpoint_text().as_bytes());
    // A changed byte of the text fails there too.
    let tampered = String::from_utf8(note.to_bytes()).unwrap().replacen("\n7\n", "\n8\n", 1);
    let verifier = signed_note::StandardVerifier::new(&verifier_key(ORIGIN, &key.public())).unwrap();
    let theirs = signed_note::Note::from_bytes(tampered.as_bytes()).unwrap();
    assert!(theirs.verify(&signed_note::VerifierList::new(vec![Box::new(verifier)])).is_err());
}

#[test]
fn notes_signed_by_the_standard_implementation_verify_in_airlock() {
    let key = secret_key();
    let public = key.public();
    let mut private = vec![0x01];
    private.extend_from_slice(&SEED);
    let id = &verifier_key(ORIGIN, &public).split('+').collect::<Vec<_>>()[1].to_owned();
    let skey =
        format!("PRIVATE+KEY+{ORIGIN}+{id}+{}", base64::engine::general_purpose::STANDARD.encode(private));
    let signer = signed_note::StandardSigner::new(&skey).unwrap();
    let mut theirs = signed_note::Note::new(checkpoint_text().as_bytes(), &[]).unwrap();
    theirs.add_sigs(&[&signer]).unwrap();
    let ours = Note::parse(&theirs.to_bytes()).unwrap();
    assert_eq!(Checkpoint::from_text(ours.text()).unwrap().size, 7);
    let role = Role { keys: vec![public.id()], threshold: 1 };
    let keys = BTreeMap::from([(public.id(), public)]);
    assert_eq!(check_note_threshold(&ours, ORIGIN, "log", &role, &keys).unwrap().len(), 1);
    // And the bytes are the same as airlock's own signature of the same text.
    let mut own = Note::new(checkpoint_text()).unwrap();
    sign_note(&mut own, ORIGIN, &key).unwrap();
    assert_eq!(own.to_bytes(), theirs.to_bytes());
}
