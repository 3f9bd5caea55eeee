//! Root rotation end to end (root, publisher and log keys replaced through the real CLI and a
//! running `airlockd`), and sites pinned on a later root version verifying the log from leaf 0.

use std::process::Command;

use airlock_keys::{read_public_key, read_secret_key, LogError, TrustedLog, TrustedRoot};
use airlock_proto::merkle::{leaf_hash, MemoryTree};
use airlock_proto::Checkpoint;

use crate::harness::{http_get, signed_checkpoint, Run, Server, World};
use crate::mirror::{start_mirror_with, sync};
use crate::proxy::Proxy;

fn submit(world: &World, file: &str) -> Run {
    world.cli(&["submit", file, "--server", &world.url(), "--token", &world.publish_token])
}

/// `airlock publish` of a new wheel `name`==1.0 signed with `key`.
fn publish_with(world: &World, key: &str, name: &str) -> Run {
    let file = format!("{name}-1.0.bin");
    world.write(&file, format!("{name} 1.0").as_bytes());
    world.cli(&[
        "publish",
        &file,
        "--kind",
        "wheel",
        "--name",
        name,
        "--version",
        "1.0",
        "--key",
        key,
        "--root",
        "root.cbor",
        "--server",
        &world.url(),
        "--token",
        &world.publish_token,
    ])
}

/// Root v2 replaces the root key (root1 by root2), v3 the publisher key (pub1 by pub2), each
/// made with `root create --from`, signed and submitted.
fn rotate_root_and_publisher_keys(world: &World) {
    world.cli(&["key", "generate", "root2", "--dir", "keys"]).ok();
    let created = world
        .cli(&[
            "root",
            "create",
            "--from",
            "root.cbor",
            "--root-key",
            "keys/root2.pub",
            "--remove-key",
            "keys/root1.pub",
            "-o",
            "root2.cbor",
        ])
        .ok();
    assert!(created.stdout.contains("version 2"), "{}", created.stdout);
    world.cli(&["root", "sign", "root2.cbor", "--key", "keys/root1.key", "--previous", "root.cbor"]).ok();
    // One signature is not enough: the new root role must sign too.
    submit(world, "root2.cbor").code(1).says("its own root");
    world.cli(&["root", "sign", "root2.cbor", "--key", "keys/root2.key"]).ok();
    submit(world, "root2.cbor").ok();

    world.cli(&["key", "generate", "pub2", "--dir", "keys"]).ok();
    world
        .cli(&[
            "root",
            "create",
            "--from",
            "root2.cbor",
            "--publisher-key",
            "keys/pub2.pub",
            "--remove-key",
            "keys/pub1.pub",
            "-o",
            "root3.cbor",
        ])
        .ok();
    // The retired root key is no longer a root key of either version.
    world
        .cli(&["root", "sign", "root3.cbor", "--key", "keys/root1.key", "--previous", "root2.cbor"])
        .code(1)
        .says("not a root key");
    world.cli(&["root", "sign", "root3.cbor", "--key", "keys/root2.key"]).ok();
    submit(world, "root3.cbor").ok();
}

fn note_signers(checkpoint: &[u8]) -> Vec<[u8; 4]> {
    airlock_proto::Note::parse(checkpoint).unwrap().signatures().iter().map(|line| line.key_id).collect()
}

/// A client walks from root v1 to v4 while the root key, a publisher key and the server's log key
/// are replaced; the rotated-out publisher cannot publish; after the root that retires the old
/// log key, a checkpoint it signs is refused by a client and by a mirror.
#[test]
fn rotation_walks_a_client_from_root_v1_to_v4_replacing_root_publisher_and_log_keys() {
    let mut world = World::new(1, 1);
    publish_with(&world, "keys/pub1.key", "a").ok();
    rotate_root_and_publisher_keys(&world);

    // The publisher rotated out cannot publish; the new one can.
    publish_with(&world, "keys/pub1.key", "b").code(1).says("publisher");
    publish_with(&world, "keys/pub2.key", "c").ok();

    // v4 replaces the log key: `airlockd key rotate` writes the next key beside the current one.
    let retired = read_secret_key(&world.path("data/log.key")).unwrap();
    let rotate = Command::new(env!("CARGO_BIN_EXE_airlockd"))
        .args(["key", "rotate", "--data"])
        .arg(world.path("data"))
        .output()
        .unwrap();
    assert!(rotate.status.success(), "{}", String::from_utf8_lossy(&rotate.stderr));
    assert!(String::from_utf8_lossy(&rotate.stdout).contains("log.next.pub"));
    let next = read_public_key(&world.path("data/log.next.pub")).unwrap();
    world
        .cli(&[
            "root",
            "create",
            "--from",
            "root3.cbor",
            "--log-key",
            "data/log.next.pub",
            "--remove-key",
            "data/log.pub",
            "-o",
            "root4.cbor",
        ])
        .ok();
    world.cli(&["root", "sign", "root4.cbor", "--key", "keys/root2.key"]).ok();
    let before = http_get(&world.url(), "/v1/log/checkpoint").1;
    assert_eq!(note_signers(&before), [airlock_keys::note_key_id("test.airlock", &retired.public())]);
    submit(&world, "root4.cbor").ok();

    // The server switched at that leaf: the checkpoint that logs root v4 and every one after is
    // signed by the new key, which replaced the retired one on disk.
    let after = http_get(&world.url(), "/v1/log/checkpoint").1;
    assert_eq!(note_signers(&after), [airlock_keys::note_key_id("test.airlock", &next)]);
    assert!(!world.path("data/log.next.key").exists());
    assert_eq!(read_secret_key(&world.path("data/log.key")).unwrap().public().id(), next.id());
    assert_eq!(read_public_key(&world.path("data/log.pub")).unwrap().id(), next.id());
    publish_with(&world, "keys/pub2.key", "d").ok();

    // A client pinned on v1 with no state walks v1 to v4 and pulls what each root allowed.
    world.cli(&["pull", "a==1.0", "--server", &world.url(), "--root", "root.cbor", "-o", "a.bin"]).ok();
    world.cli(&["pull", "d==1.0", "--server", &world.url(), "--root", "root.cbor", "-o", "d.bin"]).ok();
    assert_eq!(std::fs::read(world.path("d.bin")).unwrap(), b"d 1.0");

    // A checkpoint the retired key signs after the rotation is refused everywhere: by the client
    // that holds the log, by a new client, and by a mirror.
    let served = Checkpoint::from_note_unverified(&after).unwrap();
    let forged =
        signed_checkpoint(&retired, served.size, served.root_hash.0, airlock_proto::clock::system_now());
    let proxy = Proxy::start(&world.url());
    let offered = forged.clone();
    proxy.set(move |path, body| if path.starts_with("/v1/log/checkpoint") { offered.clone() } else { body });
    world.pull_from(&proxy.url, "d==1.0", "d2.bin").code(3).says("checkpoint signature");
    std::fs::copy(world.path("root.cbor"), world.path("root-copy.cbor")).unwrap();
    world
        .cli(&["pull", "d==1.0", "--server", &proxy.url, "--root", "root-copy.cbor", "-o", "d3.bin"])
        .code(3)
        .says("checkpoint signature");
    let (mirror, admin) = start_mirror_with(&world, "mirror", &proxy.url, |_| {});
    let (status, body) =
        crate::harness::http_request("POST", &mirror.url, "/v1/mirror/sync", Some(&admin), b"");
    assert_ne!(status, 200);
    assert!(
        String::from_utf8_lossy(&body).contains("checkpoint signature"),
        "{}",
        String::from_utf8_lossy(&body)
    );
    drop(mirror);

    // Restarted, the server signs with the new key and the log still verifies from v1.
    world.server = None;
    world.server = Some(Server::start(world.config()));
    let restarted = http_get(&world.url(), "/v1/log/checkpoint").1;
    assert_eq!(note_signers(&restarted), [airlock_keys::note_key_id("test.airlock", &next)]);
    publish_with(&world, "keys/pub2.key", "e").ok();
}

