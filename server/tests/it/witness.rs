//! Split views and the witness (c2sp.org/tlog-witness): a primary that holds the log key shows
//! two different extensions of one prefix to two sites. The witness cosigns only the first one it
//! sees and keeps the second as evidence; with a witness quorum of 1 in the root, the site shown
//! the other view refuses it. With a quorum of 0 the split goes unnoticed: each site checks only
//! against what it saw itself.

use std::collections::BTreeMap;
use std::sync::Arc;

use airlock_client::publish::FileDigests;
use airlock_client::statements::{self, RoleKeys, RootRoles, Witnesses};
use airlock_keys::{sign_envelope, sign_note, LogError, SecretKey, TrustedLog, TrustedRoot};
use airlock_proto::merkle::{leaf_hash, MemoryTree};
use airlock_proto::{
    Checkpoint, Digest, FileName, Hash32, Kind, Metadata, Note, PackageName, PublicKeyBytes, Sha256, Version,
    WitnessKey,
};

use crate::harness::http_request;

const ORIGIN: &str = "split.example";
const WITNESS: &str = "w.example";

struct Keys {
    root: SecretKey,
    publisher: SecretKey,
    log: SecretKey,
    witness: SecretKey,
}

fn bytes_of(key: &SecretKey) -> PublicKeyBytes {
    PublicKeyBytes(key.public().to_bytes())
}

fn root_leaf(keys: &Keys, quorum: u32) -> Vec<u8> {
    let role = |key: &SecretKey| RoleKeys { keys: vec![bytes_of(key)], threshold: 1 };
    let roles = RootRoles { root: role(&keys.root), publisher: role(&keys.publisher), log: role(&keys.log) };
    let witnesses =
        Witnesses::k_of_all(vec![WitnessKey { name: WITNESS.into(), key: bytes_of(&keys.witness) }], quorum);
    let now = airlock_proto::clock::system_now();
    let mut envelope = statements::root(ORIGIN, &roles, &witnesses, now + 86_400).unwrap();
    sign_envelope(&mut envelope, &keys.root);
    envelope.to_bytes().unwrap()
}

fn release_leaf(keys: &Keys, name: &str) -> Vec<u8> {
    let content = name.as_bytes();
    let digests =
        FileDigests { size: content.len() as u64, blake3: Digest::of(content), sha256: Sha256([1; 32]) };
    let mut envelope = statements::release_envelope(
        Kind::Wheel,
        PackageName::normalize(Kind::Wheel, name).unwrap(),
        Version::new("1.0").unwrap(),
        (FileName::new(&format!("{name}-1.0.bin")).unwrap(), digests),
        Metadata::default(),
        1_700_000_000,
    )
    .unwrap();
    sign_envelope(&mut envelope, &keys.publisher);
    envelope.to_bytes().unwrap()
}

fn tree(leaves: &[Vec<u8>]) -> MemoryTree {
    let mut tree = MemoryTree::new();
    for leaf in leaves {
        tree.push(leaf_hash(leaf));
    }
    tree
}

/// The log's checkpoint note of `leaves`, signed with the real log key.
fn checkpoint(keys: &Keys, leaves: &[Vec<u8>]) -> Vec<u8> {
    let now = airlock_proto::clock::system_now();
    let checkpoint = Checkpoint {
        origin: ORIGIN.into(),
        size: leaves.len() as u64,
        root_hash: Hash32(tree(leaves).root()),
        issued_at: now,
        expires_at: now + 3_600,
    };
    let mut note = Note::new(checkpoint.to_text()).unwrap();
    sign_note(&mut note, ORIGIN, &keys.log).unwrap();
    note.to_bytes()
}

/// A witness served in-process on 127.0.0.1:0.
struct RunningWitness {
    url: String,
    dir: tempfile::TempDir,
    _thread: std::thread::JoinHandle<()>,
}

fn start_witness(keys: &Keys) -> RunningWitness {
    let logs = BTreeMap::from([(ORIGIN.to_owned(), keys.log.public())]);
    let key = SecretKey::from_pkcs8_pem(&keys.witness.to_pkcs8_pem()).unwrap();
    start_witness_of(WITNESS, key, logs)
}

