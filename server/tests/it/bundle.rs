//! Bundles across the air gap: export from a registry, import into a mirror with the server
//! stopped (`airlockd import`) or running (`airlock import`), chaining, and hostile bundles.

use std::io::Read;
use std::process::Command;

use crate::harness::{http_get, http_request, Run, Server, World};

fn airlockd(world: &World, args: &[&str]) -> Run {
    let output = Command::new(env!("CARGO_BIN_EXE_airlockd"))
        .args(args)
        .current_dir(world.dir.path())
        .output()
        .unwrap();
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn upstream_with(world: &World, releases: &[(&str, &[u8])]) {
    for (name, bytes) in releases {
        let file = format!("{name}-1.0-py3-none-any.whl");
        world.write(&file, bytes);
        world.publish(&file, name, "1.0").ok();
    }
}

fn export(world: &World, how: &[&str], out: &str) {
    let url = world.url();
    let mut args = vec!["export", "--server", &url, "--root", "root.cbor", "-o", out];
    args.extend_from_slice(how);
    world.cli(&args).ok();
}

fn new_site(world: &World, name: &str) {
    airlock_server::cli::init(&world.path(name)).unwrap();
}

fn mirror_config(world: &World, name: &str) -> airlock_server::Config {
    let mut config = airlock_server::Config::new(world.path(name));
    config.mirror = true;
    config.sync_interval = None;
    config
}

fn blob_files(world: &World, name: &str) -> usize {
    crate::publish_pull::walk_files(&world.path(&format!("{name}/blobs"))).len()
}

#[test]
fn full_bundle_restores_an_empty_server_and_bundles_chain() {
    let world = World::new(1, 1);
    upstream_with(&world, &[("a", b"alpha"), ("b", b"bravo")]);
    export(&world, &["--all"], "full.tar");
    new_site(&world, "site");
    airlockd(&world, &["import", "--data", "site", "--root", "root.cbor", "full.tar"]).ok();
    let report = airlockd(&world, &["verify-store", "--data", "site"]).ok();
    let report: serde_json::Value = serde_json::from_str(&report.stdout).unwrap();
    assert_eq!((report["log_size"].clone(), report["blobs"].clone()), (3.into(), 2.into()));
    assert!(report["problems"].as_array().unwrap().is_empty());

    // Bundles chain: the next export starts where the import ended.
    upstream_with(&world, &[("c", b"charlie")]);
    export(&world, &["--since", "site/imported-state.json"], "inc.tar");
    airlockd(&world, &["import", "--data", "site", "inc.tar"]).ok();
    // Replaying the older bundle (a stale USB stick) is refused.
    airlockd(&world, &["import", "--data", "site", "full.tar"]).code(1).says("older than the mirror");

    // The restored site serves the same log, and clients verify through it.
    let site = Server::start(mirror_config(&world, "site"));
    assert_eq!(http_get(&site.url, "/v1/log/checkpoint").1, http_get(&world.url(), "/v1/log/checkpoint").1);
    world.pull_from(&site.url, "c==1.0", "c.whl").ok();
    assert_eq!(std::fs::read(world.path("c.whl")).unwrap(), b"charlie");
    world.pull_from(&site.url, "a==1.0", "a.whl").ok();
}

#[test]
fn bundle_starting_after_the_mirror_names_the_missing_leaves() {
    let world = World::new(1, 1);
    upstream_with(&world, &[("a", b"alpha"), ("b", b"bravo")]);
    export(&world, &["--from-size", "2"], "late.tar");
    new_site(&world, "site");
    airlockd(&world, &["import", "--data", "site", "--root", "root.cbor", "late.tar"])
        .code(1)
        .says("missing leaves 0..2");
    assert_eq!(blob_files(&world, "site"), 0);
}

#[test]
fn bundle_with_a_corrupt_blob_fails_whole_and_leaves_no_trace() {
    let world = World::new(1, 1);
    upstream_with(&world, &[("a", b"alpha alpha alpha"), ("b", b"bravo bravo bravo")]);
    export(&world, &["--all"], "full.tar");
    let mut bytes = std::fs::read(world.path("full.tar")).unwrap();
    let at = bytes.windows(17).rposition(|w| w == b"bravo bravo bravo").unwrap();
    bytes[at] ^= 1;
    std::fs::write(world.path("bad.tar"), bytes).unwrap();
    new_site(&world, "site");
    airlockd(&world, &["import", "--data", "site", "--root", "root.cbor", "bad.tar"]).code(1).says("hash");
    assert_eq!(blob_files(&world, "site"), 0, "a failed import left blobs behind");
    assert_eq!(std::fs::read_dir(world.path("site/tmp")).unwrap().count(), 0);
    // The same site accepts the intact bundle afterwards.
    airlockd(&world, &["import", "--data", "site", "--root", "root.cbor", "full.tar"]).ok();
}

#[test]
fn bundle_with_traversal_or_links_refused_before_anything_is_written() {
    let world = World::new(1, 1);
    upstream_with(&world, &[("a", b"alpha")]);
    export(&world, &["--all"], "full.tar");
    let mut manifest = Vec::new();
    let mut archive = tar::Archive::new(std::fs::File::open(world.path("full.tar")).unwrap());
    archive.entries().unwrap().next().unwrap().unwrap().read_to_end(&mut manifest).unwrap();
    for (name, hostile) in [("traversal", "../../evil"), ("link", "blobs/link"), ("absolute", "/tmp/evil")] {
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(manifest.len() as u64);
        header.set_mode(0o644);
        header.set_entry_type(tar::EntryType::Regular);
        builder.append_data(&mut header, "manifest.cbor", manifest.as_slice()).unwrap();
        let mut header = tar::Header::new_gnu();
        header.set_mode(0o644);
        if name == "link" {
            header.set_entry_type(tar::EntryType::Symlink);
            header.set_size(0);
            builder.append_link(&mut header, hostile, "/etc/passwd").unwrap();
        } else {
            header.set_entry_type(tar::EntryType::Regular);
            header.set_size(4);
            // Write the raw name into the header so the library does not sanitise it.
            let raw = hostile.as_bytes();
            header.as_old_mut().name[..raw.len()].copy_from_slice(raw);
            header.set_cksum();
            builder.append(&header, b"evil".as_slice()).unwrap();
        }
        let file = format!("{name}.tar");
        std::fs::write(world.path(&file), builder.into_inner().unwrap()).unwrap();
        let site = format!("site-{name}");
        new_site(&world, &site);
        airlockd(&world, &["import", "--data", &site, "--root", "root.cbor", &file]).code(1).says("refused");
        assert!(!world.path("evil").exists() && !world.dir.path().parent().unwrap().join("evil").exists());
        assert_eq!(blob_files(&world, &site), 0);
    }
}

#[test]
fn bundle_imported_into_a_running_mirror() {
    let world = World::new(1, 1);
    upstream_with(&world, &[("a", b"alpha")]);
    export(&world, &["--all"], "full.tar");
    new_site(&world, "site");
    let admin = {
        let db = airlock_server::store::Db::open(&world.path("site/db")).unwrap();
        airlock_server::auth::create_token(&db, airlock_server::auth::Scope::Admin, "test").unwrap()
    };
    let mut config = mirror_config(&world, "site");
    config.root = Some(world.path("root.cbor"));
    let site = Server::start(config);
    let run = world.cli(&["--json", "import", "full.tar", "--server", &site.url, "--token", &admin]).ok();
    let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(report["to_size"], 2);
    world.pull_from(&site.url, "a==1.0", "a.whl").ok();
    // Importing needs an admin token; the same bundle again adds nothing.
    assert_eq!(http_request("POST", &site.url, "/v1/mirror/import", None, b"").0, 401);
    let run = world.cli(&["--json", "import", "full.tar", "--server", &site.url, "--token", &admin]).ok();
    let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!((report["from_size"].clone(), report["to_size"].clone()), (2.into(), 2.into()));
}