/// The tree root over `leaves`.
fn tree_root(leaves: &[Vec<u8>]) -> [u8; 32] {
    let mut tree = MemoryTree::new();
    for leaf in leaves {
        tree.push(leaf_hash(leaf));
    }
    tree.root()
}

/// A site installed at root v3 pins v3, not v1: a client and a mirror verify the log from leaf
/// 0, each earlier root authenticated by the hash chain back from v3. A log whose v1 was swapped
/// for another (v2 and v3 byte for byte intact, the checkpoint signed by the log key) is refused,
/// and so is a log that never reaches v3.
#[test]
fn a_site_pinned_on_root_v3_verifies_the_log_from_leaf_0_and_refuses_a_swapped_v1() {
    let world = World::new(1, 1);
    publish_with(&world, "keys/pub1.key", "a").ok();
    rotate_root_and_publisher_keys(&world);
    publish_with(&world, "keys/pub2.key", "c").ok();

    // A client pinned on v3, with no state, pulls a release logged under v1.
    let pull = |root: &str, url: &str, target: &str, out: &str| {
        world.cli(&["pull", target, "--server", url, "--root", root, "-o", out])
    };
    pull("root3.cbor", &world.url(), "a==1.0", "a.bin").ok();
    assert_eq!(std::fs::read(world.path("a.bin")).unwrap(), b"a 1.0");

    // A mirror pinned on v3 syncs from leaf 0 and serves a client pinned on v3.
    let (mirror, admin) = start_mirror_with(&world, "mirror", &world.url(), |config| {
        config.root = Some(world.path("root3.cbor"))
    });
    sync(&mirror, &admin);
    pull("root3.cbor", &mirror.url, "c==1.0", "c.bin").ok();

    // The swapped v1: the same keys and origin, another expiry, signed by the same root key.
    world.root_create(&["--expires-in-days", "200", "-o", "other-v1.cbor"]).ok();
    world.cli(&["root", "sign", "other-v1.cbor", "--key", "keys/root1.key"]).ok();
    let read = |file: &str| std::fs::read(world.path(file)).unwrap();
    let log_key = read_secret_key(&world.path("data/log.key")).unwrap();
    let checkpoint_over = |leaves: &[Vec<u8>]| {
        signed_checkpoint(
            &log_key,
            leaves.len() as u64,
            tree_root(leaves),
            airlock_proto::clock::system_now(),
        )
    };
    let pinned = || TrustedLog::new(TrustedRoot::pin(&read("root3.cbor")).unwrap());
    let now = airlock_proto::clock::system_now();
    let honest = [read("root.cbor"), read("root2.cbor"), read("root3.cbor")];
    pinned().update(&checkpoint_over(&honest), &honest, now).unwrap();
    let swapped = [read("other-v1.cbor"), read("root2.cbor"), read("root3.cbor")];
    let err = pinned().update(&checkpoint_over(&swapped), &swapped, now).unwrap_err();
    assert!(err.to_string().contains("do not form one hash chain"), "{err}");
    // A log that stops before v3 cannot be authenticated from v3.
    let short = [read("root.cbor"), read("root2.cbor")];
    let err = pinned().update(&checkpoint_over(&short), &short, now).unwrap_err();
    assert!(matches!(err, LogError::NotAnchored { pinned: 3, reached: 2, .. }), "{err}");
}