fn start_witness_of(
    name: &str,
    key: SecretKey,
    logs: BTreeMap<String, airlock_keys::PublicKey>,
) -> RunningWitness {
    let dir = tempfile::tempdir().unwrap();
    let witness =
        airlock_server::witness::Witness::open(dir.path(), name, key, logs, airlock_proto::Clock::system())
            .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || {
        let runtime =
            tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            airlock_server::witness::http::serve(listener, Arc::new(witness), std::future::pending())
                .await
                .unwrap();
        });
    });
    let addr = rx.recv().unwrap();
    RunningWitness { url: format!("http://{addr}"), dir, _thread: thread }
}

/// `POST /add-checkpoint`: (status, body).
fn add_checkpoint(witness: &RunningWitness, old: u64, proof: &[[u8; 32]], note: &[u8]) -> (u16, Vec<u8>) {
    post_checkpoint(&witness.url, old, proof, note)
}

fn post_checkpoint(url: &str, old: u64, proof: &[[u8; 32]], note: &[u8]) -> (u16, Vec<u8>) {
    let proof: Vec<Hash32> = proof.iter().copied().map(Hash32).collect();
    let body = airlock_server::witness::request_body(old, &proof, note);
    http_request("POST", url, "/add-checkpoint", None, &body)
}

fn verify(root: &[u8], checkpoint: &[u8], leaves: &[Vec<u8>]) -> Result<u64, LogError> {
    let log = TrustedLog::new(TrustedRoot::pin(root).unwrap());
    log.update(checkpoint, leaves, airlock_proto::clock::system_now()).map(|next| next.size())
}

#[test]
fn a_split_view_gets_one_cosignature_and_the_other_view_is_refused() {
    let keys = Keys {
        root: SecretKey::generate(),
        publisher: SecretKey::generate(),
        log: SecretKey::generate(),
        witness: SecretKey::generate(),
    };
    let root = root_leaf(&keys, 1);
    let prefix = vec![root.clone(), release_leaf(&keys, "a")];
    let view_a = [prefix.clone(), vec![release_leaf(&keys, "b")]].concat();
    let view_b = [prefix.clone(), vec![release_leaf(&keys, "c")]].concat();
    let witness = start_witness(&keys);

    // The witness cosigns the prefix, then view A, which extends it.
    let (status, _) = add_checkpoint(&witness, 0, &[], &checkpoint(&keys, &prefix));
    assert_eq!(status, 200);
    let note_a = checkpoint(&keys, &view_a);
    let (status, line) =
        add_checkpoint(&witness, 2, &tree(&view_a).consistency_proof(2, 3).unwrap(), &note_a);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&line));
    assert!(line.starts_with("\u{2014} w.example ".as_bytes()), "{}", String::from_utf8_lossy(&line));
    let cosigned_a = [note_a.clone(), line].concat();

    // View B, the other extension of the same prefix, gets no cosignature: from the old size the
    // witness no longer holds it is a 409 with the size it holds; claiming that size, the proof
    // cannot lead to B's root, and the request is kept as evidence.
    let note_b = checkpoint(&keys, &view_b);
    let (status, held) =
        add_checkpoint(&witness, 2, &tree(&view_b).consistency_proof(2, 3).unwrap(), &note_b);
    assert_eq!((status, String::from_utf8_lossy(&held).trim()), (409, "3"));
    let (status, why) = add_checkpoint(&witness, 3, &[], &note_b);
    assert_eq!(status, 422, "{}", String::from_utf8_lossy(&why));
    let evidence: Vec<_> = std::fs::read_dir(witness.dir.path().join("evidence")).unwrap().collect();
    assert_eq!(evidence.len(), 1, "the conflicting request is kept");
    let kept = std::fs::read(evidence[0].as_ref().unwrap().path()).unwrap();
    assert!(
        kept.windows(note_b.len()).any(|w| w == note_b.as_slice()),
        "the evidence holds view B's checkpoint"
    );

    // The site shown view A accepts it; the site shown view B refuses it, naming the witness.
    assert_eq!(verify(&root, &cosigned_a, &view_a).unwrap(), 3);
    let err = verify(&root, &note_b, &view_b).unwrap_err();
    assert!(matches!(err, LogError::Witnesses(_)) && err.to_string().contains("missing: w.example"), "{err}");

    // With a quorum of 0, both sites accept their own view: the split is not detected.
    let unwitnessed_root = root_leaf(&keys, 0);
    let prefix0 = [unwitnessed_root.clone(), prefix[1].clone()];
    let a0 = [prefix0.to_vec(), vec![view_a[2].clone()]].concat();
    let b0 = [prefix0.to_vec(), vec![view_b[2].clone()]].concat();
    assert_eq!(verify(&unwitnessed_root, &checkpoint(&keys, &a0), &a0).unwrap(), 3);
    assert_eq!(verify(&unwitnessed_root, &checkpoint(&keys, &b0), &b0).unwrap(), 3);
}

