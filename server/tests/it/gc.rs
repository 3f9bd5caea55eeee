//! Garbage collection (`airlockd gc`): on a stopped data directory and through a running
//! server; a dry run lists exactly what the run then removes; a logged blob is never removed;
//! the grace period keeps the blobs of a statement awaiting its submit, and a re-upload restarts
//! it.

use airlock_proto::{Clock, Digest};

use crate::harness::{faketime, http_request, Run, Server, World};

/// The digests a gc report lists as removed, with their reasons.
fn removed(run: &Run) -> Vec<(String, String)> {
    let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    report["removed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["digest"].as_str().unwrap().to_owned(), r["reason"].as_str().unwrap().to_owned()))
        .collect()
}

fn report(run: &Run) -> serde_json::Value {
    serde_json::from_str(&run.stdout).unwrap()
}

fn blob_file(world: &World, digest: &Digest) -> std::path::PathBuf {
    let hex = digest.to_hex();
    world.path(&format!("data/blobs/{}/{hex}", &hex[..2]))
}

fn upload(url: &str, token: &str, bytes: &[u8]) -> u16 {
    let path = format!("/v1/blobs/blake3/{}", Digest::of(bytes).to_hex());
    http_request("PUT", url, &path, Some(token), bytes).0
}

#[test]
fn gc_on_a_stopped_store_removes_old_uploads_and_unrecorded_bytes_and_never_a_logged_blob() {
    let mut world = World::new(1, 1);
    world.write("a.bin", b"logged bytes");
    world.publish("a.bin", "a", "1.0").ok();
    // A statement signed but never submitted: its blob is uploaded, referenced by nothing.
    world.write("pending.bin", b"awaiting approval");
    world.sign_only("pending.bin", "wheel", "pending", "1.0", "pending.cbor").ok();
    world.server.take().unwrap().stop();
    // Bytes a crash left between placing a blob and recording it.
    let stray = b"placed, never recorded";
    let stray_digest = Digest::of(stray);
    std::fs::write(blob_file(&world, &stray_digest), stray).unwrap();
    let pending = Digest::of(b"awaiting approval").to_string();
    let stray_name = stray_digest.to_string();

    // Within the grace period the upload stays; the unrecorded bytes go.
    let now = world.airlockd(&["gc", "--data", "data", "--dry-run"]).ok();
    assert_eq!(removed(&now), [(stray_name.clone(), "unrecorded".to_owned())]);
    assert_eq!(report(&now)["kept_in_grace"], 1);

    // Eight days on, both; a dry run removes nothing and lists exactly what the run removes.
    let later = faketime(8);
    let dry = world
        .airlockd_env(&["gc", "--data", "data", "--dry-run"], &later)
        .ok()
        .says("would remove 2 blob(s)");
    let mut expected =
        vec![(pending.clone(), "unreferenced".to_owned()), (stray_name, "unrecorded".to_owned())];
    expected.sort();
    assert_eq!(removed(&dry), expected);
    assert!(blob_file(&world, &stray_digest).exists(), "a dry run removed bytes");
    let run = world.airlockd_env(&["gc", "--data", "data"], &later).ok().says("removed 2 blob(s)");
    assert_eq!(removed(&run), expected);
    assert_eq!(report(&run)["bytes_freed"], (b"awaiting approval".len() + stray.len()) as u64);
    assert!(!blob_file(&world, &stray_digest).exists());
    assert!(!blob_file(&world, &Digest::of(b"awaiting approval")).exists());
    // The logged blob is there and the store verifies; a second run finds nothing.
    assert!(blob_file(&world, &Digest::of(b"logged bytes")).exists());
    let verified = world.airlockd_env(&["verify-store", "--data", "data"], &later).ok();
    assert!(report(&verified)["problems"].as_array().unwrap().is_empty(), "{}", verified.stdout);
    assert!(removed(&world.airlockd_env(&["gc", "--data", "data"], &later).ok()).is_empty());

    // The statement whose blob went is refused, naming the blob; a re-upload lets it in.
    world.server = Some(Server::start(world.config()));
    let url = world.url();
    world
        .cli(&["submit", "pending.cbor", "--server", &url, "--token", &world.publish_token])
        .code(1)
        .says("has not been uploaded");
    assert_eq!(upload(&url, &world.publish_token, b"awaiting approval"), 201);
    world.cli(&["submit", "pending.cbor", "--server", &url, "--token", &world.publish_token]).ok();
    world.pull("a==1.0", "a.out").ok();
}

#[test]
fn gc_through_a_running_server_honours_the_grace_period_and_a_re_upload_restarts_it() {
    let mut world = World::prepared(1, 1);
    world.admin_token();
    let mut config = world.config();
    let (clock, time) = Clock::manual(airlock_proto::clock::system_now());
    config.clock = clock;
    world.server = Some(Server::start(config));
    let url = world.url();
    let gc = |extra: &[&str]| {
        let mut args = vec!["gc", "--server", url.as_str(), "--admin-token-file", "admin.token"];
        args.extend_from_slice(extra);
        world.airlockd(&args).ok()
    };
    world.write("a.bin", b"logged bytes");
    world.publish("a.bin", "a", "1.0").ok();
    assert_eq!(upload(&url, &world.publish_token, b"old upload"), 201);
    assert_eq!(upload(&url, &world.publish_token, b"uploaded again"), 201);
    time.advance(6 * 86_400);
    // Uploading the same bytes again starts its grace period over.
    assert_eq!(upload(&url, &world.publish_token, b"uploaded again"), 200);
    time.advance(2 * 86_400);

    let dry = gc(&["--dry-run"]);
    let old = Digest::of(b"old upload").to_string();
    assert_eq!(removed(&dry), [(old.clone(), "unreferenced".to_owned())]);
    assert_eq!(report(&dry)["kept_in_grace"], 1);
    let run = gc(&[]);
    assert_eq!(removed(&run), removed(&dry));
    let path = format!("/v1/blobs/blake3/{}", Digest::of(b"old upload").to_hex());
    assert_eq!(http_request("GET", &url, &path, Some(&world.publish_token), b"").0, 404);
    // A grace period given with the request overrides the server's.
    let all = gc(&["--dry-run", "--grace", "0s"]);
    assert_eq!(removed(&all), [(Digest::of(b"uploaded again").to_string(), "unreferenced".to_owned())]);
    // The logged release's blob is untouched and served.
    let logged = format!("/v1/blobs/blake3/{}", Digest::of(b"logged bytes").to_hex());
    assert_eq!(http_request("GET", &url, &logged, None, b""), (200, b"logged bytes".to_vec()));
    // Only an admin token collects.
    let (status, body) = http_request(
        "POST",
        &url,
        "/v1/admin/gc",
        Some(&world.publish_token),
        br#"{"dry_run":true,"grace_secs":null}"#,
    );
    assert_eq!(status, 403, "{}", String::from_utf8_lossy(&body));
}

#[test]
fn purge_is_refused_until_revoked_keeps_shared_files_and_mirrors_and_bundles_pass_a_purged_release() {
    let mut world = World::prepared(1, 1);
    world.admin_token();
    world.server = Some(Server::start(world.config()));
    let url = world.url();
    let purge = |release: &str| {
        let args = ["purge", release, "--server", url.as_str(), "--admin-token-file", "admin.token"];
        world.airlockd(&args)
    };
    world.write("a.bin", b"purge me");
    world.publish("a.bin", "a", "1.0").ok();
    world.write("shared.bin", b"shared bytes");
    world.publish("shared.bin", "c", "1.0").ok();
    world.publish("shared.bin", "d", "1.0").ok();
    let purged = Digest::of(b"purge me");
    let shared = Digest::of(b"shared bytes");
    let get = |base: &str, digest: &Digest| {
        http_request("GET", base, &format!("/v1/blobs/blake3/{}", digest.to_hex()), None, b"").0
    };

    // Refused while the release is active, naming why.
    purge("a==1.0").code(1).says("is active, not revoked");
    assert_eq!(get(&url, &purged), 200);
    crate::lifecycle::lifecycle(&world, "revoke", "a==1.0", &["--reason", "takedown"]).ok();
    let run = purge("a==1.0").ok().says("purged 1 blob(s)");
    assert_eq!(removed(&run), [(purged.to_string(), "purged".to_owned())]);
    assert_eq!(get(&url, &purged), 404);
    // A file that a release which is not revoked also holds stays.
    crate::lifecycle::lifecycle(&world, "revoke", "c==1.0", &["--reason", "takedown"]).ok();
    let run = purge("c==1.0").ok();
    assert!(removed(&run).is_empty());
    assert_eq!(report(&run)["kept_shared"], serde_json::json!([shared.to_string()]));
    assert_eq!(get(&url, &shared), 200);
    purge("nothing==1.0").code(1).says("no logged release nothing==1.0");

    // A fresh mirror syncs past the purged release; a bundle exports and imports past it.
    let (config, mirror_admin) = crate::mirror::mirror_config(&world, "site", &url);
    let mirror = Server::start(config);
    let synced = crate::mirror::sync(&mirror, &mirror_admin);
    assert_eq!(synced["to_size"], world.log_size(), "{synced}");
    assert_eq!((get(&mirror.url, &purged), get(&mirror.url, &shared)), (404, 200));
    world.cli(&["export", "--server", &url, "--root", "root.cbor", "--all", "-o", "all.tar"]).ok();
    airlock_server::cli::init(&world.path("restored")).unwrap();
    world.airlockd(&["import", "--data", "restored", "--root", "root.cbor", "all.tar"]).ok();

    // On a stopped data directory: once every holder is revoked, the shared file goes too, and
    // the store still verifies.
    crate::lifecycle::lifecycle(&world, "revoke", "d==1.0", &["--reason", "takedown"]).ok();
    world.server.take().unwrap().stop();
    let run = world.airlockd(&["purge", "d==1.0", "--data", "data"]).ok();
    assert_eq!(removed(&run), [(shared.to_string(), "purged".to_owned())]);
    let verified = world.airlockd(&["verify-store", "--data", "data"]).ok();
    let verified = report(&verified);
    assert!(verified["problems"].as_array().unwrap().is_empty(), "{verified}");
    assert_eq!(verified["not_held"], 0, "{verified}");
}

#[test]
fn gc_on_a_mirror_whose_carry_filter_narrowed_removes_the_blobs_it_no_longer_carries() {
    let world = World::new(1, 1);
    world.write("a.bin", b"carried bytes");
    world.publish("a.bin", "a", "1.0").ok();
    world.write("b.bin", b"dropped bytes");
    world.publish("b.bin", "b", "1.0").ok();
    let (config, admin) = crate::mirror::mirror_config(&world, "site", &world.url());
    let mirror = Server::start(config.clone());
    crate::mirror::sync(&mirror, &admin);
    mirror.stop();
    let kept = Digest::of(b"carried bytes");
    let dropped = Digest::of(b"dropped bytes");
    let file =
        |digest: &Digest| world.path(&format!("site/blobs/{}/{}", &digest.to_hex()[..2], digest.to_hex()));
    assert!(file(&kept).exists() && file(&dropped).exists());

    // The mirror now carries only `a`: a collection lists b's blob, then removes exactly it.
    let mut narrowed = config;
    narrowed.carry.names = vec!["a".to_owned()];
    let mirror = Server::start(narrowed);
    let gc = |dry_run: bool| {
        let body = format!(r#"{{"dry_run":{dry_run},"grace_secs":null}}"#);
        let (status, answer) =
            http_request("POST", &mirror.url, "/v1/admin/gc", Some(&admin), body.as_bytes());
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));
        let report: serde_json::Value = serde_json::from_slice(&answer).unwrap();
        report["removed"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| (r["digest"].as_str().unwrap().to_owned(), r["reason"].as_str().unwrap().to_owned()))
            .collect::<Vec<_>>()
    };
    let expected = vec![(dropped.to_string(), "uncarried".to_owned())];
    assert_eq!(gc(true), expected);
    assert!(file(&dropped).exists(), "a dry run removed bytes");
    assert_eq!(gc(false), expected);
    assert!(!file(&dropped).exists() && file(&kept).exists());
    let path = |digest: &Digest| format!("/v1/blobs/blake3/{}", digest.to_hex());
    let (status, body) = http_request("GET", &mirror.url, &path(&dropped), None, b"");
    assert_eq!(status, 404);
    assert!(String::from_utf8_lossy(&body).contains("does not carry"));
    assert_eq!(http_request("GET", &mirror.url, &path(&kept), None, b"").0, 200);
    // A sync does not fetch it again, and a second collection finds nothing.
    crate::mirror::sync(&mirror, &admin);
    assert!(!file(&dropped).exists());
    assert!(gc(false).is_empty());
}
