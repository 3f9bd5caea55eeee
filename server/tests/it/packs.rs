//! ComfyUI node packs: `airlock pack` builds the same bytes from the same tree (folder, copy with
//! other times and modes, tar.gz or zip release download), leaves out `.git` and ignored files,
//! refuses hostile archives; `airlock publish --kind node` reads what the pack states.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use crate::harness::World;

/// A node checkout at `dir`.
fn write_tree(world: &World, dir: &str) {
    let files: &[(&str, &str)] = &[
        (
            "pyproject.toml",
            "[project]\nname = \"ComfyUI-Demo-Nodes\"\nversion = \"1.2\"\ndescription = \"Demo nodes\"\nlicense = { text = \"MIT\" }\n\n[project.urls]\nRepository = \"https://git.example.internal/demo/nodes\"\n\n[tool.comfy]\nPublisherId = \"demo\"\nDisplayName = \"Demo Nodes\"\nincludes = [\"web/dist\"]\n",
        ),
        ("requirements.txt", "# runtime\nnumpy>=1.24\n\nsafetensors\n"),
        ("__init__.py", "NODE_CLASS_MAPPINGS = {}\n"),
        ("nodes/blur.py", "def blur(image):\n    return image\n"),
        ("web/js/ui.js", "export {};\n"),
        (".gitignore", "*.log\n__pycache__/\nweb/dist/\n"),
        ("web/dist/app.js", "built, not tracked, but included\n"),
        (".comfyignore", "tests/\n"),
        ("debug.log", "not in the pack\n"),
        ("tests/test_blur.py", "def test(): pass\n"),
        ("__pycache__/x.pyc", "cache"),
        (".git/HEAD", "ref: refs/heads/main\n"),
    ];
    for (name, text) in files {
        world.write(&format!("{dir}/{name}"), text.as_bytes());
    }
}

fn pack(world: &World, source: &str, out: &str) -> String {
    let run = world.cli(&["--json", "pack", source, "-o", out]).ok();
    let answer: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    answer["blake3"].as_str().unwrap().to_owned()
}

fn zip_names(path: &Path) -> Vec<String> {
    let mut archive = zip::ZipArchive::new(std::fs::File::open(path).unwrap()).unwrap();
    (0..archive.len()).map(|i| archive.by_index_raw(i).unwrap().name().unwrap().into_owned()).collect()
}

#[test]
fn the_same_tree_always_packs_to_the_same_bytes() {
    let world = World::prepared(1, 1);
    write_tree(&world, "tree");
    let first = pack(&world, "tree", "a.zip");
    assert_eq!(pack(&world, "tree", "b.zip"), first);
    assert_eq!(
        zip_names(&world.path("a.zip")),
        [
            ".comfyignore",
            ".gitignore",
            "__init__.py",
            "nodes/blur.py",
            "pyproject.toml",
            "requirements.txt",
            "web/dist/app.js",
            "web/js/ui.js"
        ]
    );

    // A copy with other modification times and modes.
    write_tree(&world, "copy");
    for entry in crate::publish_pull::walk_files(&world.path("copy")) {
        std::fs::set_permissions(&entry, std::fs::Permissions::from_mode(0o755)).unwrap();
        let file = std::fs::File::options().write(true).open(&entry).unwrap();
        file.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_234_567_890)).unwrap();
    }
    assert_eq!(pack(&world, "copy", "c.zip"), first);

    // Release downloads: a tar.gz and a zip with one top-level folder, .git and all.
    let tar = Command::new("tar")
        .args(["czf", "release.tar.gz", "--transform", "s,^tree,demo-nodes-1.2,", "tree"])
        .current_dir(world.path(""))
        .status()
        .unwrap();
    assert!(tar.success());
    assert_eq!(pack(&world, "release.tar.gz", "d.zip"), first);
    let mut zip = zip::ZipWriter::new(std::fs::File::create(world.path("release.zip")).unwrap());
    for path in crate::publish_pull::walk_files(&world.path("tree")) {
        let relative = path.strip_prefix(world.path("tree")).unwrap().to_string_lossy().into_owned();
        zip.start_file(format!("demo-nodes-main/{relative}"), zip::write::SimpleFileOptions::default())
            .unwrap();
        std::io::Write::write_all(&mut zip, &std::fs::read(&path).unwrap()).unwrap();
    }
    zip.finish().unwrap();
    assert_eq!(pack(&world, "release.zip", "e.zip"), first);
}

