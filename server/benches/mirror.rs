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
//!   FILE` (a subprocess) into a fresh data directory. MB/s of blob bytes for each. The upstream
//!   stored its blobs and the export wrote the bundle past their first 4 MiB directly
//!   (`O_DIRECT`), so neither is read back from the page cache. Last, the disk alone: the bundle
//!   file copied to a new one, read ahead and written directly and synced, as the import reads
//!   and the export writes; export and import are printed as ratios of that speed. Three rounds
//!   of the three, the upstream restarted for each export (a blob's first read in a while is
//!   read directly), each rate and ratio printed with its median.
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

// Each benchmark uses its part of the shared code.
#[allow(dead_code)]
mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use airlock_client::bundle::{export, ExportFrom};
use airlock_client::state::StateStore;
use airlock_client::{Remote, TlsOptions};
use airlock_proto::{Checkpoint, Digest};
use anyhow::{bail, ensure, Context};
use common::{
    airlockd_init, exit_with, free_addr, mb_per_s, median, number_arg, positional_args, Client,
    ServerProcess, World, KIB, MIB,
};
use rand::{Rng, RngCore};

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

fn main() -> ExitCode {
    exit_with(run)
}

/// Command-line arguments: `[RELEASES [BUNDLE_MIB]]`. `cargo bench` adds `--bench`; flags are
/// ignored.
struct Args {
    releases: usize,
    bundle_mib: u64,
}

fn parse_args() -> anyhow::Result<Args> {
    let args = positional_args(
        "cargo bench -p airlock-server --bench mirror [-- [RELEASES (10000) [BUNDLE_MIB (1024)]]]",
    );
    let releases = number_arg(&args, 0, "releases", 10_000)?;
    let bundle_mib = number_arg(&args, 1, "bundle size in MiB", 1024)?;
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
    let upstream = World::create(&tmp.path().join("upstream"), "mirror benchmark")?;
    let primary = ServerProcess::start_airlockd("airlockd primary", &upstream)?;
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
    // The mirror's batch commits sync its filesystem (syncfs): flush what the build and the
    // publishing left dirty first, so the figure is the sync's own.
    flush_filesystems()?;
    eprintln!("starting the mirror; waiting for it to reach {upstream_size} leaves ...");
    let started = Instant::now();
    let primary_cpu = primary.cpu_seconds()?;
    let mut mirror =
        ServerProcess::start_mirror(&mirror_dir, &mirror_data, &upstream.root_file, primary.addr)?;
    wait_for_mirror(&mut mirror, upstream_size, started)?;
    let sync = started.elapsed();
    let peak_rss_mib = mirror.peak_rss_mib()?;
    let (mirror_user, mirror_system) = mirror.cpu_seconds()?;
    let primary_after = primary.cpu_seconds()?;
    eprintln!(
        "  CPU during the sync: mirror {mirror_user:.2} s user + {mirror_system:.2} s system, primary {:.2} s user + {:.2} s system",
        primary_after.0 - primary_cpu.0,
        primary_after.1 - primary_cpu.1
    );
    // Where the time went, as the mirror logs it (leaves fetched and verified, blobs, commit).
    if let Ok(log) = std::fs::read_to_string(mirror_dir.join("airlockd.log")) {
        for line in log.lines().filter(|l| l.contains("mirror synced")) {
            eprintln!("  {line}");
        }
    }
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
    let bundle_world = World::create(&tmp.path().join("bundle-upstream"), "mirror benchmark")?;
    let bundle_primary = ServerProcess::start_airlockd("airlockd primary", &bundle_world)?;
    eprintln!("publishing {} MiB in blobs of up to {BUNDLE_BLOB_MIB} MiB ...", args.bundle_mib);
    let (blob_count, blob_bytes) =
        publish_large_releases(bundle_primary.addr, &bundle_world, args.bundle_mib)?;

    drop(bundle_primary);
    let bundle = BundleWorld { world: bundle_world, blob_count, blob_bytes, dir: tmp.path().to_owned() };
    let mut rounds = Vec::new();
    for round in 1..=BUNDLE_ROUNDS {
        let result = bundle.round(round)?;
        eprintln!(
            "round {round}/{BUNDLE_ROUNDS}: export {:.0} MB/s, import {:.0} MB/s, disk alone {:.0} MB/s: export/disk {:.2}, import/disk {:.2}",
            result.export,
            result.import,
            result.disk,
            result.export / result.disk,
            result.import / result.disk,
        );
        rounds.push(result);
    }
    let rates = |f: fn(&Round) -> f64| rounds.iter().map(f).collect::<Vec<_>>();
    let list = |values: &[f64], digits: usize| {
        values.iter().map(|v| format!("{v:.digits$}")).collect::<Vec<_>>().join(" ")
    };
    let (exports, imports, disks) = (rates(|r| r.export), rates(|r| r.import), rates(|r| r.disk));
    let export_ratios = rates(|r| r.export / r.disk);
    let import_ratios = rates(|r| r.import / r.disk);
    println!(
        "bundle {} MiB ({blob_count} blob{} on a second upstream; {:.0} MB file), {BUNDLE_ROUNDS} rounds:",
        args.bundle_mib,
        if blob_count == 1 { "" } else { "s" },
        rounds[0].file_bytes as f64 / 1e6,
    );
    println!("  export      {} MB/s, median {:.0}", list(&exports, 0), median(&exports));
    println!("  import      {} MB/s, median {:.0}", list(&imports, 0), median(&imports));
    println!(
        "  disk alone  {} MB/s, median {:.0} (the bundle file copied, read ahead and written directly, synced)",
        list(&disks, 0),
        median(&disks)
    );
    println!("  export/disk {}, median {:.2}", list(&export_ratios, 2), median(&export_ratios));
    println!("  import/disk {}, median {:.2}", list(&import_ratios, 2), median(&import_ratios));
    Ok(())
}

