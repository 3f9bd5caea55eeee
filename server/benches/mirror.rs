//! Mirror and bundle benchmark: how fast an `airlockd` mirror catches up with its upstream, and
//! how fast a full bundle is exported and imported, on loopback.
//!
//! What it measures, in one run:
//! - **publish (primary)**: an `airlockd` primary in a fresh world receives RELEASES small
//!   releases, each a 2-8 KiB blob of random bytes (`PUT /v1/blobs/blake3/<hex>`) and then a
//!   signed release statement for it (`POST /v1/statements`), one package per release
//!   (`bench-pkg-00001 1.0`, ...). Four client threads, each on one keep-alive connection, share
//!   the work. The time from the first request to the last answer, and statements per second:
//!   the primary's publish rate (each answer comes after the blob or leaf is durable);
//! - **mirror sync**: a mirror (`airlockd serve --upstream URL --sync-interval 86400`, fresh data
//!   directory, the same root) is started; it syncs once at start. Timed from spawning the
//!   process until `GET /v1/mirror/status` (polled every 50 ms) reports `size` equal to the
//!   upstream's log size (RELEASES + 1 with the root leaf), which the mirror reaches in one
//!   commit after verifying every leaf and fetching, hashing and storing every blob. Printed:
//!   releases/s, MB/s of blob bytes (1 MB = 10^6 bytes), and the mirror's peak resident set
//!   (`VmHWM` in `/proc/<pid>/status`). One blob is then read back from the mirror and compared;
//! - **bundle**: on a second, fresh upstream world (not the one above, so that the figures are
//!   about bulk bytes, not the many small releases), BUNDLE_MIB MiB of random blobs are
//!   published as releases of 64 MiB each (the last one smaller if BUNDLE_MIB is not a multiple
//!   of 64). Then a full bundle is exported (`airlock export --all`, run in-process as the
//!   library function `airlock_client::bundle::export` that the CLI calls, so no separately built
//!   `airlock` binary is needed) and imported with `airlockd import --data SITE --root root.cbor
//!   FILE` (a subprocess) into a fresh data directory. MB/s of blob bytes for each. The bundle
//!   file is read back from page cache by the import; the upstream's blobs are likely cached too.
//!
//! Every server is an `airlockd` subprocess (this package's binary). Worlds are made as in the
//! transfer benchmark: `airlockd init` for the data directory, a root signed in-process (fresh root
//! and publisher keys, the data directory's log key), a publish token. All servers are stopped
//! (SIGTERM, then SIGKILL) and the temporary directory removed on exit, including on error.
//!
//! Run (optional arguments: number of releases, default 10000; bundle size in MiB, default 1024):
//!
//! ```text
//! cargo bench -p airlock-server --bench mirror
//! cargo bench -p airlock-server --bench mirror -- 2000 256
//! ```
//!
//! The figures go to stdout, progress to stderr. The exit status is non-zero only on errors.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use airlock_client::bundle::{export, ExportFrom};
use airlock_client::publish::{release_envelope, FileDigests};
use airlock_client::state::StateStore;
use airlock_client::{Remote, TlsOptions};
use airlock_keys::{read_public_key, sign_envelope, PublicKey, SecretKey};
use airlock_proto::{
    Checkpoint, Digest, Envelope, FileName, Kind, Metadata, PackageName, PayloadType, PublicKeyBytes, Role,
    Roles, Root, Sha256, Statement, Version,
};
use airlock_server::auth::{create_token, Scope};
use airlock_server::service::{DB_DIR, LOG_PUB_FILE};
use airlock_server::store::Db;
use anyhow::{bail, ensure, Context};
use rand::{Rng, RngCore};

const KIB: usize = 1 << 10;
const MIB: u64 = 1 << 20;
/// Client threads publishing the small releases, one keep-alive connection each.
const CLIENTS: usize = 4;
/// Size of each blob of the bundle world.
const BUNDLE_BLOB_MIB: u64 = 64;
/// The mirror's sync interval: long, so that the sync at start is the only one.
const SYNC_INTERVAL_SECS: u64 = 86_400;
/// How often the mirror's status is polled.
const POLL: Duration = Duration::from_millis(50);
/// How long the mirror may take to catch up before the benchmark gives up.
const SYNC_TIMEOUT: Duration = Duration::from_secs(3600);
/// No single socket read or write may stall longer than this.
const IO_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a server may take to start answering.
const START_TIMEOUT: Duration = Duration::from_secs(30);

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Command-line arguments: `[RELEASES [BUNDLE_MIB]]`. `cargo bench` adds `--bench`; flags are
/// ignored.
struct Args {
    releases: usize,
    bundle_mib: u64,
}