#[test]
fn hostile_release_archives_are_refused_naming_the_member() {
    let world = World::prepared(1, 1);
    let script = r#"
import io, sys, tarfile
def add(tar, name, data=b"x", kind=tarfile.REGTYPE, link=""):
    info = tarfile.TarInfo(name); info.type = kind; info.linkname = link; info.size = len(data) if kind == tarfile.REGTYPE else 0
    tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)
for out, name, kind, link in [("slip.tar.gz", "pack/../../escape.py", tarfile.REGTYPE, ""), ("abs.tar.gz", "/etc/cron.d/evil", tarfile.REGTYPE, ""), ("link.tar.gz", "pack/link", tarfile.SYMTYPE, "/etc/passwd")]:
    with tarfile.open(out, "w:gz") as tar:
        add(tar, "pack/pyproject.toml", b'[project]\nname = "p"\nversion = "1.0.0"\n')
        add(tar, name, kind=kind, link=link)
"#;
    let status = Command::new("python3").args(["-c", script]).current_dir(world.path("")).status().unwrap();
    assert!(status.success());
    let refused = |archive: &str, says: &str| {
        world.cli(&["pack", archive, "-o", "out.zip"]).code(1).says(says);
        assert!(!world.path("out.zip").exists());
    };
    refused("slip.tar.gz", "../../escape.py");
    refused("abs.tar.gz", "/etc/cron.d/evil");
    refused("link.tar.gz", "pack/link");
    assert!(!world.path("../escape.py").exists());
    // A tree without a pyproject.toml is not a pack.
    world.write("bare/__init__.py", b"");
    world.cli(&["pack", "bare", "-o", "out.zip"]).code(1).says("pyproject.toml");
}

#[test]
fn publish_reads_id_version_and_requirements_from_the_pack() {
    let world = World::new(1, 1);
    write_tree(&world, "tree");
    pack(&world, "tree", "demo.zip");
    let publish = |extra: &[&str]| {
        crate::review::publish_node(&world, &world.url(), &world.publish_token, "demo.zip", extra)
    };
    publish(&["--version", "9.9.9"]).code(1).says("the pack's pyproject.toml says 1.2.0");
    publish(&["--name", "other-nodes"]).code(1).says("names comfyui-demo-nodes");
    publish(&[]).ok();
    let (status, body) = crate::harness::http_get(&world.url(), "/v1/releases/node/comfyui-demo-nodes/1.2.0");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let release: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(release["metadata"]["dependencies"], serde_json::json!(["numpy>=1.24", "safetensors"]));
    assert_eq!(release["metadata"]["summary"], "Demo nodes");
    assert_eq!(release["metadata"]["source_url"], "https://git.example.internal/demo/nodes");
}

/// `[tool.comfy] includes` cannot reach outside the checkout through a symbolic link, even one
/// the ignore files hide.
#[test]
fn an_include_through_a_symbolic_link_is_refused() {
    let world = World::prepared(1, 1);
    world.write("secret/id_ed25519", b"PRIVATE KEY");
    world.write(
        "tree/pyproject.toml",
        b"[project]\nname = \"p\"\nversion = \"1.0.0\"\n[tool.comfy]\nincludes = [\"web/key\", \"lnk/sub\"]\n",
    );
    world.write("tree/.gitignore", b"web/key\nlnk\n");
    std::fs::create_dir_all(world.path("tree/web")).unwrap();
    std::os::unix::fs::symlink(world.path("secret/id_ed25519"), world.path("tree/web/key")).unwrap();
    world.cli(&["pack", "tree", "-o", "p.zip"]).code(1).says("symbolic link");
    assert!(!world.path("p.zip").exists());
}
