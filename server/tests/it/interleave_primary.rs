//! A randomised interleaving test where the upstream dies too: a primary and a mirror following
//! it, both real `airlockd` processes, while publishes (upload and submit), uploads that are
//! never submitted, mirror syncs and garbage collection with no grace period on either server
//! run two at a time, and either server is SIGKILLed at a random point. After each run both
//! stores verify (`airlockd verify-store`), every publish that was acknowledged is in the
//! primary's log, every blob the log of either server names is served by it, and a garbage
//! collection of each stopped store leaves exactly its logged blobs (every orphaned upload
//! reclaimed), a second one nothing.
//!
//! The suite runs a fixed list of seeds; `AIRLOCK_INTERLEAVE_SEEDS=N` runs seeds 0..N.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use airlock_proto::Digest;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::harness::{http_request, World};
use crate::interleave::{check, check_collected, check_served, Process};

const SUITE_SEEDS: [u64; 3] = [3, 11, 99];

/// What the runs did, so that the test can tell every kind of change really happened.
#[derive(Debug, Default)]
struct Tally {
    published: usize,
    orphans: usize,
    synced: usize,
    collected: usize,
    primary_killed: usize,
    mirror_killed: usize,
}

fn run(seed: u64, steps: usize, tally: &Mutex<Tally>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let world = World::prepared(1, 1);
    let primary_admin =
        airlock_server::cli::token_create(&world.path("data"), airlock_server::auth::Scope::Admin, "ops")
            .unwrap();
    airlock_server::cli::init(&world.path("site")).unwrap();
    let mirror_admin =
        airlock_server::cli::token_create(&world.path("site"), airlock_server::auth::Scope::Admin, "ops")
            .unwrap();
    let mut primary = Process::start(&world, "data", &[]);
    let upstream = primary.url();
    let mut mirror = Process::start(&world, "site", &["--upstream", &upstream]);
    let released = AtomicUsize::new(0);
    // The bytes of every publish the CLI reported done: each must be in the log at the end.
    let acknowledged = Mutex::new(Vec::new());
    let publish = || {
        let n = released.fetch_add(1, Ordering::SeqCst);
        let (file, bytes) = (format!("p{n}.bin"), format!("seed {seed} publish {n}"));
        world.write(&file, bytes.as_bytes());
        let run = world.publish_to(
            &upstream,
            Some(&world.publish_token),
            &file,
            "wheel",
            &format!("p{n}"),
            "1.0",
            &[],
        );
        if run.code == 0 {
            acknowledged.lock().unwrap().push(Digest::of(bytes.as_bytes()));
            tally.lock().unwrap().published += 1;
        }
    };
    publish();
    for _ in 0..steps {
        let actions: Vec<u32> = (0..2).map(|_| rng.gen_range(0..5)).collect();
        let orphan = format!("seed {seed} orphan {}", rng.gen::<u64>());
        let kill_primary = rng.gen_bool(0.3);
        let kill_mirror = rng.gen_bool(0.3);
        let pause = Duration::from_millis(rng.gen_range(0..60));
        std::thread::scope(|scope| {
            for action in actions {
                let (upstream, mirror_url) = (upstream.clone(), mirror.url());
                let (publish, orphan, world) = (&publish, orphan.clone(), &world);
                let (primary_admin, mirror_admin) = (primary_admin.clone(), mirror_admin.clone());
                scope.spawn(move || match action {
                    0 => publish(),
                    1 => {
                        // An upload no statement will ever name.
                        let path = format!("/v1/blobs/blake3/{}", Digest::of(orphan.as_bytes()).to_hex());
                        let token = Some(world.publish_token.as_str());
                        if http_request("PUT", &upstream, &path, token, orphan.as_bytes()).0 == 201 {
                            tally.lock().unwrap().orphans += 1;
                        }
                    }
                    2 => {
                        let status =
                            http_request("POST", &mirror_url, "/v1/mirror/sync", Some(&mirror_admin), b"").0;
                        if status == 200 {
                            tally.lock().unwrap().synced += 1;
                        }
                    }
                    _ => {
                        let (url, token) =
                            if action == 3 { (upstream, primary_admin) } else { (mirror_url, mirror_admin) };
                        let body = br#"{"dry_run":false,"grace_secs":0}"#;
                        if http_request("POST", &url, "/v1/admin/gc", Some(&token), body).0 == 200 {
                            tally.lock().unwrap().collected += 1;
                        }
                    }
                });
            }
            if kill_primary || kill_mirror {
                std::thread::sleep(pause);
            }
            if kill_primary {
                primary.kill();
                tally.lock().unwrap().primary_killed += 1;
            }
            if kill_mirror {
                mirror.kill();
                tally.lock().unwrap().mirror_killed += 1;
            }
        });
        primary.restart(&world);
        mirror.restart(&world);
    }
    primary.kill();
    mirror.kill();
    let root = world.path("root.cbor");
    for data in ["data", "site"] {
        check(&world, data, seed);
    }
    let logged_primary = check_collected(&world, "data", seed);
    let logged_mirror = check_collected(&world, "site", seed);
    // The mirror first, while its upstream is down: a sync after its start would log more.
    mirror.restart(&world);
    assert_eq!(check_served(&mirror.url(), &root, seed).len(), logged_mirror, "seed {seed}");
    mirror.kill();
    primary.restart(&world);
    let named = check_served(&primary.url(), &root, seed);
    assert_eq!(named.len(), logged_primary, "seed {seed}: the primary holds blobs its log does not name");
    for digest in acknowledged.lock().unwrap().iter() {
        assert!(named.contains(digest), "seed {seed}: acknowledged publish {digest} is not in the log");
    }
}

#[test]
fn a_primary_and_its_mirror_under_interleaved_publishes_orphans_syncs_gc_and_sigkill_of_either_stay_consistent(
) {
    let seeds: Vec<u64> = match std::env::var("AIRLOCK_INTERLEAVE_SEEDS").ok().and_then(|n| n.parse().ok()) {
        Some(n) => (0..n).collect(),
        None => SUITE_SEEDS.to_vec(),
    };
    let tally = Mutex::new(Tally::default());
    for seed in seeds {
        run(seed, 10, &tally);
    }
    let tally = tally.lock().unwrap();
    eprintln!("{tally:?}");
    assert!(
        tally.published > 0
            && tally.orphans > 0
            && tally.synced > 0
            && tally.collected > 0
            && tally.primary_killed > 0
            && tally.mirror_killed > 0,
        "{tally:?}"
    );
}
