//! Mirror mode: a server that follows an upstream, verifying everything, serving its signed
//! checkpoints and leaves byte for byte, and refusing writes of its own.

use crate::harness::{http_get, http_request, Server, World};

/// A mirror of `upstream_url` in its own data directory inside `world`, pinned to the same root.
pub(crate) fn start_mirror(world: &World, name: &str, upstream_url: &str) -> (Server, String) {
    start_mirror_with(world, name, upstream_url, |_| {})
}

pub(crate) fn start_mirror_with(
    world: &World,
    name: &str,
    upstream_url: &str,
    adjust: impl FnOnce(&mut airlock_server::Config),
) -> (Server, String) {
    let (mut config, admin) = mirror_config(world, name, upstream_url);
    adjust(&mut config);
    (Server::start(config), admin)
}

/// The config of a mirror of `upstream_url` in `world/<name>` (initialised, no periodic sync)
/// and an admin token of its own.
pub(crate) fn mirror_config(
    world: &World,
    name: &str,
    upstream_url: &str,
) -> (airlock_server::Config, String) {
    let data = world.path(name);
    airlock_server::cli::init(&data).unwrap();
    let admin = airlock_server::cli::token_create(&data, airlock_server::auth::Scope::Admin, "test").unwrap();
    let mut config = airlock_server::Config::new(&data);
    config.root = Some(world.path("root.cbor"));
    config.upstream = Some(upstream_url.to_owned());
    config.sync_interval = None;
    (config, admin)
}

pub(crate) fn sync(mirror: &Server, admin: &str) -> serde_json::Value {
    let (status, body) = http_request("POST", &mirror.url, "/v1/mirror/sync", Some(admin), b"");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    serde_json::from_slice(&body).unwrap()
}

#[test]
fn mirror_syncs_verifies_and_serves_upstream_bytes() {
    let world = World::new(1, 1);
    world.write("m-1.0.bin", b"mirrored wheel");
    world.publish("m-1.0.bin", "m", "1.0").ok();
    let (mirror, admin) = start_mirror(&world, "mirror", &world.url());
    let report = sync(&mirror, &admin);
    assert_eq!(report["to_size"], 2);
    assert_eq!(report["blobs_fetched"], 1);
    // The mirror serves the upstream's checkpoint and leaves byte for byte.
    assert_eq!(http_get(&mirror.url, "/v1/log/checkpoint").1, http_get(&world.url(), "/v1/log/checkpoint").1);
    assert_eq!(
        http_get(&mirror.url, "/v1/log/leaves?start=0").1,
        http_get(&world.url(), "/v1/log/leaves?start=0").1
    );
    // A client pinned to the same root verifies through the mirror.
    world.pull_from(&mirror.url, "m==1.0", "from-mirror.bin").ok();
    assert_eq!(std::fs::read(world.path("from-mirror.bin")).unwrap(), b"mirrored wheel");
    // Nothing new upstream: the sync changes nothing and costs one checkpoint request.
    let report = sync(&mirror, &admin);
    assert_eq!(
        (report["from_size"].clone(), report["to_size"].clone(), report["blobs_fetched"].clone()),
        (2.into(), 2.into(), 0.into())
    );
    // Incremental: a new upstream release arrives with the next sync.
    world.write("n-1.0.bin", b"second");
    world.publish("n-1.0.bin", "n", "1.0").ok();
    let report = sync(&mirror, &admin);
    assert_eq!(
        (report["from_size"].clone(), report["to_size"].clone(), report["blobs_fetched"].clone()),
        (2.into(), 3.into(), 1.into())
    );
    world.pull_from(&mirror.url, "n==1.0", "n.bin").ok();
    // The CLI drives and watches the mirror.
    world.write("o-1.0.bin", b"third");
    world.publish("o-1.0.bin", "o", "1.0").ok();
    let run = world.cli(&["--json", "mirror", "status", "--server", &mirror.url]).ok();
    let status: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(status["size"], 3);
    let run = world.cli(&["--json", "mirror", "sync", "--server", &mirror.url, "--token", &admin]).ok();
    let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(report["to_size"], 4);
    let run = world.cli(&["--json", "mirror", "status", "--server", &mirror.url]).ok();
    let status: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(
        (status["size"].clone(), status["upstream_size"].clone(), status["lag_leaves"].clone()),
        (4.into(), 4.into(), 0.into())
    );
    assert!(status["last_success_at"].is_u64());
    // A sync needs an admin token of the mirror's own.
    world
        .cli(&["mirror", "sync", "--server", &mirror.url, "--token", &world.publish_token])
        .code(1)
        .says("401");
}

