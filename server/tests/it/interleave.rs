//! A randomised interleaving test for a mirror: syncs, bundle imports, newer checkpoints of the
//! same tree, new upstream releases (uploads and submits), garbage collection on the mirror and
//! on the upstream with no grace period, and SIGKILLs, run side by side in an order a seed
//! decides. After each run the mirror's store verifies (`airlockd verify-store`), the checkpoint
//! it serves matches the leaves it serves, every blob the releases of either server name is
//! served, and a garbage collection of the stopped mirror leaves exactly the logged blobs, a
//! second one nothing to remove.
//!
//! `interleave_primary.rs` kills the upstream as well. The suite runs a fixed list of seeds. A longer run:
//! `AIRLOCK_INTERLEAVE_SEEDS=200 cargo nextest run -p airlock-server interleave` (seeds 0..N).

use std::process::{Child, Command};
use std::time::Duration;

use airlock_proto::api::LeavesPage;
use airlock_proto::merkle::{leaf_hash, MemoryTree};
use airlock_proto::{Checkpoint, Clock, Envelope, Statement};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::harness::{http_get, http_request, spawn_airlockd, Server, World};

/// The seeds the suite runs.
const SUITE_SEEDS: [u64; 4] = [1, 7, 42, 1234];
/// Checkpoint validity of the upstream: a "refresh" moves its clock by half of it, so that it
/// re-signs the same tree. One refresh per run keeps the upstream's clock within the verifiers'
/// 300 s skew of the real one, and a run may take up to 12 minutes before anything expires.
const VALIDITY: u64 = 480;

/// A server process that a step may kill and the next one restarts.
pub(crate) struct Process {
    child: Option<Child>,
    data: &'static str,
    port: u16,
    extra: Vec<String>,
}

