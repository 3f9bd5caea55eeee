//! Test harness: a registry served in-process on 127.0.0.1:0 and the real `airlock` CLI.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use airlock_server::{auth, registry, Config};

/// The `airlock` binary, built beside `airlockd`. Built on demand when it is missing or older
/// than `airlockd` or than any source of the client library or CLI (cargo builds only the
/// binaries of packages with integration tests, and `airlock` is in another package).
pub fn airlock_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let server = Path::new(env!("CARGO_BIN_EXE_airlockd"));
        let path = server.with_file_name("airlock");
        let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root");
        let mut inputs = vec![server.to_path_buf()];
        let mut dirs = vec![workspace.join("client/src"), workspace.join("client/cli/src")];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                let entry = entry.path();
                if entry.is_dir() {
                    dirs.push(entry);
                } else {
                    inputs.push(entry);
                }
            }
        }
        let newest_input = inputs.iter().filter_map(|p| modified(p)).max();
        let stale = match (modified(&path), newest_input) {
            (Some(binary), Some(input)) => binary < input,
            _ => true,
        };
        if stale {
            let status = Command::new(env!("CARGO"))
                .args(["build", "-p", "airlock-cli", "--bin", "airlock"])
                .status()
                .expect("run cargo build for the airlock CLI");
            assert!(status.success(), "building the airlock CLI failed");
        }
        path
    })
}

/// Output of a CLI run.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(output: Output) -> Self {
        Self {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Asserts success and returns self.
    #[track_caller]
    pub fn ok(self) -> Self {
        assert_eq!(self.code, 0, "command failed:\nstdout: {}\nstderr: {}", self.stdout, self.stderr);
        self
    }

    /// Asserts the exit code.
    #[track_caller]
    pub fn code(self, code: i32) -> Self {
        assert_eq!(
            self.code, code,
            "unexpected exit code:\nstdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        self
    }

    /// Asserts stderr mentions `text`.
    #[track_caller]
    pub fn says(self, text: &str) -> Self {
        assert!(self.stderr.contains(text), "stderr lacks {text:?}:\n{}", self.stderr);
        self
    }
}

/// A server running in a background thread; stopped on drop.
pub struct Server {
    pub url: String,
    pub addr: std::net::SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<anyhow::Result<()>>>,
}

impl Server {
    /// Starts `airlock_server::run` on 127.0.0.1:0 (plain HTTP).
    pub fn start(config: Config) -> Self {
        let server = Self::spawn(config);
        server.wait_ready();
        server
    }

    /// Starts a server whose config carries TLS files; readiness is checked over TCP only.
    pub fn start_tls(config: Config) -> Self {
        let mut server = Self::spawn(config);
        server.url = server.url.replace("http://", "https://");
        for _ in 0..200 {
            if std::net::TcpStream::connect(server.addr).is_ok() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(25));
        }
        server
    }

    fn spawn(config: Config) -> Self {
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime =
                tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
                addr_tx.send(listener.local_addr()?)?;
                airlock_server::run(listener, config, async {
                    let _ = stop_rx.await;
                })
                .await
            })
        });
        let addr = addr_rx.recv().expect("server thread reports its address");
        Self { url: format!("http://{addr}"), addr, stop: Some(stop), thread: Some(thread) }
    }

    fn wait_ready(&self) {
        for _ in 0..200 {
            if http_get(&self.url, "/healthz").0 == 200 {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(25));
        }
        panic!("server at {} did not become ready", self.url);
    }

    /// Stops the server and waits for it.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            thread.join().expect("server thread").expect("server ran cleanly");
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A blocking GET returning (status, body), for readiness checks and simple probes.
pub fn http_get(base: &str, path: &str) -> (u16, Vec<u8>) {
    http_request("GET", base, path, None, &[])
}

