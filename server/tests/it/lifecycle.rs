//! The trust lifecycle through the real CLI against a running `airlockd`: yank, unyank, revoke,
//! promote and demote, with `airlock pull`'s resolution checked after each, directly and
//! through a mirror.

use crate::harness::World;

/// `airlock COMMAND TARGET` signed by publisher 1 and submitted to the world's server.
pub(crate) fn lifecycle(world: &World, command: &str, target: &str, extra: &[&str]) -> crate::harness::Run {
    let url = world.url();
    let mut args = vec![
        command,
        target,
        "--key",
        "keys/pub1.key",
        "--root",
        "root.cbor",
        "--server",
        &url,
        "--token",
        &world.publish_token,
    ];
    args.extend_from_slice(extra);
    world.cli(&args)
}

/// `airlock pull NAME` (through `server`) and the bytes it wrote.
fn pulled(world: &World, server: &str, target: &str, extra: &[&str]) -> (crate::harness::Run, Vec<u8>) {
    let _ = std::fs::remove_file(world.path("out.bin"));
    let mut args = vec!["pull", target, "--server", server, "--root", "root.cbor", "-o", "out.bin"];
    args.extend_from_slice(extra);
    let run = world.cli(&args);
    let bytes = std::fs::read(world.path("out.bin")).unwrap_or_default();
    (run, bytes)
}

