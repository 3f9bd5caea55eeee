//! The Comfy Registry read API and ComfyUI-Manager's channel files, driven by ComfyUI-Manager's
//! own registry client code (`comfyui_manager.common.cnr_utils`, from the `comfyui-manager`
//! package) against a running airlockd: listing, install of a version, all versions; yanked
//! versions deprecated, revoked ones absent, channels scoped; writes refused.

use std::path::Path;
use std::process::Command;

use crate::harness::{http_get, http_request, Server, World};

/// A node checkout `dir` for pack `name`==`version` with `requirements` (and `extra` files).
pub fn node_tree(
    world: &World,
    dir: &str,
    name: &str,
    version: &str,
    requirements: &[&str],
    extra: &[(&str, &str)],
) {
    world.write(
        &format!("{dir}/pyproject.toml"),
        format!(
            "[project]\nname = \"{name}\"\nversion = \"{version}\"\ndescription = \"{name} nodes\"\nlicense = {{ text = \"MIT\" }}\n"
        )
        .as_bytes(),
    );
    world.write(&format!("{dir}/requirements.txt"), format!("{}\n", requirements.join("\n")).as_bytes());
    world.write(
        &format!("{dir}/__init__.py"),
        format!("NODE_CLASS_MAPPINGS = {{}}\nVERSION = {version:?}\n").as_bytes(),
    );
    world.write(&format!("{dir}/nodes/core.py"), b"def run(image):\n    return image\n");
    for (file, text) in extra {
        world.write(&format!("{dir}/{file}"), text.as_bytes());
    }
}

/// Packs `dir` to `<dir>.zip` and publishes it signed by publisher 1 with `extra` arguments
/// (`--sign-only -o FILE` for a second approval): the pack's BLAKE3 hex.
pub fn publish_pack(world: &World, dir: &str, extra: &[&str]) -> String {
    let zip = format!("{dir}.zip");
    let run = world.cli(&["--json", "pack", dir, "-o", &zip]).ok();
    let answer: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    crate::review::publish_node(world, &world.url(), &world.publish_token, &zip, extra).ok();
    answer["blake3"].as_str().unwrap().trim_start_matches("blake3:").to_owned()
}

pub fn get_json(base: &str, path: &str) -> (u16, serde_json::Value) {
    let (status, body) = http_get(base, path);
    (status, serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null))
}

/// Writes the two-file stand-in for ComfyUI's `comfy.cli_args` that importing
/// ComfyUI-Manager outside ComfyUI needs; returns its folder (for PYTHONPATH).
pub fn manager_stub(world: &World) -> std::path::PathBuf {
    world.write("stub/comfy/__init__.py", b"");
    world.write(
        "stub/comfy/cli_args.py",
        b"import types\nargs = types.SimpleNamespace(enable_manager=False, enable_manager_legacy_ui=False, disable_manager_ui=True, listen='127.0.0.1', user_directory=None, base_directory=None)\n",
    );
    // ComfyUI's folder registry, which Manager asks for the custom_nodes folders.
    world.write(
        "stub/folder_paths.py",
        b"import os\ndef get_folder_paths(name):\n    return [os.path.join(os.environ['COMFYUI_PATH'], name)]\n",
    );
    world.path("stub")
}

