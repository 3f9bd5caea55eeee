//! Bundles across the air gap: export from a registry, import into a mirror with the server
//! stopped (`airlockd import`) or running (`airlock import`), chaining, and hostile bundles.

use std::io::Read;
use std::process::Command;

use crate::harness::{http_get, http_request, Server, World};

fn upstream_with(world: &World, releases: &[(&str, &[u8])]) {
    for (name, bytes) in releases {
        let file = format!("{name}-1.0.bin");
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
    world.airlockd(&["import", "--data", "site", "--root", "root.cbor", "full.tar"]).ok();
    let report = world.airlockd(&["verify-store", "--data", "site"]).ok();
    let report: serde_json::Value = serde_json::from_str(&report.stdout).unwrap();
    assert_eq!((report["log_size"].clone(), report["blobs"].clone()), (3.into(), 2.into()));
    assert!(report["problems"].as_array().unwrap().is_empty());
    // A damaged blob is found.
    let blob = crate::publish_pull::walk_files(&world.path("site/blobs")).remove(0);
    let good = std::fs::read(&blob).unwrap();
    std::fs::write(&blob, b"damaged").unwrap();
    let damaged = world.airlockd(&["verify-store", "--data", "site"]).code(1).says("problem(s) found");
    let damaged: serde_json::Value = serde_json::from_str(&damaged.stdout).unwrap();
    assert_eq!(damaged["problems"].as_array().unwrap().len(), 1, "{damaged}");
    std::fs::write(&blob, good).unwrap();

    // Bundles chain: the next export starts where the import ended.
    upstream_with(&world, &[("c", b"charlie")]);
    export(&world, &["--since", "site/imported-state.json"], "inc.tar");
    world.airlockd(&["import", "--data", "site", "inc.tar"]).ok();
    // Replaying the older bundle (a stale USB stick) is refused.
    world.airlockd(&["import", "--data", "site", "full.tar"]).code(1).says("older than the mirror");

    // The restored site serves the same log, and clients verify through it.
    let site = Server::start(mirror_config(&world, "site"));
    assert_eq!(http_get(&site.url, "/v1/log/checkpoint").1, http_get(&world.url(), "/v1/log/checkpoint").1);
    world.pull_from(&site.url, "c==1.0", "c.bin").ok();
    assert_eq!(std::fs::read(world.path("c.bin")).unwrap(), b"charlie");
    world.pull_from(&site.url, "a==1.0", "a.bin").ok();
}

#[test]
fn bundle_starting_after_the_mirror_names_the_missing_leaves() {
    let world = World::new(1, 1);
    upstream_with(&world, &[("a", b"alpha"), ("b", b"bravo")]);
    export(&world, &["--from-size", "2"], "late.tar");
    new_site(&world, "site");
    world
        .airlockd(&["import", "--data", "site", "--root", "root.cbor", "late.tar"])
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
    world.airlockd(&["import", "--data", "site", "--root", "root.cbor", "bad.tar"]).code(1).says("hash");
    assert_eq!(blob_files(&world, "site"), 0, "a failed import left blobs behind");
    assert_eq!(std::fs::read_dir(world.path("site/tmp")).unwrap().count(), 0);
    // The same site accepts the intact bundle afterwards.
    world.airlockd(&["import", "--data", "site", "--root", "root.cbor", "full.tar"]).ok();
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
        world.airlockd(&["import", "--data", &site, "--root", "root.cbor", &file]).code(1).says("refused");
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
        airlock_server::cli::token_create(&world.path("site"), airlock_server::auth::Scope::Admin, "test")
            .unwrap()
    };
    let mut config = mirror_config(&world, "site");
    config.root = Some(world.path("root.cbor"));
    let site = Server::start(config);
    let run = world.cli(&["--json", "import", "full.tar", "--server", &site.url, "--token", &admin]).ok();
    let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(report["to_size"], 2);
    world.pull_from(&site.url, "a==1.0", "a.bin").ok();
    // Importing needs an admin token; the same bundle again adds nothing.
    assert_eq!(http_request("POST", &site.url, "/v1/mirror/import", None, b"").0, 401);
    let run = world.cli(&["--json", "import", "full.tar", "--server", &site.url, "--token", &admin]).ok();
    let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!((report["from_size"].clone(), report["to_size"].clone()), (2.into(), 2.into()));
}

