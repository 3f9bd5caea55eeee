//! Attacks from `shared/reference/attacks.md`, end to end: a real server, the real CLI, and a
//! man-in-the-middle proxy or direct tampering with the store. Each test is named after the
//! attack it defeats. (Verifier-level cases live in `keys/tests/attacks.rs`, codec and Merkle
//! cases in `proto`.)

use airlock_keys::{read_secret_key, sign_envelope};
use airlock_proto::{Digest, Envelope, PayloadType};

use crate::harness::{http_request, World};
use crate::proxy::Proxy;
use crate::publish_pull::walk_files;

fn published_world(bytes: &[u8]) -> World {
    let world = World::new(1, 1);
    world.write("w-1.0.bin", bytes);
    world.publish("w-1.0.bin", "w", "1.0").ok();
    world
}

fn no_output_left(world: &World, name: &str) {
    assert!(!world.path(name).exists(), "{name} was written");
    let leftovers: Vec<_> = std::fs::read_dir(world.dir.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "temp files left: {leftovers:?}");
}

/// A checkpoint signed with the server's real log key: what a compromised or lying server
/// could produce.
fn forged_checkpoint(world: &World, size: u64, root_hash: [u8; 32], issued_at: u64) -> Vec<u8> {
    let key = read_secret_key(&world.path("data/log.key")).unwrap();
    crate::harness::signed_checkpoint(&key, size, root_hash, issued_at)
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

#[test]
fn blob_with_flipped_last_byte_rejected_and_nothing_written() {
    let bytes = vec![7u8; 50_000];
    let world = published_world(&bytes);
    let digest = Digest::of(&bytes);
    let stored =
        walk_files(&world.path("data/blobs")).into_iter().find(|p| p.ends_with(digest.to_hex())).unwrap();
    let mut tampered = std::fs::read(&stored).unwrap();
    *tampered.last_mut().unwrap() ^= 1;
    std::fs::write(&stored, tampered).unwrap();
    world.pull("w==1.0", "out.bin").code(3).says("hashes to");
    no_output_left(&world, "out.bin");
}

#[test]
fn blob_longer_than_logged_size_rejected() {
    let world = published_world(b"exact bytes");
    let proxy = Proxy::start(&world.url());
    proxy.set(|path, mut body| {
        if path.starts_with("/v1/blobs/") {
            body.extend_from_slice(b"and then some more");
        }
        body
    });
    world.pull_from(&proxy.url, "w==1.0", "out.bin").code(3).says("size");
    no_output_left(&world, "out.bin");
}

#[test]
fn blob_shorter_than_logged_size_rejected() {
    let world = published_world(b"exact bytes");
    let proxy = Proxy::start(&world.url());
    proxy.set(|path, mut body| {
        if path.starts_with("/v1/blobs/") {
            body.pop();
        }
        body
    });
    world.pull_from(&proxy.url, "w==1.0", "out.bin").code(3).says("size");
    no_output_left(&world, "out.bin");
}

#[test]
fn name_not_in_log_is_not_found_and_unlisted_blob_never_fetched() {
    let world = published_world(b"listed");
    world.pull("nothere==1.0", "out.bin").code(5).says("not in the log");
    // A blob that exists on the server but no logged release references.
    let unlisted = Digest::of(b"unlisted");
    let (status, _) = http_request(
        "PUT",
        &world.url(),
        &format!("/v1/blobs/blake3/{}", unlisted.to_hex()),
        Some(&world.publish_token.clone()),
        b"unlisted",
    );
    assert_eq!(status, 201);
    world.pull(&unlisted.to_string(), "out.bin").code(5).says("no logged release holds");
    no_output_left(&world, "out.bin");
}

#[test]
fn rollback_checkpoint_rejected() {
    let world = published_world(b"first");
    let proxy = Proxy::start(&world.url());
    world.pull_from(&proxy.url, "w==1.0", "a.bin").ok();
    let old_checkpoint = crate::harness::http_get(&world.url(), "/v1/log/checkpoint").1;
    world.write("x-2.0.bin", b"second");
    world.publish("x-2.0.bin", "x", "2.0").ok();
    world.pull_from(&proxy.url, "x==2.0", "b.bin").ok();
    proxy.set(
        move |path, body| if path.starts_with("/v1/log/checkpoint") { old_checkpoint.clone() } else { body },
    );
    // An older checkpoint of the same log (what a lagging mirror serves, too) never moves the
    // client back: it is refused as "behind" and the client keeps size 3.
    let run = world.pull_from(&proxy.url, "w==1.0", "c.bin").code(6).says("the registry is behind");
    assert!(run.stderr.contains("size 2") && run.stderr.contains("size 3"), "{}", run.stderr);
    no_output_left(&world, "c.bin");
    // An older checkpoint of another history, signed by the log key, is a rollback to a fork.
    let forked = forged_checkpoint(&world, 2, [7; 32], now());
    proxy.set(move |path, body| if path.starts_with("/v1/log/checkpoint") { forked.clone() } else { body });
    let run = world.pull_from(&proxy.url, "w==1.0", "d.bin").code(4).says("SECURITY ERROR").says("rollback");
    assert!(
        run.stderr.contains("size 2") && run.stderr.contains("size 3"),
        "evidence names both checkpoints: {}",
        run.stderr
    );
    no_output_left(&world, "d.bin");
}

#[test]
fn same_checkpoint_again_is_a_no_op() {
    let world = published_world(b"same");
    world.pull("w==1.0", "a.bin").ok();
    world.pull("w==1.0", "b.bin").ok();
    assert_eq!(std::fs::read(world.path("b.bin")).unwrap(), b"same");
}

#[test]
fn fork_same_size_other_root_hash_rejected() {
    let world = published_world(b"fork me");
    world.pull("w==1.0", "a.bin").ok();
    let forged = forged_checkpoint(&world, world.log_size(), [9u8; 32], now());
    let proxy = Proxy::start(&world.url());
    proxy.set(move |path, body| if path.starts_with("/v1/log/checkpoint") { forged.clone() } else { body });
    world.pull_from(&proxy.url, "w==1.0", "b.bin").code(4).says("SECURITY ERROR").says("fork");
    no_output_left(&world, "b.bin");
}

#[test]
fn inconsistent_leaves_rejected_as_security_error() {
    let world = published_world(b"history");
    world.pull("w==1.0", "a.bin").ok();
    world.write("y-1.0.bin", b"more");
    world.publish("y-1.0.bin", "y", "1.0").ok();
    // A checkpoint for the new size whose root hash does not extend what the client verified.
    let forged = forged_checkpoint(&world, world.log_size(), [3u8; 32], now());
    let proxy = Proxy::start(&world.url());
    proxy.set(move |path, body| if path.starts_with("/v1/log/checkpoint") { forged.clone() } else { body });
    world.pull_from(&proxy.url, "y==1.0", "b.bin").code(4).says("SECURITY ERROR").says("inconsistent");
    no_output_left(&world, "b.bin");
    // The honest server still verifies: the trusted state was kept.
    world.pull("y==1.0", "c.bin").ok();
}

#[test]
fn reserialized_or_tampered_leaf_bytes_rejected() {
    let world = published_world(b"exact statement bytes");
    let proxy = Proxy::start(&world.url());
    proxy.set(|path, mut body| {
        if path.starts_with("/v1/log/leaves") {
            // Change one byte deep inside the page (inside a signed payload).
            let at = body.len() - 40;
            body[at] ^= 0x01;
        }
        body
    });
    let run = world.pull_from(&proxy.url, "w==1.0", "out.bin");
    assert!(run.code == 3 || run.code == 4, "tampered leaves must fail verification: {run:?}");
    no_output_left(&world, "out.bin");
}

#[test]
fn oversized_checkpoint_response_aborted_at_cap() {
    let world = published_world(b"cap");
    let proxy = Proxy::start(&world.url());
    proxy.set(|path, body| if path.starts_with("/v1/log/checkpoint") { vec![0u8; 1 << 20] } else { body });
    world.pull_from(&proxy.url, "w==1.0", "out.bin").code(1).says("cap");
    no_output_left(&world, "out.bin");
}

#[test]
fn hostile_names_rejected_at_publish_and_at_pull() {
    let world = World::new(1, 1);
    world.write("ok-1.0.bin", b"x");
    for name in ["../evil", "a/b", "a\\b", "bad\nname", &"n".repeat(200)] {
        world.publish("ok-1.0.bin", name, "1.0").code(1).says("package name");
    }
    world.publish("ok-1.0.bin", "ok", "../1.0").code(1).says("version");
    world.pull("../evil==1.0", "out").code(1);
    // The server refuses a statement whose name is not normalised, whoever signed it.
    #[derive(serde::Serialize)]
    struct RawRelease<'a> {
        #[serde(rename = "type")]
        payload_type: PayloadType,
        kind: airlock_proto::Kind,
        name: &'a str,
        version: &'a str,
        files: Vec<airlock_proto::FileEntry>,
        metadata: airlock_proto::Metadata,
        published_at: u64,
    }
    let raw = RawRelease {
        payload_type: PayloadType::Release,
        kind: airlock_proto::Kind::Wheel,
        name: "../Evil",
        version: "1.0",
        files: vec![],
        metadata: airlock_proto::Metadata::default(),
        published_at: 0,
    };
    let mut envelope =
        Envelope::unsigned(PayloadType::Release.as_str(), airlock_proto::encode("raw", &raw).unwrap());
    sign_envelope(&mut envelope, &read_secret_key(&world.path("keys/pub1.key")).unwrap());
    let (status, _) = http_request(
        "POST",
        &world.url(),
        "/v1/statements",
        Some(&world.publish_token.clone()),
        &envelope.to_bytes().unwrap(),
    );
    assert_eq!(status, 422);
    assert_eq!(world.log_size(), 1);
}

