//! Signature test vectors: a deterministic ed25519 key, signed envelopes, and a two-leaf log
//! that the log verifier accepts.
//!
//! `docs/protocol.md` ("Test vectors") quotes these values and this test guards them. The key is
//! `ed25519_dalek::SigningKey::from_bytes(&[7u8; 32])` (RFC 8032 seed 0707...07), loaded through
//! the keys crate's own PKCS#8 reader. Ed25519 signatures are deterministic, so every byte here
//! is fixed. Long hex values are written wrapped, exactly as the document shows them; whitespace
//! is not part of a value. The unsigned payload vectors live in `proto/tests/vectors.rs`.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use airlock_keys::{
    check_threshold, note_key_id, sign_envelope, sign_note, verifier_key, PublicKey, SecretKey, TrustedLog,
    TrustedRoot,
};
use airlock_proto::merkle::{leaf_hash, node_hash};
use airlock_proto::{
    Checkpoint, Digest, Envelope, FileEntry, FileName, Hash32, Kind, Metadata, Note, PackageName,
    PayloadType, PublicKeyBytes, Release, Role, Roles, Root, Sha256, Statement, Version,
};
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use ed25519_dalek::Signer;

const SEED: [u8; 32] = [7; 32];
const PUBLIC_KEY: &str = "ea4a6c63e29c520abef5507b132ec5f9954776aebebe7b92421eea691446d22c";
const KEY_ID: &str = "0871f3aabc26e4582c508af5c03884e6a96f0989d1dd8cfb49cd17ed25792433";
/// Time of the update in `two_leaf_log_verifies` (a minute after the checkpoint was issued).
const NOW: u64 = 1_700_000_060;

/// The `Root` payload (315 bytes).
const ROOT_PAYLOAD: &str = "
a764747970656f6169726c6f636b2e726f6f742e7633666f726967696e6c6465
6d6f2e6169726c6f636b6776657273696f6e0167657870697265731a67352480
776d61785f636865636b706f696e745f76616c69646974791a003b5380646b65
7973815820ea4a6c63e29c520abef5507b132ec5f9954776aebebe7b92421eea
691446d22c65726f6c6573a364726f6f74a2646b6579738158200871f3aabc26
e4582c508af5c03884e6a96f0989d1dd8cfb49cd17ed25792433697468726573
686f6c6401697075626c6973686572a2646b6579738158200871f3aabc26e458
2c508af5c03884e6a96f0989d1dd8cfb49cd17ed25792433697468726573686f
6c6401636c6f67a2646b6579738158200871f3aabc26e4582c508af5c03884e6
a96f0989d1dd8cfb49cd17ed25792433697468726573686f6c6401
";

/// The signed root envelope (480 bytes): leaf 0 of the two-leaf log.
const ROOT_ENVELOPE: &str = "
a36c7061796c6f61645f747970656f6169726c6f636b2e726f6f742e76336770
61796c6f616459013ba764747970656f6169726c6f636b2e726f6f742e763366
6f726967696e6c64656d6f2e6169726c6f636b6776657273696f6e0167657870
697265731a67352480776d61785f636865636b706f696e745f76616c69646974
791a003b5380646b657973815820ea4a6c63e29c520abef5507b132ec5f99547
76aebebe7b92421eea691446d22c65726f6c6573a364726f6f74a2646b657973
8158200871f3aabc26e4582c508af5c03884e6a96f0989d1dd8cfb49cd17ed25
792433697468726573686f6c6401697075626c6973686572a2646b6579738158
200871f3aabc26e4582c508af5c03884e6a96f0989d1dd8cfb49cd17ed257924
33697468726573686f6c6401636c6f67a2646b6579738158200871f3aabc26e4
582c508af5c03884e6a96f0989d1dd8cfb49cd17ed2579243369746872657368
6f6c64016a7369676e61747572657381a2666b65795f696458200871f3aabc26
e4582c508af5c03884e6a96f0989d1dd8cfb49cd17ed25792433637369675840
b4b5bc8a443aeef4c1fc2f45be96e0df58a9c3956830f7421c2b0e5249b111bb
bce9af22ede532889e188f3f79aa9a8786a281cb25a5998e4aa1a5c6a74ca204
";

/// The signed release envelope (519 bytes); its payload is the release payload of
/// `proto/tests/vectors.rs`. Leaf 1 of the two-leaf log.
const RELEASE_ENVELOPE: &str = "
a36c7061796c6f61645f74797065726169726c6f636b2e72656c656173652e76
32677061796c6f616459015fa76474797065726169726c6f636b2e72656c6561
73652e7632646b696e6465776865656c646e616d656864656d6f2d706b676776
657273696f6e65312e302e306566696c657381a46866696c656e616d65781f64
656d6f5f706b672d312e302e302d7079332d6e6f6e652d616e792e77686c6473
697a650366626c616b653358206437b3ac38465133ffb63b75273a8db548c558
465d79db03fd359c6cd5bd9d85667368613235365820ba7816bf8f01cfea4141
40de5dae2223b00361a396177a9cb410ff61f20015ad686d65746164617461a9
6773756d6d617279f66f72657175697265735f707974686f6ef66c646570656e
64656e636965738067636f6d66797569f66a736f757263655f75726cf66d736f
757263655f636f6d6d6974f6676c6963656e7365f66b7363616e5f7265706f72
74f67561636b6e6f776c65646765645f66696e64696e6773806c7075626c6973
6865645f61741a6553f1006a7369676e61747572657381a2666b65795f696458
200871f3aabc26e4582c508af5c03884e6a96f0989d1dd8cfb49cd17ed257924
33637369675840d4b960816b5b1f3f11fefb928bd688d3a3af19a4fc3d03e78d
f86cb016394d81cc23e96f939050f8d970e9770a08c95f9d2424e63085f406ca
e8b5b7a9462501
";