#[test]
fn export_streams_checked_blobs_into_a_standard_tar_and_a_damaged_blob_leaves_no_file() {
    let mut world = World::new(1, 1);
    // One blob of exactly one tar block (no padding) and one of an odd size (padded).
    let block = vec![7u8; 512];
    upstream_with(&world, &[("a", b"alpha"), ("b", &block)]);
    export(&world, &["--all"], "full.tar");
    let listing =
        Command::new("tar").args(["-tvf", "full.tar"]).current_dir(world.dir.path()).output().unwrap();
    assert!(listing.status.success(), "{}", String::from_utf8_lossy(&listing.stderr));
    let listing = String::from_utf8(listing.stdout).unwrap();
    let names: Vec<&str> = listing.lines().map(|l| l.rsplit(' ').next().unwrap()).collect();
    let a = airlock_proto::Digest::of(b"alpha").to_hex();
    let b = airlock_proto::Digest::of(&block).to_hex();
    assert_eq!(names, ["manifest.cbor", &format!("blobs/{a}"), &format!("blobs/{b}")], "{listing}");
    let (_, members) = read_bundle(&world, "full.tar");
    assert_eq!(members, [(format!("blobs/{a}"), b"alpha".to_vec()), (format!("blobs/{b}"), block.clone())]);

    // The registry serves one blob damaged: the export names it and leaves no file behind.
    let stored = crate::publish_pull::walk_files(&world.path("data/blobs"))
        .into_iter()
        .find(|p| p.ends_with(&b))
        .unwrap();
    let mut damaged = block.clone();
    damaged[511] ^= 1;
    std::fs::write(&stored, damaged).unwrap();
    // A restart forgets the small blobs held in memory since the first export
    // (`http/small_blobs.rs`), so what is served is the damaged file.
    world.server.take().unwrap().stop();
    world.server = Some(Server::start(world.config()));
    let url = world.url();
    world
        .cli(&["export", "--server", &url, "--root", "root.cbor", "-o", "second.tar", "--all"])
        .code(3)
        .says(&format!("blob blake3:{b} (b-1.0.bin) hashes to"));
    let left: Vec<String> = std::fs::read_dir(world.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains("second.tar"))
        .collect();
    assert!(left.is_empty(), "a failed export left {left:?}");
}

/// Rebuilds a bundle from a (possibly altered) manifest and blob members.
fn build_bundle(manifest: &airlock_proto::api::BundleManifest, blobs: &[(String, Vec<u8>)]) -> Vec<u8> {
    let bytes = airlock_proto::encode("manifest", manifest).unwrap();
    let mut builder = tar::Builder::new(Vec::new());
    let mut append = |name: &str, data: &[u8]| {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_entry_type(tar::EntryType::Regular);
        builder.append_data(&mut header, name, data).unwrap();
    };
    append("manifest.cbor", &bytes);
    for (name, data) in blobs {
        append(name, data);
    }
    builder.into_inner().unwrap()
}

fn read_bundle(world: &World, file: &str) -> (airlock_proto::api::BundleManifest, Vec<(String, Vec<u8>)>) {
    let mut archive = tar::Archive::new(std::fs::File::open(world.path(file)).unwrap());
    let mut members = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().display().to_string();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).unwrap();
        members.push((name, data));
    }
    let (_, manifest) = members.remove(0);
    (airlock_proto::decode("manifest", &manifest, 1 << 30).unwrap(), members)
}

#[test]
fn bundle_missing_a_blob_fails_whole() {
    let world = World::new(1, 1);
    upstream_with(&world, &[("a", b"alpha"), ("b", b"bravo")]);
    export(&world, &["--all"], "full.tar");
    let (manifest, mut blobs) = read_bundle(&world, "full.tar");
    blobs.pop();
    std::fs::write(world.path("short.tar"), build_bundle(&manifest, &blobs)).unwrap();
    new_site(&world, "site");
    world
        .airlockd(&["import", "--data", "site", "--root", "root.cbor", "short.tar"])
        .code(1)
        .says("lacks blob");
    assert_eq!(blob_files(&world, "site"), 0);
}

