//! Support code shared by the benchmarks (`transfer`, `mirror`, `index`, `comfy` and `scale`),
//! included by each with `mod common;`: the temporary world (a data directory made by `airlockd
//! init`, a root signed in-process, a publish token), a small blocking HTTP/1.1 client over one
//! keep-alive connection with a blob upload, `airlockd` child processes that are stopped when
//! dropped, and the release `airlock` CLI.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use airlock_keys::{read_public_key, sign_envelope, PublicKey, SecretKey};
use airlock_proto::{Envelope, PayloadType, PublicKeyBytes, Role, Roles, Root, Statement};
use airlock_server::auth::Scope;
use airlock_server::cli::token_create;
use airlock_server::registry::LOG_PUB_FILE;
use anyhow::{bail, ensure, Context};

pub mod download;
pub mod generate;
pub mod nginx;
pub mod tls;

pub const KIB: usize = 1 << 10;
pub const MIB: u64 = 1 << 20;
/// No single socket read or write may stall longer than this.
const IO_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a server may take to start answering (a first start over a generated log of a
/// million leaves verifies every one of them).
const START_TIMEOUT: Duration = Duration::from_secs(300);

/// Runs a benchmark's body and turns an error into a message and a failing exit code.
pub fn exit_with(run: impl FnOnce() -> anyhow::Result<()>) -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// The positional arguments after `cargo bench ... --` (flags such as `--bench` are ignored);
/// `-h`/`--help` prints `usage` and exits.
pub fn positional_args(usage: &str) -> Vec<String> {
    let all: Vec<String> = std::env::args().skip(1).collect();
    if all.iter().any(|a| a == "-h" || a == "--help") {
        println!("usage: {usage}");
        std::process::exit(0);
    }
    all.into_iter().filter(|a| !a.starts_with('-')).collect()
}

/// Positional argument `index` as a number, or `default` when absent.
pub fn number_arg<T: std::str::FromStr>(
    args: &[String],
    index: usize,
    what: &str,
    default: T,
) -> anyhow::Result<T> {
    match args.get(index) {
        Some(text) => text.parse().map_err(|_| anyhow::anyhow!("{what}: {text:?} is not a number")),
        None => Ok(default),
    }
}

/// The median of `values` (the mean of the middle two for an even count).
pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    if sorted.len() % 2 == 1 {
        sorted[mid]
    } else {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    }
}

pub fn mb_per_s(bytes: u64, time: Duration) -> f64 {
    bytes as f64 / time.as_secs_f64() / 1e6
}

pub fn now() -> u64 {
    airlock_proto::clock::system_now()
}

// ---------------------------------------------------------------------------------------------
// Worlds: data directory, keys, signed root, token
// ---------------------------------------------------------------------------------------------

pub struct World {
    pub dir: PathBuf,
    pub data: PathBuf,
    pub root_file: PathBuf,
    pub publisher: SecretKey,
    pub token: String,
}

impl World {
    /// A world in `dir` (created if missing); `token_label` names its publish token.
    pub fn create(dir: &Path, token_label: &str) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
        let data = dir.join("data");
        airlockd_init(&data)?;
        let root_key = SecretKey::generate();
        let publisher = SecretKey::generate();
        let log_key = read_public_key(&data.join(LOG_PUB_FILE)).context("read the log key")?;
        let role = |key: &PublicKey| Role { keys: vec![key.id()], threshold: 1 };
        let root = Root {
            payload_type: PayloadType::Root,
            origin: "bench.airlock".to_owned(),
            version: 1,
            expires: now() + 86_400,
            previous: None,
            max_checkpoint_validity: 45 * 86_400,
            keys: [root_key.public(), publisher.public(), log_key]
                .iter()
                .map(|key| PublicKeyBytes(key.to_bytes()))
                .collect(),
            roles: Roles {
                root: role(&root_key.public()),
                publisher: role(&publisher.public()),
                log: role(&log_key),
            },
            witnesses: Vec::new(),
            witness_groups: Vec::new(),
            witness_quorum: None,
            key_names: Vec::new(),
        };
        let root_file = dir.join("root.cbor");
        std::fs::write(&root_file, signed(Statement::Root(root), &root_key)?.to_bytes()?)?;
        let token = token_create(&data, Scope::Publish, token_label)?;
        Ok(Self { dir: dir.to_owned(), data, root_file, publisher, token })
    }
}