#[test]
fn the_witness_refuses_unknown_logs_bad_signatures_and_malformed_requests() {
    let keys = Keys {
        root: SecretKey::generate(),
        publisher: SecretKey::generate(),
        log: SecretKey::generate(),
        witness: SecretKey::generate(),
    };
    let witness = start_witness(&keys);
    let leaves = vec![root_leaf(&keys, 1)];
    let good = checkpoint(&keys, &leaves);
    let forged = {
        let mut note = Note::new(Note::parse(&good).unwrap().text()).unwrap();
        sign_note(&mut note, ORIGIN, &SecretKey::generate()).unwrap();
        note.to_bytes()
    };
    assert_eq!(add_checkpoint(&witness, 0, &[], &forged).0, 403);
    let other_origin = String::from_utf8(good.clone()).unwrap().replace(ORIGIN, "other.example");
    assert_eq!(add_checkpoint(&witness, 0, &[], other_origin.as_bytes()).0, 404);
    assert_eq!(http_request("POST", &witness.url, "/add-checkpoint", None, b"no blank line").0, 400);
    assert_eq!(add_checkpoint(&witness, 0, &[[0; 32]], &good).0, 422, "a proof from size 0 must be empty");
    assert_eq!(add_checkpoint(&witness, 0, &[], &good).0, 200);
    assert_eq!(add_checkpoint(&witness, 0, &[], &good).0, 409, "the witness now holds size 1");
}