/// Runs `script` with the test tools' Python, ComfyUI-Manager importable, over the ComfyUI
/// folder `comfyui` (a scratch one when `None`): its stdout.
pub fn run_manager(world: &World, script: &str, comfyui: Option<&Path>) -> String {
    let stub = manager_stub(world);
    let home = world.path("manager-home");
    std::fs::create_dir_all(&home).unwrap();
    let comfyui = comfyui.map_or_else(|| world.path("manager-comfyui"), Path::to_path_buf);
    std::fs::create_dir_all(comfyui.join("custom_nodes")).unwrap();
    let out = Command::new(crate::pytools::tools().join("bin/python"))
        .args(["-c", script])
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", &home)
        .env("PYTHONPATH", &stub)
        .env("COMFYUI_PATH", &comfyui)
        .current_dir(world.path(""))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ComfyUI-Manager script failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `script`, which prints its answer as `RESULT <json>` (Manager prints lines of its own).
pub fn manager_result(world: &World, script: &str, comfyui: Option<&Path>) -> serde_json::Value {
    let out = run_manager(world, script, comfyui);
    let line =
        out.lines().find_map(|l| l.strip_prefix("RESULT ")).unwrap_or_else(|| panic!("no RESULT in {out}"));
    serde_json::from_str(line).unwrap()
}

fn blake3_hex(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex().to_string()
}

#[test]
fn comfyui_managers_registry_client_lists_installs_and_versions_from_airlockd() {
    let world = World::new(1, 1);
    node_tree(&world, "demo1", "Demo-Nodes", "1.0", &["numpy>=1"], &[]);
    node_tree(&world, "demo2", "Demo-Nodes", "1.1.0", &["numpy>=1"], &[]);
    node_tree(&world, "other", "other-nodes", "2.0.0", &[], &[]);
    node_tree(&world, "third", "third-nodes", "0.3.0", &[], &[]);
    let demo1 = publish_pack(&world, "demo1", &[]);
    let demo2 = publish_pack(&world, "demo2", &[]);
    let other = publish_pack(&world, "other", &[]);
    publish_pack(&world, "third", &[]);
    crate::lifecycle::lifecycle(&world, "yank", "demo-nodes==1.0.0", &["--reason", "leaks memory"]).ok();
    crate::lifecycle::lifecycle(&world, "revoke", "other-nodes==2.0.0", &["--reason", "malware"]).ok();
    let url = world.url();

    // The catalog in pages, as Manager pages it; the revoked pack is absent.
    let (status, page) = get_json(&url, "/comfy/nodes?page=1&limit=1");
    assert_eq!(status, 200);
    assert_eq!((page["total"].as_u64(), page["totalPages"].as_u64()), (Some(2), Some(2)), "{page}");
    assert_eq!(page["nodes"][0]["id"], "demo-nodes");
    assert_eq!(page["nodes"][0]["latest_version"]["version"], "1.1.0");
    assert_eq!(get_json(&url, "/comfy/nodes?page=2&limit=1").1["nodes"][0]["id"], "third-nodes");
    assert_eq!(get_json(&url, "/comfy/nodes/other-nodes").0, 404);
    assert_eq!(get_json(&url, "/comfy/nodes/other-nodes/install").0, 404);
    assert_eq!(
        http_get(&url, &format!("/files/blake3/{other}/other.zip")).0,
        410,
        "a revoked pack's file is gone"
    );
    assert_eq!(
        http_get(&url, &format!("/files/blake3/{demo2}/other.zip")).0,
        404,
        "a file by its logged name only"
    );
    // Case-insensitive ids.
    assert_eq!(get_json(&url, "/comfy/nodes/DEMO-Nodes").1["id"], "demo-nodes");
    // Bad input is named; what the registry does not serve is 404; writes are 403.
    assert_eq!(get_json(&url, "/comfy/nodes?limit=500").0, 400);
    assert_eq!(get_json(&url, "/comfy/nodes/demo-nodes/install?version=x.y").0, 400);
    assert_eq!(get_json(&url, "/comfy/proxy/openai/v1/chat").0, 404);
    assert_eq!(http_request("POST", &url, "/comfy/publishers/p/nodes/n/versions", None, b"{}").0, 403);

    // ComfyUI-Manager's own client, pointed at airlockd.
    let script = format!(
        r#"
import json, urllib.request
import comfyui_manager.common.cnr_utils as c
c.base_url = "{url}/comfy"
import asyncio
listed = asyncio.run(c.get_cnr_data(cache_mode=False, dont_wait=False))
v = c.install_node("demo-nodes", "1.0.0")
latest = c.install_node("demo-nodes")
versions = c.all_versions_of_node("Demo-Nodes")
gone = c.install_node("other-nodes")
data = urllib.request.urlopen(v.download_url).read()
print("RESULT " + json.dumps({{"version": v.version, "deprecated": v.deprecated, "deps": v.dependencies, "url": v.download_url,
    "latest": latest.version, "versions": [(x["version"], x["deprecated"]) for x in versions],
    "gone": gone is None, "bytes": data.hex(),
    "listed": sorted((n["id"], n["latest_version"]["version"], n["publisher"]["name"]) for n in listed)}}))
"#
    );
    let answer: serde_json::Value = manager_result(&world, &script, None);
    // Manager's catalogue fetch pages through /nodes until totalPages.
    assert_eq!(
        answer["listed"],
        serde_json::json!([
            ["demo-nodes", "1.1.0", "test.airlock"],
            ["third-nodes", "0.3.0", "test.airlock"]
        ])
    );
    assert_eq!(answer["version"], "1.0.0");
    assert_eq!(answer["deprecated"], true, "a yanked version is deprecated");
    assert_eq!(answer["deps"], serde_json::json!(["numpy>=1"]));
    assert_eq!(answer["latest"], "1.1.0");
    assert_eq!(answer["versions"], serde_json::json!([["1.1.0", false], ["1.0.0", true]]));
    assert_eq!(answer["gone"], true, "a revoked pack is not offered");
    let downloaded = hex::decode(answer["bytes"].as_str().unwrap()).unwrap();
    assert_eq!(blake3_hex(&downloaded), demo1, "downloadUrl serves the logged pack");
    assert!(answer["url"].as_str().unwrap().contains(&demo1));
    // The `_`-keys carry our digests; `/versions` pages every version.
    let (_, version) = get_json(&url, "/comfy/nodes/demo-nodes/versions/1.1.0");
    assert_eq!(version["_blake3"], demo2.as_str());
    let (_, all) = get_json(&url, "/comfy/versions?pageSize=2&page=1");
    assert_eq!((all["total"].as_u64(), all["totalPages"].as_u64()), (Some(3), Some(2)), "{all}");

    // A channel holds what was promoted into it, for the API and for Manager's files alike.
    crate::lifecycle::lifecycle(&world, "promote", "demo-nodes==1.1.0", &["--channel", "prod"]).ok();
    let (_, prod) = get_json(&url, "/channels/prod/comfy/nodes");
    assert_eq!(prod["total"], 1);
    assert_eq!(get_json(&url, "/channels/prod/comfy/nodes/demo-nodes/install?version=1.0.0").0, 404);
    let (status, list) = get_json(&url, "/channels/prod/custom-node-list.json");
    assert_eq!(status, 200);
    let entries = list["custom_nodes"].as_array().unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["id"], "demo-nodes");
    assert_eq!(entries[0]["version"], "1.1.0");
    assert_eq!(entries[0]["pip"], serde_json::json!(["numpy>=1"]));
    // Manager reads every channel file it fetches with its own loader, and merges the channel's
    // entry with the registry API's node of the same repository.
    let script = format!(
        r#"
import json, urllib.request
from comfyui_manager.common import git_utils
names = ["custom-node-list.json", "extension-node-map.json", "model-list.json", "alter-list.json", "github-stats.json", "extras.json"]
files = {{n: json.load(urllib.request.urlopen("{url}/channels/prod/" + n)) for n in names}}
node = json.load(urllib.request.urlopen("{url}/channels/prod/comfy/nodes/demo-nodes"))
entry = files["custom-node-list.json"]["custom_nodes"][0]
print("RESULT " + json.dumps({{"merged": git_utils.normalize_url(entry["files"][0]) == git_utils.normalize_url(node["repository"]),
    "models": files["model-list.json"]["models"], "items": files["alter-list.json"]["items"],
    "favorites": files["extras.json"]["favorites"], "map": list(files["extension-node-map.json"].keys()),
    "key": entry["files"][0].split("/")[-1]}}))
"#
    );
    let answer: serde_json::Value = manager_result(&world, &script, None);
    assert_eq!(answer["merged"], true, "{answer}");
    assert_eq!(answer["key"], "demo-nodes");
    assert_eq!(answer["models"], serde_json::json!([]));
    assert_eq!(answer["map"].as_array().unwrap().len(), 1);
    assert_eq!(
        get_json(&url, "/channels/nowhere/custom-node-list.json").1["custom_nodes"],
        serde_json::json!([])
    );
}

/// Mounted at the root for a site that maps the registry's host name to the mirror; with a
/// public URL, download links use it.
#[test]
fn the_api_answers_at_the_root_when_asked_with_the_public_url() {
    let mut world = World::prepared(1, 1);
    let mut config = world.config();
    config.comfy_at_root = true;
    config.public_url = Some("https://api.comfy.org".to_owned());
    world.server = Some(Server::start(config));
    node_tree(&world, "demo", "demo-nodes", "1.0.0", &[], &[]);
    let digest = publish_pack(&world, "demo", &[]);
    let url = world.url();
    let (status, version) = get_json(&url, "/nodes/demo-nodes/install");
    assert_eq!(status, 200);
    assert_eq!(
        version["downloadUrl"],
        format!("https://api.comfy.org/files/blake3/{digest}/demo.zip").as_str()
    );
    assert_eq!(get_json(&url, "/nodes?page=1&limit=30").1["totalPages"], 1);
    // Other paths at the root stay what they were; API-node calls fail cleanly.
    assert_eq!(http_get(&url, "/proxy/openai").0, 404);
    assert_eq!(http_get(&url, "/healthz").0, 200);
}