/// The release `airlock` beside the release `airlockd`, built when missing or stale (cargo
/// builds only the binaries of the package benchmarked, and `airlock` is in another package).
pub fn airlock_bin() -> anyhow::Result<PathBuf> {
    let status = Command::new(env!("CARGO"))
        .args(["build", "--release", "--quiet", "-p", "airlock-cli", "--bin", "airlock"])
        .status()
        .context("run cargo build for the airlock CLI")?;
    ensure!(status.success(), "building the airlock CLI failed");
    Ok(Path::new(env!("CARGO_BIN_EXE_airlockd")).with_file_name("airlock"))
}

/// `airlockd init` (that is, `airlock_server::cli::init`) in a subprocess, so that its
/// "initialised ..." lines stay out of the benchmark's output.
pub fn airlockd_init(data: &Path) -> anyhow::Result<()> {
    let output = Command::new(env!("CARGO_BIN_EXE_airlockd"))
        .arg("init")
        .arg("--data")
        .arg(data)
        .output()
        .context("run airlockd init")?;
    ensure!(
        output.status.success(),
        "airlockd init failed: {}",
        String::from_utf8_lossy(&output.stderr).trim()
    );
    Ok(())
}

/// `statement` in an envelope signed by `key`.
pub fn signed(statement: Statement, key: &SecretKey) -> anyhow::Result<Envelope> {
    let (payload_type, payload) = statement.encode()?;
    let mut envelope = Envelope::unsigned(payload_type.as_str(), payload);
    sign_envelope(&mut envelope, key);
    Ok(envelope)
}

// ---------------------------------------------------------------------------------------------
// The client: blocking HTTP/1.1 over one keep-alive connection
// ---------------------------------------------------------------------------------------------

pub struct Client {
    addr: SocketAddr,
    token: Option<String>,
    conn: Option<BufReader<TcpStream>>,
}

impl Client {
    pub fn new(addr: SocketAddr, token: Option<String>) -> Self {
        Self { addr, token, conn: None }
    }

    /// Logs the release `name` 1.0 of wheel file `file` with `digests` (an uploaded blob),
    /// signed by `world`'s publisher.
    pub fn log_wheel_release(
        &mut self,
        world: &World,
        name: &str,
        file: &str,
        digests: airlock_client::publish::FileDigests,
    ) -> anyhow::Result<()> {
        use airlock_proto::{FileName, Kind, Metadata, PackageName, Version};
        let mut envelope = airlock_client::publish::release_envelope(
            Kind::Wheel,
            PackageName::new(Kind::Wheel, name)?,
            Version::new("1.0")?,
            (FileName::new(file)?, digests),
            Metadata::default(),
            now(),
        )?;
        sign_envelope(&mut envelope, &world.publisher);
        let (status, body) =
            self.request("POST", "/v1/statements", Some("application/cbor"), &envelope.to_bytes()?)?;
        ensure!(status == 201, "release of {name}: HTTP {status}: {}", String::from_utf8_lossy(&body));
        Ok(())
    }

    /// Uploads `bytes` as a blob (`PUT /v1/blobs/blake3/<hex>`) and returns their digests, as a
    /// release statement names them.
    pub fn put_blob(&mut self, bytes: &[u8]) -> anyhow::Result<airlock_client::publish::FileDigests> {
        use sha2::Digest as _;
        let digests = airlock_client::publish::FileDigests {
            size: bytes.len() as u64,
            blake3: airlock_proto::Digest::of(bytes),
            sha256: airlock_proto::Sha256(sha2::Sha256::digest(bytes).into()),
        };
        let (status, body) = self.request(
            "PUT",
            &format!("/v1/blobs/blake3/{}", digests.blake3.to_hex()),
            Some("application/octet-stream"),
            bytes,
        )?;
        ensure!(
            status == 201 || status == 200,
            "blob upload: HTTP {status}: {}",
            String::from_utf8_lossy(&body)
        );
        Ok(digests)
    }

