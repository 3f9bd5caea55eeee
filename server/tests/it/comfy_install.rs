//! `airlock install`, `lock --comfyui`, `restore` and `doctor` over a ComfyUI tree made here,
//! with a real virtual environment: packs verified against the log and laid out as
//! ComfyUI-Manager lays out registry installs (its own `read_cnr_info` recognises them), their
//! requirements installed by uv or pip from airlockd's index with hashes pinned; conflicts
//! refused before anything changes; upgrades swapped in only when complete.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::comfy::{manager_result, node_tree};
use crate::harness::{Run, World};
use crate::pytools::{build_wheel, tools, WheelSpec};

/// Approves `s.cbor` (a statement made with `--sign-only -o s.cbor`) with publisher 2 and
/// submits it.
fn approve_and_submit(world: &World) {
    world.cli(&["approve", "s.cbor", "--key", "keys/pub2.key", "--root", "root.cbor", "-o", "t.cbor"]).ok();
    let url = world.url();
    world
        .cli(&["submit", "t.cbor", "--server", &url, "--token", &world.publish_token, "--root", "root.cbor"])
        .ok();
}

/// Builds and publishes wheel `name`==`version` (requiring `requires`), with `threshold`
/// approvals (1 or 2).
pub fn wheel(world: &World, threshold: u32, name: &str, version: &str, requires: &[&str]) {
    let path = build_wheel(&world.path("wheels"), &WheelSpec::new(name, version, requires));
    let file = path.strip_prefix(world.path("")).unwrap().to_str().unwrap().to_owned();
    if threshold == 1 {
        world.publish(&file, name, version).ok();
    } else {
        world.sign_only(&file, "wheel", name, version, "s.cbor").ok();
        approve_and_submit(world);
    }
}

/// Packs `dir` and publishes it with `threshold` approvals: the pack's BLAKE3 hex.
pub fn pack(world: &World, threshold: u32, dir: &str) -> String {
    if threshold == 1 {
        return crate::comfy::publish_pack(world, dir, &[]);
    }
    let digest = crate::comfy::publish_pack(world, dir, &["--sign-only", "-o", "s.cbor"]);
    approve_and_submit(world);
    digest
}

/// A ComfyUI folder with a virtual environment of its own (`.venv`, with pip).
pub fn comfy_tree(world: &World, dir: &str) -> PathBuf {
    let root = world.path(dir);
    std::fs::create_dir_all(root.join("custom_nodes")).unwrap();
    std::fs::write(root.join("main.py"), "print('ComfyUI')\n").unwrap();
    make_venv(&root);
    root
}

fn make_venv(root: &Path) {
    // The standard library's venv: pip comes from ensurepip, with no network.
    let out = Command::new(tools().join("bin/python"))
        .args(["-m", "venv"])
        .arg(root.join(".venv"))
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .output()
        .unwrap();
    assert!(out.status.success(), "python -m venv: {}", String::from_utf8_lossy(&out.stderr));
}

/// The environment the CLI runs pip and uv under: the test tools' uv on the PATH, no user
/// configuration.
fn tool_env(world: &World) -> Vec<(&'static str, String)> {
    vec![
        ("PATH", format!("{}:/usr/bin:/bin", tools().join("bin").display())),
        ("PIP_CONFIG_FILE", "/dev/null".to_owned()),
        ("PIP_CACHE_DIR", world.path("pip-cache").display().to_string()),
        ("UV_NO_CONFIG", "1".to_owned()),
        ("UV_CACHE_DIR", world.path("uv-cache").display().to_string()),
        ("UV_PYTHON_DOWNLOADS", "never".to_owned()),
    ]
}

/// `airlock COMMAND ... --comfyui DIR --server URL --root root.cbor` with `extra`.
pub fn site(world: &World, args: &[&str], dir: &str, extra: &[&str]) -> Run {
    let url = world.url();
    let mut all = args.to_vec();
    all.extend_from_slice(&["--comfyui", dir, "--server", &url, "--root", "root.cbor"]);
    all.extend_from_slice(extra);
    world.cli_env(&all, &tool_env(world))
}