/// A blocking GET with an optional `Accept` header: (status, headers with lowercase names, body).
pub fn http_get_with(
    base: &str,
    path: &str,
    accept: Option<&str>,
) -> (u16, std::collections::HashMap<String, String>, Vec<u8>) {
    use std::io::{Read, Write};
    let host = base.trim_start_matches("http://");
    let Ok(mut stream) = std::net::TcpStream::connect(host) else {
        return (0, Default::default(), Vec::new());
    };
    let accept = accept.map(|a| format!("Accept: {a}\r\n")).unwrap_or_default();
    let head = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n{accept}Connection: close\r\n\r\n");
    if stream.write_all(head.as_bytes()).is_err() {
        return (0, Default::default(), Vec::new());
    }
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let text_end = response.windows(4).position(|w| w == b"\r\n\r\n").map_or(response.len(), |p| p + 4);
    let head_text = String::from_utf8_lossy(&response[..text_end]).into_owned();
    let mut lines = head_text.lines();
    let status = lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|s| s.parse().ok()).unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_lowercase(), v.trim().to_owned()))
        .collect::<std::collections::HashMap<_, _>>();
    let mut body = response[text_end..].to_vec();
    if headers.get("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        body = dechunk(&body);
    }
    (status, headers, body)
}

/// A minimal blocking HTTP/1.1 request (Connection: close), enough for probes in tests.
pub fn http_request(
    method: &str,
    base: &str,
    path: &str,
    token: Option<&str>,
    body: &[u8],
) -> (u16, Vec<u8>) {
    use std::io::{Read, Write};
    let host = base.trim_start_matches("http://");
    let Ok(mut stream) = std::net::TcpStream::connect(host) else { return (0, Vec::new()) };
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\n{auth}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    if stream.write_all(head.as_bytes()).and_then(|()| stream.write_all(body)).is_err() {
        return (0, Vec::new());
    }
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let text_end = response.windows(4).position(|w| w == b"\r\n\r\n").map_or(response.len(), |p| p + 4);
    let status = std::str::from_utf8(&response[..text_end.min(response.len())])
        .ok()
        .and_then(|t| t.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let head_text = String::from_utf8_lossy(&response[..text_end]).to_lowercase();
    let mut body = response[text_end..].to_vec();
    if head_text.contains("transfer-encoding: chunked") {
        body = dechunk(&body);
    }
    (status, body)
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(line_end) = data.windows(2).position(|w| w == b"\r\n") else { return out };
        let size = usize::from_str_radix(std::str::from_utf8(&data[..line_end]).unwrap_or("0").trim(), 16)
            .unwrap_or(0);
        if size == 0 {
            return out;
        }
        let start = line_end + 2;
        out.extend_from_slice(&data[start..(start + size).min(data.len())]);
        data = &data[(start + size + 2).min(data.len())..];
    }
}

/// A complete test world: keys, a signed root, an initialised data directory, tokens, and a
/// running server; the CLI runs with its own state directory.
pub struct World {
    pub dir: tempfile::TempDir,
    pub server: Option<Server>,
    pub publish_token: String,
    pub read_token: String,
}

impl World {
    /// `publishers` publisher keys with a threshold of `threshold`, and a running server.
    pub fn new(publishers: usize, threshold: u32) -> Self {
        let mut world = Self::prepared(publishers, threshold);
        world.server = Some(Server::start(world.config()));
        world
    }