fn parse_args() -> anyhow::Result<Args> {
    let all: Vec<String> = std::env::args().skip(1).collect();
    if all.iter().any(|a| a == "-h" || a == "--help") {
        println!(
            "usage: cargo bench -p airlock-server --bench mirror [-- [RELEASES (10000) [BUNDLE_MIB (1024)]]]"
        );
        std::process::exit(0);
    }
    let positional: Vec<&String> = all.iter().filter(|a| !a.starts_with('-')).collect();
    let releases = match positional.first() {
        Some(text) => text.parse().with_context(|| format!("releases: {text:?} is not a number"))?,
        None => 10_000,
    };
    let bundle_mib = match positional.get(1) {
        Some(text) => {
            text.parse().with_context(|| format!("bundle size in MiB: {text:?} is not a number"))?
        }
        None => 1024,
    };
    ensure!(releases >= 1, "need at least one release");
    ensure!(bundle_mib >= 1, "the bundle must be at least 1 MiB");
    Ok(Args { releases, bundle_mib })
}

fn run() -> anyhow::Result<()> {
    let args = parse_args()?;
    // Declared first, so dropped last: the servers below stop before their files go.
    let tmp =
        tempfile::Builder::new().prefix("airlock-mirror-bench-").tempdir().context("create temp dir")?;
    eprintln!("working in {} ...", tmp.path().display());
    println!("airlock mirror benchmark: {} releases, loopback", args.releases);

    // 1. The upstream, and its publish rate.
    let upstream = World::create(&tmp.path().join("upstream"))?;
    let primary = ServerProcess::start_primary(&upstream)?;
    eprintln!("publishing {} releases with {CLIENTS} clients ...", args.releases);
    let started = Instant::now();
    let published = publish_small_releases(primary.addr, &upstream, args.releases)?;
    let setup = started.elapsed();
    println!(
        "publish (primary): {} statements in {:.1} s ({:.0}/s; each after a {}-8 KiB blob upload, {CLIENTS} keep-alive clients)",
        args.releases,
        setup.as_secs_f64(),
        args.releases as f64 / setup.as_secs_f64(),
        MIN_SMALL_BLOB / KIB,
    );
    let upstream_size = checkpoint_size(primary.addr)?;
    ensure!(
        upstream_size == args.releases as u64 + 1,
        "upstream log has {upstream_size} leaves, expected {} (root + releases)",
        args.releases + 1
    );

    // 2. A mirror catching up from nothing.
    let mirror_dir = tmp.path().join("mirror");
    std::fs::create_dir(&mirror_dir)?;
    let mirror_data = mirror_dir.join("data");
    airlockd_init(&mirror_data)?;
    eprintln!("starting the mirror; waiting for it to reach {upstream_size} leaves ...");
    let started = Instant::now();
    let mut mirror =
        ServerProcess::start_mirror(&mirror_dir, &mirror_data, &upstream.root_file, primary.addr)?;
    wait_for_mirror(&mut mirror, upstream_size, started)?;
    let sync = started.elapsed();
    let peak_rss_mib = mirror.peak_rss_mib()?;
    let (digest, bytes) = &published.sample;
    let (status, body) = Client::new(mirror.addr, None).request(
        "GET",
        &format!("/v1/blobs/blake3/{}", digest.to_hex()),
        None,
        &[],
    )?;
    ensure!(
        status == 200 && body == *bytes,
        "the mirror does not serve blob {digest} as published (HTTP {status})"
    );
    println!(
        "mirror sync: {} releases in {:.1} s: {:.0} releases/s, {:.1} MB/s ({:.1} MB of blobs), mirror peak RSS {:.0} MiB",
        args.releases,
        sync.as_secs_f64(),
        args.releases as f64 / sync.as_secs_f64(),
        mb_per_s(published.blob_bytes, sync),
        published.blob_bytes as f64 / 1e6,
        peak_rss_mib,
    );
    drop(mirror);
    drop(primary);

    // 3. Bundles, from a second upstream holding large blobs.
    let bundle_world = World::create(&tmp.path().join("bundle-upstream"))?;
    let bundle_primary = ServerProcess::start_primary(&bundle_world)?;
    eprintln!("publishing {} MiB in blobs of up to {BUNDLE_BLOB_MIB} MiB ...", args.bundle_mib);
    let (blob_count, blob_bytes) =
        publish_large_releases(bundle_primary.addr, &bundle_world, args.bundle_mib)?;

    eprintln!("exporting a full bundle ...");
    let bundle_file = tmp.path().join("full.tar");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let started = Instant::now();
    let store = StateStore::open(&tmp.path().join("client-state"), &bundle_world.root_file)?;
    let remote = Remote::new(&format!("http://{}", bundle_primary.addr), None, &TlsOptions::default())?;
    let report = runtime.block_on(export(&remote, &store, ExportFrom::All, &bundle_file, false))?;
    let export_time = started.elapsed();
    ensure!(
        report.blob_bytes == blob_bytes && report.blobs == blob_count,
        "the bundle holds {} blobs, {} bytes; expected {blob_count}, {blob_bytes}",
        report.blobs,
        report.blob_bytes
    );
    let bundle_size = std::fs::metadata(&bundle_file)?.len();
    drop(bundle_primary);

    eprintln!("importing it into a fresh data directory ...");
    let site = tmp.path().join("site");
    airlockd_init(&site)?;
    let started = Instant::now();
    let output = Command::new(env!("CARGO_BIN_EXE_airlockd"))
        .arg("import")
        .arg("--data")
        .arg(&site)
        .arg("--root")
        .arg(&bundle_world.root_file)
        .arg(&bundle_file)
        .stdin(Stdio::null())
        .output()
        .context("run airlockd import")?;
    let import_time = started.elapsed();
    ensure!(
        output.status.success(),
        "airlockd import failed: {}",
        String::from_utf8_lossy(&output.stderr).trim()
    );
    let imported: serde_json::Value =
        serde_json::from_slice(&output.stdout).context("airlockd import printed no JSON report")?;
    ensure!(
        imported["to_size"].as_u64() == Some(blob_count as u64 + 1)
            && imported["blobs_stored"].as_u64() == Some(blob_count as u64),
        "unexpected import report: {imported}"
    );
    println!(
        "bundle {} MiB ({blob_count} blob{} on a second upstream; {:.0} MB file): export {:.0} MB/s ({:.1} s), import {:.0} MB/s ({:.1} s)",
        args.bundle_mib,
        if blob_count == 1 { "" } else { "s" },
        bundle_size as f64 / 1e6,
        mb_per_s(blob_bytes, export_time),
        export_time.as_secs_f64(),
        mb_per_s(blob_bytes, import_time),
        import_time.as_secs_f64(),
    );
    Ok(())
}