impl Process {
    pub(crate) fn start(world: &World, data: &'static str, extra: &[&str]) -> Self {
        let mut process = Self {
            child: None,
            data,
            port: crate::crash::free_port(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
        };
        process.restart(world);
        process
    }

    pub(crate) fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub(crate) fn restart(&mut self, world: &World) {
        if self.child.is_none() {
            let extra: Vec<&str> = self.extra.iter().map(String::as_str).collect();
            self.child = Some(spawn_airlockd(world, self.data, self.port, &extra, None));
        }
    }

    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

fn export(world: &World, out: &str) {
    let url = world.url();
    world.cli(&["export", "--server", &url, "--root", "root.cbor", "--all", "-o", out]).ok();
}

/// What a run did, so that the test can tell the interleavings really happened.
#[derive(Debug, Default)]
struct Tally {
    synced: usize,
    imported: usize,
    refused: usize,
    killed: usize,
    refreshed: usize,
    published: usize,
    collected: usize,
}

/// One run: a fresh upstream and mirror, `steps` random actions, then the checks.
fn run(seed: u64, steps: usize, tally: &std::sync::Arc<std::sync::Mutex<Tally>>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut world = World::prepared(1, 1);
    let upstream_admin =
        airlock_server::cli::token_create(&world.path("data"), airlock_server::auth::Scope::Admin, "ops")
            .unwrap();
    let mut config = world.config();
    let (clock, upstream_time) = Clock::manual(airlock_proto::clock::system_now());
    config.clock = clock;
    config.checkpoint_validity = Duration::from_secs(VALIDITY);
    world.server = Some(Server::start(config));
    let upstream = world.url();
    let mut released = 0;
    let mut publish = |world: &World| {
        released += 1;
        let file = format!("r{released}-1.0.bin");
        world.write(&file, format!("seed {seed} release {released}").as_bytes());
        // A collection with no grace period may take the upload away before the submit: the
        // submit is refused naming the blob, and publishing again uploads it again.
        for attempt in 0.. {
            let run = world.publish(&file, &format!("r{released}"), "1.0");
            if run.code == 0 {
                break;
            }
            assert!(
                attempt < 5 && run.stderr.contains("has not been uploaded"),
                "seed {seed}: {}",
                run.stderr
            );
        }
    };
    publish(&world);
    export(&world, "b0.tar");
    publish(&world);
    export(&world, "b1.tar");
    airlock_server::cli::init(&world.path("site")).unwrap();
    let admin =
        airlock_server::cli::token_create(&world.path("site"), airlock_server::auth::Scope::Admin, "ops")
            .unwrap();
    let mut mirror = Process::start(&world, "site", &["--upstream", &upstream]);
    let mut refreshes = 0;
    let mut bundles = 2;
    for _ in 0..steps {
        // Two actions at once, on threads, racing each other through the mirror's writer.
        let actions: Vec<u32> = (0..2).map(|_| rng.gen_range(0..8)).collect();
        let mut threads = Vec::new();
        for action in actions {
            match action {
                0 | 1 => {
                    let (url, admin, tally) = (mirror.url(), admin.clone(), std::sync::Arc::clone(tally));
                    threads.push(std::thread::spawn(move || {
                        let status = http_request("POST", &url, "/v1/mirror/sync", Some(&admin), b"").0;
                        let mut tally = tally.lock().unwrap();
                        if status == 200 {
                            tally.synced += 1
                        } else {
                            tally.refused += 1
                        }
                    }));
                }
                2 | 3 => {
                    let bundle =
                        std::fs::read(world.path(&format!("b{}.tar", rng.gen_range(0..bundles)))).unwrap();
                    let (url, admin, tally) = (mirror.url(), admin.clone(), std::sync::Arc::clone(tally));
                    threads.push(std::thread::spawn(move || {
                        let status = http_request("POST", &url, "/v1/mirror/import", Some(&admin), &bundle).0;
                        let mut tally = tally.lock().unwrap();
                        if status == 200 {
                            tally.imported += 1
                        } else {
                            tally.refused += 1
                        }
                    }));
                }
                4 if refreshes < 1 => {
                    // A newer checkpoint of the same tree upstream.
                    refreshes += 1;
                    tally.lock().unwrap().refreshed += 1;
                    upstream_time.advance(VALIDITY / 2);
                    let _ = http_get(&upstream, "/v1/log/checkpoint");
                }
                4 => {}
                6 | 7 => {
                    // Garbage collection with no grace period, on the mirror or the upstream.
                    let (url, token) = if action == 6 {
                        (mirror.url(), admin.clone())
                    } else {
                        (upstream.clone(), upstream_admin.clone())
                    };
                    let tally = std::sync::Arc::clone(tally);
                    threads.push(std::thread::spawn(move || {
                        let body = br#"{"dry_run":false,"grace_secs":0}"#;
                        if http_request("POST", &url, "/v1/admin/gc", Some(&token), body).0 == 200 {
                            tally.lock().unwrap().collected += 1;
                        }
                    }));
                }
                _ => {
                    tally.lock().unwrap().published += 1;
                    publish(&world);
                    export(&world, &format!("b{bundles}.tar"));
                    bundles += 1;
                }
            }
        }
        // Sometimes kill the mirror while the actions run, then restart it.
        if rng.gen_bool(0.3) {
            std::thread::sleep(Duration::from_millis(rng.gen_range(0..40)));
            mirror.kill();
            tally.lock().unwrap().killed += 1;
        }
        for thread in threads {
            thread.join().unwrap();
        }
        mirror.restart(&world);
    }
    mirror.kill();
    check(&world, "site", seed);
    let logged = check_collected(&world, "site", seed);
    check_served(&upstream, &world.path("root.cbor"), seed);
    // The upstream stops first: a sync after the mirror's start would log more.
    world.server.take().unwrap().stop();
    mirror.restart(&world);
    assert_eq!(check_served(&mirror.url(), &world.path("root.cbor"), seed).len(), logged, "seed {seed}");
}

/// A collection of the stopped mirror with no grace period leaves exactly the blobs its logged
/// releases name (it carries them all), and a second one finds nothing. Returns their number.
pub(crate) fn check_collected(world: &World, data: &str, seed: u64) -> usize {
    let gc = || {
        let output = Command::new(env!("CARGO_BIN_EXE_airlockd"))
            .args(["gc", "--data", data, "--grace", "0s"])
            .current_dir(world.dir.path())
            .output()
            .unwrap();
        assert!(output.status.success(), "seed {seed}: {}", String::from_utf8_lossy(&output.stderr));
        serde_json::from_slice::<serde_json::Value>(&output.stdout).unwrap()
    };
    gc();
    let again = gc();
    assert!(again["removed"].as_array().unwrap().is_empty(), "seed {seed}: a second gc removed {again}");
    crate::publish_pull::walk_files(&world.path(&format!("{data}/blobs"))).len()
}

/// The store in `data` verifies with its server stopped.
pub(crate) fn check(world: &World, data: &str, seed: u64) {
    let report = Command::new(env!("CARGO_BIN_EXE_airlockd"))
        .args(["verify-store", "--data", data])
        .current_dir(world.dir.path())
        .output()
        .unwrap();
    assert!(
        report.status.success(),
        "seed {seed}: verify-store failed:\n{}\n{}",
        String::from_utf8_lossy(&report.stdout),
        String::from_utf8_lossy(&report.stderr)
    );
}

/// The served checkpoint matches the served leaves, and every blob they name is served.
/// Returns the distinct blobs they name.
pub(crate) fn check_served(
    url: &str,
    root_file: &std::path::Path,
    seed: u64,
) -> std::collections::HashSet<airlock_proto::Digest> {
    let (status, note) = http_get(url, "/v1/log/checkpoint");
    assert_eq!(status, 200, "seed {seed}: {}", String::from_utf8_lossy(&note));
    let checkpoint = Checkpoint::from_note_unverified(&note).unwrap();
    // Signed by the log key.
    let root = airlock_keys::TrustedRoot::pin(&std::fs::read(root_file).unwrap()).unwrap();
    root.check_checkpoint(&airlock_proto::Note::parse(&note).unwrap()).unwrap();
    let (status, page) = http_get(url, &format!("/v1/log/leaves?start=0&end={}", checkpoint.size));
    assert_eq!(status, 200, "seed {seed}");
    let page: LeavesPage = airlock_proto::codec::decode("page", &page, 64 << 20).unwrap();
    assert_eq!(page.leaves.len() as u64, checkpoint.size, "seed {seed}: leaves served");
    let mut tree = MemoryTree::new();
    let mut named = std::collections::HashSet::new();
    for leaf in &page.leaves {
        tree.push(leaf_hash(leaf));
        let envelope = Envelope::from_bytes(leaf).unwrap();
        if let Ok(Statement::Release(release)) = Statement::decode(&envelope.payload_type, &envelope.payload)
        {
            for file in release.files {
                named.insert(file.blake3);
                let (status, bytes) = http_get(url, &format!("/v1/blobs/blake3/{}", file.blake3.to_hex()));
                assert_eq!(status, 200, "seed {seed}: logged blob {} missing", file.blake3);
                assert_eq!(bytes.len() as u64, file.size);
            }
        }
    }
    assert_eq!(
        tree.root(),
        checkpoint.root_hash.0,
        "seed {seed}: served checkpoint does not match the leaves"
    );
    named
}

#[test]
fn a_mirror_under_interleaved_syncs_imports_refreshes_gc_and_sigkill_stays_consistent() {
    let seeds: Vec<u64> = match std::env::var("AIRLOCK_INTERLEAVE_SEEDS").ok().and_then(|n| n.parse().ok()) {
        Some(n) => (0..n).collect(),
        None => SUITE_SEEDS.to_vec(),
    };
    let tally = std::sync::Arc::new(std::sync::Mutex::new(Tally::default()));
    for seed in seeds {
        run(seed, 8, &tally);
    }
    // The seeds really interleaved every kind of change (a fixed list, so this holds or the list
    // is changed with it).
    let tally = tally.lock().unwrap();
    eprintln!("{tally:?}");
    assert!(
        tally.synced > 0
            && tally.imported > 0
            && tally.killed > 0
            && tally.refreshed > 0
            && tally.published > 0
            && tally.collected > 0,
        "{tally:?}"
    );
}
