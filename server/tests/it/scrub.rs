//! Scrub on a running server (`airlockd scrub`, `airlockd verify-store --server`,
//! `--scrub-interval`): a flipped byte, a truncated file and a missing file are found, and a
//! mirror's `--repair` puts each back from its upstream through the ingest path; a blob that
//! cannot be repaired stays reported; a scheduled scrub repairs on its own and is counted.

use std::time::{Duration, Instant};

use airlock_proto::Digest;

use crate::harness::{http_get, Run, Server, World};
use crate::mirror::{mirror_config, sync};

fn blob_file(world: &World, data: &str, bytes: &[u8]) -> std::path::PathBuf {
    let hex = Digest::of(bytes).to_hex();
    world.path(&format!("{data}/blobs/{}/{hex}", &hex[..2]))
}

fn report(run: &Run) -> serde_json::Value {
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {}{}", run.stdout, run.stderr))
}

const A: &[u8] = b"alpha alpha alpha alpha alpha alpha";
const B: &[u8] = b"bravo bravo bravo bravo bravo bravo";
const C: &[u8] = b"charlie charlie charlie charlie charlie";

fn published(world: &World) {
    for (name, bytes) in [("a", A), ("b", B), ("c", C)] {
        world.write(&format!("{name}.bin"), bytes);
        world.publish(&format!("{name}.bin"), name, "1.0").ok();
    }
}

/// Flips a byte of A's file, truncates B's and removes C's in `data`.
fn damage(world: &World, data: &str) {
    let mut flipped = A.to_vec();
    flipped[3] ^= 1;
    std::fs::write(blob_file(world, data, A), flipped).unwrap();
    std::fs::write(blob_file(world, data, B), &B[..10]).unwrap();
    std::fs::remove_file(blob_file(world, data, C)).unwrap();
}

#[test]
fn scrub_finds_a_flipped_byte_a_truncated_and_a_missing_blob_and_repair_restores_each_from_the_upstream() {
    let world = World::new(1, 1);
    published(&world);
    let (config, admin) = mirror_config(&world, "site", &world.url());
    world.write("site.token", admin.as_bytes());
    let mirror = Server::start(config);
    sync(&mirror, &admin);
    damage(&world, "site");
    let on_mirror = ["--server", mirror.url.as_str(), "--admin-token-file", "site.token"];

    // Found without repairing, live: each named with what is wrong.
    let mut args = vec!["verify-store"];
    args.extend_from_slice(&on_mirror);
    let found = world.airlockd(&args).code(1).says("3 problem(s) remain");
    let problems = report(&found)["problems"].as_array().unwrap().clone();
    let text = serde_json::to_string(&problems).unwrap();
    for (bytes, what) in [(A, "hashing to"), (B, "holds 10 bytes"), (C, "No such file")] {
        let digest = Digest::of(bytes).to_string();
        assert!(
            problems
                .iter()
                .any(|p| p.as_str().unwrap().contains(&digest) && p.as_str().unwrap().contains(what)),
            "{digest} ({what}) not in {text}"
        );
    }

    // Repaired from the upstream: the exact bytes are back, and a second scrub finds nothing.
    let mut args = vec!["scrub", "--repair", "--rate", "64"];
    args.extend_from_slice(&on_mirror);
    let repaired = world.airlockd(&args).ok().says("3 repaired");
    assert_eq!(report(&repaired)["repaired"].as_array().unwrap().len(), 3);
    for bytes in [A, B, C] {
        assert_eq!(std::fs::read(blob_file(&world, "site", bytes)).unwrap(), bytes);
    }
    let mut args = vec!["scrub"];
    args.extend_from_slice(&on_mirror);
    assert!(report(&world.airlockd(&args).ok())["problems"].as_array().unwrap().is_empty());
    let (_, metrics) = http_get(&mirror.url, "/metrics");
    let metrics = String::from_utf8(metrics).unwrap();
    assert!(metrics.contains("airlock_scrub_repaired_blobs_total 3"), "{metrics}");
    assert!(metrics.contains("airlock_scrub_runs_total 3"), "{metrics}");
    assert!(metrics.contains("airlock_scrub_problems 0"), "{metrics}");
}

