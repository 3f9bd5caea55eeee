//! Valid inputs for every target, built by the real encoders and signed with fixed keys (so the
//! output is the same on every run): the seed corpus in `fuzz/corpus/<target>/` is what
//! `cargo run -p airlock-fuzz-targets --example write_corpus` writes from these.

use std::fmt::Display;

use airlock_keys::{note_key_id, verifier_key, witness_key_id, witness_verifier_key, PublicKey};
use airlock_proto::api::{
    encode_digest_bucket, encode_name_bucket, BundleBlob, BundleManifest, ClientFold, FoldSnapshot,
    IndexedRelease, LeavesPage, LogSnapshot, Proof, SnapshotRelease, SnapshotStatus, BUNDLE_FORMAT,
    SNAPSHOT_FORMAT,
};
use airlock_proto::merkle::{leaf_hash, MemoryTree};
use airlock_proto::proof::TlogProof;
use airlock_proto::{
    codec, ChannelName, ChannelStatement, Checkpoint, Digest, Envelope, FileEntry, FileName, Hash32, KeyId,
    Kind, Metadata, Note, NoteSignature, PackageName, PayloadType, PublicKeyBytes, Release, Role, Roles,
    Root, Sha256, Signature, SignatureBytes, Statement, Status, StatusAction, Version, WitnessGroup,
    WitnessKey,
};
use ed25519_dalek::{Signer as _, SigningKey};

/// One seed: the target it is for, a file name, and its bytes.
#[derive(Debug, Clone)]
pub struct Seed {
    pub target: &'static str,
    pub name: String,
    pub bytes: Vec<u8>,
}

const ORIGIN: &str = "demo.airlock";
const WITNESS: &str = "witness.example/w1";
const ISSUED_AT: u64 = 1_700_000_000;
/// The one blob the release lists and the bundle carries.
const BLOB: &[u8] = b"abc";

fn ok<T, E: Display>(result: Result<T, E>) -> Result<T, String> {
    result.map_err(|e| e.to_string())
}

/// A fixed Ed25519 key (seed bytes all `n`).
fn signing_key(n: u8) -> SigningKey {
    SigningKey::from_bytes(&[n; 32])
}

fn public_bytes(key: &SigningKey) -> PublicKeyBytes {
    PublicKeyBytes(key.verifying_key().to_bytes())
}

fn public_key(key: &SigningKey) -> Result<PublicKey, String> {
    ok(PublicKey::from_bytes(&key.verifying_key().to_bytes()))
}

struct Keys {
    root: SigningKey,
    publisher: SigningKey,
    log: SigningKey,
    witness: SigningKey,
}

fn keys() -> Keys {
    Keys { root: signing_key(1), publisher: signing_key(2), log: signing_key(3), witness: signing_key(4) }
}

fn role(key: &SigningKey) -> Role {
    Role { keys: vec![KeyId::of(&public_bytes(key))], threshold: 1 }
}

fn statements(keys: &Keys) -> Result<Vec<Statement>, String> {
    let name = ok(PackageName::new(Kind::Wheel, "demo-pkg"))?;
    let version = ok(Version::new("1.0.0"))?;
    let root = Root {
        payload_type: PayloadType::Root,
        origin: ORIGIN.into(),
        version: 1,
        expires: ISSUED_AT + 365 * 86_400,
        previous: None,
        max_checkpoint_validity: 45 * 86_400,
        keys: [&keys.root, &keys.publisher, &keys.log].into_iter().map(public_bytes).collect(),
        roles: Roles { root: role(&keys.root), publisher: role(&keys.publisher), log: role(&keys.log) },
        witnesses: vec![WitnessKey { name: WITNESS.into(), key: public_bytes(&keys.witness) }],
        witness_groups: vec![WitnessGroup {
            name: "any".into(),
            threshold: 1,
            members: vec![WITNESS.into()],
        }],
        witness_quorum: Some("any".into()),
        key_names: Vec::new(),
    };
    let release = Release {
        payload_type: PayloadType::Release,
        kind: Kind::Wheel,
        name: name.clone(),
        version: version.clone(),
        files: vec![FileEntry {
            filename: ok(FileName::new("demo_pkg-1.0.0-py3-none-any.whl"))?,
            size: BLOB.len() as u64,
            blake3: Digest::of(BLOB),
            sha256: Sha256([0x5a; 32]),
        }],
        metadata: Metadata {
            summary: Some("A demo package".into()),
            requires_python: Some(">=3.9".into()),
            dependencies: vec!["numpy>=1".into()],
            ..Metadata::default()
        },
        published_at: ISSUED_AT,
    };
    let status = Status {
        payload_type: PayloadType::Status,
        kind: Kind::Wheel,
        name: name.clone(),
        version: version.clone(),
        action: StatusAction::Yank,
        reason: "broken wheel".into(),
        issued_at: ISSUED_AT + 1,
        supersedes: None,
    };
    let channel = ChannelStatement {
        payload_type: PayloadType::Channel,
        channel: ok(ChannelName::new("stable"))?,
        action: airlock_proto::ChannelAction::Add,
        kind: Kind::Wheel,
        name,
        version,
        issued_at: ISSUED_AT + 2,
        supersedes: Some(2),
    };
    Ok(vec![
        Statement::Root(root),
        Statement::Release(release),
        Statement::Status(status),
        Statement::Channel(channel),
    ])
}