    /// Keys, root, data directory and tokens, but no server.
    pub fn prepared(publishers: usize, threshold: u32) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let world_dir = dir.path().to_path_buf();
        let data = world_dir.join("data");
        airlock_server::cli::init(&data).expect("airlockd init");
        let mut world = Self { dir, server: None, publish_token: String::new(), read_token: String::new() };
        world.cli(&["key", "generate", "root1", "--dir", "keys"]).ok();
        for i in 1..=publishers {
            world.cli(&["key", "generate", &format!("pub{i}"), "--dir", "keys"]).ok();
        }
        let mut args: Vec<String> =
            ["root", "create", "--origin", "test.airlock", "--root-key", "keys/root1.pub"]
                .iter()
                .map(|s| (*s).to_owned())
                .collect();
        for i in 1..=publishers {
            args.push("--publisher-key".into());
            args.push(format!("keys/pub{i}.pub"));
        }
        args.extend(["--publisher-threshold".into(), threshold.to_string(), "--log-key".into()]);
        args.push(data.join(registry::LOG_PUB_FILE).display().to_string());
        args.extend(["-o".into(), "root.cbor".into()]);
        world.cli(&args.iter().map(String::as_str).collect::<Vec<_>>()).ok();
        world.cli(&["root", "sign", "root.cbor", "--key", "keys/root1.key"]).ok();
        {
            let token = |scope| airlock_server::cli::token_create(&data, scope, "test").expect("token");
            world.publish_token = token(auth::Scope::Publish);
            world.read_token = token(auth::Scope::Read);
        }
        world
    }

    /// Replaces the world's root (before its server starts) with one that also names witnesses:
    /// for each `name` a key pair `keys/<name>.key|.pub` and a witness `<name>.example`, with
    /// `quorum`. Made through `airlock key generate`, `root create --witness` and `root sign`.
    pub fn witnessed_root(&self, witnesses: &[&str], quorum: u32) {
        let mut args: Vec<String> = Vec::new();
        for name in witnesses {
            self.cli(&["key", "generate", name, "--dir", "keys"]).ok();
            args.extend(["--witness".to_owned(), format!("{name}.example=keys/{name}.pub")]);
        }
        args.extend([
            "--witness-quorum".to_owned(),
            quorum.to_string(),
            "-o".to_owned(),
            "root.cbor".to_owned(),
        ]);
        self.root_create(&args.iter().map(String::as_str).collect::<Vec<_>>()).ok();
        self.cli(&["root", "sign", "root.cbor", "--key", "keys/root1.key"]).ok();
    }

    /// `airlock root create` over the world's keys (root1, pub1 and the server's log key, origin
    /// `test.airlock`) with `extra` arguments (which name the output with -o); unsigned.
    pub fn root_create(&self, extra: &[&str]) -> Run {
        let log_pub = self.path("data/log.pub").display().to_string();
        let mut args = vec![
            "root",
            "create",
            "--origin",
            "test.airlock",
            "--root-key",
            "keys/root1.pub",
            "--publisher-key",
            "keys/pub1.pub",
            "--log-key",
            &log_pub,
        ];
        args.extend_from_slice(extra);
        self.cli(&args)
    }

    /// `airlock root create --from FROM -o OUT` with `extra` arguments, signed by root1 as the
    /// next root of `from` (root1 holds the root role of both).
    pub fn root_next(&self, from: &str, out: &str, extra: &[&str]) {
        let mut args = vec!["root", "create", "--from", from, "-o", out];
        args.extend_from_slice(extra);
        self.cli(&args).ok();
        self.cli(&["root", "sign", out, "--key", "keys/root1.key", "--previous", from]).ok();
    }

    /// Signs `envelope` with publisher 1's key and posts it to `POST /v1/statements`:
    /// (status, body).
    pub fn submit_signed_by_publisher(&self, mut envelope: airlock_proto::Envelope) -> (u16, Vec<u8>) {
        let key = airlock_keys::read_secret_key(&self.path("keys/pub1.key")).expect("publisher key");
        airlock_keys::sign_envelope(&mut envelope, &key);
        let leaf = envelope.to_bytes().expect("envelope bytes");
        http_request("POST", &self.url(), "/v1/statements", Some(&self.publish_token), &leaf)
    }

    /// The server configuration for this world.
    pub fn config(&self) -> Config {
        let mut config = Config::new(self.path("data"));
        config.root = Some(self.path("root.cbor"));
        config
    }

    /// A path inside the world's directory.
    pub fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    /// The running server's URL.
    pub fn url(&self) -> String {
        self.server.as_ref().expect("server running").url.clone()
    }

    /// Runs the CLI in the world's directory with its own state directory.
    pub fn cli(&self, args: &[&str]) -> Run {
        self.cli_env(args, &[])
    }

    /// `cli` with extra environment variables (such as [`faketime`]'s).
    pub fn cli_env(&self, args: &[&str], env: &[(&str, String)]) -> Run {
        let output = Command::new(airlock_bin())
            .args(args)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .current_dir(self.dir.path())
            .env("AIRLOCK_HOME", self.dir.path().join("state"))
            .env_remove("AIRLOCK_SERVER")
            .env_remove("AIRLOCK_TOKEN")
            .output()
            .expect("run airlock");
        Run::from(output)
    }

    /// An admin token for the world's server (made in its data directory, so before the server
    /// starts), also written to `admin.token` for `--admin-token-file`.
    pub fn admin_token(&self) -> String {
        let token = airlock_server::cli::token_create(&self.path("data"), auth::Scope::Admin, "ops")
            .expect("admin token");
        self.write("admin.token", token.as_bytes());
        token
    }

    /// Runs `airlockd ARGS` in the world's directory.
    pub fn airlockd(&self, args: &[&str]) -> Run {
        self.airlockd_env(args, &[])
    }

    /// Runs `airlockd ARGS` in the world's directory with extra environment variables.
    pub fn airlockd_env(&self, args: &[&str], env: &[(&str, String)]) -> Run {
        let output = Command::new(env!("CARGO_BIN_EXE_airlockd"))
            .args(args)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .current_dir(self.dir.path())
            .output()
            .expect("run airlockd");
        Run::from(output)
    }

    /// Writes a file in the world's directory.
    pub fn write(&self, relative: &str, bytes: &[u8]) -> PathBuf {
        let path = self.path(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(&path, bytes).expect("write file");
        path
    }

    /// `airlock publish` of `file` signed by publisher 1 against `url`, with `token` if given and
    /// `extra` arguments appended.
    #[allow(clippy::too_many_arguments)]
    pub fn publish_to(
        &self,
        url: &str,
        token: Option<&str>,
        file: &str,
        kind: &str,
        name: &str,
        version: &str,
        extra: &[&str],
    ) -> Run {
        let mut args = vec![
            "publish",
            file,
            "--kind",
            kind,
            "--name",
            name,
            "--version",
            version,
            "--key",
            "keys/pub1.key",
            "--root",
            "root.cbor",
            "--server",
            url,
        ];
        if let Some(token) = token {
            args.extend(["--token", token]);
        }
        args.extend_from_slice(extra);
        self.cli(&args)
    }

    /// `airlock publish` of `file` as a wheel signed by publisher 1, against the server.
    pub fn publish(&self, file: &str, name: &str, version: &str) -> Run {
        self.publish_to(&self.url(), Some(&self.publish_token), file, "wheel", name, version, &[])
    }

    /// `airlock publish --sign-only` of `file` signed by publisher 1 (uploading to the server):
    /// writes the signed statement to `out` without submitting it.
    pub fn sign_only(&self, file: &str, kind: &str, name: &str, version: &str, out: &str) -> Run {
        self.publish_to(
            &self.url(),
            Some(&self.publish_token),
            file,
            kind,
            name,
            version,
            &["--sign-only", "-o", out],
        )
    }

    /// `airlock pull` against `url` (the server or a proxy in front of it).
    pub fn pull_from(&self, url: &str, target: &str, output: &str) -> Run {
        self.cli(&["pull", target, "--server", url, "--root", "root.cbor", "-o", output])
    }

    /// `airlock pull` against the server.
    pub fn pull(&self, target: &str, output: &str) -> Run {
        let url = self.url();
        self.pull_from(&url, target, output)
    }

    /// The log size the server reports.
    pub fn log_size(&self) -> u64 {
        let (status, bytes) = http_get(&self.url(), "/v1/log/checkpoint");
        assert_eq!(status, 200);
        airlock_proto::Checkpoint::from_note_unverified(&bytes).expect("checkpoint note").size
    }
}

