//! Protocol test vectors: fixed inputs, hard-coded expected outputs.
//!
//! `docs/protocol.md` ("Test vectors") quotes these values and this test guards them. If an
//! assertion here fails, the wire format changed: fix the code, or, for a deliberate format
//! change, update the values here and in the document together.
//!
//! Long hex values are written wrapped, exactly as the document shows them; whitespace is not
//! part of a value. The signature vectors live in `keys/tests/vectors.rs` (this crate has no
//! ed25519).

#![allow(clippy::unwrap_used)]

use airlock_proto::api::Proof;
use airlock_proto::merkle::{
    empty_root, leaf_hash, node_hash, verify_consistency, verify_inclusion, Frontier, Hash, MemoryTree,
};
use airlock_proto::{
    codec, pae, Checkpoint, Digest, FileEntry, FileName, Hash32, Kind, Metadata, PackageName, PayloadType,
    Release, Sha256, Statement, Version,
};

/// SHA-256 of b"abc" (the FIPS 180-2 example); proto has no sha2, so it is a constant.
const SHA256_ABC: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

/// The `Release` payload of the vectors, encoded (319 bytes).
const RELEASE_PAYLOAD: &str = "
a76474797065726169726c6f636b2e72656c656173652e7632646b696e646577
6865656c646e616d656864656d6f2d706b676776657273696f6e65312e302e30
6566696c657381a46866696c656e616d65781f64656d6f5f706b672d312e302e
302d7079332d6e6f6e652d616e792e77686c6473697a650366626c616b653358
206437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d
85667368613235365820ba7816bf8f01cfea414140de5dae2223b00361a39617
7a9cb410ff61f20015ad686d65746164617461a96773756d6d617279f66f7265
7175697265735f707974686f6ef66c646570656e64656e636965738067636f6d
66797569f66a736f757263655f75726cf66d736f757263655f636f6d6d6974f6
676c6963656e7365f66b7363616e5f7265706f7274f67561636b6e6f776c6564
6765645f66696e64696e6773806c7075626c69736865645f61741a6553f100
";

/// The `Checkpoint` payload of the vectors, encoded (129 bytes).
/// The checkpoint note text of the 5-leaf tree (tlog-checkpoint body and two extension lines).
const CHECKPOINT_TEXT: &str = "demo.airlock\n5\ntnSPbtepnefahP2X4aO6xvq4mZ9KQ2lcq5Uoot5DEUc=\nissued-at 1700000000\nexpires-at 1700086400\n";

/// Strips the whitespace of a wrapped hex constant.
fn unwrap_hex(text: &str) -> String {
    text.split_whitespace().collect()
}

fn h(hash: &Hash) -> String {
    hex::encode(hash)
}

fn hex_list(list: &[Hash]) -> Vec<String> {
    list.iter().map(h).collect()
}

fn unhex32(text: &str) -> Hash {
    let mut out = [0u8; 32];
    hex::decode_to_slice(text, &mut out).unwrap();
    out
}

/// The tree of the five entries b"0", b"1", b"2", b"3", b"4".
fn five() -> MemoryTree {
    let mut tree = MemoryTree::new();
    for data in [b"0", b"1", b"2", b"3", b"4"] {
        tree.push(leaf_hash(data));
    }
    tree
}

/// The release every vector uses.
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
            sha256: Sha256::from_hex(SHA256_ABC).unwrap(),
        }],
        metadata: Metadata::default(),
        published_at: 1_700_000_000,
    }
}

/// The checkpoint every vector uses: the 5-leaf tree.
fn demo_checkpoint() -> Checkpoint {
    Checkpoint {
        origin: "demo.airlock".to_owned(),
        size: 5,
        root_hash: Hash32(five().root()),
        issued_at: 1_700_000_000,
        expires_at: 1_700_086_400,
    }
}

#[test]
fn digest_text_form() {
    assert_eq!(
        Digest::of(b"").to_string(),
        "blake3:af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
    );
    assert_eq!(
        Digest::of(b"airlock").to_string(),
        "blake3:137563a8e7e62e18163327bbc6746aca01d1b1a3f18b4b791dac60c015ed67c1"
    );
    assert_eq!(
        Digest::of(b"abc").to_string(),
        "blake3:6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85"
    );
    // The text form parses back; the URL form is the bare hex.
    let d = Digest::of(b"airlock");
    assert_eq!(d.to_string().parse::<Digest>().unwrap(), d);
    assert_eq!(Digest::from_hex(&d.to_hex()).unwrap(), d);
}

#[test]
fn pae_vector() {
    let bytes = pae("airlock.release.v2", b"\x01\x02");
    assert_eq!(bytes, b"DSSEv1 18 airlock.release.v2 2 \x01\x02".to_vec());
    assert_eq!(hex::encode(&bytes), "445353457631203138206169726c6f636b2e72656c656173652e76322032200102");
}

