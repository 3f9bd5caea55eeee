//! Running as a service: the sample config (`server/dist/airlockd.toml`) starts a real server
//! over TLS once its paths point at a test world, and the systemd unit
//! (`server/dist/airlockd.service`) passes `systemd-analyze verify` and scores below 3 in
//! `systemd-analyze security` where systemd is installed; the server sends `READY=1` and
//! `STOPPING=1` to `NOTIFY_SOCKET` for its `Type=notify`.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::harness::World;

fn dist(file: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("dist").join(file)).unwrap()
}

/// Replaces the value of `key = ...` on its line in a TOML text.
fn set(toml: &str, key: &str, value: &str) -> String {
    let prefix = format!("{key} = ");
    let mut found = false;
    let lines: Vec<String> = toml
        .lines()
        .map(|line| {
            if line.starts_with(&prefix) {
                found = true;
                format!("{prefix}{value}")
            } else {
                line.to_owned()
            }
        })
        .collect();
    assert!(found, "the sample config has no {key}");
    lines.join("\n")
}

#[test]
fn the_sample_config_is_accepted_whole_and_starts_a_tls_server() {
    let world = World::prepared(1, 1);
    // Every key parses (unknown keys are refused), mirror keys included once uncommented.
    let sample = dist("airlockd.toml");
    let parsed: airlock_server::config::FileConfig = toml::from_str(&sample).unwrap();
    assert_eq!(parsed.gc_grace_secs, Some(7 * 86_400));
    let mirror_keys: String =
        sample.lines().map(|l| l.strip_prefix("# ").unwrap_or(l)).collect::<Vec<_>>().join("\n");
    let mirror_keys = mirror_keys.replace("carry_kinds = [\"wheel\", \"node\"]", "carry_kinds = [\"wheel\"]");
    let mirror: Result<airlock_server::config::FileConfig, _> =
        toml::from_str(&mirror_keys.lines().filter(|l| l.contains(" = ")).collect::<Vec<_>>().join("\n"));
    assert!(mirror.is_ok(), "the commented mirror keys do not parse: {:?}", mirror.err());

    // The same file with its paths moved into the world serves over TLS.
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    world.write("tls/cert.pem", cert.cert.pem().as_bytes());
    world.write("tls/key.pem", cert.key_pair.serialize_pem().as_bytes());
    let port = crate::crash::free_port();
    let quoted = |relative: &str| format!("{:?}", world.path(relative).display().to_string());
    let mut config = sample;
    for (key, value) in [
        ("data", quoted("data")),
        ("root", quoted("root.cbor")),
        ("tls_cert", quoted("tls/cert.pem")),
        ("tls_key", quoted("tls/key.pem")),
        ("listen", format!("\"127.0.0.1:{port}\"")),
    ] {
        config = set(&config, key, &value);
    }
    world.write("airlockd.toml", config.as_bytes());
    let mut server = Command::new(env!("CARGO_BIN_EXE_airlockd"))
        .args(["serve", "--config", "airlockd.toml"])
        .current_dir(world.dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("https://127.0.0.1:{port}/healthz");
    let deadline = Instant::now() + Duration::from_secs(30);
    let answered = loop {
        let output = Command::new("curl")
            .args(["-sS", "--cacert", "tls/cert.pem", &url])
            .current_dir(world.dir.path())
            .output()
            .expect("curl (apt-get install curl)");
        if output.status.success() || Instant::now() > deadline {
            break output;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let _ = server.kill();
    let _ = server.wait();
    assert!(answered.status.success(), "{}", String::from_utf8_lossy(&answered.stderr));
}

#[test]
fn the_systemd_unit_passes_systemd_analyze_verify() {
    let Ok(version) = Command::new("systemd-analyze").arg("--version").output() else {
        eprintln!("skipped: systemd-analyze is not installed (apt-get install systemd)");
        return;
    };
    assert!(version.status.success());
    let world = World::prepared(1, 1);
    // The unit names the installed binary; verify checks that it exists, so point it at this build.
    let unit = dist("airlockd.service");
    assert!(unit.contains("ExecStart=/usr/local/bin/airlockd serve --config /etc/airlockd/airlockd.toml"));
    for hardening in
        ["NoNewPrivileges=yes", "ProtectSystem=strict", "StateDirectory=airlockd", "User=airlockd"]
    {
        assert!(unit.contains(hardening), "the unit lacks {hardening}");
    }
    let unit = unit.replace("/usr/local/bin/airlockd", env!("CARGO_BIN_EXE_airlockd"));
    let path = world.write("airlockd.service", unit.as_bytes());
    let output = Command::new("systemd-analyze").arg("verify").arg(&path).output().unwrap();
    let said =
        format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "systemd-analyze verify failed:\n{said}");
    assert!(!said.contains("airlockd.service:"), "systemd-analyze warns about the unit:\n{said}");
    // systemd's own exposure score of the sandbox (0 is best, 10 worst); "OK" is below 3.
    let security =
        Command::new("systemd-analyze").args(["security", "--offline=true"]).arg(&path).output().unwrap();
    let text = String::from_utf8_lossy(&security.stdout).into_owned();
    let Some(level) =
        text.lines().find_map(|l| l.split("Overall exposure level for airlockd.service: ").nth(1))
    else {
        eprintln!("skipped the exposure score: this systemd-analyze has no offline security check");
        return;
    };
    let score: f64 = level.split_whitespace().next().unwrap().parse().unwrap();
    assert!(score < 3.0, "exposure {score}:\n{text}");
}

#[test]
fn the_server_tells_systemd_it_is_ready_once_it_listens() {
    let world = World::prepared(1, 1);
    let socket_path = world.path("notify.sock");
    let socket = std::os::unix::net::UnixDatagram::bind(&socket_path).unwrap();
    socket.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let port = crate::crash::free_port();
    let env = [("NOTIFY_SOCKET", socket_path.display().to_string())];
    // Returns once /healthz answers; READY=1 was sent before the first accept.
    let mut server = crate::harness::spawn_airlockd_env(&world, "data", port, &[], None, &env);
    let mut buffer = [0u8; 64];
    let n = socket.recv(&mut buffer).expect("no readiness notification");
    assert_eq!(&buffer[..n], b"READY=1");
    // On SIGTERM it says it is stopping before it drains.
    let pid = server.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let n = socket.recv(&mut buffer).expect("no stopping notification");
    assert_eq!(&buffer[..n], b"STOPPING=1");
    let _ = server.wait();
}