/// The statement signed into an envelope by `key`.
fn signed_envelope(statement: &Statement, key: &SigningKey) -> Result<Envelope, String> {
    let (ty, payload) = ok(statement.encode())?;
    let mut envelope = Envelope::unsigned(ty.as_str(), payload);
    let sig = key.sign(&envelope.signed_bytes()).to_bytes();
    envelope.signatures.push(Signature { key_id: KeyId::of(&public_bytes(key)), sig: SignatureBytes(sig) });
    Ok(envelope)
}

/// The checkpoint note over `leaves`, signed by the log and cosigned by the witness.
fn checkpoint_note(keys: &Keys, tree: &MemoryTree, cosigned: bool) -> Result<Vec<u8>, String> {
    let checkpoint = Checkpoint {
        origin: ORIGIN.into(),
        size: tree.size(),
        root_hash: Hash32(tree.root()),
        issued_at: ISSUED_AT + 10,
        expires_at: ISSUED_AT + 10 + 86_400,
    };
    let mut note = ok(Note::new(checkpoint.to_text()))?;
    let text = note.text().to_owned();
    ok(note.add_signature(NoteSignature {
        name: ORIGIN.into(),
        key_id: note_key_id(ORIGIN, &public_key(&keys.log)?),
        signature: keys.log.sign(text.as_bytes()).to_bytes().to_vec(),
    }))?;
    if cosigned {
        let time = ISSUED_AT + 20;
        let mut signature = time.to_be_bytes().to_vec();
        let message = format!("cosignature/v1\ntime {time}\n{text}");
        signature.extend_from_slice(&keys.witness.sign(message.as_bytes()).to_bytes());
        ok(note.add_signature(NoteSignature {
            name: WITNESS.into(),
            key_id: witness_key_id(WITNESS, &public_key(&keys.witness)?),
            signature,
        }))?;
    }
    Ok(note.to_bytes())
}