fn mb_per_s(bytes: u64, time: Duration) -> f64 {
    bytes as f64 / time.as_secs_f64() / 1e6
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

// ---------------------------------------------------------------------------------------------
// Worlds: data directory, keys, signed root, token
// ---------------------------------------------------------------------------------------------

struct World {
    dir: PathBuf,
    data: PathBuf,
    root_file: PathBuf,
    publisher: SecretKey,
    token: String,
}

impl World {
    fn create(dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir(dir).with_context(|| format!("create {}", dir.display()))?;
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
            keys: [root_key.public(), publisher.public(), log_key]
                .iter()
                .map(|key| PublicKeyBytes(key.to_bytes()))
                .collect(),
            roles: Roles {
                root: role(&root_key.public()),
                publisher: role(&publisher.public()),
                log: role(&log_key),
            },
        };
        let (payload_type, payload) = Statement::Root(root).encode()?;
        let mut envelope = Envelope::unsigned(payload_type.as_str(), payload);
        sign_envelope(&mut envelope, &root_key);
        let root_file = dir.join("root.cbor");
        std::fs::write(&root_file, envelope.to_bytes()?)?;
        let token = {
            let db = Db::open(&data.join(DB_DIR))?;
            create_token(&db, Scope::Publish, "mirror benchmark")?
        };
        Ok(Self { dir: dir.to_owned(), data, root_file, publisher, token })
    }
}