    /// One request; the status and body (none for `HEAD`). A request on a reused connection
    /// that fails (the server may have closed it while idle) is retried once on a fresh one:
    /// every request the benchmarks make this way is idempotent.
    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: &[u8],
    ) -> anyhow::Result<(u16, Vec<u8>)> {
        let headers: Vec<(&str, &str)> = content_type.map(|c| ("Content-Type", c)).into_iter().collect();
        self.send(method, path, &headers, body).map(|(status, _, answer)| (status, answer))
    }

    /// A request without a body, with extra request headers; the status, the response headers
    /// (lowercase names) and the body. (Only the index benchmark uses it.)
    #[allow(dead_code)]
    pub fn request_with(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> anyhow::Result<Answer> {
        self.send(method, path, headers, &[])
    }

    fn send(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> anyhow::Result<Answer> {
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\n", self.addr);
        if let Some(token) = &self.token {
            head += &format!("Authorization: Bearer {token}\r\n");
        }
        for (name, value) in headers {
            head += &format!("{name}: {value}\r\n");
        }
        head += &format!("Content-Length: {}\r\n\r\n", body.len());
        let head_only = method == "HEAD";
        loop {
            let reused = self.conn.is_some();
            let mut conn = match self.conn.take() {
                Some(conn) => conn,
                None => BufReader::with_capacity(64 * KIB, connect(self.addr)?),
            };
            match exchange(&mut conn, &head, body, head_only) {
                Ok((answer, keep_alive)) => {
                    if keep_alive {
                        self.conn = Some(conn);
                    }
                    return Ok(answer);
                }
                Err(_) if reused => continue,
                Err(e) => return Err(e.context(format!("{method} {path}"))),
            }
        }
    }
}

/// A connection to `addr`: `TCP_NODELAY`, and read and write timeouts.
pub fn connect(addr: SocketAddr) -> anyhow::Result<TcpStream> {
    let stream = TcpStream::connect(addr).with_context(|| format!("connect to {addr}"))?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    Ok(stream)
}

/// Sends a request and reads its response: status, headers (lowercase names), body, and whether
/// the connection stays open.
/// `head_only` (a `HEAD` request): the response has no body, whatever its headers say.
fn exchange(
    conn: &mut BufReader<TcpStream>,
    head: &str,
    body: &[u8],
    head_only: bool,
) -> anyhow::Result<(Answer, bool)> {
    let stream = conn.get_mut();
    if body.len() <= 64 * KIB {
        // One write for small requests.
        let mut request = Vec::with_capacity(head.len() + body.len());
        request.extend_from_slice(head.as_bytes());
        request.extend_from_slice(body);
        stream.write_all(&request)?;
    } else {
        stream.write_all(head.as_bytes())?;
        stream.write_all(body)?;
    }

    let mut line = String::new();
    ensure!(conn.read_line(&mut line)? > 0, "connection closed before the response");
    let status: u16 = line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("bad status line: {:?}", line.trim_end()))?;
    let mut length = None;
    let mut chunked = false;
    let mut keep_alive = !line.starts_with("HTTP/1.0");
    let mut headers = HashMap::new();
    loop {
        line.clear();
        ensure!(conn.read_line(&mut line)? > 0, "connection closed in the response head");
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        let Some((name, value)) = header.split_once(':') else { continue };
        let (name, value) = (name.trim(), value.trim());
        headers.insert(name.to_ascii_lowercase(), value.to_owned());
        if name.eq_ignore_ascii_case("content-length") {
            length = Some(value.parse::<usize>().context("bad Content-Length")?);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.to_ascii_lowercase().contains("chunked");
        } else if name.eq_ignore_ascii_case("connection") {
            keep_alive = !value.eq_ignore_ascii_case("close")
                && (keep_alive || value.eq_ignore_ascii_case("keep-alive"));
        }
    }
    let mut answer = Vec::new();
    if head_only {
        // No body follows a response to HEAD.
    } else if chunked {
        loop {
            line.clear();
            ensure!(conn.read_line(&mut line)? > 0, "connection closed in a chunked body");
            let size_text = line.trim_end().split(';').next().unwrap_or_default().trim();
            let size = usize::from_str_radix(size_text, 16).context("bad chunk size")?;
            if size == 0 {
                // Trailers, up to the blank line.
                loop {
                    line.clear();
                    ensure!(conn.read_line(&mut line)? > 0, "connection closed in the trailers");
                    if line.trim_end().is_empty() {
                        break;
                    }
                }
                break;
            }
            let start = answer.len();
            answer.resize(start + size, 0);
            conn.read_exact(&mut answer[start..])?;
            let mut crlf = [0u8; 2];
            conn.read_exact(&mut crlf)?;
        }
    } else if let Some(length) = length {
        answer.resize(length, 0);
        conn.read_exact(&mut answer)?;
    } else {
        conn.read_to_end(&mut answer)?;
        keep_alive = false;
    }
    Ok(((status, headers, answer), keep_alive))
}