#[test]
fn signing_tool_shows_what_it_signs_and_refuses_unauthorised_keys() {
    let world = World::new(2, 2);
    world.write("s-1.0.bin", b"s");
    let run = world.sign_only("s-1.0.bin", "wheel", "s", "1.0", "s.cbor").ok();
    assert!(run.stderr.contains("signing airlock.release.v2 wheel s==1.0 payload blake3:"), "{}", run.stderr);
    // The root key is not a publisher key.
    world
        .cli(&["approve", "s.cbor", "--key", "keys/root1.key", "--root", "root.cbor"])
        .code(1)
        .says("not a publisher key");
    // And the server's log key cannot sign a root.
    world.cli(&["root", "sign", "root.cbor", "--key", "data/log.key"]).code(1).says("not a root key");
}

#[test]
fn merging_envelopes_over_different_payloads_refused() {
    let world = World::new(2, 2);
    for (file, version) in [("m1.cbor", "1.0"), ("m2.cbor", "2.0")] {
        world.write("m-1.0.bin", b"m");
        world.sign_only("m-1.0.bin", "wheel", "m", version, file).ok();
    }
    world.cli(&["merge", "m1.cbor", "m2.cbor", "-o", "merged.cbor"]).code(1).says("different payloads");
    assert!(!world.path("merged.cbor").exists());
}