#[test]
fn interrupted_sync_resumes_without_refetching_complete_blobs() {
    let world = World::new(1, 1);
    for (file, name) in [("a-1.0.bin", "a"), ("b-1.0.bin", "b"), ("c-1.0.bin", "c")] {
        world.write(file, name.repeat(1000).as_bytes());
        world.publish(file, name, "1.0").ok();
    }
    let proxy = crate::proxy::Proxy::start(&world.url());
    let broken = airlock_proto::Digest::of("c".repeat(1000).as_bytes()).to_hex();
    // The upstream link breaks while one blob is in transfer.
    proxy.set(move |path, body| if path.contains(&broken) { body[..10].to_vec() } else { body });
    let (mirror, admin) = start_mirror(&world, "mirror", &proxy.url);
    let (status, _) = http_request("POST", &mirror.url, "/v1/mirror/sync", Some(&admin), b"");
    assert_eq!(status, 422);
    assert_eq!(
        http_get(&mirror.url, "/v1/releases/wheel/a/1.0").0,
        404,
        "no leaf may be visible after a failed sync"
    );
    proxy.set(|_, body| body);
    let report = sync(&mirror, &admin);
    assert_eq!(report["to_size"], 4);
    assert_eq!(report["blobs_fetched"], 1, "only the blob that did not complete is fetched again");
    world.pull_from(&mirror.url, "c==1.0", "c.bin").ok();
}

#[test]
fn mirror_refuses_writes_of_its_own() {
    let world = World::new(1, 1);
    let (mirror, admin) = start_mirror(&world, "mirror", &world.url());
    sync(&mirror, &admin);
    let digest = airlock_proto::Digest::of(b"x").to_hex();
    let (status, body) =
        http_request("PUT", &mirror.url, &format!("/v1/blobs/blake3/{digest}"), Some(&admin), b"x");
    assert_eq!(status, 403, "{}", String::from_utf8_lossy(&body));
    let (status, _) = http_request("POST", &mirror.url, "/v1/statements", Some(&admin), b"x");
    assert_eq!(status, 403);
}

#[test]
fn chain_of_three_stays_verifiable_with_one_root() {
    let world = World::new(1, 1);
    world.write("c-1.0.bin", b"down the chain");
    world.publish("c-1.0.bin", "c", "1.0").ok();
    let (first, first_admin) = start_mirror(&world, "mirror1", &world.url());
    sync(&first, &first_admin);
    let (second, second_admin) = start_mirror(&world, "mirror2", &first.url);
    let report = sync(&second, &second_admin);
    assert_eq!(report["to_size"], 2);
    world.pull_from(&second.url, "c==1.0", "end.bin").ok();
    assert_eq!(std::fs::read(world.path("end.bin")).unwrap(), b"down the chain");
}

#[test]
fn mirror_refuses_a_lying_upstream_and_keeps_its_state() {
    let world = World::new(1, 1);
    world.write("l-1.0.bin", b"honest");
    world.publish("l-1.0.bin", "l", "1.0").ok();
    let proxy = crate::proxy::Proxy::start(&world.url());
    let (mirror, admin) = start_mirror(&world, "mirror", &proxy.url);
    sync(&mirror, &admin);
    // The upstream now serves the blob of a new release with one byte changed.
    world.write("t-1.0.bin", b"trusted bytes");
    world.publish("t-1.0.bin", "t", "1.0").ok();
    proxy.set(|path, mut body| {
        if path.starts_with("/v1/blobs/") && !body.is_empty() {
            body[0] ^= 1;
        }
        body
    });
    let (status, body) = http_request("POST", &mirror.url, "/v1/mirror/sync", Some(&admin), b"");
    assert_eq!(status, 422, "{}", String::from_utf8_lossy(&body));
    // Nothing of the failed sync is visible: the mirror still serves the old log.
    let (_, checkpoint) = http_get(&mirror.url, "/v1/log/checkpoint");
    assert_eq!(airlock_proto::Checkpoint::from_note_unverified(&checkpoint).unwrap().size, 2);
    // Once the upstream is honest again the sync completes.
    proxy.set(|_, body| body);
    assert_eq!(sync(&mirror, &admin)["to_size"], 3);
    world.pull_from(&mirror.url, "t==1.0", "t.bin").ok();
}