/// The signed checkpoint envelope (299 bytes) of the two-leaf log.
/// The log's note key id for the key above under the name `demo.airlock`, and its verifier key.
const NOTE_KEY_ID: &str = "89af7de8";
const VERIFIER_KEY: &str = "demo.airlock+89af7de8+AepKbGPinFIKvvVQexMuxfmVR3auvr57kkIe6mkURtIs";
/// The checkpoint note of the two-leaf log, signed by the key above as the log key.
const CHECKPOINT_NOTE: &str = "demo.airlock
2
YjLC8jNCeEdOTwDCZMMiKQGvOdmqu7U/U/ccCbJVrqw=
issued-at 1700000000
expires-at 1700086400

— demo.airlock ia996MkXcs370zMIz58Rzxq80mA2W9KdD9mz/H44SvxVRt+0F+H5tr1dbIA5u0126KGaphYka+WnivPBhMvwUbM2uAw=
";

/// Strips the whitespace of a wrapped hex constant.
fn unwrap_hex(text: &str) -> String {
    text.split_whitespace().collect()
}

/// The vector key, loaded through `SecretKey::from_pkcs8_pem` (the keys crate has no
/// constructor from raw seed bytes).
fn secret_key() -> SecretKey {
    let pem = ed25519_dalek::SigningKey::from_bytes(&SEED).to_pkcs8_pem(LineEnding::LF).unwrap();
    SecretKey::from_pkcs8_pem(&pem).unwrap()
}

/// One key holds every role, threshold 1.
fn demo_root(public: &PublicKey) -> Root {
    let role = Role { keys: vec![public.id()], threshold: 1 };
    Root {
        payload_type: PayloadType::Root,
        origin: "demo.airlock".to_owned(),
        version: 1,
        expires: 1_731_536_000,
        previous: None,
        max_checkpoint_validity: 45 * 86_400,
        keys: vec![PublicKeyBytes(public.to_bytes())],
        roles: Roles { root: role.clone(), publisher: role.clone(), log: role },
        witnesses: Vec::new(),
        witness_groups: Vec::new(),
        witness_quorum: None,
        key_names: Vec::new(),
    }
}

