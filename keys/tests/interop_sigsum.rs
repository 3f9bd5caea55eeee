//! Interoperability of witness cosignatures and witness policies with an independent
//! implementation: Sigsum, whose logs are witnessed by the public witness network with
//! c2sp.org/tlog-cosignature/v1 and whose policies are the c2sp.org/tlog-policy form (the
//! `sigsum` crate, which verifies proofs offline).
//!
//! - A real Sigsum proof (the one published in the crate's documentation, cosigned by eight
//!   witnesses of several independent implementations) verifies here: its log signature as a
//!   signed note, each cosignature with airlock's verifier, and the published policy's quorum as
//!   a root's witness policy.
//! - A log head signed and cosigned by airlock verifies in the `sigsum` crate, and fails there
//!   when a cosignature byte changes or the quorum is short.
//! - airlock's policy evaluation agrees with the crate's on every subset of cosignatures.

#![allow(clippy::unwrap_used)]

mod common;

use airlock_keys::{
    cosign, cosigned_at, note_key_id, sign_note, witness_key_id, PublicKey, SecretKey, TrustedRoot,
};
use airlock_proto::merkle::{leaf_hash, node_hash};
use airlock_proto::{
    KeyId, Note, NoteSignature, PublicKeyBytes, Role, Root, WitnessGroup, WitnessKey, WitnessPolicy,
};
use base64::Engine as _;
use common::{root_leaf, KeySet, YEAR};
use sha2::{Digest as _, Sha256};

/// The proof published with the `sigsum` crate (sigsum-rs `src/lib.rs`), logged by the test log
/// whose key hash is `LOG_KEYHASH` under the policy `sigsum-test-2025-3`.
const LOG_KEYHASH: &str = "1643169b32bef33a3f54f8a353b87c475d19b6223cbb106390d10a29978e1cba";
const SIZE: u64 = 381_382;
const ROOT_HASH: &str = "901fefc6f1d978d2c2bedb82d448755bcdc7e8626e67ac7ee80873771be9b667";
const LOG_SIGNATURE: &str = "8a8bf1fca60d1344fb6e2106e8f8906af833d3d75a21fe8d3af72be459f7a11f2ae6606ec6344a13b851cd454b3d281a2b1ae47732f7a8d6afbcc0134d1a2d00";
const COSIGNED_AT: u64 = 1_770_193_051;
const COSIGNATURES: [(&str, &str); 8] = [
    ("1c997261f16e6e81d13f420900a2542a4b6a049c2d996324ee5d82a90ca3360c", "a1ee1182b265204499cbef3ae59f3ea228b928b3cbda8817a4ed5a12776823e9ad8ef1ce986b9b98d9954f1798ec4315c1820704600a231c69038ccc9726d202"),
    ("49c4cd6124b7c572f3354d854d50b2a4b057a750f786cf03103c09de339c4ea3", "aaf642e81a54399777180f238573d74878b68c7b645d8011583621405bb450b4e7887fc76502a8142c493d64e3ed3e556d82dad1706411082e58805f64fa9d02"),
    ("70b861a010f25030de6ff6a5267e0b951e70c04b20ba4a3ce41e7fba7b9b7dfc", "f5953f406f5fd97d9c9d1328b00b07bf434a5eb76d8da359aeda98c414de29ca1ced1872971ea0f137508a7bb05c7d322548409425677af96433706319bc0801"),
    ("86b5414ae57f45c2953a074640bb5bedebad023925d4dc91a31de1350b710089", "3434b4646904714f4983c8e7e976a45332711f10012b19fbeb5549b6c0c04fb4ed52feed2da829354623c52b22b90093776034a8d57d660f9ff27a118f5bf801"),
    ("c1d2d6935c2fb43bef395792b1f3c1dfe4072d4c6cadd05e0cc90b28d7141ed3", "f0dce1bcdda3a2826479d62e6afedbe9ec06e8f990ae59d8cefa84d9a6ee68c12c2820fb00e1dbdc30044b16c7695a9d1047cec4788dc757f698d34ebaec4305"),
    ("d960fcff859a34d677343e4789c6843e897c9ff195ea7140a6ef382566df3b65", "b44c41f75566850003f7f655a6dc7bb38bb980e8e2c383871e29883805d3adec7782a08388b9386d9718380a4bb6900043e2b46080cff0fa75a500c36ef9df0a"),
    ("e4a6a1e4657d8d7a187cc0c20ed51055d88c72f340d29534939aee32d86b4021", "70697b4a6b07e79e49d0a8e41fd7450a593ee9df11da6244cebe4b0c15c8e52f28ad3931b95a806fc7f16b4ad90197971ddc087434c7985b8b3a0223c9fa3603"),
    ("42351ad474b29c04187fd0c8c7670656386f323f02e9a4ef0a0055ec061ecac8", "6610e5cf4ead2062d9783fbc19d2bae65eded35335495ad0cf0386277ed2d51854ced64efa21a6db0a398fdfb6761aa7d5659e54950a060d167fbdcb7b5ece05"),
];