/// A checkpoint note for origin `test.airlock` claiming `size` and `root_hash`, issued at
/// `issued_at` and valid for an hour, signed by `key`: with the server's log key, a view a
/// compromised or lying server could produce.
pub fn signed_checkpoint(
    key: &airlock_keys::SecretKey,
    size: u64,
    root_hash: [u8; 32],
    issued_at: u64,
) -> Vec<u8> {
    let checkpoint = airlock_proto::Checkpoint {
        origin: "test.airlock".to_owned(),
        size,
        root_hash: airlock_proto::Hash32(root_hash),
        issued_at,
        expires_at: issued_at + 3600,
    };
    let mut note = airlock_proto::Note::new(checkpoint.to_text()).expect("checkpoint text");
    airlock_keys::sign_note(&mut note, "test.airlock", key).expect("sign");
    note.to_bytes()
}

/// Starts `airlockd serve --data DATA --listen 127.0.0.1:PORT --root root.cbor EXTRA...` in the
/// world's directory as a process (its log to `log`, or dropped) and waits until it answers.
pub fn spawn_airlockd(
    world: &World,
    data: &str,
    port: u16,
    extra: &[&str],
    log: Option<std::fs::File>,
) -> std::process::Child {
    spawn_airlockd_env(world, data, port, extra, log, &[])
}