#[test]
fn a_primary_reports_what_it_cannot_repair_and_a_scheduled_scrub_repairs_a_mirror() {
    let mut world = World::prepared(1, 1);
    world.admin_token();
    world.server = Some(Server::start(world.config()));
    let url = world.url();
    published(&world);

    // A mirror scrubbing every second repairs damage on its own.
    let (mut config, _) = mirror_config(&world, "site", &url);
    config.sync_interval = Some(Duration::from_secs(3600));
    config.scrub_interval = Some(Duration::from_secs(1));
    let mirror = Server::start(config);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !blob_file(&world, "site", C).exists() {
        assert!(Instant::now() < deadline, "the mirror did not sync");
        std::thread::sleep(Duration::from_millis(50));
    }
    damage(&world, "site");
    while [A, B, C]
        .iter()
        .any(|bytes| std::fs::read(blob_file(&world, "site", bytes)).ok().as_deref() != Some(*bytes))
    {
        assert!(Instant::now() < deadline, "the scheduled scrub did not repair the mirror");
        std::thread::sleep(Duration::from_millis(100));
    }
    // The scrub counts its repairs when it finishes, a moment after the last file is replaced.
    loop {
        let (_, metrics) = http_get(&mirror.url, "/metrics");
        if String::from_utf8(metrics).unwrap().contains("airlock_scrub_repaired_blobs_total 3") {
            break;
        }
        assert!(Instant::now() < deadline, "the scheduled scrub did not count 3 repairs");
        std::thread::sleep(Duration::from_millis(50));
    }

    // The primary has nowhere to repair from: the damage stays reported, the record stays.
    damage(&world, "data");
    let args = ["scrub", "--repair", "--server", url.as_str(), "--admin-token-file", "admin.token"];
    let run = world.airlockd(&args).code(1).says("3 problem(s) remain (0 repaired)");
    let problems = report(&run)["problems"].as_array().unwrap().clone();
    assert_eq!(problems.len(), 3);
    assert!(problems.iter().all(|p| p.as_str().unwrap().contains("no upstream")), "{problems:?}");
}

#[test]
fn scrub_repairs_from_a_bundle_what_it_holds_intact_and_reports_the_rest() {
    let mut world = World::prepared(1, 1);
    world.admin_token();
    world.server = Some(Server::start(world.config()));
    let url = world.url();
    for (name, bytes) in [("a", A), ("b", B)] {
        world.write(&format!("{name}.bin"), bytes);
        world.publish(&format!("{name}.bin"), name, "1.0").ok();
    }
    world.cli(&["export", "--server", &url, "--root", "root.cbor", "--all", "-o", "media.tar"]).ok();
    // The bundle's copy of B is damaged on the media; C is published after the export.
    let mut tar = std::fs::read(world.path("media.tar")).unwrap();
    let at = tar.windows(B.len()).position(|w| w == B).expect("B is in the bundle");
    tar[at] ^= 1;
    std::fs::write(world.path("media.tar"), tar).unwrap();
    world.write("c.bin", C);
    world.publish("c.bin", "c", "1.0").ok();
    damage(&world, "data");

    // A relative path is the command's own: sent to the server whole.
    let args = [
        "scrub",
        "--repair",
        "--bundle",
        "media.tar",
        "--server",
        url.as_str(),
        "--admin-token-file",
        "admin.token",
    ];
    let run = world.airlockd(&args).code(1).says("2 problem(s) remain (1 repaired)");
    let found = report(&run);
    let repaired: Vec<&str> =
        found["repaired"].as_array().unwrap().iter().map(|r| r["digest"].as_str().unwrap()).collect();
    assert_eq!(repaired, [Digest::of(A).to_string()]);
    assert_eq!(std::fs::read(blob_file(&world, "data", A)).unwrap(), A);
    let problems = found["problems"].as_array().unwrap();
    let about = |bytes: &[u8]| {
        let digest = Digest::of(bytes).to_string();
        problems
            .iter()
            .map(|p| p.as_str().unwrap())
            .find(|p| p.contains(&digest))
            .unwrap_or_else(|| panic!("{digest} not reported: {problems:?}"))
    };
    assert!(about(B).contains("the bundle's copy was refused"), "{}", about(B));
    assert!(about(C).contains("the bundle does not hold it"), "{}", about(C));
    // The truncated B was not replaced by the bundle's bad copy.
    assert_eq!(std::fs::read(blob_file(&world, "data", B)).unwrap(), &B[..10]);

    // A bundle that cannot be read says so and changes nothing.
    let args = [
        "scrub",
        "--repair",
        "--bundle",
        "absent.tar",
        "--server",
        url.as_str(),
        "--admin-token-file",
        "admin.token",
    ];
    let run = world.airlockd(&args).code(1).says("2 problem(s) remain (0 repaired)");
    let problems = report(&run)["problems"].as_array().unwrap().clone();
    assert!(
        problems.iter().all(|p| p.as_str().unwrap().contains("the bundle was not read: cannot open")),
        "{problems:?}"
    );
}