fn unhex<const N: usize>(text: &str) -> [u8; N] {
    hex::decode(text).unwrap().try_into().unwrap()
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The tree head text a Sigsum log signs, which is a c2sp.org/tlog-checkpoint body.
fn tree_head(log_keyhash: &str, size: u64, root: &[u8; 32]) -> String {
    let root = base64::engine::general_purpose::STANDARD.encode(root);
    format!("sigsum.org/v1/tree/{log_keyhash}\n{size}\n{root}\n")
}

/// A root for the log `origin` whose log role is `log_key` and whose witness policy is given.
fn root_for(
    origin: &str,
    log_key: [u8; 32],
    witnesses: Vec<WitnessKey>,
    groups: Vec<WitnessGroup>,
    quorum: &str,
) -> TrustedRoot {
    let keys = KeySet::single();
    let mut root: Root = keys.root(1, common::NOW + YEAR);
    root.origin = origin.to_owned();
    root.keys.push(PublicKeyBytes(log_key));
    root.roles.log = Role { keys: vec![KeyId::of(&PublicKeyBytes(log_key))], threshold: 1 };
    root.witnesses = witnesses;
    root.witness_groups = groups;
    root.witness_quorum = Some(quorum.to_owned());
    TrustedRoot::pin(&root_leaf(root, &keys.root.quorum())).unwrap().into_inner()
}

fn group(name: &str, threshold: u32, members: &[&str]) -> WitnessGroup {
    WitnessGroup { name: name.into(), threshold, members: members.iter().map(|m| (*m).to_owned()).collect() }
}

#[test]
fn a_real_sigsum_checkpoint_and_its_witness_cosignatures_verify_here() {
    let policy = sigsum::Policy::builtin("sigsum-test-2025-3").unwrap();
    let log_key: [u8; 32] = policy
        .logs()
        .map(|log| log.pubkey.clone().into())
        .find(|key: &[u8; 32]| sha256_hex(key) == LOG_KEYHASH)
        .unwrap();
    let origin = format!("sigsum.org/v1/tree/{LOG_KEYHASH}");
    let mut note = Note::new(tree_head(LOG_KEYHASH, SIZE, &unhex(ROOT_HASH))).unwrap();
    let log_public = PublicKey::from_bytes(&log_key).unwrap();
    note.add_signature(NoteSignature {
        name: origin.clone(),
        key_id: note_key_id(&origin, &log_public),
        signature: hex::decode(LOG_SIGNATURE).unwrap(),
    })
    .unwrap();
    // Each witness is found in the published policy by its key hash; its cosignature becomes a
    // note line under its policy name.
    let mut witnesses = Vec::new();
    for (keyhash, signature) in COSIGNATURES {
        let witness = policy.get_witness_by_keyhash(&sigsum::Hash::from(unhex::<32>(keyhash))).unwrap();
        let key = PublicKey::from_bytes(witness.pubkey.as_ref()).unwrap();
        let mut bytes = COSIGNED_AT.to_be_bytes().to_vec();
        bytes.extend_from_slice(&hex::decode(signature).unwrap());
        note.add_signature(NoteSignature {
            name: witness.name.clone(),
            key_id: witness_key_id(&witness.name, &key),
            signature: bytes,
        })
        .unwrap();
        witnesses.push(WitnessKey { name: witness.name, key: PublicKeyBytes(key.to_bytes()) });
    }
    let note = Note::parse(&note.to_bytes()).unwrap();
    for witness in &witnesses {
        let key = PublicKey::from_bytes(&witness.key.0).unwrap();
        assert_eq!(cosigned_at(&note, &witness.name, &key), Some(COSIGNED_AT), "{}", witness.name);
    }
    // The published policy as a root's witness policy: 4 of 6, one of which is 2 of Glasklar's 3.
    let groups = vec![
        group(
            "glasklar-test-witnesses",
            2,
            &["poc.sigsum.org/nisse", "rgdd.se/poc-witness", "witness1.smartit.nu/witness1"],
        ),
        group(
            "quorum-rule",
            4,
            &[
                "glasklar-test-witnesses",
                "witness.navigli.sunlight.geomys.org",
                "remora.n621.de",
                "witness.stagemole.eu",
                "tillitis.se/test-witness-1",
                "transparency.dev/DEV:witness-little-garden",
            ],
        ),
    ];
    let root = root_for(&origin, log_key, witnesses.clone(), groups, "quorum-rule");
    root.check_checkpoint(&note).unwrap();
    root.check_witnesses(&note).unwrap();
    // Without four of the cosignatures (two of them Glasklar's, which fails that group) only 3
    // of the 6 top-level members remain: the published rule is not met, here as in the crate's
    // own policy evaluation.
    let dropped =
        ["poc.sigsum.org/nisse", "rgdd.se/poc-witness", "remora.n621.de", "tillitis.se/test-witness-1"];
    let mut short = Note::new(note.text()).unwrap();
    for line in note.signatures() {
        if !dropped.contains(&line.name.as_str()) {
            short.add_signature(line.clone()).unwrap();
        }
    }
    let err = root.check_witnesses(&short).unwrap_err();
    assert!(err.missing.iter().all(|m| dropped.contains(&m.as_str())) && err.missing.len() == 4, "{err}");
    let remaining: Vec<sigsum::Hash> = witnesses
        .iter()
        .filter(|w| !dropped.contains(&w.name.as_str()))
        .map(|w| sigsum::Hash::new(w.key.0))
        .collect();
    assert!(!policy.check_quorum(&remaining));
    let all: Vec<sigsum::Hash> = witnesses.iter().map(|w| sigsum::Hash::new(w.key.0)).collect();
    assert!(policy.check_quorum(&all));
    // The log signature and each cosignature are bound to the text: another size verifies neither.
    let moved = Note::parse(
        String::from_utf8(note.to_bytes()).unwrap().replacen("\n381382\n", "\n381383\n", 1).as_bytes(),
    )
    .unwrap();
    assert!(root.check_checkpoint(&moved).is_err());
    let err = root.check_witnesses(&moved).unwrap_err();
    assert!(err.valid.is_empty(), "{err}");
}

/// The witnesses and the two-level policy of the next tests: 2 of a team of three, and all of
/// the team plus one of two sites.
fn witnesses_and_policy() -> (Vec<(String, SecretKey)>, Vec<WitnessGroup>) {
    let witnesses = ["team1.example", "team2.example", "team3.example", "site1.example", "site2.example"]
        .iter()
        .map(|name| ((*name).to_owned(), SecretKey::generate()))
        .collect();
    let groups = vec![
        group("team", 2, &["team1.example", "team2.example", "team3.example"]),
        group("sites", 1, &["site1.example", "site2.example"]),
        group("team-and-a-site", 2, &["team", "sites"]),
    ];
    (witnesses, groups)
}

/// The same policy in the `sigsum` crate's policy syntax (hex keys), with the log.
fn sigsum_policy(
    log: &PublicKey,
    witnesses: &[(String, SecretKey)],
    groups: &[WitnessGroup],
) -> sigsum::Policy {
    let mut text = format!("log {}\n", hex::encode(log.to_bytes()));
    for (name, key) in witnesses {
        text.push_str(&format!("witness {name} {}\n", hex::encode(key.public().to_bytes())));
    }
    for g in groups {
        text.push_str(&format!("group {} {} {}\n", g.name, g.threshold, g.members.join(" ")));
    }
    text.push_str("quorum team-and-a-site\n");
    sigsum::Policy::parse(&text).unwrap()
}

#[test]
fn airlock_cosignatures_verify_in_sigsum() {
    let (witnesses, groups) = witnesses_and_policy();
    let (log, submitter) = (SecretKey::generate(), SecretKey::generate());
    let log_keyhash = sha256_hex(&log.public().to_bytes());
    // A two-leaf Sigsum log: leaf 0 is a signed checksum of the message, leaf 1 filler.
    let message = sigsum::Hash::new(b"airlock interop\n");
    let checksum: [u8; 32] = Sha256::digest(message.as_ref()).into();
    let leaf_signature = submitter.sign(&[b"sigsum.org/v1/tree-leaf\x00".as_slice(), &checksum].concat());
    let submitter_keyhash = Sha256::digest(submitter.public().to_bytes());
    let leaf = [checksum.as_slice(), &leaf_signature, &submitter_keyhash].concat();
    let (l0, l1) = (leaf_hash(&leaf), leaf_hash(b"filler"));
    let root = node_hash(&l0, &l1);
    // The tree head is signed and cosigned by airlock's own note code.
    let mut note = Note::new(tree_head(&log_keyhash, 2, &root)).unwrap();
    sign_note(&mut note, &format!("sigsum.org/v1/tree/{log_keyhash}"), &log).unwrap();
    for (name, key) in &witnesses {
        cosign(&mut note, name, key, 1_700_000_000).unwrap();
    }
    let lines = note.signatures().to_vec();
    let proof = |cosigners: &[usize], tamper: bool| {
        let mut text = format!(
            "version=2\nlog={log_keyhash}\nleaf={} {}\n\nsize=2\nroot_hash={}\nsignature={}\n",
            hex::encode(submitter_keyhash),
            hex::encode(leaf_signature),
            hex::encode(root),
            hex::encode(&lines[0].signature)
        );
        for &i in cosigners {
            let line = &lines[1 + i];
            let mut signature = line.signature[8..].to_vec();
            if tamper {
                signature[10] ^= 1;
            }
            let time = u64::from_be_bytes(line.signature[..8].try_into().unwrap());
            let keyhash = sha256_hex(&witnesses[i].1.public().to_bytes());
            text.push_str(&format!("cosignature={keyhash} {time} {}\n", hex::encode(signature)));
        }
        text.push_str(&format!("\nleaf_index=0\nnode_hash={}\n", hex::encode(l1)));
        sigsum::SigsumSignature::from_ascii(&text).unwrap()
    };
    let policy = sigsum_policy(&log.public(), &witnesses, &groups);
    let signers = [sigsum::PublicKey::from(submitter.public().to_bytes())];
    sigsum::verify(&message, &proof(&[0, 2, 3], false), &signers, &policy).unwrap();
    sigsum::verify(&message, &proof(&[0, 1, 2, 3, 4], false), &signers, &policy).unwrap();
    let short = sigsum::verify(&message, &proof(&[0, 1, 2], false), &signers, &policy).unwrap_err();
    assert!(short.to_string().contains("not enough valid cosignatures"), "{short}");
    let tampered = sigsum::verify(&message, &proof(&[0, 2, 3], true), &signers, &policy).unwrap_err();
    assert!(tampered.to_string().contains("bad witness cosignature"), "{tampered}");
}

#[test]
fn the_witness_policy_agrees_with_sigsum_on_every_set_of_cosigners() {
    let (witnesses, groups) = witnesses_and_policy();
    let log = SecretKey::generate().public();
    let theirs = sigsum_policy(&log, &witnesses, &groups);
    let keys: Vec<WitnessKey> = witnesses
        .iter()
        .map(|(name, key)| WitnessKey { name: name.clone(), key: PublicKeyBytes(key.public().to_bytes()) })
        .collect();
    let ours = WitnessPolicy { witnesses: &keys, groups: &groups, quorum: Some("team-and-a-site") };
    ours.check().unwrap();
    let mut met = 0;
    for set in 0u32..(1 << witnesses.len()) {
        let cosigned: Vec<&str> =
            (0..witnesses.len()).filter(|i| set & (1 << i) != 0).map(|i| witnesses[i].0.as_str()).collect();
        let hashes: Vec<sigsum::Hash> = (0..witnesses.len())
            .filter(|i| set & (1 << i) != 0)
            .map(|i| sigsum::Hash::new(witnesses[i].1.public().to_bytes()))
            .collect();
        let ours = ours.is_met(&|name| cosigned.contains(&name));
        assert_eq!(ours, theirs.check_quorum(&hashes), "cosigned by {cosigned:?}");
        met += usize::from(ours);
    }
    // 2 or 3 of the team (4 sets) times 1 or 2 sites (3 sets).
    assert_eq!(met, 12);
}