/// The environment that runs a process `days` ahead of the system clock, through libfaketime
/// (Debian's `faketime` package, which `scripts/ensure-deps.sh` installs): the real binaries
/// with their real clocks read, only later.
pub fn faketime(days: u64) -> Vec<(&'static str, String)> {
    let lib = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";
    assert!(Path::new(lib).exists(), "{lib} is missing: apt-get install faketime");
    vec![
        ("LD_PRELOAD", lib.to_owned()),
        ("FAKETIME", format!("+{days}d")),
        ("FAKETIME_DONT_FAKE_MONOTONIC", "1".to_owned()),
    ]
}

/// `spawn_airlockd` with extra environment variables (such as [`faketime`]'s).
pub fn spawn_airlockd_env(
    world: &World,
    data: &str,
    port: u16,
    extra: &[&str],
    log: Option<std::fs::File>,
    env: &[(&str, String)],
) -> std::process::Child {
    let listen = format!("127.0.0.1:{port}");
    let child = Command::new(env!("CARGO_BIN_EXE_airlockd"))
        .args(["serve", "--data", data, "--listen", &listen, "--root", "root.cbor"])
        .args(extra)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .current_dir(world.dir.path())
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(log.map_or_else(std::process::Stdio::null, std::process::Stdio::from))
        .spawn()
        .expect("start airlockd");
    let url = format!("http://{listen}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while http_get(&url, "/healthz").0 != 200 {
        assert!(std::time::Instant::now() < deadline, "airlockd did not start");
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    child
}

/// One HTTP/1.1 response read off a keep-alive connection: the status line, the head in lower
/// case, and the body of its Content-Length (none when `head_only`, for a HEAD).
pub fn read_response(reader: &mut impl std::io::BufRead, head_only: bool) -> (String, String, Vec<u8>) {
    let mut status = String::new();
    reader.read_line(&mut status).unwrap();
    let mut head = String::new();
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        if line == "\r\n" {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().unwrap();
        }
        head.push_str(&line.to_ascii_lowercase());
    }
    let mut body = vec![0u8; if head_only { 0 } else { length }];
    reader.read_exact(&mut body).unwrap();
    (status.trim_end().to_owned(), head, body)
}