/// SIGKILL at random points of a stream of add-checkpoint requests for two diverging histories
/// of one log: across every restart, the witness never cosigns checkpoints of both branches.
#[test]
fn the_witness_survives_sigkill_without_cosigning_two_inconsistent_checkpoints() {
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    let log = SecretKey::generate();
    airlock_keys::write_secret_key(&dir.path().join("witness.key"), &SecretKey::generate()).unwrap();
    let vkey = airlock_keys::verifier_key(ORIGIN, &log.public());
    let prefix: Vec<Vec<u8>> = (0..3).map(|i| format!("prefix {i}").into_bytes()).collect();
    let branch = |tag: &str| -> Vec<Vec<u8>> {
        [prefix.clone(), (0..40).map(|i| format!("{tag} {i}").into_bytes()).collect()].concat()
    };
    let (a, b) = (branch("a"), branch("b"));
    let (tree_a, tree_b) = (tree(&a), tree(&b));
    let note_of = |leaves: &[Vec<u8>]| {
        let now = airlock_proto::clock::system_now();
        let checkpoint = Checkpoint {
            origin: ORIGIN.into(),
            size: leaves.len() as u64,
            root_hash: Hash32(tree(leaves).root()),
            issued_at: now,
            expires_at: now + 3_600,
        };
        let mut note = Note::new(checkpoint.to_text()).unwrap();
        sign_note(&mut note, ORIGIN, &log).unwrap();
        note.to_bytes()
    };
    let mut cosigned: Vec<(char, u64)> = Vec::new();
    let mut attempted: Vec<(char, u16)> = Vec::new();
    let mut held = 0u64;
    let mut rng_state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next_random = move |n: u64| {
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 7;
        rng_state ^= rng_state << 17;
        rng_state % n
    };
    for point in 0..10u64 {
        let port = crate::crash::free_port();
        let mut child = Command::new(env!("CARGO_BIN_EXE_airlockd"))
            .args(["witness", "--data", "state", "--key", "witness.key", "--name", WITNESS, "--log", &vkey])
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let url = format!("http://127.0.0.1:{port}");
        let started = std::time::Instant::now();
        while crate::harness::http_get(&url, "/healthz").0 != 200 {
            assert!(started.elapsed() < std::time::Duration::from_secs(20), "witness did not start");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let kill_after = 2 + next_random(8);
        for request in 0..12u64 {
            if request == kill_after {
                let _ = child.kill(); // SIGKILL, possibly mid-request on the server side
            }
            let (tag, leaves, tree) =
                if next_random(3) == 0 { ('b', &b, &tree_b) } else { ('a', &a, &tree_a) };
            let size = (held + 1 + next_random(3)).min(leaves.len() as u64);
            let proof = if held == 0 { Vec::new() } else { tree.consistency_proof(held, size).unwrap() };
            let (status, body) = post_checkpoint(&url, held, &proof, &note_of(&leaves[..size as usize]));
            if size > prefix.len() as u64 {
                attempted.push((tag, status));
            }
            match status {
                200 => {
                    cosigned.push((tag, size));
                    held = size;
                }
                409 => held = String::from_utf8_lossy(&body).trim().parse().unwrap(),
                _ => {}
            }
        }
        let _ = child.kill();
        let _ = child.wait();
        assert!(point < 10);
    }
    assert!(cosigned.len() >= 5, "too few cosignatures to mean anything: {cosigned:?}");
    let beyond_prefix = |tag: char| cosigned.iter().any(|&(t, size)| t == tag && size > prefix.len() as u64);
    assert!(!(beyond_prefix('a') && beyond_prefix('b')), "cosigned both branches: {cosigned:?}");
    // Both branches were tried beyond the prefix, so the loser really was refused.
    for tag in ['a', 'b'] {
        assert!(attempted.iter().any(|&(t, _)| t == tag), "branch {tag} was never tried: {attempted:?}");
    }
}

#[test]
fn a_primary_with_a_witness_serves_cosigned_checkpoints_that_clients_bundles_and_mirrors_accept() {
    let mut world = crate::harness::World::prepared(1, 1);
    world.witnessed_root(&["w1"], 1);
    let log_pub = world.path("data/log.pub").display().to_string();
    // The log's verifier key, as an operator gets it for `airlockd witness --log`.
    let vkey = world.cli(&["key", "verifier", "test.airlock", &log_pub]).ok().stdout;
    let logs = BTreeMap::from([airlock_keys::parse_verifier_key(vkey.trim()).unwrap()]);
    assert_eq!(logs["test.airlock"], airlock_keys::read_public_key(&world.path("data/log.pub")).unwrap());
    let witness = start_witness_of(
        "w1.example",
        airlock_keys::read_secret_key(&world.path("keys/w1.key")).unwrap(),
        logs,
    );
    let mut config = world.config();
    config.witnesses = vec![witness.url.clone()];
    world.server = Some(crate::harness::Server::start(config));
    // Publishing verifies the submit answer, whose checkpoint must carry the quorum.
    world.write("a-1.0.bin", b"witnessed");
    world.publish("a-1.0.bin", "a", "1.0").ok();
    let (_, note) = crate::harness::http_get(&world.url(), "/v1/log/checkpoint");
    assert!(
        String::from_utf8_lossy(&note).contains("\u{2014} w1.example "),
        "{}",
        String::from_utf8_lossy(&note)
    );
    world.pull("a==1.0", "a.bin").ok();
    // A bundle carries the cosigned checkpoint; a site imports it and serves it.
    let url = world.url();
    world.cli(&["export", "--server", &url, "--root", "root.cbor", "--all", "-o", "full.tar"]).ok();
    airlock_server::cli::init(&world.path("site")).unwrap();
    let import = std::process::Command::new(env!("CARGO_BIN_EXE_airlockd"))
        .args(["import", "--data", "site", "--root", "root.cbor", "full.tar"])
        .current_dir(world.dir.path())
        .output()
        .unwrap();
    assert!(import.status.success(), "{}", String::from_utf8_lossy(&import.stderr));
    // A mirror follows it, verifying the quorum, and serves it to clients.
    let (mirror, admin) = crate::mirror::start_mirror(&world, "mirror", &url);
    crate::mirror::sync(&mirror, &admin);
    world.pull_from(&mirror.url, "a==1.0", "from-mirror.bin").ok();
    // The witness holds the log's size: the primary kept it current.
    let held = std::fs::read_dir(witness.dir.path().join("logs")).unwrap().count();
    assert_eq!(held, 1);
}

/// A site mirror acting as its own witness cosigns the checkpoints it verified, and nothing else:
/// a fork offered by its upstream gets no cosignature from it.
#[test]
fn a_mirror_acting_as_a_witness_cosigns_only_what_it_verified() {
    let mut world = crate::harness::World::prepared(1, 1);
    world.witnessed_root(&["w1", "site"], 1);
    let log_key = airlock_keys::read_public_key(&world.path("data/log.pub")).unwrap();
    let team_key = airlock_keys::read_secret_key(&world.path("keys/w1.key")).unwrap();
    let team = start_witness_of(
        "w1.example",
        SecretKey::from_pkcs8_pem(&team_key.to_pkcs8_pem()).unwrap(),
        BTreeMap::from([("test.airlock".to_owned(), log_key)]),
    );
    let mut config = world.config();
    config.witnesses = vec![team.url.clone()];
    world.server = Some(crate::harness::Server::start(config));
    world.write("a-1.0.bin", b"witnessed twice");
    world.publish("a-1.0.bin", "a", "1.0").ok();

    let proxy = crate::proxy::Proxy::start(&world.url());
    let (mirror, admin) = crate::mirror::start_mirror_with(&world, "site", &proxy.url, |config| {
        config.mirror_witness = Some(("site.example".into(), world.path("keys/site.key")));
    });
    crate::mirror::sync(&mirror, &admin);
    let site_key = airlock_keys::read_public_key(&world.path("keys/site.pub")).unwrap();
    let served = crate::harness::http_get(&mirror.url, "/v1/log/checkpoint").1;
    let note = Note::parse(&served).unwrap();
    assert!(
        airlock_keys::cosigned_at(&note, "site.example", &site_key).is_some(),
        "{}",
        String::from_utf8_lossy(&served)
    );
    assert!(airlock_keys::cosigned_at(&note, "w1.example", &team_key.public()).is_some());
    world.pull_from(&mirror.url, "a==1.0", "a.bin").ok();

    // The upstream offers a fork (same size, other root), signed by the log key and even cosigned
    // by the team's witness key: the mirror refuses it and cosigns nothing new.
    let now = airlock_proto::clock::system_now();
    let forked = Checkpoint {
        origin: "test.airlock".into(),
        size: 2,
        root_hash: Hash32([5; 32]),
        issued_at: now,
        expires_at: now + 3_600,
    };
    let mut fork = Note::new(forked.to_text()).unwrap();
    sign_note(
        &mut fork,
        "test.airlock",
        &airlock_keys::read_secret_key(&world.path("data/log.key")).unwrap(),
    )
    .unwrap();
    airlock_keys::cosign(&mut fork, "w1.example", &team_key, now).unwrap();
    let fork = fork.to_bytes();
    proxy.set(move |path, body| if path.starts_with("/v1/log/checkpoint") { fork.clone() } else { body });
    let (status, body) = http_request("POST", &mirror.url, "/v1/mirror/sync", Some(&admin), b"");
    assert_eq!(status, 422);
    assert!(String::from_utf8_lossy(&body).contains("SECURITY ERROR"), "{}", String::from_utf8_lossy(&body));
    assert_eq!(
        crate::harness::http_get(&mirror.url, "/v1/log/checkpoint").1,
        served,
        "nothing new was cosigned"
    );
}

/// A root made with `airlock root create --witness-policy` from a c2sp.org/tlog-policy file (the
/// witness keys printed by `airlock key verifier --witness`) enforces its groups: with the
/// policy `all of (w1, any of (w2, w3))`, checkpoints cosigned by w1 and w2 are accepted, and
/// once the primary reaches only w2 and w3 its new checkpoint is refused, naming the rule and
/// the missing witness. `airlock root policy` prints the policy back.
#[test]
fn a_root_made_from_a_policy_file_enforces_its_witness_groups() {
    let mut world = crate::harness::World::prepared(1, 1);
    let log_pub = world.path("data/log.pub").display().to_string();
    let log_vkey = world.cli(&["key", "verifier", "test.airlock", &log_pub]).ok().stdout;
    let mut policy = format!("# the security team's witness and a site's two\nlog {}\n", log_vkey.trim());
    for name in ["w1", "w2", "w3"] {
        world.cli(&["key", "generate", name, "--dir", "keys"]).ok();
        let vkey = world
            .cli(&["key", "verifier", "--witness", &format!("{name}.example"), &format!("keys/{name}.pub")])
            .ok()
            .stdout;
        policy.push_str(&format!("witness {name} {}\n", vkey.trim()));
    }
    policy.push_str("group backup any w2 w3\ngroup both all w1 backup\nquorum both\n");
    world.write("policy.txt", policy.as_bytes());
    let create = |policy_file: &str, out: &str| {
        world.root_create(&["--witness-policy", policy_file, "-o", out]).ok();
        world.cli(&["root", "sign", out, "--key", "keys/root1.key"]).ok();
    };
    create("policy.txt", "root.cbor");
    // The printed policy is the file's, with the witnesses under their key names.
    let printed = world.cli(&["root", "policy", "root.cbor"]).ok().stdout;
    let parsed = airlock_keys::parse_policy(&printed).unwrap();
    assert_eq!(parsed.logs.len(), 1);
    assert_eq!(
        parsed.witnesses.iter().map(|w| w.name.as_str()).collect::<Vec<_>>(),
        ["w1.example", "w2.example", "w3.example"]
    );
    assert!(
        printed
            .contains("group backup 1 w2.example w3.example\ngroup both 2 w1.example backup\nquorum both\n"),
        "{printed}"
    );
    // A policy whose log line names another key is refused.
    world.write(
        "other-log.txt",
        policy
            .replace(
                log_vkey.trim(),
                &airlock_keys::verifier_key("test.airlock", &SecretKey::generate().public()),
            )
            .as_bytes(),
    );
    let refused = world.root_create(&["--witness-policy", "other-log.txt", "-o", "x.cbor"]).code(1);
    assert!(refused.stderr.contains("not one of this root's log keys"), "{}", refused.stderr);

    let logs = BTreeMap::from([airlock_keys::parse_verifier_key(log_vkey.trim()).unwrap()]);
    let witness = |name: &str| {
        let key = airlock_keys::read_secret_key(&world.path(&format!("keys/{name}.key"))).unwrap();
        start_witness_of(&format!("{name}.example"), key, logs.clone())
    };
    let (w1, w2, w3) = (witness("w1"), witness("w2"), witness("w3"));
    let mut config = world.config();
    config.witnesses = vec![w1.url.clone(), w2.url.clone()];
    world.server = Some(crate::harness::Server::start(config));
    world.write("a-1.0.bin", b"first");
    world.publish("a-1.0.bin", "a", "1.0").ok();
    world.pull("a==1.0", "a.bin").ok();

    // The primary now reaches only the site's witnesses: w1's cosignature is missing.
    world.server = None;
    let mut config = world.config();
    config.witnesses = vec![w2.url.clone(), w3.url.clone()];
    world.server = Some(crate::harness::Server::start(config));
    world.write("b-1.0.bin", b"second");
    let run = world.publish("b-1.0.bin", "b", "1.0");
    assert_ne!(run.code, 0, "a checkpoint without w1 was accepted:\n{}", run.stdout);
    assert!(
        run.stderr.contains("lacks the witness quorum [both = all of w1.example, backup; backup = any of w2.example, w3.example]")
            && run.stderr.contains("missing: w1.example"),
        "{}",
        run.stderr
    );
    let run = world.pull("a==1.0", "again.bin");
    assert_ne!(run.code, 0);
    assert!(run.stderr.contains("missing: w1.example"), "{}", run.stderr);
}
