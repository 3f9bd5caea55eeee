//! Freshness that fits the air gap: a bundle exported with `--valid-for 30d` keeps a bundle-fed
//! site serving until it expires, the real binaries run with clocks set days ahead (libfaketime);
//! the time left and a warning under the margin show in `/healthz`, `airlock mirror status` and
//! the server log; a checkpoint claiming more validity than the root allows is refused.

use std::process::Command;

use airlock_proto::{Checkpoint, Note};

use crate::crash::free_port;
use crate::harness::{faketime, http_get, spawn_airlockd_env, Server, World};
use crate::proxy::Proxy;

const DAY: u64 = 86_400;

fn airlockd(world: &World, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_airlockd")).args(args).current_dir(world.path("")).output().unwrap()
}

/// The bundle-fed site `site` served by a process whose clock is `days` ahead; its log goes to
/// `site-<days>.log`. Returns the process, its URL and the `/healthz` freshness.
fn serve_site_at(world: &World, days: u64) -> (std::process::Child, String, serde_json::Value) {
    let port = free_port();
    let log = std::fs::File::create(world.path(&format!("site-{days}.log"))).unwrap();
    let child = spawn_airlockd_env(world, "site", port, &["--mirror"], Some(log), &faketime(days));
    let url = format!("http://127.0.0.1:{port}");
    let health: serde_json::Value = serde_json::from_slice(&http_get(&url, "/healthz").1).unwrap();
    (child, url, health["freshness"].clone())
}

fn stop(mut child: std::process::Child) {
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn a_bundle_valid_for_30_days_is_served_for_30_days_and_refused_after() {
    let mut world = World::prepared(1, 1);
    let admin =
        airlock_server::cli::token_create(&world.path("data"), airlock_server::auth::Scope::Admin, "export")
            .unwrap();
    world.server = Some(Server::start(world.config()));
    world.write("w-1.0.bin", b"carried across");
    world.publish("w-1.0.bin", "w", "1.0").ok();
    let export = |valid_for: &str, out: &str| {
        world.cli(&[
            "export",
            "--all",
            "--valid-for",
            valid_for,
            "-o",
            out,
            "--server",
            &world.url(),
            "--token",
            &admin,
            "--root",
            "root.cbor",
        ])
    };
    // The root (made by `root create`) allows 45 days: a longer checkpoint is not signed.
    export("60d", "too-long.tar").code(1).says("allows (1s to 45d)");
    // It takes an admin token.
    let refused = world.cli(&[
        "export",
        "--all",
        "--valid-for",
        "30d",
        "-o",
        "x.tar",
        "--server",
        &world.url(),
        "--token",
        &world.publish_token,
        "--root",
        "root.cbor",
    ]);
    assert_ne!(refused.code, 0);
    let exported = export("30d", "bundle.tar").ok();
    // 30 days from when it was signed, read a moment later.
    assert!(
        exported.stdout.contains("expires in 30d") || exported.stdout.contains("expires in 29d 23h"),
        "{}",
        exported.stdout
    );
    // Online checkpoints stay short-lived.
    let online = Checkpoint::from_note_unverified(&http_get(&world.url(), "/v1/log/checkpoint").1).unwrap();
    assert!(online.expires_at - online.issued_at <= DAY);

    let import = airlockd(&world, &["import", "--data", "site", "--root", "root.cbor", "bundle.tar"]);
    assert!(import.status.success(), "{}", String::from_utf8_lossy(&import.stderr));

    // 20 days later: served, and pulled by a client whose clock says so too; no warning yet.
    let (site, url, fresh) = serve_site_at(&world, 20);
    let left = fresh["checkpoint_seconds_left"].as_u64().unwrap();
    assert!((9 * DAY..=10 * DAY).contains(&left), "{fresh}");
    assert_eq!(fresh["checkpoint_needs_delivery"], true);
    assert!(fresh["warnings"].as_array().unwrap().is_empty(), "{fresh}");
    let pull = |url: &str, days: u64| {
        world.cli_env(
            &["pull", "w==1.0", "--server", url, "--root", "root.cbor", "-o", "w.bin"],
            &faketime(days),
        )
    };
    pull(&url, 20).ok();
    assert_eq!(std::fs::read(world.path("w.bin")).unwrap(), b"carried across");
    stop(site);

    // 25 days later: under the 7-day margin; healthz, mirror status and the log warn.
    let (site, url, fresh) = serve_site_at(&world, 25);
    let warnings = fresh["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 1, "{fresh}");
    assert!(warnings[0].as_str().unwrap().contains("import a newer bundle"), "{fresh}");
    let status = world.cli_env(&["mirror", "status", "--server", &url], &faketime(25)).ok();
    assert!(
        status.stdout.contains("checkpoint expires in 4d")
            || status.stdout.contains("checkpoint expires in 5d"),
        "{}",
        status.stdout
    );
    assert!(status.stdout.contains("WARNING: the checkpoint expires in"), "{}", status.stdout);
    pull(&url, 25).ok();
    stop(site);
    let log = std::fs::read_to_string(world.path("site-25.log")).unwrap();
    assert!(log.contains("WARN") && log.contains("import a newer bundle"), "{log}");

    // 31 days later: expired; the site refuses to serve it and the client refuses the log.
    let (site, url, _) = serve_site_at(&world, 31);
    let stale = pull(&url, 31);
    assert_ne!(stale.code, 0);
    assert!(stale.stderr.contains("stale") || stale.stderr.contains("expired"), "{}", stale.stderr);
    stop(site);
}

/// A checkpoint signed by the log key that claims 60 days under a root that allows 45 is refused
/// by the client, however fresh it is.
#[test]
fn a_checkpoint_claiming_more_validity_than_the_root_allows_is_refused() {
    let world = World::new(1, 1);
    world.write("w-1.0.bin", b"w");
    world.publish("w-1.0.bin", "w", "1.0").ok();
    let served = Checkpoint::from_note_unverified(&http_get(&world.url(), "/v1/log/checkpoint").1).unwrap();
    let key = airlock_keys::read_secret_key(&world.path("data/log.key")).unwrap();
    let long = |days: u64| {
        let now = airlock_proto::clock::system_now();
        let checkpoint = Checkpoint { issued_at: now, expires_at: now + days * DAY, ..served.clone() };
        let mut note = Note::new(checkpoint.to_text()).unwrap();
        airlock_keys::sign_note(&mut note, "test.airlock", &key).unwrap();
        note.to_bytes()
    };
    let proxy = Proxy::start(&world.url());
    let sixty = long(60);
    proxy.set(move |path, body| if path.starts_with("/v1/log/checkpoint") { sixty.clone() } else { body });
    std::fs::copy(world.path("root.cbor"), world.path("fresh-root.cbor")).unwrap();
    let run =
        world.cli(&["pull", "w==1.0", "--server", &proxy.url, "--root", "fresh-root.cbor", "-o", "w.bin"]);
    assert_ne!(run.code, 0);
    assert!(
        run.stderr.contains("claims 60d of validity") && run.stderr.contains("allows at most 45d"),
        "{}",
        run.stderr
    );
    // The same checkpoint at 45 days is accepted.
    let ok = long(45);
    proxy.set(move |path, body| if path.starts_with("/v1/log/checkpoint") { ok.clone() } else { body });
    world.cli(&["pull", "w==1.0", "--server", &proxy.url, "--root", "fresh-root.cbor", "-o", "w.bin"]).ok();
}