#[test]
fn bundle_with_one_blob_swapped_rejected_at_the_blake3_check() {
    let world = World::new(1, 1);
    upstream_with(&world, &[("a", b"alpha"), ("b", b"bravo")]);
    export(&world, &["--all"], "full.tar");
    let (manifest, mut blobs) = read_bundle(&world, "full.tar");
    let other = blobs[0].1.clone();
    blobs[1].1 = other; // same length, other bytes under the second digest's name
    std::fs::write(world.path("swapped.tar"), build_bundle(&manifest, &blobs)).unwrap();
    new_site(&world, "site");
    world.airlockd(&["import", "--data", "site", "--root", "root.cbor", "swapped.tar"]).code(1).says("hash");
    assert_eq!(blob_files(&world, "site"), 0);
}

#[test]
fn bundle_with_reserialized_statement_bytes_rejected() {
    let world = World::new(1, 1);
    upstream_with(&world, &[("a", b"alpha")]);
    export(&world, &["--all"], "full.tar");
    let (mut manifest, blobs) = read_bundle(&world, "full.tar");
    // Re-encode the release leaf with its signature bytes altered, as a careless proxy might.
    let mut envelope = airlock_proto::Envelope::from_bytes(&manifest.leaves[1]).unwrap();
    envelope.signatures[0].sig.0[10] ^= 1;
    manifest.leaves[1] = serde_bytes::ByteBuf::from(envelope.to_bytes().unwrap());
    std::fs::write(world.path("tampered.tar"), build_bundle(&manifest, &blobs)).unwrap();
    new_site(&world, "site");
    world
        .airlockd(&["import", "--data", "site", "--root", "root.cbor", "tampered.tar"])
        .code(1)
        .says("does not verify");
    assert_eq!(blob_files(&world, "site"), 0);
}

#[test]
fn bundle_blob_no_release_references_is_never_stored() {
    let world = World::new(1, 1);
    upstream_with(&world, &[("a", b"alpha")]);
    export(&world, &["--all"], "full.tar");
    let (manifest, mut blobs) = read_bundle(&world, "full.tar");
    let stray = b"nobody signed this".to_vec();
    blobs.push((format!("blobs/{}", airlock_proto::Digest::of(&stray).to_hex()), stray));
    std::fs::write(world.path("stray.tar"), build_bundle(&manifest, &blobs)).unwrap();
    new_site(&world, "site");
    world.airlockd(&["import", "--data", "site", "--root", "root.cbor", "stray.tar"]).ok();
    assert_eq!(blob_files(&world, "site"), 1, "only the referenced blob is stored");
}

#[test]
fn sigkill_during_bundle_import_at_twenty_points_leaves_a_consistent_state_and_a_rerun_succeeds() {
    let world = World::new(1, 1);
    for i in 0..24u32 {
        let file = format!("p{i}-1.0.bin");
        let bytes: Vec<u8> = (0..1_000_000u32).map(|j| (j.wrapping_mul(i + 7) % 251) as u8).collect();
        world.write(&file, &bytes);
        world.publish(&file, &format!("p{i}"), "1.0").ok();
    }
    export(&world, &["--all"], "full.tar");
    let mut interrupted = 0;
    for point in 0..20u64 {
        let site = format!("site{point}");
        new_site(&world, &site);
        let mut child = Command::new(env!("CARGO_BIN_EXE_airlockd"))
            .args(["import", "--data", &site, "--root", "root.cbor", "full.tar"])
            .current_dir(world.dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(10 + point * 12));
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        let report = world.airlockd(&["verify-store", "--data", &site]);
        let report: serde_json::Value = serde_json::from_str(&report.stdout).unwrap();
        let size = report["log_size"].as_u64().unwrap();
        assert!(size == 0 || size == 25, "partial state after kill at point {point}: size {size}");
        assert!(report["problems"].as_array().unwrap().is_empty(), "point {point}: {report}");
        if size == 0 {
            interrupted += 1;
        }
        // The next import completes.
        world.airlockd(&["import", "--data", &site, "--root", "root.cbor", "full.tar"]).ok();
        let report = world.airlockd(&["verify-store", "--data", &site]).ok();
        assert!(report.stdout.contains("\"log_size\": 25"), "{}", report.stdout);
    }
    assert!(interrupted > 0, "no kill landed before the commit; the test proved nothing");
    let site = Server::start(mirror_config(&world, "site19"));
    world.pull_from(&site.url, "p23==1.0", "p23.bin").ok();
}