#[test]
fn partial_mirror_holds_every_leaf_but_only_matching_blobs() {
    let world = World::new(1, 1);
    world.write("comfyui_tools-1.0.bin", b"carried");
    world.publish("comfyui_tools-1.0.bin", "comfyui-tools", "1.0").ok();
    world.write("torch-1.0.bin", b"not carried");
    world.publish("torch-1.0.bin", "torch", "1.0").ok();
    let (mirror, admin) = start_mirror_with(&world, "mirror", &world.url(), |config| {
        config.carry.names = vec!["comfyui-*".to_owned()];
    });
    let report = sync(&mirror, &admin);
    assert_eq!((report["to_size"].clone(), report["blobs_fetched"].clone()), (3.into(), 1.into()));
    world.pull_from(&mirror.url, "comfyui-tools==1.0", "carried.bin").ok();
    let digest = airlock_proto::Digest::of(b"not carried").to_hex();
    let (status, body) = http_get(&mirror.url, &format!("/v1/blobs/blake3/{digest}"));
    assert_eq!(status, 404);
    assert!(String::from_utf8_lossy(&body).contains("does not carry"), "{}", String::from_utf8_lossy(&body));
    world.pull_from(&mirror.url, "torch==1.0", "torch.bin").code(1).says("does not carry");
}

#[test]
fn mirror_pointed_at_a_forked_upstream_raises_security_error_and_keeps_state() {
    let world = World::new(1, 1);
    world.write("f-1.0.bin", b"before the fork");
    world.publish("f-1.0.bin", "f", "1.0").ok();
    let proxy = crate::proxy::Proxy::start(&world.url());
    let (mirror, admin) = start_mirror(&world, "mirror", &proxy.url);
    sync(&mirror, &admin);
    let served = http_get(&mirror.url, "/v1/log/checkpoint").1;
    // The upstream signs a checkpoint of the same size with another root hash.
    let key = airlock_keys::read_secret_key(&world.path("data/log.key")).unwrap();
    let now = airlock_proto::clock::system_now();
    let forged = crate::harness::signed_checkpoint(&key, 2, [5; 32], now);
    proxy.set(move |path, body| if path.starts_with("/v1/log/checkpoint") { forged.clone() } else { body });
    let (status, body) = http_request("POST", &mirror.url, "/v1/mirror/sync", Some(&admin), b"");
    assert_eq!(status, 422);
    let text = String::from_utf8_lossy(&body);
    assert!(text.contains("SECURITY ERROR") && text.contains("fork"), "{text}");
    assert_eq!(http_get(&mirror.url, "/v1/log/checkpoint").1, served, "the mirror kept its verified state");
    let run = world.cli(&["--json", "mirror", "status", "--server", &mirror.url]).ok();
    assert!(run.stdout.contains("SECURITY ERROR"), "status shows the last error: {}", run.stdout);
}

#[test]
fn blob_corrupted_on_the_mirror_disk_is_refused_by_the_client() {
    let world = World::new(1, 1);
    world.write("k-1.0.bin", b"intact bytes");
    world.publish("k-1.0.bin", "k", "1.0").ok();
    let (mirror, admin) = start_mirror(&world, "mirror", &world.url());
    sync(&mirror, &admin);
    let digest = airlock_proto::Digest::of(b"intact bytes").to_hex();
    let path = crate::publish_pull::walk_files(&world.path("mirror/blobs"))
        .into_iter()
        .find(|p| p.ends_with(&digest))
        .unwrap();
    std::fs::write(&path, b"intact bytez").unwrap();
    world.pull_from(&mirror.url, "k==1.0", "k.bin").code(3).says("hashes to");
    assert!(!world.path("k.bin").exists());
}