/// `airlockd init` in a subprocess, so that its "initialised ..." lines stay out of the output.
fn airlockd_init(data: &Path) -> anyhow::Result<()> {
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

// ---------------------------------------------------------------------------------------------
// Publishing
// ---------------------------------------------------------------------------------------------

const MIN_SMALL_BLOB: usize = 2 * KIB;
const MAX_SMALL_BLOB: usize = 8 * KIB;

struct Published {
    /// Sum of the blob sizes.
    blob_bytes: u64,
    /// The last release's blob, read back from the mirror afterwards.
    sample: (Digest, Vec<u8>),
}

/// What one publishing client did: blob bytes sent, and the last release's blob if it had it.
type ClientTally = (u64, Option<(Digest, Vec<u8>)>);

/// Publishes releases 1..=count, `CLIENTS` threads each taking every `CLIENTS`th one.
fn publish_small_releases(addr: SocketAddr, world: &World, count: usize) -> anyhow::Result<Published> {
    let failed = AtomicBool::new(false);
    let done = AtomicUsize::new(0);
    let started = Instant::now();
    let results: Vec<anyhow::Result<ClientTally>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..CLIENTS)
            .map(|first| {
                let (failed, done) = (&failed, &done);
                scope.spawn(move || {
                    let result = (|| {
                        let mut client = Client::new(addr, Some(world.token.clone()));
                        let mut rng = rand::thread_rng();
                        let mut bytes_sent = 0u64;
                        let mut sample = None;
                        for i in (1 + first..=count).step_by(CLIENTS) {
                            if failed.load(Ordering::Relaxed) {
                                break;
                            }
                            let mut blob = vec![0u8; rng.gen_range(MIN_SMALL_BLOB..=MAX_SMALL_BLOB)];
                            rng.fill_bytes(&mut blob);
                            let name = format!("bench-pkg-{i:05}");
                            let file = format!("bench_pkg_{i:05}-1.0-py3-none-any.whl");
                            let digest = publish_release(&mut client, world, &name, &file, &blob)
                                .with_context(|| format!("publishing {name}"))?;
                            bytes_sent += blob.len() as u64;
                            if i == count {
                                sample = Some((digest, blob));
                            }
                            let n = done.fetch_add(1, Ordering::Relaxed) + 1;
                            if n % 1000 == 0 {
                                let secs = started.elapsed().as_secs_f64();
                                eprintln!("  {n}/{count} published, {:.0}/s", n as f64 / secs);
                            }
                        }
                        Ok((bytes_sent, sample))
                    })();
                    if result.is_err() {
                        failed.store(true, Ordering::Relaxed);
                    }
                    result
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err(anyhow::anyhow!("a client thread panicked"))))
            .collect()
    });
    let mut blob_bytes = 0;
    let mut sample = None;
    for result in results {
        let (bytes, s) = result?;
        blob_bytes += bytes;
        sample = sample.or(s);
    }
    Ok(Published { blob_bytes, sample: sample.context("the last release was not published")? })
}

/// Publishes `total_mib` MiB as releases of `BUNDLE_BLOB_MIB` MiB blobs; returns the number of
/// blobs and their total size.
fn publish_large_releases(addr: SocketAddr, world: &World, total_mib: u64) -> anyhow::Result<(usize, u64)> {
    let mut client = Client::new(addr, Some(world.token.clone()));
    let mut rng = rand::thread_rng();
    let mut left = total_mib * MIB;
    let mut count = 0;
    let mut blob = Vec::new();
    while left > 0 {
        let size = left.min(BUNDLE_BLOB_MIB * MIB);
        count += 1;
        blob.resize(usize::try_from(size)?, 0);
        rng.fill_bytes(&mut blob);
        let name = format!("bundle-bench-{count:03}");
        let file = format!("bundle_bench_{count:03}-1.0-py3-none-any.whl");
        publish_release(&mut client, world, &name, &file, &blob)
            .with_context(|| format!("publishing {name}"))?;
        left -= size;
        eprintln!("  {name}: {} MiB", size / MIB);
    }
    Ok((count, total_mib * MIB))
}