#[test]
fn merkle_hashes() {
    // From the module documentation of `merkle`.
    assert_eq!(h(&empty_root()), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    let empty_leaf = leaf_hash(b"");
    let airlock_leaf = leaf_hash(b"airlock");
    assert_eq!(h(&empty_leaf), "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d");
    assert_eq!(h(&airlock_leaf), "4108e661db4f88f580aa1409f2946e03227e8b2fa3a056df0d6237a7101f63f3");
    assert_eq!(
        h(&node_hash(&empty_leaf, &airlock_leaf)),
        "0ceba9ae7d2786cbd047dc0449fdbcd916a6433036617e5cb7a7d5fcec81d33c"
    );

    // The 5-leaf tree.
    let leaves: Vec<Hash> = [b"0", b"1", b"2", b"3", b"4"].iter().map(|d| leaf_hash(*d)).collect();
    assert_eq!(
        hex_list(&leaves),
        [
            "db3426e878068d28d269b6c87172322ce5372b65756d0789001d34835f601c03", // leaf_hash(b"0")
            "2215e8ac4e2b871c2a48189e79738c956c081e23ac2f2415bf77da199dfd920c", // leaf_hash(b"1")
            "fa61e3dec3439589f4784c893bf321d0084f04c572c7af2b68e3f3360a35b486", // leaf_hash(b"2")
            "906c5d2485cae722073a430f4d04fe1767507592cef226629aeadb85a2ec909d", // leaf_hash(b"3")
            "11e1f558223f4c71b6be1cecfd1f0de87146d2594877c27b29ec519f9040213c", // leaf_hash(b"4")
        ]
    );
    let n01 = node_hash(&leaves[0], &leaves[1]);
    let n23 = node_hash(&leaves[2], &leaves[3]);
    let n0123 = node_hash(&n01, &n23);
    let root3 = node_hash(&n01, &leaves[2]);
    let root5 = node_hash(&n0123, &leaves[4]);
    assert_eq!(h(&n01), "cb00989d94a569c0a678ae042b63dcd4625db96440517f37a6eb7976ea24ed4b");
    assert_eq!(h(&n23), "d51f2dfecb59566dabdbb6b40bf651cdf39e677b4425165e217590ff3e010edb");
    assert_eq!(h(&n0123), "9f4a3fc20d4162dc37d4e23d907848731a76043ffff6d69288bf1abfbcff478e");
    assert_eq!(h(&root3), "725d5230db68f557470dc35f1d8865813acd7ebb07ad152774141decbae71327");
    assert_eq!(h(&root5), "b6748f6ed7a99de7da84fd97e1a3bac6fab8999f4a43695cab9528a2de431147");

    // The tree code agrees with the hand-built hashes, for every size.
    let tree = five();
    let by_size = [leaves[0], n01, root3, n0123, root5];
    let mut frontier = Frontier::new();
    for (size, (expected, leaf)) in (1u64..).zip(by_size.iter().zip(&leaves)) {
        frontier.push(*leaf);
        assert_eq!(tree.root_at(size).unwrap(), *expected, "root at size {size}");
        assert_eq!(frontier.root(), *expected, "frontier root at size {size}");
    }
    assert_eq!(tree.root(), root5);
}

#[test]
fn inclusion_proof_2_in_5() {
    let tree = five();
    let proof = tree.inclusion_proof(2, 5).unwrap();
    assert_eq!(
        hex_list(&proof),
        [
            "906c5d2485cae722073a430f4d04fe1767507592cef226629aeadb85a2ec909d", // leaf_hash(b"3")
            "cb00989d94a569c0a678ae042b63dcd4625db96440517f37a6eb7976ea24ed4b", // node(0,1)
            "11e1f558223f4c71b6be1cecfd1f0de87146d2594877c27b29ec519f9040213c", // leaf_hash(b"4")
        ]
    );
    let root5 = unhex32("b6748f6ed7a99de7da84fd97e1a3bac6fab8999f4a43695cab9528a2de431147");
    verify_inclusion(&leaf_hash(b"2"), 2, 5, &proof, &root5).unwrap();
    assert!(verify_inclusion(&leaf_hash(b"2"), 3, 5, &proof, &root5).is_err());

    // The same proof as the body of `GET /v1/log/proof/inclusion?index=2&size=5`.
    let body = Proof { hashes: proof.into_iter().map(Hash32).collect() };
    let bytes = codec::encode("proof", &body).unwrap();
    assert_eq!(
        hex::encode(&bytes),
        unwrap_hex(
            "
a166686173686573835820906c5d2485cae722073a430f4d04fe1767507592ce
f226629aeadb85a2ec909d5820cb00989d94a569c0a678ae042b63dcd4625db9
6440517f37a6eb7976ea24ed4b582011e1f558223f4c71b6be1cecfd1f0de871
46d2594877c27b29ec519f9040213c"
        )
    );
    assert_eq!(codec::decode::<Proof>("proof", &bytes, 8 * 1024).unwrap(), body);
}

#[test]
fn consistency_proof_3_to_5() {
    let tree = five();
    let proof = tree.consistency_proof(3, 5).unwrap();
    assert_eq!(
        hex_list(&proof),
        [
            "fa61e3dec3439589f4784c893bf321d0084f04c572c7af2b68e3f3360a35b486", // leaf_hash(b"2")
            "906c5d2485cae722073a430f4d04fe1767507592cef226629aeadb85a2ec909d", // leaf_hash(b"3")
            "cb00989d94a569c0a678ae042b63dcd4625db96440517f37a6eb7976ea24ed4b", // node(0,1)
            "11e1f558223f4c71b6be1cecfd1f0de87146d2594877c27b29ec519f9040213c", // leaf_hash(b"4")
        ]
    );
    let root3 = unhex32("725d5230db68f557470dc35f1d8865813acd7ebb07ad152774141decbae71327");
    let root5 = unhex32("b6748f6ed7a99de7da84fd97e1a3bac6fab8999f4a43695cab9528a2de431147");
    verify_consistency(3, 5, &root3, &root5, &proof).unwrap();
    assert!(verify_consistency(3, 5, &root5, &root5, &proof).is_err());
}

#[test]
fn release_payload_cbor() {
    let (payload_type, bytes) = Statement::Release(demo_release()).encode().unwrap();
    assert_eq!(payload_type.as_str(), "airlock.release.v2");
    assert_eq!(bytes.len(), 351);
    assert_eq!(hex::encode(&bytes), unwrap_hex(RELEASE_PAYLOAD));
    assert_eq!(
        Digest::of(&bytes).to_string(),
        "blake3:86237cc0b6b5b1454da9bf4f29bf4fa3101471c9b261b5945895885988cf272b"
    );
    // The strict decoder accepts exactly these bytes and gives the same value back.
    assert_eq!(Statement::decode("airlock.release.v2", &bytes).unwrap(), Statement::Release(demo_release()));
    let mut trailing = bytes.clone();
    trailing.push(0);
    assert!(Statement::decode("airlock.release.v2", &trailing).is_err());
}

#[test]
fn checkpoint_note_text() {
    let text = demo_checkpoint().to_text();
    assert_eq!(text, CHECKPOINT_TEXT);
    assert_eq!(Checkpoint::from_text(&text).unwrap(), demo_checkpoint());
    // A checkpoint is not a statement: it is note text, not CBOR.
    assert!(Statement::decode("airlock.checkpoint.v1", text.as_bytes()).is_err());
}

/// The tree is RFC 6962's: the roots of the reference data set published with Certificate
/// Transparency's Merkle tree tests (eight leaves of growing length), for every size 1 to 8.
#[test]
fn rfc6962_reference_roots() {
    use airlock_proto::merkle::{leaf_hash, MemoryTree};
    let data: [&[u8]; 8] = [
        b"",
        b"\x00",
        b"\x10",
        b"\x20\x21",
        b"\x30\x31",
        b"\x40\x41\x42\x43",
        b"\x50\x51\x52\x53\x54\x55\x56\x57",
        b"\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f",
    ];
    let roots = [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ];
    let mut tree = MemoryTree::new();
    for (entry, root) in data.iter().zip(roots) {
        tree.push(leaf_hash(entry));
        assert_eq!(hex::encode(tree.root()), root, "size {}", tree.size());
    }
}

/// Every statement kind with every field at its cap, carrying the most signatures an envelope
/// may, still fits one log entry (65,535 bytes, the tlog-tiles entry limit): a valid statement is
/// never refused for its size.
#[test]
fn every_statement_at_its_caps_fits_one_log_entry() {
    use airlock_proto::envelope::{MAX_ENTRY_BYTES, MAX_SIGNATURES};
    use airlock_proto::names::{MAX_FILE_NAME_LEN, MAX_NAME_LEN, MAX_VERSION_LEN};
    use airlock_proto::statement::{
        MAX_DEPENDENCIES, MAX_METADATA_TEXT_BYTES, MAX_RELEASE_FILES, MAX_ROOT_KEYS, MAX_TEXT_LEN,
    };
    use airlock_proto::witness_policy::{MAX_GROUP_MEMBERS, MAX_WITNESSES, MAX_WITNESS_GROUPS};
    use airlock_proto::{
        Envelope, KeyId, PublicKeyBytes, Role, Roles, Root, Signature, SignatureBytes, Status, StatusAction,
        WitnessKey,
    };

    let name = PackageName::new(Kind::Wheel, &"n".repeat(MAX_NAME_LEN)).unwrap();
    let version = Version::new(&"9".repeat(MAX_VERSION_LEN)).unwrap();
    let files = (0..MAX_RELEASE_FILES)
        .map(|i| FileEntry {
            filename: FileName::new(&format!("{i:03}{}", "f".repeat(MAX_FILE_NAME_LEN - 3))).unwrap(),
            size: u64::MAX,
            blake3: Digest::of(&i.to_be_bytes()),
            sha256: Sha256([0xff; 32]),
        })
        .collect();
    // The metadata's text budget, spent on the most dependency lines (the most CBOR overhead).
    let line = (MAX_METADATA_TEXT_BYTES / MAX_DEPENDENCIES).min(MAX_TEXT_LEN);
    // Every finding acknowledgement too, with empty texts (the most CBOR per text byte).
    let finding =
        airlock_proto::FindingRef { rule: String::new(), file: String::new(), line: Some(u32::MAX) };
    let metadata = Metadata {
        dependencies: (0..MAX_DEPENDENCIES).map(|_| "d".repeat(line)).collect(),
        scan_report: Some(Digest::of(b"report")),
        acknowledged_findings: vec![finding; airlock_proto::statement::MAX_ACKNOWLEDGED_FINDINGS],
        ..Metadata::default()
    };
    let release = Release {
        payload_type: PayloadType::Release,
        kind: Kind::Wheel,
        name: name.clone(),
        version: version.clone(),
        files,
        metadata,
        published_at: airlock_proto::statement::MAX_TIMESTAMP,
    };
    let status = Status {
        payload_type: PayloadType::Status,
        kind: Kind::Wheel,
        name,
        version,
        action: StatusAction::Revoke,
        reason: "r".repeat(MAX_TEXT_LEN),
        issued_at: u64::MAX,
        supersedes: Some(u64::MAX),
    };
    let keys: Vec<PublicKeyBytes> = (0..MAX_ROOT_KEYS).map(|i| PublicKeyBytes([i as u8; 32])).collect();
    let role = Role { keys: keys.iter().map(KeyId::of).collect(), threshold: 1 };
    let keys_for_names = keys.clone();
    let root = Root {
        payload_type: PayloadType::Root,
        origin: "o".repeat(128),
        version: u64::MAX,
        expires: u64::MAX,
        previous: Some(Digest::of(b"the root before")),
        max_checkpoint_validity: airlock_proto::statement::MAX_CHECKPOINT_VALIDITY,
        keys,
        roles: Roles { root: role.clone(), publisher: role.clone(), log: role },
        witnesses: (0..MAX_WITNESSES)
            .map(|i| WitnessKey {
                name: format!("{i:03}{}", "w".repeat(125)),
                key: PublicKeyBytes([200 + (i % 50) as u8; 32]),
            })
            .collect(),
        // Every group at the longest name, the members spread over the groups up to the cap.
        witness_groups: (0..MAX_WITNESS_GROUPS)
            .map(|i| airlock_proto::WitnessGroup {
                name: format!("{i:03}{}", "g".repeat(125)),
                threshold: 1,
                members: (0..MAX_GROUP_MEMBERS / MAX_WITNESS_GROUPS)
                    .map(|w| format!("{w:03}{}", "w".repeat(125)))
                    .collect(),
            })
            .collect(),
        witness_quorum: Some(format!("000{}", "w".repeat(125))),
        key_names: keys_for_names
            .iter()
            .enumerate()
            .map(|(i, key)| airlock_proto::KeyName {
                key: KeyId::of(key),
                name: format!("{i:02}{}", "n".repeat(airlock_proto::statement::MAX_KEY_NAME_LEN - 2)),
            })
            .collect(),
    };
    // One second later than the last time a statement may state: refused.
    let too_late = Statement::Release(Release {
        published_at: airlock_proto::statement::MAX_TIMESTAMP + 1,
        ..release.clone()
    });
    let (payload_type, payload) = too_late.encode().unwrap();
    assert!(Statement::decode(payload_type.as_str(), &payload)
        .unwrap_err()
        .to_string()
        .contains("after the year 9999"));
    for statement in [Statement::Release(release), Statement::Status(status), Statement::Root(root)] {
        let (payload_type, payload) = statement.encode().unwrap();
        // A valid statement: the decoder, with every check, accepts it as it is.
        assert_eq!(Statement::decode(payload_type.as_str(), &payload).unwrap(), statement);
        let mut envelope = Envelope::unsigned(payload_type.as_str(), payload);
        envelope.signatures = (0..MAX_SIGNATURES)
            .map(|i| Signature { key_id: KeyId([i as u8; 32]), sig: SignatureBytes([0xff; 64]) })
            .collect();
        let len = envelope.to_bytes().unwrap().len();
        assert!(len <= MAX_ENTRY_BYTES, "{payload_type}: {len} bytes at its caps");
    }
}