#[test]
fn chain_of_three_incremental_bundles_carried_to_a_fresh_mirror() {
    let world = World::new(1, 1);
    new_site(&world, "site");
    for (round, name) in ["one", "two", "three"].iter().enumerate() {
        upstream_with(&world, &[(name, name.as_bytes())]);
        let bundle = format!("{name}.tar");
        if round == 0 {
            export(&world, &["--all"], &bundle);
            world.airlockd(&["import", "--data", "site", "--root", "root.cbor", &bundle]).ok();
        } else {
            export(&world, &["--since", "site/imported-state.json"], &bundle);
            world.airlockd(&["import", "--data", "site", &bundle]).ok();
        }
    }
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(world.path("site/imported-state.json")).unwrap()).unwrap();
    assert_eq!(state["size"], 4);
    let site = Server::start(mirror_config(&world, "site"));
    for name in ["one", "two", "three"] {
        world.pull_from(&site.url, &format!("{name}==1.0"), &format!("{name}.bin")).ok();
        assert_eq!(std::fs::read(world.path(&format!("{name}.bin"))).unwrap(), name.as_bytes());
    }
}

#[test]
fn a_bundle_whose_checkpoint_lacks_the_witness_quorum_is_refused_naming_the_witnesses() {
    let mut world = World::prepared(1, 1);
    // The security team's root names two witnesses and needs one cosignature.
    world.witnessed_root(&["w1", "w2"], 1);
    world.server = Some(Server::start(world.config()));
    world.write("a-1.0.bin", b"alpha");
    world.sign_only("a-1.0.bin", "wheel", "a", "1.0", "a.cbor").ok();
    world.cli(&["submit", "a.cbor", "--server", &world.url(), "--token", &world.publish_token]).ok();
    // No witness has cosigned the log's checkpoint: a client refuses it and names them.
    let url = world.url();
    world
        .cli(&["export", "--server", &url, "--root", "root.cbor", "--all", "-o", "full.tar"])
        .code(3)
        .says("lacks the witness quorum [witnesses = any of w1.example, w2.example]: valid cosignatures from none; \
             missing: w1.example, w2.example");
    // A bundle carrying that checkpoint, built by hand, is refused by the import as well.
    let (_, leaves) = http_get(&url, "/v1/log/leaves?start=0&end=2");
    let leaves: airlock_proto::api::LeavesPage = airlock_proto::decode("page", &leaves, 1 << 24).unwrap();
    let (_, checkpoint) = http_get(&url, "/v1/log/checkpoint");
    let manifest = airlock_proto::api::BundleManifest {
        format: airlock_proto::api::BUNDLE_FORMAT,
        origin: "test.airlock".into(),
        from_size: 0,
        to_size: 2,
        checkpoint: serde_bytes::ByteBuf::from(checkpoint),
        leaves: leaves.leaves,
        blobs: vec![airlock_proto::api::BundleBlob { digest: airlock_proto::Digest::of(b"alpha"), size: 5 }],
    };
    let blob = (format!("blobs/{}", airlock_proto::Digest::of(b"alpha").to_hex()), b"alpha".to_vec());
    std::fs::write(world.path("unwitnessed.tar"), build_bundle(&manifest, &[blob])).unwrap();
    new_site(&world, "site");
    world
        .airlockd(&["import", "--data", "site", "--root", "root.cbor", "unwitnessed.tar"])
        .code(1)
        .says("missing: w1.example, w2.example");
    assert_eq!(blob_files(&world, "site"), 0);
}