/// A response: status, headers (lowercase names) and body.
pub type Answer = (u16, HashMap<String, String>, Vec<u8>);

// ---------------------------------------------------------------------------------------------
// Server processes
// ---------------------------------------------------------------------------------------------

/// A server child process; stopped (SIGTERM, then SIGKILL after 5 s) when dropped.
pub struct ServerProcess {
    pub name: &'static str,
    pub child: Child,
    pub addr: SocketAddr,
    /// Where the server's stderr (or error log) goes, quoted when it fails.
    pub log: PathBuf,
}

impl ServerProcess {
    /// `airlockd serve` of `world` (called `name` in messages), once it answers `/healthz`.
    pub fn start_airlockd(name: &'static str, world: &World) -> anyhow::Result<Self> {
        let mut server = Self::spawn_airlockd(name, world, &[])?;
        server.wait_ready("/healthz")?;
        Ok(server)
    }

    /// `airlockd serve` of `world` with `extra` arguments, not yet waited for.
    pub fn spawn_airlockd(name: &'static str, world: &World, extra: &[&OsStr]) -> anyhow::Result<Self> {
        let addr = free_addr()?;
        let log = world.dir.join(format!("{name}.log"));
        let mut command = Command::new(env!("CARGO_BIN_EXE_airlockd"));
        command.arg("serve").arg("--data").arg(&world.data).arg("--listen").arg(addr.to_string());
        command.arg("--root").arg(&world.root_file).args(extra);
        Self::spawn(name, command, addr, log)
    }

    /// Spawns `command` (listening on `addr`) with its stderr going to `log`.
    pub fn spawn(
        name: &'static str,
        mut command: Command,
        addr: SocketAddr,
        log: PathBuf,
    ) -> anyhow::Result<Self> {
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&log)?)
            .spawn()
            .with_context(|| format!("start {name}"))?;
        Ok(Self { name, child, addr, log })
    }

    /// Waits until `HEAD path` answers 200, or fails with the server's log if it exits.
    pub fn wait_ready(&mut self, path: &str) -> anyhow::Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        let mut last = String::new();
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                bail!("{} exited at start ({status}):\n{}", self.name, self.log_tail());
            }
            match Client::new(self.addr, None).request("HEAD", path, None, &[]) {
                Ok((200, _)) => return Ok(()),
                Ok((status, _)) => last = format!("HTTP {status}"),
                Err(e) => last = format!("{e:#}"),
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        bail!("{} did not become ready on {} ({last}):\n{}", self.name, self.addr, self.log_tail())
    }

    /// The last 20 lines of the server's log.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Peak resident set size (`VmHWM`) in MiB.
    pub fn peak_rss_mib(&self) -> anyhow::Result<f64> {
        let path = format!("/proc/{}/status", self.child.id());
        let status = std::fs::read_to_string(&path).with_context(|| format!("read {path}"))?;
        let kib: f64 = status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .with_context(|| format!("no VmHWM line in {path}"))?;
        Ok(kib / 1024.0)
    }

    /// CPU seconds the server has used so far: (user, system).
    pub fn cpu_seconds(&self) -> anyhow::Result<(f64, f64)> {
        cpu_seconds_of(self.child.id())
    }
}

/// CPU seconds process `pid` has used so far: (user, system).
pub fn cpu_seconds_of(pid: u32) -> anyhow::Result<(f64, f64)> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).with_context(|| format!("read {path}"))?;
    // Fields after the command name (which ends at the last ')'): utime and stime are the 12th
    // and 13th, in clock ticks.
    let fields: Vec<&str> =
        stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("").split_whitespace().collect();
    let ticks = |i: usize| -> anyhow::Result<f64> {
        Ok(fields.get(i).with_context(|| format!("short {path}"))?.parse::<f64>()? / CLOCK_TICKS)
    };
    Ok((ticks(11)?, ticks(12)?))
}

/// Clock ticks a second in /proc (USER_HZ, 100 on Linux).
const CLOCK_TICKS: f64 = 100.0;

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        // SIGTERM by pid lets nginx's master stop its worker and airlockd drain; SIGKILL after.
        let pid = self.child.id().to_string();
        let termed = Command::new("kill")
            .args(["-TERM", &pid])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if termed {
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if matches!(self.child.try_wait(), Ok(Some(_))) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free loopback port (bound, then released for the server to take).
pub fn free_addr() -> anyhow::Result<SocketAddr> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}