/// Export, import and disk-alone rounds of the bundle benchmark.
const BUNDLE_ROUNDS: usize = 3;

/// The upstream holding the bundle's blobs, and what it holds.
struct BundleWorld {
    world: World,
    blob_count: usize,
    blob_bytes: u64,
    dir: std::path::PathBuf,
}

/// One round's rates, MB/s of blob bytes (the disk alone: of the bundle file's bytes).
struct Round {
    export: f64,
    import: f64,
    disk: f64,
    file_bytes: u64,
}

impl BundleWorld {
    /// Exports a full bundle from the upstream (started afresh, so that every blob is read as
    /// it would be by a first export), imports it into a fresh data directory, and copies it
    /// alone; each round's files are removed after it.
    fn round(&self, round: usize) -> anyhow::Result<Round> {
        let (world, blob_count, blob_bytes) = (&self.world, self.blob_count, self.blob_bytes);
        let primary = ServerProcess::start_airlockd("airlockd primary", world)?;
        eprintln!("round {round}: exporting a full bundle ...");
        let bundle_file = self.dir.join(format!("full-{round}.tar"));
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let started = Instant::now();
        let store = StateStore::open(&self.dir.join("client-state"), &world.root_file)?;
        let remote = Remote::new(&format!("http://{}", primary.addr), None, &TlsOptions::default())?;
        let report = runtime.block_on(export(
            &remote,
            &store,
            ExportFrom::All,
            &bundle_file,
            &airlock_proto::Clock::system(),
            &airlock_client::progress::Quiet,
            None,
        ))?;
        let export_time = started.elapsed();
        ensure!(
            report.blob_bytes == blob_bytes && report.blobs == blob_count,
            "the bundle holds {} blobs, {} bytes; expected {blob_count}, {blob_bytes}",
            report.blobs,
            report.blob_bytes
        );
        let file_bytes = std::fs::metadata(&bundle_file)?.len();
        drop(primary);

        eprintln!("round {round}: importing it into a fresh data directory ...");
        let site = self.dir.join(format!("site-{round}"));
        airlockd_init(&site)?;
        let started = Instant::now();
        let output = Command::new(env!("CARGO_BIN_EXE_airlockd"))
            .arg("import")
            .arg("--data")
            .arg(&site)
            .arg("--root")
            .arg(&world.root_file)
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
        eprintln!("round {round}: the disk alone: the bundle file copied, read and written directly ...");
        let disk_time = copy_directly(&bundle_file, &self.dir.join("disk-copy.tar"))?;
        std::fs::remove_file(&bundle_file)?;
        std::fs::remove_dir_all(&site)?;
        Ok(Round {
            export: mb_per_s(blob_bytes, export_time),
            import: mb_per_s(blob_bytes, import_time),
            disk: mb_per_s(file_bytes, disk_time),
            file_bytes,
        })
    }
}

/// The time the disk takes to copy `from` to a new file as the bundle paths use it: read ahead
/// and written with `O_DIRECT` where the filesystem takes it, then synced. The copy is removed.
fn copy_directly(from: &Path, to: &Path) -> anyhow::Result<Duration> {
    use std::io::Read as _;
    let started = Instant::now();
    let mut reader = airlock_client::direct::ReadAhead::new(std::fs::File::open(from)?);
    let mut out = airlock_client::fsutil::AtomicFile::create(to, 0o600)?;
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let n = reader.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        out.write_all_bytes(&buffer[..n])?;
    }
    out.commit()?;
    let took = started.elapsed();
    std::fs::remove_file(to)?;
    Ok(took)
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
    let digests = client.put_blob(blob)?;
    client.log_wheel_release(world, name, file, digests)?;
    Ok(digests.blake3)
}

/// The size of the log in the server's current checkpoint.
fn checkpoint_size(addr: SocketAddr) -> anyhow::Result<u64> {
    let (status, body) = Client::new(addr, None).request("GET", "/v1/log/checkpoint", None, &[])?;
    ensure!(status == 200, "GET /v1/log/checkpoint: HTTP {status}");
    Ok(Checkpoint::from_note_unverified(&body)?.size)
}

/// Polls the mirror's status until it serves `size` leaves; fails if it exits, reports a sync
/// error, or takes longer than `SYNC_TIMEOUT`.
/// Writes every filesystem's dirty data to disk (`sync`).
fn flush_filesystems() -> anyhow::Result<()> {
    let status = std::process::Command::new("sync").status()?;
    anyhow::ensure!(status.success(), "sync failed: {status}");
    Ok(())
}

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
// The mirror process
// ---------------------------------------------------------------------------------------------

impl ServerProcess {
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
}