#[test]
fn secret_key_files_are_0600_and_never_printed() {
    use std::os::unix::fs::PermissionsExt;
    let world = World::new(1, 1);
    let run = world.cli(&["--json", "key", "generate", "alice", "--dir", "keys"]).ok();
    let mode = std::fs::metadata(world.path("keys/alice.key")).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let pem = std::fs::read_to_string(world.path("keys/alice.key")).unwrap();
    let body_line = pem.lines().nth(1).unwrap();
    assert!(!run.stdout.contains(body_line) && !run.stderr.contains(body_line));
    assert!(!run.stdout.contains("PRIVATE KEY"));
    // A key file others can read is refused, naming the file.
    std::fs::set_permissions(world.path("keys/alice.key"), std::fs::Permissions::from_mode(0o644)).unwrap();
    world
        .cli(&["approve", "root.cbor", "--key", "keys/alice.key", "--root", "root.cbor"])
        .code(1)
        .says("alice.key");
}

#[test]
fn corrupt_or_foreign_key_file_rejected_naming_the_file() {
    use std::os::unix::fs::PermissionsExt;
    let world = World::new(1, 1);
    let path = world
        .write("keys/bad.key", b"-----BEGIN PRIVATE KEY-----\nnot base64 !!\n-----END PRIVATE KEY-----\n");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    world.write("x.bin", b"x");
    world
        .cli(&[
            "publish",
            "x.bin",
            "--kind",
            "wheel",
            "--name",
            "x",
            "--version",
            "1",
            "--key",
            "keys/bad.key",
            "--root",
            "root.cbor",
            "--sign-only",
            "-o",
            "x.cbor",
        ])
        .code(1)
        .says("bad.key");
}

/// A forked server: the client's SECURITY ERROR writes the evidence (both signed checkpoints and
/// the leaves behind them) under its state directory and names it; `airlock evidence verify`
/// confirms the fork with only the root, from another state directory; a changed byte proves
/// nothing.
#[test]
fn a_fork_leaves_evidence_that_verifies_offline() {
    let world = published_world(b"first");
    let proxy = Proxy::start(&world.url());
    world.pull_from(&proxy.url, "w==1.0", "a.bin").ok();
    let forked = forged_checkpoint(&world, world.log_size(), [7; 32], now());
    proxy.set(move |path, body| if path.starts_with("/v1/log/checkpoint") { forked.clone() } else { body });
    let run = world.pull_from(&proxy.url, "w==1.0", "b.bin").code(4).says("SECURITY ERROR").says("fork");
    let line =
        run.stderr.lines().find(|l| l.starts_with("evidence written to ")).expect("names the evidence file");
    let file = line.trim_start_matches("evidence written to ").split(' ').next().unwrap().to_owned();
    assert!(std::path::Path::new(&file).starts_with(world.path("state")), "{file}");
    let verified =
        world.cli(&["evidence", "verify", &file, "--root", "root.cbor", "--state-dir", "elsewhere"]).ok();
    assert!(verified.stdout.contains("proves a fork"), "{}", verified.stdout);
    // One changed byte in the offered checkpoint: its signature fails, and nothing is proven.
    let mut evidence: airlock_proto::api::Evidence =
        airlock_proto::codec::decode("evidence", &std::fs::read(&file).unwrap(), 1 << 30).unwrap();
    let offered = evidence.offered.as_mut();
    let last_line = offered.len() - 10;
    offered[last_line] ^= 1;
    world.write("tampered.evidence", &airlock_proto::codec::encode("evidence", &evidence).unwrap());
    world.cli(&["evidence", "verify", "tampered.evidence", "--root", "root.cbor"]).code(3);
}