/// The release of `proto/tests/vectors.rs`.
fn demo_release() -> Release {
    Release {
        payload_type: PayloadType::Release,
        kind: Kind::Wheel,
        name: PackageName::new(Kind::Wheel, "demo-pkg").unwrap(),
        version: Version::new("1.0.0").unwrap(),
        files: vec![FileEntry {
            filename: FileName::new("demo_pkg-1.0.0-py3-none-any.whl").unwrap(),
            size: 3,
            blake3: Digest::of(b"abc"),
            sha256: Sha256::from_hex("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
                .unwrap(),
        }],
        metadata: Metadata::default(),
        published_at: 1_700_000_000,
    }
}

fn signed(statement: Statement, key: &SecretKey) -> Envelope {
    let (payload_type, payload) = statement.encode().unwrap();
    let mut envelope = Envelope::unsigned(payload_type.as_str(), payload);
    sign_envelope(&mut envelope, key);
    envelope
}

#[test]
fn key_and_key_id() {
    let public = secret_key().public();
    assert_eq!(hex::encode(public.to_bytes()), PUBLIC_KEY);
    // Key id = BLAKE3-256 of the raw 32-byte public key.
    assert_eq!(public.id().to_hex(), KEY_ID);
    assert_eq!(Digest::of(&public.to_bytes()).to_hex(), KEY_ID);
    // The raw key passes the same checks a root's keys do (canonical, not small-order).
    assert_eq!(PublicKey::from_bytes(&public.to_bytes()).unwrap(), public);
}

#[test]
fn release_envelope_signature() {
    let key = secret_key();
    let envelope = signed(Statement::Release(demo_release()), &key);
    assert_eq!(
        envelope.payload_digest().to_string(),
        "blake3:86237cc0b6b5b1454da9bf4f29bf4fa3101471c9b261b5945895885988cf272b"
    );
    assert_eq!(envelope.signatures.len(), 1);
    assert_eq!(envelope.signatures[0].key_id.to_hex(), KEY_ID);
    let sig = envelope.signatures[0].sig;
    assert_eq!(
        sig.to_hex(),
        "d4b960816b5b1f3f11fefb928bd688d3a3af19a4fc3d03e78df86cb016394d81\
         cc23e96f939050f8d970e9770a08c95f9d2424e63085f406cae8b5b7a9462501"
    );
    // The signature covers PAE("airlock.release.v2", payload), and nothing else.
    let message = envelope.signed_bytes();
    assert_eq!(message, airlock_proto::pae("airlock.release.v2", &envelope.payload));
    assert!(message.starts_with(b"DSSEv1 18 airlock.release.v2 351 "));
    let public = PublicKey::from_bytes(&hex::decode(PUBLIC_KEY).unwrap()).unwrap();
    public.verify_strict(&message, &sig.0).unwrap();
    assert!(public.verify_strict(&envelope.payload, &sig.0).is_err());
    // Plain RFC 8032 Ed25519 over the same bytes gives the same signature.
    let dalek = ed25519_dalek::SigningKey::from_bytes(&SEED);
    assert_eq!(dalek.sign(&message).to_bytes(), sig.0);

    let bytes = envelope.to_bytes().unwrap();
    assert_eq!(bytes.len(), 519);
    assert_eq!(hex::encode(&bytes), unwrap_hex(RELEASE_ENVELOPE));
    assert_eq!(Envelope::from_bytes(&bytes).unwrap(), envelope);

    // A threshold of 1 of the publisher role {KEY_ID} is met by exactly this key.
    let role = Role { keys: vec![public.id()], threshold: 1 };
    let keys = BTreeMap::from([(public.id(), public)]);
    let counted = check_threshold(&envelope, "publisher", &role, &keys).unwrap();
    assert_eq!(counted.into_iter().map(|id| id.to_hex()).collect::<Vec<_>>(), [KEY_ID]);
}

#[test]
fn root_envelope() {
    let key = secret_key();
    let (_, payload) = Statement::Root(demo_root(&key.public())).encode().unwrap();
    assert_eq!(payload.len(), 315);
    assert_eq!(hex::encode(&payload), unwrap_hex(ROOT_PAYLOAD));
    let envelope = signed(Statement::Root(demo_root(&key.public())), &key);
    assert_eq!(
        envelope.signatures[0].sig.to_hex(),
        "b4b5bc8a443aeef4c1fc2f45be96e0df58a9c3956830f7421c2b0e5249b111bb\
         bce9af22ede532889e188f3f79aa9a8786a281cb25a5998e4aa1a5c6a74ca204"
    );
    let bytes = envelope.to_bytes().unwrap();
    assert_eq!(bytes.len(), 480);
    assert_eq!(hex::encode(&bytes), unwrap_hex(ROOT_ENVELOPE));
    let pinned = TrustedRoot::pin(&bytes).unwrap();
    assert_eq!(pinned.origin(), "demo.airlock");
    assert_eq!(pinned.root().version, 1);
}

#[test]
fn two_leaf_log_verifies() {
    let key = secret_key();
    let root_leaf = hex::decode(unwrap_hex(ROOT_ENVELOPE)).unwrap();
    let release_leaf = hex::decode(unwrap_hex(RELEASE_ENVELOPE)).unwrap();
    let l0 = leaf_hash(&root_leaf);
    let l1 = leaf_hash(&release_leaf);
    let root_hash = node_hash(&l0, &l1);
    assert_eq!(hex::encode(l0), "c554eac44754536f2483fe6aa49a243ed726a23f25de41bcab41fec78c5bf28e");
    assert_eq!(hex::encode(l1), "eed34e3aa6527dcc60d1cf0a4d98fbb5db4b69ad529060aa2725d8165dd7db0b");
    assert_eq!(hex::encode(root_hash), "6232c2f2334278474e4f00c264c3222901af39d9aabbb53f53f71c09b255aeac");

    let checkpoint = Checkpoint {
        origin: "demo.airlock".to_owned(),
        size: 2,
        root_hash: Hash32(root_hash),
        issued_at: 1_700_000_000,
        expires_at: 1_700_086_400,
    };
    let mut note = Note::new(checkpoint.to_text()).unwrap();
    sign_note(&mut note, "demo.airlock", &key).unwrap();
    assert_eq!(hex::encode(note_key_id("demo.airlock", &key.public())), NOTE_KEY_ID);
    assert_eq!(verifier_key("demo.airlock", &key.public()), VERIFIER_KEY);
    let checkpoint_bytes = note.to_bytes();
    assert_eq!(String::from_utf8(checkpoint_bytes.clone()).unwrap(), CHECKPOINT_NOTE);

    // A client that pins the root and has seen nothing accepts the checkpoint and both leaves.
    let log = TrustedLog::new(TrustedRoot::pin(&root_leaf).unwrap());
    let leaves = [root_leaf, release_leaf];
    let next = log.update(&checkpoint_bytes, &leaves, NOW).unwrap();
    assert_eq!(next.size(), 2);
    assert_eq!(next.root_hash(), Hash32(root_hash));
    let release = demo_release();
    let record = next.registry().release(Kind::Wheel, &release.name, &release.version).unwrap();
    assert_eq!(record.leaf_index, 1);
    assert_eq!(record.release, release);
    // The same checkpoint after it expired is refused.
    assert!(log.update(&checkpoint_bytes, &leaves, 1_700_086_400).is_err());
}