#[test]
fn yank_unyank_revoke_promote_and_demote_steer_what_pull_resolves() {
    let world = World::new(1, 1);
    for (version, bytes) in [("1.9", b"one nine".as_slice()), ("1.10", b"one ten"), ("1.10rc1", b"rc")] {
        let file = format!("tool-{version}.bin");
        world.write(&file, bytes);
        world.publish(&file, "tool", version).ok();
    }
    let url = world.url();
    // NAME takes the newest by PEP 440 (1.10 > 1.10rc1 > 1.9; not text order).
    assert_eq!(pulled(&world, &url, "tool", &[]).1, b"one ten");

    let run = lifecycle(&world, "yank", "tool==1.10", &["--reason", "CVE-2026-1"]).ok();
    assert!(run.stdout.contains("yanked wheel tool==1.10"), "{}", run.stdout);
    assert_eq!(pulled(&world, &url, "tool", &[]).1, b"rc", "a yanked release is skipped by NAME");
    let (run, bytes) = pulled(&world, &url, "tool==1.10", &[]);
    assert_eq!(bytes, b"one ten");
    assert!(run.stderr.contains("is yanked: CVE-2026-1"), "exact pulls warn: {}", run.stderr);

    lifecycle(&world, "unyank", "tool==1.10", &["--reason", "fixed upstream"]).ok();
    assert_eq!(pulled(&world, &url, "tool", &[]).1, b"one ten");

    // Channels hold sets: 1.9 and 1.10 in prod, then 1.10 leaves it.
    lifecycle(&world, "promote", "tool==1.9", &["--channel", "prod"]).ok();
    lifecycle(&world, "promote", "tool==1.10", &["--channel", "prod"]).ok();
    assert_eq!(pulled(&world, &url, "tool", &["--channel", "prod"]).1, b"one ten");
    lifecycle(&world, "demote", "tool==1.10", &["--channel", "prod"]).ok();
    assert_eq!(pulled(&world, &url, "tool", &["--channel", "prod"]).1, b"one nine");
    pulled(&world, &url, "tool==1.10", &["--channel", "prod"])
        .0
        .code(5)
        .says("not in the log in channel prod");

    // Revocation is final and refused even by digest.
    lifecycle(&world, "revoke", "tool==1.9", &["--reason", "malicious"]).ok();
    let digest = airlock_proto::Digest::of(b"one nine").to_string();
    pulled(&world, &url, &digest, &[]).0.code(3).says("revoked: malicious");
    pulled(&world, &url, "tool", &["--channel", "prod"]).0.code(5).says("yanked or revoked");
    lifecycle(&world, "unyank", "tool==1.9", &["--reason", "no"]).code(1).says("revocation is final");

    // A mirror serves the same decisions.
    let (mirror, admin) = crate::mirror::start_mirror(&world, "mirror", &url);
    crate::mirror::sync(&mirror, &admin);
    assert_eq!(pulled(&world, &mirror.url, "tool", &[]).1, b"one ten");
    pulled(&world, &mirror.url, &digest, &[]).0.code(3).says("revoked");

    // With a threshold of two, `--sign-only` then `approve` then `submit`.
    let signed = lifecycle(
        &world,
        "yank",
        "tool==1.10rc1",
        &["--reason", "superseded", "--sign-only", "-o", "y.cbor"],
    )
    .ok();
    assert!(signed.stdout.contains("publisher threshold (1) met"), "{}", signed.stdout);
    world
        .cli(&["submit", "y.cbor", "--server", &url, "--token", &world.publish_token, "--root", "root.cbor"])
        .ok();
    let (run, _) = pulled(&world, &url, "tool==1.10rc1", &[]);
    assert!(run.stderr.contains("is yanked: superseded"), "{}", run.stderr);

    // What a channel holds, and which channels hold a release, for people and scripts.
    let (status, body) = crate::harness::http_get(&url, "/v1/channels/prod");
    assert_eq!(status, 200);
    let held: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let versions: Vec<&str> =
        held["releases"].as_array().unwrap().iter().map(|r| r["version"].as_str().unwrap()).collect();
    assert_eq!(versions, ["1.9"]);
    let (_, body) = crate::harness::http_get(&url, "/v1/releases/wheel/tool/1.9");
    let release: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(release["channels"], serde_json::json!(["prod"]));

    // `airlock audit DIR`: yanked and unlogged files are listed; a revoked one fails the audit.
    world.write("installed/tool-1.10.bin", b"one ten");
    world.write("installed/sub/tool-rc.bin", b"rc");
    world.write("installed/notes.txt", b"not a release");
    let audit = |world: &World| world.cli(&["audit", "installed", "--server", &url, "--root", "root.cbor"]);
    let run = audit(&world).ok();
    assert!(
        run.stdout.contains("yanked") && run.stdout.contains("tool==1.10rc1: superseded"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("not logged") && run.stdout.contains("notes.txt"), "{}", run.stdout);
    assert!(run.stdout.contains("audited 3 file(s)"), "{}", run.stdout);
    // `airlock log` names who signed each leaf by the key names the root gives them (the key
    // files' names at `root create`).
    let history = world.cli(&["log", "--server", &url, "--root", "root.cbor"]).ok().stdout;
    assert!(history.contains("root version 1") && history.contains("signed by root1"), "{history}");
    assert!(
        history.contains("release   wheel tool==1.10") && history.contains("signed by pub1"),
        "{history}"
    );
    assert!(history.contains("revoke wheel tool==1.9: malicious"), "{history}");
    assert!(history.contains("remove from prod: wheel tool==1.10"), "{history}");
    let json = world.cli(&["--json", "log", "--server", &url, "--root", "root.cbor"]).ok().stdout;
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(json["leaves"][1]["signed_by"], serde_json::json!(["pub1"]));

    // `airlock report`: identical bytes for one checkpoint, from two state directories.
    world.cli(&["report", "--server", &url, "--root", "root.cbor", "-o", "r1.json"]).ok();
    world
        .cli(&[
            "report",
            "--server",
            &url,
            "--root",
            "root.cbor",
            "-o",
            "r2.json",
            "--state-dir",
            "other-state",
        ])
        .ok();
    let (r1, r2) =
        (std::fs::read(world.path("r1.json")).unwrap(), std::fs::read(world.path("r2.json")).unwrap());
    assert_eq!(r1, r2, "two reports at one checkpoint differ");
    let report: serde_json::Value = serde_json::from_slice(&r1).unwrap();
    assert_eq!(report["releases"].as_array().unwrap().len(), 3);
    assert_eq!(report["releases"][0]["approved_by"], serde_json::json!(["pub1"]));
    let actions: Vec<&str> =
        report["statuses"].as_array().unwrap().iter().map(|s| s["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["yank", "unyank", "revoke", "yank"]);
    assert_eq!(report["channel_moves"].as_array().unwrap().len(), 3);
    assert_eq!(report["roots"][0]["publisher"]["keys"], serde_json::json!(["pub1"]));
    assert_eq!(report["checkpoint"]["size"], json["size"]);

    world.write("installed/old/tool-1.9.bin", b"one nine");
    let run = audit(&world).code(3);
    assert!(
        run.stdout.contains("revoked") && run.stderr.contains("revoked: malicious"),
        "{}\n{}",
        run.stdout,
        run.stderr
    );
}