fn tar_member(builder: &mut tar::Builder<Vec<u8>>, name: &str, bytes: &[u8]) -> Result<(), String> {
    let mut header = tar::Header::new_ustar();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_size(bytes.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(0);
    ok(builder.append_data(&mut header, name, bytes))
}

fn bundle_tar(manifest: &BundleManifest, blobs: &[&[u8]]) -> Result<Vec<u8>, String> {
    let mut builder = tar::Builder::new(Vec::new());
    tar_member(&mut builder, airlock_proto::api::BUNDLE_MANIFEST, &ok(codec::encode("manifest", manifest))?)?;
    for blob in blobs {
        let name = format!("{}{}", airlock_proto::api::BUNDLE_BLOB_PREFIX, Digest::of(blob).to_hex());
        tar_member(&mut builder, &name, blob)?;
    }
    ok(builder.into_inner())
}

/// Every seed of every target.
pub fn all() -> Result<Vec<Seed>, String> {
    let keys = keys();
    let statements = statements(&keys)?;
    let mut seeds = Vec::new();
    let mut add = |target: &'static str, name: &str, bytes: Vec<u8>| {
        seeds.push(Seed { target, name: name.to_owned(), bytes });
    };

    // Log leaves: the root signed by its root key, the rest by the publisher.
    let mut leaves = Vec::new();
    for (i, statement) in statements.iter().enumerate() {
        let key = if i == 0 { &keys.root } else { &keys.publisher };
        let envelope = signed_envelope(statement, key)?;
        let bytes = ok(envelope.to_bytes())?;
        let ty = statement.payload_type();
        let short = ty.as_str().split('.').nth(1).unwrap_or("statement");
        add("envelope", &format!("{short}.cbor"), bytes.clone());
        let selector = PayloadType::ALL.iter().position(|t| *t == ty).unwrap_or(0) as u8;
        let mut payload = vec![selector];
        payload.extend_from_slice(&envelope.payload);
        add("statement", &format!("{short}.bin"), payload);
        leaves.push(bytes);
    }

    let mut tree = MemoryTree::new();
    for leaf in &leaves {
        tree.push(leaf_hash(leaf));
    }
    let note = checkpoint_note(&keys, &tree, true)?;
    add("checkpoint", "cosigned.note", note.clone());
    add("checkpoint", "log-only.note", checkpoint_note(&keys, &tree, false)?);

    let index = 1;
    let hashes: Vec<Hash32> = ok(tree.inclusion_proof(index, tree.size()))?.into_iter().map(Hash32).collect();
    let proof =
        TlogProof { extra: Some(leaves[1].clone()), index, hashes: hashes.clone(), checkpoint: note.clone() };
    add("proof", "release.tlog-proof", proof.to_bytes());
    let bare = TlogProof {
        extra: None,
        index: 3,
        hashes: ok(tree.inclusion_proof(3, 4))?.into_iter().map(Hash32).collect(),
        checkpoint: note.clone(),
    };
    add("proof", "no-extra.tlog-proof", bare.to_bytes());

    let byte_bufs = || leaves.iter().cloned().map(serde_bytes::ByteBuf::from).collect::<Vec<_>>();
    let body = |selector: u8, bytes: Vec<u8>| [vec![selector], bytes].concat();
    let page = LeavesPage { start: 0, leaves: byte_bufs() };
    add("bodies", "leaves-page.bin", body(0, ok(codec::encode("page", &page))?));
    add("bodies", "proof.bin", body(1, ok(codec::encode("proof", &Proof { hashes }))?));
    let log = LogSnapshot {
        format: SNAPSHOT_FORMAT,
        fold: FoldSnapshot {
            size: 0,
            roots: Vec::new(),
            releases: Vec::new(),
            payloads: serde_bytes::ByteBuf::new(),
            channels: Vec::new(),
            status_leaves: Vec::new(),
            channel_leaves: Vec::new(),
        },
        frontier: airlock_proto::merkle::Frontier::new(),
        checkpoint: Some(serde_bytes::ByteBuf::from(note.clone())),
        newest_issued_at: ISSUED_AT + 10,
    };
    let saved = ClientFold { log: serde_bytes::ByteBuf::from(ok(log.to_bytes())?), leaves_bytes: 0 };
    add("bodies", "saved-fold.bin", body(2, ok(codec::encode("saved fold", &saved))?));
    let manifest = BundleManifest {
        format: BUNDLE_FORMAT,
        origin: ORIGIN.into(),
        from_size: 0,
        to_size: tree.size(),
        checkpoint: serde_bytes::ByteBuf::from(note),
        leaves: byte_bufs(),
        blobs: vec![BundleBlob { digest: Digest::of(BLOB), size: BLOB.len() as u64 }],
    };
    add("bodies", "bundle-manifest.bin", body(3, ok(codec::encode("manifest", &manifest))?));
    let (name, version) = (ok(PackageName::new(Kind::Node, "comfy-demo"))?, ok(Version::new("1.0.0"))?);
    let release = Release {
        payload_type: PayloadType::Release,
        kind: Kind::Node,
        name: name.clone(),
        version: version.clone(),
        files: vec![FileEntry {
            filename: ok(FileName::new("comfy-demo-1.0.0.tar.gz"))?,
            size: BLOB.len() as u64,
            blake3: Digest::of(BLOB),
            sha256: Sha256([0x5a; 32]),
        }],
        metadata: Metadata { summary: Some("A demo pack".into()), ..Metadata::default() },
        published_at: ISSUED_AT,
    };
    let indexed = IndexedRelease {
        release: SnapshotRelease { leaf: 1, release, status: SnapshotStatus::Yanked("broken".into()) },
        channels: vec![ok(ChannelName::new("stable"))?],
    };
    add("bodies", "name-bucket.bin", body(4, ok(encode_name_bucket(&[indexed]))?));
    let digests = vec![(Digest::of(BLOB), (Kind::Node, name, version))];
    add("bodies", "digest-bucket.bin", body(5, encode_digest_bucket(&digests)));

    add("bundle", "one-blob.tar", bundle_tar(&manifest, &[BLOB])?);
    let empty = BundleManifest { from_size: 4, leaves: Vec::new(), blobs: Vec::new(), ..manifest };
    add("bundle", "no-blobs.tar", bundle_tar(&empty, &[])?);

    for (name, query) in [("leaves", "start=0&end=1000"), ("repeated", "start=5&end=&x&start=9")] {
        add("request", &format!("query-{name}.txt"), query.as_bytes().to_vec());
    }
    for (name, size, range) in [
        ("first-ten", 100u64, "bytes=0-9"),
        ("suffix", 100, "bytes=-10"),
        ("open", 100, "bytes=90-"),
        ("several", 100, "bytes=0-1,5-6"),
        ("empty-blob", 0, "bytes=-1"),
    ] {
        add("request", &format!("range-{name}.bin"), [&size.to_be_bytes()[..], range.as_bytes()].concat());
    }

    let log_vkey = verifier_key(ORIGIN, &public_key(&keys.log)?);
    let witness_vkey = witness_verifier_key(WITNESS, &public_key(&keys.witness)?);
    let other = signing_key(5);
    let other_vkey = witness_verifier_key("witness.example/w2", &public_key(&other)?);
    add(
        "policy",
        "groups.policy",
        format!(
            "# witness policy of {ORIGIN}\nlog {log_vkey} https://log.example/\n\
             witness w1 {witness_vkey} https://w1.example/\nwitness w2\t{other_vkey}\n\
             group both all w1 w2\ngroup either any w1 w2\ngroup top 1 both either\nquorum top\n"
        )
        .into_bytes(),
    );
    add("policy", "none.policy", format!("log {log_vkey}\nquorum none\n").into_bytes());
    add("policy", "vkeys.txt", format!("{log_vkey} {witness_vkey}\n").into_bytes());
    Ok(seeds)
}