/// Uploads `blob` and logs a signed release `name 1.0` holding it as `file`.
fn publish_release(
    client: &mut Client,
    world: &World,
    name: &str,
    file: &str,
    blob: &[u8],
) -> anyhow::Result<Digest> {
    use sha2::Digest as _;
    let digest = Digest::of(blob);
    let (status, body) = client.request(
        "PUT",
        &format!("/v1/blobs/blake3/{}", digest.to_hex()),
        Some("application/octet-stream"),
        blob,
    )?;
    ensure!(status == 201 || status == 200, "blob upload: HTTP {status}: {}", String::from_utf8_lossy(&body));
    let digests = FileDigests {
        size: blob.len() as u64,
        blake3: digest,
        sha256: Sha256(sha2::Sha256::digest(blob).into()),
    };
    let mut envelope = release_envelope(
        Kind::Wheel,
        PackageName::new(Kind::Wheel, name)?,
        Version::new("1.0")?,
        (FileName::new(file)?, digests),
        Metadata::default(),
        now(),
    )?;
    sign_envelope(&mut envelope, &world.publisher);
    let (status, body) =
        client.request("POST", "/v1/statements", Some("application/cbor"), &envelope.to_bytes()?)?;
    ensure!(status == 201, "release statement: HTTP {status}: {}", String::from_utf8_lossy(&body));
    Ok(digest)
}

/// The size of the log in the server's current checkpoint.
fn checkpoint_size(addr: SocketAddr) -> anyhow::Result<u64> {
    let (status, body) = Client::new(addr, None).request("GET", "/v1/log/checkpoint", None, &[])?;
    ensure!(status == 200, "GET /v1/log/checkpoint: HTTP {status}");
    let envelope = Envelope::from_bytes(&body)?;
    Ok(Checkpoint::decode(&envelope.payload_type, &envelope.payload)?.size)
}

/// Polls the mirror's status until it serves `size` leaves; fails if it exits, reports a sync
/// error, or takes longer than `SYNC_TIMEOUT`.
fn wait_for_mirror(mirror: &mut ServerProcess, size: u64, started: Instant) -> anyhow::Result<()> {
    let mut next_report = Duration::from_secs(10);
    loop {
        if let Some(status) = mirror.child.try_wait()? {
            bail!("the mirror exited during its sync ({status}):\n{}", mirror.log_tail());
        }
        let last = match Client::new(mirror.addr, None).request("GET", "/v1/mirror/status", None, &[]) {
            Ok((200, body)) => {
                let status: serde_json::Value =
                    serde_json::from_slice(&body).context("mirror status is not JSON")?;
                if status["size"].as_u64() == Some(size) {
                    return Ok(());
                }
                if let Some(error) = status["last_error"].as_str() {
                    bail!("the mirror's sync failed: {error}");
                }
                status.to_string()
            }
            Ok((status, body)) => format!("HTTP {status}: {}", String::from_utf8_lossy(&body)),
            Err(e) => format!("{e:#}"),
        };
        let elapsed = started.elapsed();
        ensure!(
            elapsed < SYNC_TIMEOUT,
            "the mirror did not catch up within {SYNC_TIMEOUT:?}; last status: {last}"
        );
        if elapsed >= next_report {
            eprintln!("  syncing for {} s ...", elapsed.as_secs());
            next_report += Duration::from_secs(10);
        }
        std::thread::sleep(POLL);
    }
}

// ---------------------------------------------------------------------------------------------
// The client: blocking HTTP/1.1 over one keep-alive connection
// ---------------------------------------------------------------------------------------------

struct Client {
    addr: SocketAddr,
    token: Option<String>,
    conn: Option<BufReader<TcpStream>>,
}

impl Client {
    fn new(addr: SocketAddr, token: Option<String>) -> Self {
        Self { addr, token, conn: None }
    }

    /// One request; the status and body. A request on a reused connection that fails (the
    /// server may have closed it while idle) is retried once on a fresh one: every request this
    /// benchmark makes is idempotent.
    fn request(
        &mut self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: &[u8],
    ) -> anyhow::Result<(u16, Vec<u8>)> {
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\n", self.addr);
        if let Some(token) = &self.token {
            head += &format!("Authorization: Bearer {token}\r\n");
        }
        if let Some(content_type) = content_type {
            head += &format!("Content-Type: {content_type}\r\n");
        }
        head += &format!("Content-Length: {}\r\n\r\n", body.len());
        loop {
            let reused = self.conn.is_some();
            let mut conn = match self.conn.take() {
                Some(conn) => conn,
                None => BufReader::with_capacity(64 * KIB, connect(self.addr)?),
            };
            match exchange(&mut conn, &head, body) {
                Ok((status, answer, keep_alive)) => {
                    if keep_alive {
                        self.conn = Some(conn);
                    }
                    return Ok((status, answer));
                }
                Err(_) if reused => continue,
                Err(e) => return Err(e.context(format!("{method} {path}"))),
            }
        }
    }
}