/// Every file under `dir` but `__pycache__`, by relative path, with its BLAKE3.
fn files(dir: &Path) -> BTreeMap<String, String> {
    crate::publish_pull::walk_files(dir)
        .into_iter()
        .filter(|p| !p.to_string_lossy().contains("__pycache__"))
        .map(|p| {
            let relative = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
            (relative, blake3::hash(&std::fs::read(&p).unwrap()).to_hex().to_string())
        })
        .collect()
}

/// `name==version` of each distribution in the tree's environment but the tools.
fn wheels(root: &Path) -> Vec<String> {
    let out = Command::new(root.join(".venv/bin/python"))
        .args(["-c", "import importlib.metadata as m\nfor d in m.distributions(): print(d.metadata['Name'].lower() + '==' + d.version)"])
        .env_clear()
        .output()
        .unwrap();
    let mut list: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !["pip==", "setuptools==", "wheel=="].iter().any(|t| l.starts_with(t)))
        .map(str::to_owned)
        .collect();
    list.sort();
    list
}

fn doctor_json(world: &World, dir: &str, extra: &[&str]) -> (i32, serde_json::Value) {
    let run = site(world, &["--json", "doctor"], dir, extra);
    let report =
        serde_json::from_str(&run.stdout).unwrap_or_else(|_| panic!("{}\n{}", run.stdout, run.stderr));
    (run.code, report)
}

