//! The Python index, proven with the real tools: wheels published with `airlock publish`
//! (checked at ingest), served as a Simple Repository API by a running `airlockd`, installed by
//! pip and uv from it as the only index, with yanks, revocations, channels and a corrupted blob.

use crate::harness::{Server, World};
use crate::pytools::{build_wheel, build_wheel_with, Target, WheelSpec};

fn publish_wheels(world: &World, dir: &str) -> crate::harness::Run {
    world.cli(&[
        "publish",
        "--wheels",
        dir,
        "--key",
        "keys/pub1.key",
        "--root",
        "root.cbor",
        "--server",
        &world.url(),
        "--token",
        &world.publish_token,
    ])
}

/// alpha 1.0 → beta>=1.0 → gamma; beta 1.0 and 2.0; gamma 1.0 (a multi-tag file name,
/// `py2.py3-none-any`); delta 1.0 (alone).
fn chain_world() -> World {
    let world = World::new(1, 1);
    let dir = world.path("wheels");
    build_wheel(&dir, &WheelSpec::new("alpha", "1.0", &["beta>=1.0"]));
    build_wheel(&dir, &WheelSpec::new("beta", "1.0", &["gamma"]));
    build_wheel(&dir, &WheelSpec::new("beta", "2.0", &["gamma"]));
    build_wheel(&dir, &WheelSpec { tag: "py2.py3-none-any", ..WheelSpec::new("gamma", "1.0", &[]) });
    build_wheel(&dir, &WheelSpec::new("delta", "1.0", &[]));
    let run = publish_wheels(&world, "wheels").ok();
    assert!(run.stdout.contains("published wheel beta==2.0"), "{}", run.stdout);
    world
}

fn get(url: &str, path: &str, accept: Option<&str>) -> (u16, String, Vec<u8>) {
    let (status, headers, body) = crate::harness::http_get_with(url, path, accept);
    let content_type = headers.get("content-type").cloned().unwrap_or_default();
    (status, content_type, body)
}

const PIP_ACCEPT: &str =
    "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01";