fn connect(addr: SocketAddr) -> anyhow::Result<TcpStream> {
    let stream = TcpStream::connect(addr).with_context(|| format!("connect to {addr}"))?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    Ok(stream)
}

/// Sends a request and reads its response: status, body, and whether the connection stays open.
fn exchange(
    conn: &mut BufReader<TcpStream>,
    head: &str,
    body: &[u8],
) -> anyhow::Result<(u16, Vec<u8>, bool)> {
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
    let mut keep_alive = true;
    loop {
        line.clear();
        ensure!(conn.read_line(&mut line)? > 0, "connection closed in the response head");
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        let Some((name, value)) = header.split_once(':') else { continue };
        let (name, value) = (name.trim(), value.trim());
        if name.eq_ignore_ascii_case("content-length") {
            length = Some(value.parse::<usize>().context("bad Content-Length")?);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.to_ascii_lowercase().contains("chunked");
        } else if name.eq_ignore_ascii_case("connection") {
            keep_alive = !value.eq_ignore_ascii_case("close");
        }
    }
    let mut answer = Vec::new();
    if chunked {
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
    Ok((status, answer, keep_alive))
}

// ---------------------------------------------------------------------------------------------
// Server processes
// ---------------------------------------------------------------------------------------------

/// An `airlockd serve` child process; stopped (SIGTERM, then SIGKILL after 5 s) when dropped.
struct ServerProcess {
    name: &'static str,
    child: Child,
    addr: SocketAddr,
    /// Where the server's stderr goes, quoted when it fails.
    log: PathBuf,
}

impl ServerProcess {
    /// A primary serving `world`, once it answers `/healthz`.
    fn start_primary(world: &World) -> anyhow::Result<Self> {
        let addr = free_addr()?;
        let log = world.dir.join("airlockd.log");
        let mut command = Command::new(env!("CARGO_BIN_EXE_airlockd"));
        command.arg("serve").arg("--data").arg(&world.data).arg("--listen").arg(addr.to_string());
        command.arg("--root").arg(&world.root_file);
        let mut server = Self::spawn("airlockd primary", command, addr, log)?;
        server.wait_ready()?;
        Ok(server)
    }

    /// A mirror of the upstream at `upstream`, returned as soon as it is spawned (its start is
    /// part of the timed sync).
    fn start_mirror(dir: &Path, data: &Path, root_file: &Path, upstream: SocketAddr) -> anyhow::Result<Self> {
        let addr = free_addr()?;
        let mut command = Command::new(env!("CARGO_BIN_EXE_airlockd"));
        command.arg("serve").arg("--data").arg(data).arg("--listen").arg(addr.to_string());
        command.arg("--upstream").arg(format!("http://{upstream}")).arg("--root").arg(root_file);
        command.arg("--sync-interval").arg(SYNC_INTERVAL_SECS.to_string());
        Self::spawn("airlockd mirror", command, addr, dir.join("airlockd.log"))
    }

    fn spawn(
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

    /// Waits until `GET /healthz` answers 200, or fails with the server's log if it exits.
    fn wait_ready(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        let mut last = String::new();
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                bail!("{} exited at start ({status}):\n{}", self.name, self.log_tail());
            }
            match Client::new(self.addr, None).request("GET", "/healthz", None, &[]) {
                Ok((200, _)) => return Ok(()),
                Ok((status, _)) => last = format!("HTTP {status}"),
                Err(e) => last = format!("{e:#}"),
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!("{} did not become ready on {} ({last}):\n{}", self.name, self.addr, self.log_tail())
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Peak resident set size (`VmHWM`) in MiB.
    fn peak_rss_mib(&self) -> anyhow::Result<f64> {
        let path = format!("/proc/{}/status", self.child.id());
        let status = std::fs::read_to_string(&path).with_context(|| format!("read {path}"))?;
        let kib: f64 = status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .with_context(|| format!("no VmHWM line in {path}"))?;
        Ok(kib / 1024.0)
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        // SIGTERM by pid lets airlockd drain; SIGKILL after 5 s.
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
fn free_addr() -> anyhow::Result<SocketAddr> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}