#[test]
fn install_lock_wipe_restore_and_doctor_over_a_comfyui_tree() {
    let world = World::new(2, 2);
    wheel(&world, 2, "alpha", "1.0", &["beta>=1.0"]);
    wheel(&world, 2, "beta", "1.0", &[]);
    wheel(&world, 2, "unused", "1.0", &[]);
    node_tree(
        &world,
        "demo",
        "Demo-Nodes",
        "1.0.0",
        &["alpha>=1.0"],
        &[("install.py", "print('setting up')\n")],
    );
    let digest = pack(&world, 2, "demo");
    let root = comfy_tree(&world, "ComfyUI");

    // Install: verified, in Manager's layout, requirements from the mirror's index by uv.
    let run = site(&world, &["install", "demo-nodes"], "ComfyUI", &[]).ok();
    assert!(
        run.stdout.contains("installed demo-nodes==1.0.0") && run.stdout.contains("alpha==1.0"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("install.py, not run"), "{}", run.stdout);
    let pack_dir = root.join("custom_nodes/demo-nodes");
    assert!(pack_dir.join("nodes/core.py").is_file());
    let tracking = std::fs::read_to_string(pack_dir.join(".tracking")).unwrap();
    assert!(
        tracking.lines().any(|l| l == "pyproject.toml") && tracking.lines().any(|l| l == "nodes/core.py")
    );
    let marker: serde_json::Value =
        serde_json::from_slice(&std::fs::read(pack_dir.join(".airlock.json")).unwrap()).unwrap();
    assert_eq!(marker["blake3"], digest.as_str());
    assert_eq!(wheels(&root), ["alpha==1.0", "beta==1.0"]);
    // ComfyUI-Manager recognises the folder as a registry install of that id and version.
    let script = format!(
        "import json\nimport comfyui_manager.common.cnr_utils as c\nprint('RESULT ' + json.dumps(c.read_cnr_info({:?})))",
        pack_dir.display().to_string()
    );
    let info = manager_result(&world, &script, None);
    assert_eq!(
        (info["id"].as_str(), info["version"].as_str()),
        (Some("demo-nodes"), Some("1.0.0")),
        "{info}"
    );

    // Lock, with Manager's snapshot beside it.
    site(&world, &["lock", "-o", "comfy.lock", "--manager-snapshot", "snapshot.json"], "ComfyUI", &[]).ok();
    let lock: serde_json::Value =
        serde_json::from_slice(&std::fs::read(world.path("comfy.lock")).unwrap()).unwrap();
    assert_eq!(lock["packs"][0]["blake3"], digest.as_str());
    assert_eq!(lock["wheels"].as_array().unwrap().len(), 2);
    let snapshot: serde_json::Value =
        serde_json::from_slice(&std::fs::read(world.path("snapshot.json")).unwrap()).unwrap();
    assert_eq!(snapshot["cnr_custom_nodes"]["demo-nodes"], "1.0.0");
    assert_eq!(snapshot["pips"]["alpha==1.0"], "");
    // ComfyUI-Manager's own snapshot code, run over the tree, sees the same registry packs.
    let script = "import asyncio, json\nfrom comfyui_manager.glob import manager_core as core\nprint('RESULT ' + json.dumps(asyncio.run(core.get_current_snapshot(custom_nodes_only=True))))";
    let theirs = manager_result(&world, script, Some(&root));
    assert_eq!(theirs["cnr_custom_nodes"], snapshot["cnr_custom_nodes"], "{theirs}");
    assert_eq!(theirs["git_custom_nodes"], snapshot["git_custom_nodes"]);

    // Wipe and restore: the same tree, the same wheels.
    let before = files(&root.join("custom_nodes"));
    std::fs::remove_dir_all(root.join("custom_nodes")).unwrap();
    std::fs::remove_dir_all(root.join(".venv")).unwrap();
    make_venv(&root);
    site(&world, &["restore", "comfy.lock"], "ComfyUI", &["--installer", "pip"]).ok();
    assert_eq!(files(&root.join("custom_nodes")), before);
    assert_eq!(wheels(&root), ["alpha==1.0", "beta==1.0"]);

    // Doctor: clean; then a file edited after install is found and repaired.
    let (status, report) = doctor_json(&world, "ComfyUI", &[]);
    assert_eq!((status, &report["ok"]), (0, &serde_json::json!(true)), "{report}");
    std::fs::write(pack_dir.join("nodes/core.py"), "import os; os.system('curl evil')\n").unwrap();
    std::fs::write(pack_dir.join("dropped.py"), "x = 1\n").unwrap();
    std::fs::remove_file(pack_dir.join("__init__.py")).unwrap();
    let (status, report) = doctor_json(&world, "ComfyUI", &[]);
    assert_eq!(status, 3, "{report}");
    let demo = &report["packs"][0];
    assert_eq!(demo["state"], "damaged");
    assert_eq!(demo["changed"], serde_json::json!(["nodes/core.py"]));
    assert_eq!(demo["added"], serde_json::json!(["dropped.py"]));
    assert_eq!(demo["missing"], serde_json::json!(["__init__.py"]));
    let (status, report) = doctor_json(&world, "ComfyUI", &["--repair"]);
    assert_eq!((status, &report["packs"][0]["repaired"]), (0, &serde_json::json!(true)), "{report}");
    assert_eq!(files(&root.join("custom_nodes")), before);

    // A lock whose wheels do not meet a pack's requirements is refused before anything changes,
    // naming the pack and the requirement.
    let mut short = lock.clone();
    short["wheels"].as_array_mut().unwrap().retain(|w| w["name"] != "alpha");
    world.write("short.lock", serde_json::to_string(&short).unwrap().as_bytes());
    std::fs::remove_dir_all(root.join("custom_nodes/demo-nodes")).unwrap();
    let refused = site(&world, &["restore", "short.lock"], "ComfyUI", &[]).code(1);
    assert!(refused.stderr.contains("pack demo-nodes requires alpha>=1.0"), "{}", refused.stderr);
    assert!(!root.join("custom_nodes/demo-nodes").exists());
    assert_eq!(wheels(&root), ["alpha==1.0", "beta==1.0"]);
    site(&world, &["restore", "comfy.lock"], "ComfyUI", &[]).ok();
    assert_eq!(files(&root.join("custom_nodes")), before);

    // A wheel installed around the mirror, an unmet requirement and a revoked pack are flagged.
    let rogue = build_wheel(&world.path("rogue"), &WheelSpec::new("rogue", "0.1", &[]));
    let uv = |args: &[&str], extra: &Path| {
        let out = Command::new(tools().join("bin/uv"))
            .args(["pip"])
            .args(args)
            .arg(extra)
            .arg("--python")
            .arg(root.join(".venv/bin/python"))
            .env_clear()
            .env("UV_NO_CONFIG", "1")
            .env("UV_CACHE_DIR", world.path("uv-cache"))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    };
    uv(&["install", "--no-index"], &rogue);
    uv(&["uninstall"], Path::new("alpha"));
    let (status, report) = doctor_json(&world, "ComfyUI", &[]);
    assert_eq!(status, 3);
    assert_eq!(report["packs"][0]["state"], "ok", "{report}");
    assert_eq!(report["wheels"][0]["name"], "rogue", "{report}");
    assert!(report["wheels"][0]["problem"].as_str().unwrap().contains("not in the log"));
    let unmet = &report["requirements"][0];
    assert_eq!(
        (unmet["pack"].as_str(), unmet["problem"].as_str()),
        (Some("demo-nodes"), Some("not installed")),
        "{report}"
    );
    // --repair installs the missing requirement from the mirror; the rogue wheel stays flagged.
    let (status, report) = doctor_json(&world, "ComfyUI", &["--repair"]);
    assert_eq!((status, &report["repaired_requirements"]), (3, &serde_json::json!(true)), "{report}");
    assert!(wheels(&root).contains(&"alpha==1.0".to_owned()));
    assert_eq!(doctor_json(&world, "ComfyUI", &[]).1["requirements"], serde_json::json!([]));

    // Revoked: flagged with its reason, and never re-installed by a repair.
    crate::lifecycle::lifecycle(
        &world,
        "revoke",
        "demo-nodes==1.0.0",
        &["--reason", "credential stealer", "--sign-only", "-o", "s.cbor"],
    )
    .ok();
    approve_and_submit(&world);
    let (status, report) = doctor_json(&world, "ComfyUI", &[]);
    assert_eq!(status, 3);
    assert_eq!(report["packs"][0]["state"], "revoked", "{report}");
    assert!(report["packs"][0]["problems"][0].as_str().unwrap().contains("credential stealer"));
    let human = site(&world, &["doctor"], "ComfyUI", &[]).code(3);
    assert!(
        human.stdout.contains("revoked") && human.stdout.contains("demo-nodes==1.0.0"),
        "{}",
        human.stdout
    );
}

/// Two packs pinning incompatible versions: the second is refused before anything changes,
/// naming both packs and their requirements.
#[test]
fn conflicting_requirements_are_refused_before_anything_changes() {
    let world = World::new(1, 1);
    wheel(&world, 1, "gamma", "1.0", &[]);
    wheel(&world, 1, "gamma", "2.0", &[]);
    node_tree(
        &world,
        "a",
        "a-nodes",
        "1.0.0",
        &["gamma==1.0"],
        &[("install.py", "with open('installed.txt', 'w') as f:\n    f.write('yes')\n")],
    );
    node_tree(&world, "b", "b-nodes", "1.0.0", &["gamma==2.0"], &[]);
    pack(&world, 1, "a");
    pack(&world, 1, "b");
    let root = comfy_tree(&world, "ComfyUI");
    site(&world, &["install", "a-nodes"], "ComfyUI", &["--installer", "pip", "--run-install-script"]).ok();
    // install.py ran, in the pack's folder, because it was asked for.
    assert_eq!(std::fs::read_to_string(root.join("custom_nodes/a-nodes/installed.txt")).unwrap(), "yes");
    let before = files(&root.join("custom_nodes"));
    let refused = site(&world, &["install", "b-nodes"], "ComfyUI", &["--installer", "pip"]).code(1);
    for named in ["a-nodes", "b-nodes", "gamma==1.0", "gamma==2.0"] {
        assert!(refused.stderr.contains(named), "{named}: {}", refused.stderr);
    }
    assert_eq!(files(&root.join("custom_nodes")), before);
    assert_eq!(wheels(&root), ["gamma==1.0"]);
}

/// A pack file carried on media installs only when its digest is a logged, unrevoked release;
/// `ID@VERSION` (Manager's spelling) works; an upgrade whose download fails verification
/// leaves the installed version whole; a complete one swaps; doctor flags a yanked pack.
#[test]
fn local_files_upgrades_and_yanks() {
    let world = World::new(1, 1);
    node_tree(&world, "v1", "demo-nodes", "1.0.0", &[], &[]);
    node_tree(&world, "v2", "demo-nodes", "2.0.0", &[], &[("nodes/extra.py", "X = 2\n")]);
    node_tree(&world, "v3", "demo-nodes", "3.0.0", &[], &[]);
    node_tree(&world, "unlogged", "demo-nodes", "9.0.0", &[], &[]);
    node_tree(&world, "evil", "evil-nodes", "1.0.0", &[], &[]);
    pack(&world, 1, "v1");
    let v2 = pack(&world, 1, "v2");
    pack(&world, 1, "v3");
    pack(&world, 1, "evil");
    world.cli(&["pack", "unlogged", "-o", "unlogged.zip"]).ok();
    crate::lifecycle::lifecycle(&world, "revoke", "evil-nodes==1.0.0", &["--reason", "miner"]).ok();
    let root = comfy_tree(&world, "ComfyUI");
    let installed_version = || {
        let marker: serde_json::Value = serde_json::from_slice(
            &std::fs::read(root.join("custom_nodes/demo-nodes/.airlock.json")).unwrap(),
        )
        .unwrap();
        marker["version"].as_str().unwrap().to_owned()
    };

    // From media: logged and unrevoked only.
    site(&world, &["install", "v1.zip"], "ComfyUI", &[]).ok();
    assert_eq!(installed_version(), "1.0.0");
    site(&world, &["install", "unlogged.zip"], "ComfyUI", &[]).code(5).says("not a logged node pack");
    site(&world, &["install", "evil.zip"], "ComfyUI", &[]).code(3).says("revoked");
    assert!(!root.join("custom_nodes/evil-nodes").exists());
    let mut tampered = std::fs::read(world.path("v1.zip")).unwrap();
    let last = tampered.len() - 30;
    tampered[last] ^= 1;
    world.write("tampered.zip", &tampered);
    site(&world, &["install", "tampered.zip"], "ComfyUI", &[]).code(5);

    // An upgrade whose pack fails verification (the server's copy corrupted) keeps v1 whole.
    let v1_files = files(&root.join("custom_nodes/demo-nodes"));
    let blob = crate::publish_pull::walk_files(&world.path("data/blobs"))
        .into_iter()
        .find(|p| p.to_string_lossy().contains(&v2))
        .expect("v2's blob on disk");
    let good = std::fs::read(&blob).unwrap();
    let mut bad = good.clone();
    bad[10] ^= 0xff;
    std::fs::write(&blob, &bad).unwrap();
    site(&world, &["install", "demo-nodes@2.0.0"], "ComfyUI", &[]).code(3).says("hashes to");
    assert_eq!(files(&root.join("custom_nodes/demo-nodes")), v1_files);
    let leftovers: Vec<String> = std::fs::read_dir(root.join("custom_nodes"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(leftovers, ["demo-nodes"]);
    // Whole again, the upgrade swaps in.
    std::fs::write(&blob, &good).unwrap();
    site(&world, &["install", "demo-nodes==2.0.0"], "ComfyUI", &[]).ok();
    assert_eq!(installed_version(), "2.0.0");
    assert!(root.join("custom_nodes/demo-nodes/nodes/extra.py").is_file());
    site(&world, &["install", "demo-nodes@latest"], "ComfyUI", &[]).ok();
    assert_eq!(installed_version(), "3.0.0");
    assert!(!root.join("custom_nodes/demo-nodes/nodes/extra.py").exists());

    // A yanked pack is flagged by doctor; a folder not from the mirror too.
    crate::lifecycle::lifecycle(&world, "yank", "demo-nodes==3.0.0", &["--reason", "regression"]).ok();
    world.write("ComfyUI/custom_nodes/hand-made/__init__.py", b"");
    let (status, report) = doctor_json(&world, "ComfyUI", &[]);
    assert_eq!(status, 3);
    let states: Vec<(&str, &str)> = report["packs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["folder"].as_str().unwrap(), p["state"].as_str().unwrap()))
        .collect();
    assert_eq!(states, [("demo-nodes", "yanked"), ("hand-made", "unmanaged")], "{report}");
}