/// The pages against the fields pip and uv read (python-index.md 3.3, 3.4): exact content
/// types, redirects, 406, hashes (sha256 only, BLAKE3 as `_blake3`), sizes, upload times,
/// core metadata whose bytes match, versions, yanked reasons, and revoked releases absent.
#[test]
fn simple_pages_carry_what_pip_and_uv_read() {
    let world = chain_world();
    let url = world.url();
    let (status, content_type, body) = get(&url, "/simple/beta/", Some(PIP_ACCEPT));
    assert_eq!((status, content_type.as_str()), (200, "application/vnd.pypi.simple.v1+json"));
    let page: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(page["meta"]["api-version"], "1.4");
    assert_eq!(page["name"], "beta");
    assert_eq!(page["versions"], serde_json::json!(["1.0", "2.0"]));
    assert_eq!(page["project-status"]["status"], "active");
    let files = page["files"].as_array().unwrap();
    assert_eq!(files.len(), 2);
    let file = &files[1];
    assert_eq!(file["filename"], "beta-2.0-py3-none-any.whl");
    let hashes = file["hashes"].as_object().unwrap();
    assert_eq!(hashes.keys().collect::<Vec<_>>(), ["sha256"]);
    assert_eq!(file["requires-python"], ">=3.8");
    assert_eq!(file["yanked"], false);
    assert!(file["upload-time"].as_str().unwrap().ends_with('Z'));
    assert_eq!(file["_blake3"].as_str().unwrap().len(), 64);
    let wheel_url = file["url"].as_str().unwrap().to_owned();
    assert!(wheel_url.ends_with("/beta-2.0-py3-none-any.whl"), "{wheel_url}");
    // The wheel's bytes and size; its .metadata is the wheel's own METADATA, with that hash.
    let (status, _, wheel) = get(&url, &wheel_url, None);
    assert_eq!((status, wheel.len() as u64), (200, file["size"].as_u64().unwrap()));
    assert_eq!(sha256_hex(&wheel), hashes["sha256"]);
    let (status, _, metadata) = get(&url, &format!("{wheel_url}.metadata"), None);
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&metadata).contains("Name: beta\nVersion: 2.0\n"));
    assert_eq!(sha256_hex(&metadata), file["core-metadata"]["sha256"]);
    assert_eq!(file["dist-info-metadata"], file["core-metadata"]);
    // A file name the release does not hold under that digest is not served.
    assert_eq!(get(&url, &wheel_url.replace("beta-2.0", "beta-9.0"), None).0, 404);

    // HTML for pip's older fallbacks and find-links, text/html by default.
    let (status, content_type, body) = get(&url, "/simple/beta/", None);
    assert_eq!((status, content_type.as_str()), (200, "text/html"));
    let html = String::from_utf8(body).unwrap();
    assert!(html.contains("<meta name=\"pypi:repository-version\" content=\"1.4\">"), "{html}");
    assert!(
        html.contains(&format!("href=\"{wheel_url}#sha256={}\"", hashes["sha256"].as_str().unwrap())),
        "{html}"
    );
    assert!(html.contains("data-requires-python=\"&gt;=3.8\""), "{html}");
    assert!(html.contains("data-core-metadata=\"sha256="), "{html}");
    assert!(html.contains(">beta-2.0-py3-none-any.whl</a>"), "{html}");
    let (_, content_type, _) = get(&url, "/simple/beta/", Some("application/vnd.pypi.simple.v1+html"));
    assert_eq!(content_type, "application/vnd.pypi.simple.v1+html");
    assert_eq!(get(&url, "/simple/beta/", Some("application/json")).0, 406);

    // Names are normalised by redirect; unknown projects are 404.
    let (status, headers, _) = crate::harness::http_get_with(&url, "/simple/Beta_/", None);
    assert_eq!(status, 404, "{headers:?}");
    let (status, headers, _) = crate::harness::http_get_with(&url, "/simple/BETA", None);
    assert_eq!((status, headers.get("location").map(String::as_str)), (301, Some("/simple/beta/")));
    let (status, headers, _) = crate::harness::http_get_with(&url, "/simple/BETA?format=text/html", None);
    assert_eq!(
        (status, headers.get("location").map(String::as_str)),
        (301, Some("/simple/beta/?format=text/html"))
    );
    assert_eq!(get(&url, "/simple/nothing/", None).0, 404);

    // The project list.
    let (_, content_type, body) = get(&url, "/simple/", Some(PIP_ACCEPT));
    assert_eq!(content_type, "application/vnd.pypi.simple.v1+json");
    let list: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let names: Vec<&str> =
        list["projects"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["alpha", "beta", "delta", "gamma"]);

    // A yank is marked with its reason; a revocation removes the release and its files.
    lifecycle(&world, "yank", "beta==2.0", &["--reason", "broken build"]);
    lifecycle(&world, "revoke", "delta==1.0", &["--reason", "CVE-2026-0001"]);
    let page: serde_json::Value =
        serde_json::from_slice(&get(&url, "/simple/beta/", Some(PIP_ACCEPT)).2).unwrap();
    assert_eq!(page["files"][1]["yanked"], "broken build");
    let html = String::from_utf8(get(&url, "/simple/beta/", None).2).unwrap();
    assert!(html.contains("data-yanked=\"broken build\""), "{html}");
    let page: serde_json::Value =
        serde_json::from_slice(&get(&url, "/simple/delta/", Some(PIP_ACCEPT)).2).unwrap();
    assert_eq!(page["project-status"]["status"], "quarantined");
    assert_eq!(page["files"], serde_json::json!([]));
    assert_eq!(page["versions"], serde_json::json!([]));
    let delta: serde_json::Value =
        serde_json::from_slice(&get(&url, "/v1/releases/wheel/delta/1.0", None).2).unwrap();
    let delta_file = &delta["files"][0];
    let path = format!(
        "/files/blake3/{}/{}",
        delta_file["blake3"].as_str().unwrap().trim_start_matches("blake3:"),
        delta_file["filename"].as_str().unwrap()
    );
    assert_eq!(get(&url, &path, None).0, 410);

    // A mirror serves the same pages, yank markers and quarantine included.
    let (mirror, admin) = crate::mirror::start_mirror(&world, "mirror", &url);
    crate::mirror::sync(&mirror, &admin);
    for page in ["/simple/", "/simple/beta/", "/simple/delta/"] {
        assert_eq!(get(&mirror.url, page, Some(PIP_ACCEPT)).2, get(&url, page, Some(PIP_ACCEPT)).2, "{page}");
        assert_eq!(get(&mirror.url, page, None).2, get(&url, page, None).2, "{page}");
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    hex_of(&sha2::Sha256::digest(bytes))
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `airlock yank|revoke|promote ...` signed by publisher 1 and submitted.
fn lifecycle(world: &World, command: &str, target: &str, extra: &[&str]) {
    crate::lifecycle::lifecycle(world, command, target, extra).ok();
}

/// pip and uv install a two-level dependency chain from `airlockd` as their only index; a range
/// skips a yanked version, an exact pin takes it; a revoked release cannot be installed; a
/// channel index offers only what the channel holds; a blob corrupted on the server's disk
/// fails the install with a hash error.
#[test]
fn pip_and_uv_install_from_the_index_and_honour_yanks_revocations_and_channels() {
    let mut world = chain_world();
    let index = format!("{}/simple/", world.url());
    let envs = world.path("envs");
    let pip_index = ["--index-url", index.as_str()];
    let uv_index = ["--index-url", index.as_str()];

    // The chain installs with each tool.
    let with_pip = Target::new(&envs, "pip");
    let run = with_pip.pip(&[&["install"][..], &pip_index, &["alpha"]].concat(), &[]);
    assert!(run.ok, "{}", run.output);
    assert_eq!(with_pip.installed("beta").as_deref(), Some("2.0"));
    assert_eq!(with_pip.installed("gamma").as_deref(), Some("1.0"));
    let with_uv = Target::new(&envs, "uv");
    let run = with_uv.uv_pip(&[&["install"][..], &uv_index, &["alpha"]].concat(), &[]);
    assert!(run.ok, "{}", run.output);
    assert_eq!(with_uv.installed("beta").as_deref(), Some("2.0"));

    // Yanked: a range skips 2.0, an exact pin installs it.
    lifecycle(&world, "yank", "beta==2.0", &["--reason", "broken build"]);
    let fresh = Target::new(&envs, "pip-yanked");
    let run = fresh.pip(&[&["install"][..], &pip_index, &["alpha"]].concat(), &[]);
    assert!(run.ok, "{}", run.output);
    assert_eq!(fresh.installed("beta").as_deref(), Some("1.0"));
    let run = fresh.pip(&[&["install"][..], &pip_index, &["beta==2.0"]].concat(), &[]);
    assert!(run.ok, "{}", run.output);
    assert_eq!(fresh.installed("beta").as_deref(), Some("2.0"));
    let fresh = Target::new(&envs, "uv-yanked");
    let run = fresh.uv_pip(&[&["install"][..], &uv_index, &["alpha"]].concat(), &[]);
    assert!(run.ok, "{}", run.output);
    assert_eq!(fresh.installed("beta").as_deref(), Some("1.0"));
    let run = fresh.uv_pip(&[&["install"][..], &uv_index, &["beta==2.0"]].concat(), &[]);
    assert!(run.ok, "{}", run.output);
    assert_eq!(fresh.installed("beta").as_deref(), Some("2.0"));

    // Revoked: not installable at all, by range or pin.
    lifecycle(&world, "revoke", "delta==1.0", &["--reason", "CVE-2026-0001"]);
    let fresh = Target::new(&envs, "revoked");
    let run = fresh.pip(&[&["install"][..], &pip_index, &["delta==1.0"]].concat(), &[]);
    assert!(!run.ok && fresh.installed("delta").is_none(), "{}", run.output);
    let run = fresh.uv_pip(&[&["install"][..], &uv_index, &["delta"]].concat(), &[]);
    assert!(!run.ok && fresh.installed("delta").is_none(), "{}", run.output);

    // A channel: alpha 1.0, beta 1.0 and gamma 1.0 in prod; beta 2.0 is not offered there.
    for target in ["alpha==1.0", "beta==1.0", "gamma==1.0"] {
        lifecycle(&world, "promote", target, &["--channel", "prod"]);
    }
    let prod = format!("{}/channels/prod/simple/", world.url());
    let (_, _, body) = get(&world.url(), "/channels/prod/simple/beta/", Some(PIP_ACCEPT));
    let page: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(page["versions"], serde_json::json!(["1.0"]));
    let fresh = Target::new(&envs, "prod");
    let run = fresh.uv_pip(&["install", "--index-url", &prod, "alpha"], &[]);
    assert!(run.ok, "{}", run.output);
    assert_eq!(fresh.installed("beta").as_deref(), Some("1.0"));
    let run = fresh.pip(&["install", "--index-url", &prod, "beta==2.0"], &[]);
    assert!(!run.ok, "{}", run.output);
    assert_eq!(get(&world.url(), "/channels/prod/simple/delta/", Some(PIP_ACCEPT)).0, 200);

    // A blob corrupted on the server's disk: both tools refuse it by its hash.
    let gamma: serde_json::Value =
        serde_json::from_slice(&get(&world.url(), "/v1/releases/wheel/gamma/1.0", None).2).unwrap();
    let hex = gamma["files"][0]["blake3"].as_str().unwrap().trim_start_matches("blake3:").to_owned();
    let blob = crate::publish_pull::walk_files(&world.path("data/blobs"))
        .into_iter()
        .find(|p| p.to_string_lossy().contains(&hex))
        .expect("gamma's blob on disk");
    // Another valid wheel of the same size in its place (other module bytes, chosen so that
    // they compress to the same length): only the hash can tell.
    let size = std::fs::metadata(&blob).unwrap().len();
    let evil = (0..100)
        .map(|n| {
            let path = build_wheel_with(
                &world.path(&format!("evil{n}")),
                &WheelSpec { tag: "py2.py3-none-any", ..WheelSpec::new("gamma", "1.0", &[]) },
                |members| members[0].1 = format!("VERSION = \"6.{n:02}\"\n").into_bytes()[..16].to_vec(),
                |_| {},
            );
            std::fs::read(path).unwrap()
        })
        .find(|bytes| bytes.len() as u64 == size)
        .expect("a swapped wheel of the same size");
    std::fs::write(&blob, &evil).unwrap();
    // A restart forgets the small blobs held in memory since the installs above
    // (`http/small_blobs.rs`), so what is served is the swapped file.
    world.server.take().unwrap().stop();
    world.server = Some(Server::start(world.config()));
    let index = format!("{}/simple/", world.url());
    let pip_index = ["--index-url", index.as_str()];
    let uv_index = ["--index-url", index.as_str()];
    let fresh = Target::new(&envs, "corrupt");
    let run = fresh.pip(&[&["install"][..], &pip_index, &["gamma"]].concat(), &[]);
    assert!(!run.ok && run.output.to_lowercase().contains("hash"), "{}", run.output);
    let run = fresh.uv_pip(&[&["install"][..], &uv_index, &["gamma"]].concat(), &[]);
    assert!(!run.ok && run.output.to_lowercase().contains("hash"), "{}", run.output);
    assert!(fresh.installed("gamma").is_none());
}

/// Ingest refuses a wheel whose RECORD hash or METADATA name disagrees, naming the file and the
/// reason, and publishes nothing of the batch.
#[test]
fn a_wheel_that_disagrees_with_itself_is_refused_at_publish() {
    let world = World::new(1, 1);
    let bad_hash = world.path("bad-hash");
    build_wheel(&bad_hash, &WheelSpec::new("good", "1.0", &[]));
    build_wheel_with(
        &bad_hash,
        &WheelSpec::new("tampered", "1.0", &[]),
        |_| {},
        |record| *record = record.replacen("sha256=", "sha256=AAAA", 1),
    );
    let run = publish_wheels(&world, "bad-hash").code(1);
    assert!(
        run.stderr.contains("tampered-1.0-py3-none-any.whl") && run.stderr.contains("does not match"),
        "{}",
        run.stderr
    );
    assert_eq!(world.log_size(), 1, "nothing of the batch is logged");

    let bad_name = world.path("bad-name");
    build_wheel_with(
        &bad_name,
        &WheelSpec::new("named", "1.0", &[]),
        |members| {
            let metadata = members.iter_mut().find(|(p, _)| p.ends_with("METADATA")).unwrap();
            metadata.1 = String::from_utf8(metadata.1.clone())
                .unwrap()
                .replace("Name: named", "Name: other")
                .into_bytes();
        },
        |_| {},
    );
    let run = publish_wheels(&world, "bad-name").code(1);
    assert!(
        run.stderr.contains("named-1.0-py3-none-any.whl") && run.stderr.contains("names project \"other\""),
        "{}",
        run.stderr
    );

    // Not a zip at all.
    world.write("junk/junk-1.0-py3-none-any.whl", b"not a zip");
    let run = publish_wheels(&world, "junk").code(1);
    assert!(run.stderr.contains("junk-1.0-py3-none-any.whl: not a zip archive"), "{}", run.stderr);

    // One wheel, published alone, with its name and version read from it.
    let single = build_wheel(&world.path("one"), &WheelSpec::new("single", "2.0", &["good"]));
    world
        .cli(&[
            "publish",
            single.to_str().unwrap(),
            "--key",
            "keys/pub1.key",
            "--root",
            "root.cbor",
            "--server",
            &world.url(),
            "--token",
            &world.publish_token,
        ])
        .ok();
    let (status, body) = crate::harness::http_get(&world.url(), "/v1/releases/wheel/single/2.0");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let release: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(release["metadata"]["dependencies"], serde_json::json!(["good"]));
    assert_eq!(release["files"][1]["filename"], "single-2.0-py3-none-any.whl.metadata");
}

/// `airlock lock` resolves against the verified log and writes hashes pip and uv enforce with
/// `--require-hashes`, from the primary and from a mirror; `--format pylock` installs with uv;
/// `--python-version`/`--platform` pick the right wheel of a multi-platform release; a channel
/// narrows the resolution; an unsatisfiable requirement names what the log offers.
#[test]
fn airlock_lock_writes_hashes_pip_and_uv_enforce() {
    let world = chain_world();
    let url = world.url();
    world.write("req.txt", b"# the app\nalpha\n");
    let lock = |extra: &[&str]| {
        let mut args = vec!["lock", "req.txt", "--server", &url, "--root", "root.cbor"];
        args.extend_from_slice(extra);
        world.cli(&args)
    };
    lock(&["-o", "lock.txt"]).ok();
    let text = std::fs::read_to_string(world.path("lock.txt")).unwrap();
    for pinned in ["alpha==1.0", "beta==2.0", "gamma==1.0"] {
        assert!(text.contains(pinned), "{text}");
    }
    assert_eq!(text.matches("--hash=sha256:").count(), 3, "{text}");
    assert!(!text.contains("delta"), "{text}");

    let lock_file = world.path("lock.txt");
    let lock_file = lock_file.to_str().unwrap();
    let envs = world.path("envs");
    let index = format!("{url}/simple/");
    let target = Target::new(&envs, "pip-locked");
    let run = target.pip(&["install", "--require-hashes", "--index-url", &index, "-r", lock_file], &[]);
    assert!(run.ok, "{}", run.output);
    assert_eq!(target.installed("beta").as_deref(), Some("2.0"));
    let target = Target::new(&envs, "uv-locked");
    let run = target.uv_pip(&["install", "--require-hashes", "--index-url", &index, "-r", lock_file], &[]);
    assert!(run.ok, "{}", run.output);
    assert_eq!(target.installed("gamma").as_deref(), Some("1.0"));

    // From a mirror, the only index.
    let (mirror, admin) = crate::mirror::start_mirror(&world, "mirror", &url);
    crate::mirror::sync(&mirror, &admin);
    let mirror_index = format!("{}/simple/", mirror.url);
    let target = Target::new(&envs, "pip-mirror");
    let run =
        target.pip(&["install", "--require-hashes", "--index-url", &mirror_index, "-r", lock_file], &[]);
    assert!(run.ok, "{}", run.output);
    let target = Target::new(&envs, "uv-mirror");
    let run =
        target.uv_pip(&["install", "--require-hashes", "--index-url", &mirror_index, "-r", lock_file], &[]);
    assert!(run.ok, "{}", run.output);
    assert_eq!(target.installed("alpha").as_deref(), Some("1.0"));

    // A hash that is not the served wheel's fails the install.
    let tampered: String = {
        let first = text.find("--hash=sha256:").unwrap() + "--hash=sha256:".len();
        let mut bytes = text.clone().into_bytes();
        bytes[first] = if bytes[first] == b'0' { b'1' } else { b'0' };
        String::from_utf8(bytes).unwrap()
    };
    world.write("wrong.txt", tampered.as_bytes());
    let wrong_file = world.path("wrong.txt");
    let target = Target::new(&envs, "pip-wrong");
    let run = target.pip(
        &["install", "--require-hashes", "--index-url", &index, "-r", wrong_file.to_str().unwrap()],
        &[],
    );
    assert!(!run.ok && run.output.contains("HASHES"), "{}", run.output);

    // pylock.toml, installed by uv.
    // (The test environments run Python 3.11; uv refuses a lock made for another version.)
    lock(&["--format", "pylock", "--python-version", "3.11", "-o", "pylock.toml"]).ok();
    let pylock = std::fs::read_to_string(world.path("pylock.toml")).unwrap();
    assert!(pylock.contains("lock-version = \"1.0\"") && pylock.contains("[[packages.wheels]]"), "{pylock}");
    let target = Target::new(&envs, "uv-pylock");
    let pylock_path = world.path("pylock.toml");
    let run = target.uv_pip(&["install", "-r", pylock_path.to_str().unwrap()], &[]);
    assert!(run.ok, "{}", run.output);
    assert_eq!(target.installed("beta").as_deref(), Some("2.0"));

    // A multi-platform release: the target decides the wheel.
    let dir = world.path("multi");
    for tag in
        ["cp312-cp312-manylinux_2_28_x86_64", "cp312-cp312-win_amd64", "cp311-cp311-manylinux_2_28_x86_64"]
    {
        build_wheel(&dir, &WheelSpec { tag, ..WheelSpec::new("multi", "1.0", &[]) });
    }
    publish_wheels(&world, "multi").ok();
    world.write("multi.txt", b"multi\n");
    let lock_multi = |python: &str, platform: &str| {
        world
            .cli(&[
                "lock",
                "multi.txt",
                "--server",
                &url,
                "--root",
                "root.cbor",
                "--python-version",
                python,
                "--platform",
                platform,
                "--format",
                "pylock",
                "-o",
                "multi.toml",
            ])
            .ok();
        std::fs::read_to_string(world.path("multi.toml")).unwrap()
    };
    let windows = lock_multi("3.12", "win_amd64");
    assert!(
        windows.contains("multi-1.0-cp312-cp312-win_amd64.whl") && !windows.contains("manylinux"),
        "{windows}"
    );
    let linux311 = lock_multi("3.11", "manylinux_2_28_x86_64");
    assert!(
        linux311.contains("multi-1.0-cp311-cp311-manylinux_2_28_x86_64.whl") && !linux311.contains("cp312"),
        "{linux311}"
    );
    let run = world.cli(&[
        "lock",
        "multi.txt",
        "--server",
        &url,
        "--root",
        "root.cbor",
        "--python-version",
        "3.10",
        "-o",
        "none.toml",
    ]);
    assert_ne!(run.code, 0);
    assert!(run.stderr.contains("multi: nothing installable on this target"), "{}", run.stderr);

    // A channel narrows what resolves.
    for target in ["alpha==1.0", "beta==1.0", "gamma==1.0"] {
        lifecycle(&world, "promote", target, &["--channel", "prod"]);
    }
    lock(&["--channel", "prod", "-o", "prod.txt"]).ok();
    let prod = std::fs::read_to_string(world.path("prod.txt")).unwrap();
    assert!(prod.contains("beta==1.0") && !prod.contains("beta==2.0"), "{prod}");

    // Unsatisfiable: the error names the requirement and what the log offers.
    world.write("impossible.txt", b"alpha\nbeta>=3\n");
    let run = world.cli(&["lock", "impossible.txt", "--server", &url, "--root", "root.cbor", "-o", "x.txt"]);
    assert_ne!(run.code, 0);
    assert!(
        run.stderr.contains("beta")
            && run.stderr.contains("what the log offers")
            && run.stderr.contains("beta: 1.0, 2.0"),
        "{}",
        run.stderr
    );
}

/// `airlock wheelhouse export` writes the verified wheels of a channel and an index.html;
/// pip and uv install from the folder with no index and no server.
#[test]
fn a_wheelhouse_installs_with_no_server() {
    let mut world = chain_world();
    for target in ["alpha==1.0", "beta==1.0", "gamma==1.0"] {
        lifecycle(&world, "promote", target, &["--channel", "prod"]);
    }
    let url = world.url();
    world
        .cli(&["wheelhouse", "export", "house", "--channel", "prod", "--server", &url, "--root", "root.cbor"])
        .ok();
    let mut names: Vec<String> = std::fs::read_dir(world.path("house"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "alpha-1.0-py3-none-any.whl",
            "beta-1.0-py3-none-any.whl",
            "gamma-1.0-py2.py3-none-any.whl",
            "index.html"
        ]
    );
    let index = std::fs::read_to_string(world.path("house/index.html")).unwrap();
    assert!(index.contains("href=\"beta-1.0-py3-none-any.whl#sha256="), "{index}");
    // No server from here on.
    world.server = None;
    let house = world.path("house");
    let house = house.to_str().unwrap();
    let envs = world.path("envs");
    let target = Target::new(&envs, "pip-house");
    let run = target.pip(&["install", "--no-index", "--find-links", house, "alpha"], &[]);
    assert!(run.ok, "{}", run.output);
    assert_eq!(target.installed("beta").as_deref(), Some("1.0"));
    let target = Target::new(&envs, "pip-house-html");
    let index_file = format!("{house}/index.html");
    let run = target.pip(&["install", "--no-index", "--find-links", &index_file, "alpha"], &[]);
    assert!(run.ok, "{}", run.output);
    let target = Target::new(&envs, "uv-house");
    let run = target.uv_pip(&["install", "--no-index", "--find-links", house, "alpha"], &[]);
    assert!(run.ok, "{}", run.output);
    assert_eq!(target.installed("gamma").as_deref(), Some("1.0"));
}

/// A test CA and a server certificate it signs (CA:FALSE, serverAuth, SANs for 127.0.0.1 and
/// localhost), as uv requires: written to `tls/ca.pem`, `tls/chain.pem` and `tls/key.pem`.
fn write_test_ca(world: &World) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(rcgen::DnType::CommonName, "airlock test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let mut leaf_params =
        rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
    leaf_params.is_ca = rcgen::IsCa::ExplicitNoCa;
    leaf_params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let leaf = leaf_params.signed_by(&leaf_key, &ca, &ca_key).unwrap();
    world.write("tls/ca.pem", ca.pem().as_bytes());
    world.write("tls/chain.pem", format!("{}{}", leaf.pem(), ca.pem()).as_bytes());
    world.write("tls/key.pem", leaf_key.serialize_pem().as_bytes());
}

/// pip and uv over HTTPS with a private CA, configured as docs/python.md says (pip `--cert` /
/// `PIP_CERT`, uv `SSL_CERT_FILE`), install a locked chain; without the CA both refuse.
#[test]
fn pip_and_uv_install_over_https_with_a_private_ca() {
    let mut world = World::prepared(1, 1);
    write_test_ca(&world);
    let mut config = world.config();
    config.tls = Some(airlock_server::config::TlsFiles {
        cert: world.path("tls/chain.pem"),
        key: world.path("tls/key.pem"),
    });
    world.server = Some(Server::start_tls(config));
    let url = world.url();
    assert!(url.starts_with("https://"));
    let dir = world.path("wheels");
    build_wheel(&dir, &WheelSpec::new("alpha", "1.0", &["beta"]));
    build_wheel(&dir, &WheelSpec::new("beta", "1.0", &[]));
    let ca = ["--ca-cert", "tls/ca.pem"];
    let publish = [
        &ca[..],
        &[
            "publish",
            "--wheels",
            "wheels",
            "--key",
            "keys/pub1.key",
            "--root",
            "root.cbor",
            "--server",
            &url,
            "--token",
            &world.publish_token,
        ],
    ]
    .concat();
    world.cli(&publish).ok();
    world.write("req.txt", b"alpha\n");
    let lock = [
        &ca[..],
        &[
            "lock",
            "req.txt",
            "--python-version",
            "3.11",
            "--server",
            &url,
            "--root",
            "root.cbor",
            "-o",
            "lock.txt",
        ],
    ]
    .concat();
    world.cli(&lock).ok();
    let lock_file = world.path("lock.txt");
    let lock_file = lock_file.to_str().unwrap();
    let ca_file = world.path("tls/ca.pem");
    let ca_file = ca_file.to_str().unwrap();
    let index = format!("{url}/simple/");
    let envs = world.path("envs");

    let target = Target::new(&envs, "pip-tls");
    let run = target
        .pip(&["install", "--retries", "0", "--require-hashes", "--index-url", &index, "-r", lock_file], &[]);
    assert!(!run.ok, "pip trusted an unknown CA: {}", run.output);
    let run = target.pip(
        &["install", "--require-hashes", "--index-url", &index, "-r", lock_file],
        &[("PIP_CERT", ca_file)],
    );
    assert!(run.ok, "{}", run.output);
    assert_eq!(target.installed("beta").as_deref(), Some("1.0"));

    let target = Target::new(&envs, "uv-tls");
    let run = target.uv_pip(
        &["install", "--require-hashes", "--index-url", &index, "-r", lock_file],
        &[("UV_HTTP_RETRIES", "0")],
    );
    assert!(!run.ok, "uv trusted an unknown CA: {}", run.output);
    let run = target.uv_pip(
        &["install", "--require-hashes", "--index-url", &index, "-r", lock_file],
        &[("SSL_CERT_FILE", ca_file)],
    );
    assert!(run.ok, "{}", run.output);
    assert_eq!(target.installed("alpha").as_deref(), Some("1.0"));
}

/// A wheel with a local version (`1.0+cpu`, as torch publishes): pip asks for its file with the
/// `+` percent-encoded, and gets it.
#[test]
fn a_local_version_wheel_installs_with_pip() {
    let world = World::new(1, 1);
    build_wheel(&world.path("local"), &WheelSpec::new("eps", "1.0+cpu", &[]));
    publish_wheels(&world, "local").ok();
    let index = format!("{}/simple/", world.url());
    let target = Target::new(&world.path("envs"), "pip-local");
    let run = target.pip(&["install", "--index-url", &index, "eps==1.0+cpu"], &[]);
    assert!(run.ok, "{}", run.output);
    assert_eq!(target.installed("eps").as_deref(), Some("1.0+cpu"));
}

/// A release that lists a wheel named after another project (signed, logged) never offers it:
/// not on its page, not by file URL, not in a wheelhouse; installers go by the file name. And a
/// wheel whose Requires-Dist does not parse is refused at publish, naming the line.
#[test]
fn a_wheel_named_after_another_project_is_never_offered() {
    let world = World::new(1, 1);
    let foreign = build_wheel(&world.path("foreign"), &WheelSpec::new("requests", "99.0", &[]));
    let url = world.url();
    world.cli(&["upload", foreign.to_str().unwrap(), "--server", &url, "--token", &world.publish_token]).ok();
    let digests = airlock_client::publish::hash_file(&foreign).unwrap();
    let envelope = airlock_client::statements::release(
        airlock_proto::Kind::Wheel,
        airlock_proto::PackageName::new(airlock_proto::Kind::Wheel, "evil").unwrap(),
        airlock_proto::Version::new("1.0").unwrap(),
        vec![airlock_client::statements::file_entry(
            airlock_proto::FileName::new("requests-99.0-py3-none-any.whl").unwrap(),
            digests,
        )],
        airlock_proto::Metadata::default(),
        airlock_proto::clock::system_now(),
    )
    .unwrap();
    let (status, body) = world.submit_signed_by_publisher(envelope);
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
    let page: serde_json::Value =
        serde_json::from_slice(&get(&url, "/simple/evil/", Some(PIP_ACCEPT)).2).unwrap();
    assert_eq!(page["files"], serde_json::json!([]));
    let path = format!("/files/blake3/{}/requests-99.0-py3-none-any.whl", digests.blake3.to_hex());
    assert_eq!(get(&url, &path, None).0, 404);
    world.cli(&["wheelhouse", "export", "house", "--server", &url, "--root", "root.cbor"]).ok();
    assert!(!world.path("house/requests-99.0-py3-none-any.whl").exists());

    build_wheel(&world.path("bad-requires"), &WheelSpec::new("broken", "1.0", &["six >=1.4.*"]));
    let run = publish_wheels(&world, "bad-requires").code(1);
    assert!(run.stderr.contains("Requires-Dist \"six >=1.4.*\""), "{}", run.stderr);
}

/// Yanked and pre-release versions are decided per project over every requirement, as pip and
/// uv do: an exact pin of a yanked version holds even when another requirement asks for a range,
/// and a pre-release named by one requirement may satisfy another's range.
#[test]
fn lock_decides_yanked_and_pre_releases_over_all_requirements_of_a_project() {
    let world = World::new(1, 1);
    let dir = world.path("wheels");
    build_wheel(&dir, &WheelSpec::new("foo", "1.0", &[]));
    build_wheel(&dir, &WheelSpec::new("bar", "1.0", &["foo>=0.5"]));
    build_wheel(&dir, &WheelSpec::new("pre", "1.5", &[]));
    build_wheel(&dir, &WheelSpec::new("pre", "2.0b1", &[]));
    build_wheel(&dir, &WheelSpec::new("uses-pre", "1.0", &["pre>=1"]));
    publish_wheels(&world, "wheels").ok();
    lifecycle(&world, "yank", "foo==1.0", &["--reason", "bad"]);
    let url = world.url();
    let lock = |requirements: &[u8]| {
        world.write("req.txt", requirements);
        world.cli(&["lock", "req.txt", "--server", &url, "--root", "root.cbor", "-o", "lock.txt"]).ok();
        std::fs::read_to_string(world.path("lock.txt")).unwrap()
    };
    let text = lock(b"foo==1.0\nbar\n");
    assert!(text.contains("foo==1.0") && text.contains("bar==1.0"), "{text}");
    let text = lock(b"pre>=2.0b1\nuses-pre\n");
    assert!(text.contains("pre==2.0b1"), "{text}");
    // Without an exact pin, the yanked version is not taken.
    world.write("req.txt", b"bar\n");
    let run = world.cli(&["lock", "req.txt", "--server", &url, "--root", "root.cbor", "-o", "lock.txt"]);
    assert_ne!(run.code, 0);
    assert!(run.stderr.contains("foo: 1.0 (yanked)"), "{}", run.stderr);
}