#[test]
fn sigkill_at_twenty_points_of_a_sync_leaves_a_consistent_mirror_that_then_completes() {
    use std::process::{Command, Stdio};
    let world = World::new(1, 1);
    for i in 0..24u32 {
        let file = format!("p{i}-1.0.bin");
        let bytes: Vec<u8> = (0..1_000_000u32).map(|j| (j.wrapping_mul(i + 3) % 253) as u8).collect();
        world.write(&file, &bytes);
        world.publish(&file, &format!("p{i}"), "1.0").ok();
    }
    airlock_server::cli::init(&world.path("site")).unwrap();
    let upstream = world.url();
    let verify = || {
        let output = Command::new(env!("CARGO_BIN_EXE_airlockd"))
            .args(["verify-store", "--data", "site"])
            .current_dir(world.dir.path())
            .output()
            .unwrap();
        let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        report
    };
    let spawn = |port: u16| {
        Command::new(env!("CARGO_BIN_EXE_airlockd"))
            .args([
                "serve",
                "--data",
                "site",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--upstream",
                &upstream,
            ])
            .args(["--root", "root.cbor", "--sync-interval", "3600"])
            .current_dir(world.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let mut partial_points = 0;
    for point in 0..20u64 {
        let mut child = spawn(crate::crash::free_port());
        std::thread::sleep(std::time::Duration::from_millis(40 + point * 25));
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        let report = verify();
        let size = report["log_size"].as_u64().unwrap();
        assert!(size == 0 || size == 25, "partial log after kill at point {point}: size {size}");
        assert!(report["problems"].as_array().unwrap().is_empty(), "point {point}: {report}");
        if size == 0 {
            partial_points += 1;
        }
    }
    assert!(partial_points > 0, "every kill landed after the sync finished; the test proved nothing");
    // After the kills, the mirror completes its sync and serves a consistent state.
    let port = crate::crash::free_port();
    let mut child = spawn(port);
    let url = format!("http://127.0.0.1:{port}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let (status, body) = http_get(&url, "/v1/mirror/status");
        if status == 200 && serde_json::from_slice::<serde_json::Value>(&body).unwrap()["size"] == 25 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "mirror did not finish syncing");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    world.pull_from(&url, "p23==1.0", "p23.bin").ok();
    // SIGHUP makes a running mirror sync now.
    world.write("late-1.0.bin", b"after the signal");
    world.publish("late-1.0.bin", "late", "1.0").ok();
    let pid = child.id().to_string();
    assert!(Command::new("kill").args(["-HUP", &pid]).status().unwrap().success());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while serde_json::from_slice::<serde_json::Value>(&http_get(&url, "/v1/mirror/status").1).unwrap()["size"]
        != 26
    {
        assert!(std::time::Instant::now() < deadline, "SIGHUP did not trigger a sync");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn stale_mirror_answers_a_clear_error_and_an_unsafe_extension_is_declared_to_clients() {
    // The registry and the mirrors run on set clocks two days in the past; the CLI reads the
    // real clock. Moving the mirrors' clocks to now expires what they hold, without sleeping.
    const DAY: u64 = 86_400;
    let real_now = airlock_proto::clock::system_now();
    let past = real_now - 2 * DAY;
    let mut world = World::prepared(1, 1);
    let mut config = world.config();
    let (clock, _primary_time) = airlock_proto::Clock::manual(past);
    config.clock = clock;
    world.server = Some(Server::start(config));
    world.write("s-1.0.bin", b"fresh once");
    world.sign_only("s-1.0.bin", "wheel", "s", "1.0", "s.cbor").ok();
    world.cli(&["submit", "s.cbor", "--server", &world.url(), "--token", &world.publish_token]).ok();
    let proxy = crate::proxy::Proxy::start(&world.url());
    let (plain_clock, plain_time) = airlock_proto::Clock::manual(past + 60);
    let (plain, plain_admin) =
        start_mirror_with(&world, "plain", &proxy.url, |config| config.clock = plain_clock);
    let (extended_clock, extended_time) = airlock_proto::Clock::manual(past + 60);
    let (extended, extended_admin) = start_mirror_with(&world, "extended", &proxy.url, |config| {
        config.clock = extended_clock;
        config.unsafe_serve_expired_checkpoint_for = Some(std::time::Duration::from_secs(2 * DAY));
    });
    sync(&plain, &plain_admin);
    sync(&extended, &extended_admin);
    assert_eq!(http_get(&plain.url, "/v1/log/checkpoint").0, 200, "fresh on the mirror's clock");
    // The upstream becomes unreachable and the checkpoint the mirrors hold expires.
    proxy.set(|_, _| b"upstream unreachable".to_vec());
    plain_time.set(real_now);
    extended_time.set(real_now);
    let (status, body) = http_get(&plain.url, "/v1/log/checkpoint");
    assert_eq!(status, 503);
    assert!(String::from_utf8_lossy(&body).contains("stale"), "{}", String::from_utf8_lossy(&body));
    world.pull_from(&plain.url, "s==1.0", "a.bin").code(1).says("stale");
    // Under the operator's unsafe extension the mirror serves the expired checkpoint and says so;
    // clients refuse it unless told, loudly, to accept it.
    world.pull_from(&extended.url, "s==1.0", "b.bin").code(3).says("UNSAFE extension");
    let run = world
        .cli(&[
            "pull",
            "s==1.0",
            "--server",
            &extended.url,
            "--root",
            "root.cbor",
            "-o",
            "c.bin",
            "--unsafe-accept-server-extension",
        ])
        .ok();
    assert!(run.stderr.contains("WARNING: accepted an EXPIRED checkpoint"), "{}", run.stderr);
    assert_eq!(std::fs::read(world.path("c.bin")).unwrap(), b"fresh once");
    // Past the extension's end the mirror is stale again.
    extended_time.set(real_now + 2 * DAY);
    assert_eq!(http_get(&extended.url, "/v1/log/checkpoint").0, 503);
}

#[test]
fn slow_retrieval_from_the_upstream_is_abandoned_and_nothing_becomes_visible() {
    let world = World::new(1, 1);
    world.write("slow-1.0.bin", &[7u8; 4096]);
    world.publish("slow-1.0.bin", "slow", "1.0").ok();
    let proxy = crate::proxy::Proxy::start(&world.url());
    proxy.slow(Some("/v1/blobs/"));
    let (mirror, admin) = start_mirror_with(&world, "mirror", &proxy.url, |config| {
        config.upstream_limits = airlock_client::remote::TransferLimits {
            idle: std::time::Duration::from_secs(2),
            min_rate: 1000,
            grace: std::time::Duration::from_secs(1),
        };
    });
    let started = std::time::Instant::now();
    let (status, body) = http_request("POST", &mirror.url, "/v1/mirror/sync", Some(&admin), b"");
    assert_eq!(status, 422);
    assert!(String::from_utf8_lossy(&body).contains("too slow"), "{}", String::from_utf8_lossy(&body));
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "slow transfer not cut off: {:?}",
        started.elapsed()
    );
    assert_eq!(http_get(&mirror.url, "/v1/releases/wheel/slow/1.0").0, 404);
    proxy.slow(None);
    sync(&mirror, &admin);
    world.pull_from(&mirror.url, "slow==1.0", "slow.bin").ok();
}

#[test]
fn partial_mirror_by_channel_fetches_a_release_when_it_is_promoted() {
    let world = World::new(1, 1);
    world.write("p-1.0.bin", b"promoted later");
    world.publish("p-1.0.bin", "p", "1.0").ok();
    let (mirror, admin) = start_mirror_with(&world, "mirror", &world.url(), |config| {
        config.carry.channels = vec![airlock_proto::ChannelName::new("prod").unwrap()];
    });
    assert_eq!(sync(&mirror, &admin)["blobs_fetched"], 0, "not in prod yet");
    // The publishers promote it to prod: a signed, logged channel statement.
    let statement = airlock_proto::Statement::Channel(airlock_proto::ChannelStatement {
        payload_type: airlock_proto::PayloadType::Channel,
        channel: airlock_proto::ChannelName::new("prod").unwrap(),
        action: airlock_proto::ChannelAction::Add,
        kind: airlock_proto::Kind::Wheel,
        name: airlock_proto::PackageName::new(airlock_proto::Kind::Wheel, "p").unwrap(),
        version: airlock_proto::Version::new("1.0").unwrap(),
        issued_at: 1,
        supersedes: None,
    });
    let (payload_type, payload) = statement.encode().unwrap();
    let (status, _) =
        world.submit_signed_by_publisher(airlock_proto::Envelope::unsigned(payload_type.as_str(), payload));
    assert_eq!(status, 201);
    assert_eq!(sync(&mirror, &admin)["blobs_fetched"], 1, "fetched once promoted");
    world.pull_from(&mirror.url, "p==1.0", "p.bin").ok();
}

#[test]
fn sync_with_nothing_new_costs_one_checkpoint_request() {
    let world = World::new(1, 1);
    world.write("q-1.0.bin", b"once");
    world.publish("q-1.0.bin", "q", "1.0").ok();
    let proxy = crate::proxy::Proxy::start(&world.url());
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let log = std::sync::Arc::clone(&seen);
    proxy.set(move |path, body| {
        log.lock().unwrap().push(path.to_owned());
        body
    });
    let (mirror, admin) = start_mirror(&world, "mirror", &proxy.url);
    sync(&mirror, &admin);
    assert!(seen.lock().unwrap().len() >= 3, "checkpoint, leaves and the blob: {:?}", seen.lock().unwrap());
    seen.lock().unwrap().clear();
    sync(&mirror, &admin);
    assert_eq!(*seen.lock().unwrap(), vec!["/v1/log/checkpoint".to_owned()]);
}
