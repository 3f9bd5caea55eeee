//! Blob transfer benchmark: `airlockd` against nginx on loopback.
//!
//! What it measures, in one run:
//! - **upload**: RUNS rounds, each SHA-256 alone over a SIZE MiB file of pseudo-random bytes (in
//!   memory, one core) and then one `PUT /v1/blobs/blake3/<hex>` of that file, timed from the
//!   first byte sent until the server's answer (which comes after airlockd has hashed the blob
//!   with BLAKE3 and SHA-256, fsynced it and recorded it); each round a new file. It prints each
//!   round's rates and upload/SHA-256 ratio and their medians, and for the median round how
//!   long the answer took after the last byte (the final sync) and the CPU time airlockd and
//!   the client used (on a small machine they share the cores). The disk alone (the file copied
//!   and synced) is the other bound;
//! - **download**: `GET /v1/blobs/blake3/<hex>` from airlockd and `GET /blob.bin` of the same file
//!   from nginx (sendfile, `access_log off`), RUNS times each, alternating, one connection per
//!   request; per-run MB/s (1 MB = 10^6 bytes), the median of each, and the ratio airlockd/nginx.
//!   Before the timed runs each server serves the file untimed, and that copy is
//!   BLAKE3-verified, so the timed runs read warm page cache on both sides (airlockd serves it
//!   twice: a blob's first read takes its cold part straight from the device, leaving the page
//!   cache as it was, and the second fills the cache);
//! - **download with `--zero-copy`**: airlockd restarted on the same data with `--zero-copy`
//!   (sendfile from the blob file to the socket), RUNS times, against the same nginx median;
//! - **download over TLS**: the same, with airlockd restarted on the same data with
//!   `--tls-cert`/`--tls-key` and nginx serving the file over TLS 1.3, both with one self-signed
//!   certificate; the client (rustls) offers only `TLS13_AES_128_GCM_SHA256`, so both servers run
//!   the same certificate, key exchange and cipher;
//! - **memory**: airlockd's peak resident set (`VmHWM` in `/proc/<pid>/status`) after all of the
//!   plain-HTTP transfers, against a 100 MiB budget.
//!
//! airlockd runs as a subprocess (the `airlockd` binary of this package) in a fresh temporary
//! world: a data directory made by `airlockd init`, a root signed in-process (fresh root and
//! publisher keys, the data directory's log key), and a publish token. After the upload, a
//! release naming the blob is signed and logged, so the timed downloads are anonymous, as a
//! client's would be. The client is a few lines of blocking HTTP/1.1 over `TcpStream`
//! (`TCP_NODELAY`, 4 MiB reads, bytes discarded; the upload sends the file by `sendfile`, so
//! that the client takes as little CPU from airlockd as it can): curl caps near 1.8 GB/s and
//! would measure itself.
//!
//! nginx comes from the system (`apt-get install nginx`); without it, the nginx comparison is
//! skipped with a message. It runs from a config written into the temporary directory (pid,
//! error log and temp paths there too) and is stopped by its pid. Both servers are stopped and
//! the temporary directory removed on exit, including on error.
//!
//! Run (optional arguments: size in MiB, default 1024; number of download runs, default 3):
//!
//! ```text
//! cargo bench -p airlock-server --bench transfer
//! cargo bench -p airlock-server --bench transfer -- 256 5
//! ```
//!
//! The figures go to stdout in a form that pastes into docs; progress goes to stderr. A slow
//! figure is reported, not failed: the exit status is non-zero only on errors. Absolute numbers
//! drift between machines and runs; compare the ratio, measured in the same run.

// Each benchmark uses its part of the shared code.
#[allow(dead_code)]
mod common;

use std::ffi::OsStr;
use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use airlock_proto::{
    Digest, FileEntry, FileName, Kind, Metadata, PackageName, PayloadType, Release, Sha256, Statement,
    Version,
};
use anyhow::{bail, ensure, Context};
use common::download::{download, find_header_end, header_value, parse_status};
use common::nginx::start_nginx_tls;
use common::tls::Certificate;
use common::{
    connect, exit_with, mb_per_s, median, now, number_arg, positional_args, signed, Client, ServerProcess,
    World, MIB,
};

/// Read and write size of the client, and of the file generator.
const BUF_SIZE: usize = 4 << 20;
/// airlockd's peak-RSS budget.
const RSS_LIMIT_MIB: f64 = 100.0;
/// The name nginx serves the file under (in its `root`).
const NGINX_FILE: &str = "blob.bin";

fn main() -> ExitCode {
    exit_with(run)
}

/// Command-line arguments: `[SIZE_MIB [RUNS]]`. `cargo bench` adds `--bench`; flags are ignored.
struct Args {
    size_mib: u64,
    runs: usize,
}

fn parse_args() -> anyhow::Result<Args> {
    let args =
        positional_args("cargo bench -p airlock-server --bench transfer [-- [SIZE_MIB (1024) [RUNS (3)]]]");
    let size_mib = number_arg(&args, 0, "size in MiB", 1024)?;
    let runs = number_arg(&args, 1, "runs", 3)?;
    ensure!(size_mib >= 1, "size must be at least 1 MiB");
    ensure!(runs >= 1, "need at least one run");
    Ok(Args { size_mib, runs })
}

fn run() -> anyhow::Result<()> {
    let args = parse_args()?;
    let size = args.size_mib * MIB;
    // Declared first, so dropped last: the servers below stop before their files go.
    let tmp = tempfile::Builder::new().prefix("airlock-bench-").tempdir().context("create temp dir")?;
    let www = tmp.path().join("www");
    std::fs::create_dir(&www)?;

    eprintln!("setting up in {} ...", tmp.path().display());
    let world = World::create(tmp.path(), "transfer benchmark")?;
    let airlockd = ServerProcess::start_airlockd("airlockd", &world)?;

    eprintln!("writing a {} MiB file ...", args.size_mib);
    let file = www.join(NGINX_FILE);
    let digest = write_pseudo_random_file(&file, size)?;
    let blob_path = format!("/v1/blobs/blake3/{}", digest.to_hex());

    eprintln!("the disk alone: copying the file and syncing it ...");
    let disk_alone = disk_write_alone(&file, &tmp.path().join("disk-copy"))?;
    // RUNS rounds, each SHA-256 alone over a file and then the upload of that file, so that a
    // change in the machine's speed between rounds touches both sides of a round's ratio. The
    // first round uploads the file nginx serves; later ones fresh files (the same bytes again
    // would not be stored again), removed after.
    let mut uploads = Vec::new();
    for run in 1..=args.runs {
        let (path, digest) = if run == 1 {
            (file.clone(), digest)
        } else {
            let path = tmp.path().join("upload.bin");
            let digest = write_pseudo_random_file(&path, size)?;
            (path, digest)
        };
        eprintln!(
            "upload {run}/{}: SHA-256 alone over the file's bytes in memory, then the upload ...",
            args.runs
        );
        let round = upload_round(&airlockd, &world.token, &path, &digest, size)?;
        eprintln!(
            "upload {run}/{}: {:.0} MB/s, SHA-256 alone {:.0} MB/s",
            args.runs,
            mb_per_s(size, round.upload.total),
            mb_per_s(size, round.sha256_alone)
        );
        if run > 1 {
            std::fs::remove_file(&path)?;
        }
        uploads.push(round);
    }
    let first_sha256 = uploads[0].upload.sha256;
    publish_release(airlockd.addr, &world, &digest, &first_sha256, size)?;

    let cert = Certificate::create(tmp.path())?;
    let nginx = start_nginx_tls(tmp.path(), &www, 1, &format!("/{NGINX_FILE}"), &cert.cert, &cert.key)?;
    let (nginx, nginx_tls) = match nginx {
        Some((server, tls)) => (Some(server), Some(tls)),
        None => (None, None),
    };

    let mut buf = vec![0u8; BUF_SIZE];
    eprintln!("warm-up downloads (BLAKE3-verified) ...");
    // Twice from airlockd: a blob's first read takes the part the page cache lacks straight from
    // the device and leaves the cache as it was; the second read fills it.
    for _ in 0..2 {
        download(airlockd.addr, &blob_path, size, &mut buf, Some(&digest)).context("airlockd warm-up")?;
    }
    if let Some(nginx) = &nginx {
        let path = format!("/{NGINX_FILE}");
        download(nginx.addr, &path, size, &mut buf, Some(&digest)).context("nginx warm-up")?;
    }

    let mut airlockd_rates = Vec::new();
    let mut nginx_rates = Vec::new();
    for run in 1..=args.runs {
        let time = download(airlockd.addr, &blob_path, size, &mut buf, None).context("airlockd download")?;
        airlockd_rates.push(mb_per_s(size, time));
        let mut line = format!("run {run}/{}: airlockd {:.0} MB/s", args.runs, mb_per_s(size, time));
        if let Some(nginx) = &nginx {
            let path = format!("/{NGINX_FILE}");
            let time = download(nginx.addr, &path, size, &mut buf, None).context("nginx download")?;
            nginx_rates.push(mb_per_s(size, time));
            line += &format!(", nginx {:.0} MB/s", mb_per_s(size, time));
        }
        eprintln!("{line}");
    }
    let peak_rss_mib = airlockd.peak_rss_mib()?;
    drop(airlockd);
    // The same file by sendfile: airlockd restarted on the same data with --zero-copy.
    let mut zero_copy =
        ServerProcess::spawn_airlockd("airlockd-zero-copy", &world, &[OsStr::new("--zero-copy")])?;
    let mut zero_copy_rates = Vec::new();
    zero_copy.wait_ready("/healthz")?;
    download(zero_copy.addr, &blob_path, size, &mut buf, Some(&digest)).context("--zero-copy warm-up")?;
    for run in 1..=args.runs {
        let time = download(zero_copy.addr, &blob_path, size, &mut buf, None).context("--zero-copy")?;
        zero_copy_rates.push(mb_per_s(size, time));
        eprintln!("run {run}/{}: airlockd --zero-copy {:.0} MB/s", args.runs, mb_per_s(size, time));
    }
    drop(zero_copy);
    // The same file over TLS: airlockd restarted on the same data with the certificate nginx has.
    let tls = match nginx_tls {
        Some(nginx_tls) => {
            Some(tls_downloads(&world, &cert, nginx_tls, &blob_path, size, args.runs, &mut buf)?)
        }
        None => None,
    };

    println!(
        "airlock transfer benchmark: {} MiB blob, {} run{}, loopback",
        args.size_mib,
        args.runs,
        if args.runs == 1 { "" } else { "s" }
    );
    print_uploads(&uploads, size);
    let upload_median =
        median(&uploads.iter().map(|round| round.upload.total.as_secs_f64()).collect::<Vec<_>>());
    println!(
        "disk alone:        {:.0} MB/s writing the same bytes and syncing them; upload/disk ratio {:.2} (median upload)",
        mb_per_s(size, disk_alone),
        disk_alone.as_secs_f64() / upload_median
    );
    let airlockd_median = median(&airlockd_rates);
    println!("download airlockd: {}", rates_line(&airlockd_rates));
    println!("download airlockd --zero-copy (sendfile): {}", rates_line(&zero_copy_rates));
    if nginx.is_some() {
        println!("download nginx:    {}", rates_line(&nginx_rates));
        println!("ratio airlockd/nginx (download): {:.2}", airlockd_median / median(&nginx_rates));
        println!(
            "ratio airlockd --zero-copy/nginx (download): {:.2}",
            median(&zero_copy_rates) / median(&nginx_rates)
        );
    } else {
        println!("download nginx:    skipped (nginx is not installed: `apt-get install nginx`)");
    }
    if let Some(tls) = &tls {
        println!("download over TLS 1.3, {} (same certificate, one client):", tls.suite);
        println!("  airlockd: {}", rates_line(&tls.airlockd));
        println!("  nginx:    {}", rates_line(&tls.nginx));
        println!(
            "ratio airlockd/nginx (download over TLS): {:.2}",
            median(&tls.airlockd) / median(&tls.nginx)
        );
    }
    println!(
        "airlockd peak RSS: {peak_rss_mib:.1} MiB (limit {RSS_LIMIT_MIB:.0} MiB: {})",
        if peak_rss_mib < RSS_LIMIT_MIB { "ok" } else { "OVER" }
    );
    Ok(())
}

/// Download rates over TLS, and the suite both servers negotiated.
struct TlsRates {
    suite: String,
    airlockd: Vec<f64>,
    nginx: Vec<f64>,
}

/// Starts airlockd over TLS on `world` and downloads the blob from it and from nginx's TLS
/// address `RUNS` times each, alternating (after one untimed download from each).
fn tls_downloads(
    world: &World,
    cert: &Certificate,
    nginx: SocketAddr,
    blob_path: &str,
    size: u64,
    runs: usize,
    buf: &mut [u8],
) -> anyhow::Result<TlsRates> {
    let args =
        [OsStr::new("--tls-cert"), cert.cert.as_os_str(), OsStr::new("--tls-key"), cert.key.as_os_str()];
    let airlockd = ServerProcess::spawn_airlockd("airlockd-tls", world, &args)?;
    eprintln!("warm-up downloads over TLS ...");
    cert.wait_ready(airlockd.addr, blob_path, size).context("airlockd over TLS")?;
    let nginx_path = format!("/{NGINX_FILE}");
    cert.wait_ready(nginx, &nginx_path, size).context("nginx over TLS")?;
    let mut rates = TlsRates { suite: String::new(), airlockd: Vec::new(), nginx: Vec::new() };
    for run in 1..=runs {
        let (time, suite) = cert.download(airlockd.addr, blob_path, size, buf)?;
        rates.airlockd.push(mb_per_s(size, time));
        let (nginx_time, nginx_suite) = cert.download(nginx, &nginx_path, size, buf)?;
        ensure!(suite == nginx_suite, "the servers negotiated {suite} and {nginx_suite}");
        rates.nginx.push(mb_per_s(size, nginx_time));
        rates.suite = suite;
        eprintln!(
            "TLS run {run}/{runs}: airlockd {:.0} MB/s, nginx {:.0} MB/s",
            mb_per_s(size, time),
            mb_per_s(size, nginx_time)
        );
    }
    Ok(rates)
}

fn rates_line(rates: &[f64]) -> String {
    let runs: Vec<String> = rates.iter().map(|r| format!("{r:.0}")).collect();
    format!("runs {} MB/s, median {:.0} MB/s", runs.join(" "), median(rates))
}

/// One round of the upload: SHA-256 alone over the file, then the upload of the same file, with
/// the CPU time airlockd and this client used during the upload.
struct UploadRound {
    sha256_alone: Duration,
    upload: Uploaded,
    airlockd_cpu: (f64, f64),
    client_cpu: (f64, f64),
}

fn upload_round(
    airlockd: &ServerProcess,
    token: &str,
    file: &Path,
    digest: &Digest,
    size: u64,
) -> anyhow::Result<UploadRound> {
    let sha256_alone = sha256_alone(file, size)?;
    let blob_path = format!("/v1/blobs/blake3/{}", digest.to_hex());
    let airlockd_before = airlockd.cpu_seconds()?;
    let client_before = common::cpu_seconds_of(std::process::id())?;
    let upload = upload(airlockd.addr, &blob_path, token, file, size)?;
    let airlockd_after = airlockd.cpu_seconds()?;
    let client_after = common::cpu_seconds_of(std::process::id())?;
    Ok(UploadRound {
        sha256_alone,
        upload,
        airlockd_cpu: (airlockd_after.0 - airlockd_before.0, airlockd_after.1 - airlockd_before.1),
        client_cpu: (client_after.0 - client_before.0, client_after.1 - client_before.1),
    })
}

/// The upload lines: each round's rate, SHA-256 alone and their ratio, the medians, and the
/// CPU time of the round with the median ratio.
fn print_uploads(rounds: &[UploadRound], size: u64) {
    let ratio = |round: &UploadRound| round.sha256_alone.as_secs_f64() / round.upload.total.as_secs_f64();
    let rates: Vec<f64> = rounds.iter().map(|round| mb_per_s(size, round.upload.total)).collect();
    let sha256_rates: Vec<f64> = rounds.iter().map(|round| mb_per_s(size, round.sha256_alone)).collect();
    let ratios: Vec<f64> = rounds.iter().map(ratio).collect();
    let mut by_ratio: Vec<&UploadRound> = rounds.iter().collect();
    by_ratio.sort_by(|a, b| ratio(a).total_cmp(&ratio(b)));
    let middle = by_ratio[by_ratio.len() / 2];
    let after_body = middle.upload.total - middle.upload.body_sent;
    println!(
        "upload   airlockd: {} (the median round: {:.1} s from the last byte until stored: fsync, record)",
        rates_line(&rates),
        after_body.as_secs_f64()
    );
    println!(
        "  CPU during that upload: airlockd {:.2} s user + {:.2} s system, this client {:.2} s + {:.2} s, in {:.2} s on {} cores",
        middle.airlockd_cpu.0,
        middle.airlockd_cpu.1,
        middle.client_cpu.0,
        middle.client_cpu.1,
        middle.upload.total.as_secs_f64(),
        std::thread::available_parallelism().map_or(1, usize::from)
    );
    let ratio_runs: Vec<String> = ratios.iter().map(|r| format!("{r:.2}")).collect();
    println!(
        "SHA-256 alone:     {} over the same bytes in memory, one core, just before each upload",
        rates_line(&sha256_rates)
    );
    println!("ratio upload/SHA-256 alone: runs {}, median {:.2}", ratio_runs.join(" "), median(&ratios));
}

/// Logs a release holding the blob, so that anyone may download it.
fn publish_release(
    addr: SocketAddr,
    world: &World,
    digest: &Digest,
    sha256: &Sha256,
    size: u64,
) -> anyhow::Result<()> {
    let release = Release {
        payload_type: PayloadType::Release,
        kind: Kind::Wheel,
        name: PackageName::new(Kind::Wheel, "transfer-bench")?,
        version: Version::new("1.0.0")?,
        files: vec![FileEntry {
            filename: FileName::new("transfer_bench-1.0.0-py3-none-any.whl")?,
            size,
            blake3: *digest,
            sha256: *sha256,
        }],
        metadata: Metadata::default(),
        published_at: now(),
    };
    let body = signed(Statement::Release(release), &world.publisher)?.to_bytes()?;
    let mut client = Client::new(addr, Some(world.token.clone()));
    let (status, text) = client.request("POST", "/v1/statements", Some("application/cbor"), &body)?;
    let text = String::from_utf8_lossy(&text);
    ensure!(status == 201 || status == 200, "publishing the release: HTTP {status}: {}", text.trim());
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The test file
// ---------------------------------------------------------------------------------------------

/// Writes `size` bytes of SplitMix64 output to `path` in 4 MiB blocks, fsyncs it (so its
/// write-back does not overlap the timed upload), and returns its BLAKE3 digest.
fn write_pseudo_random_file(path: &Path, size: u64) -> anyhow::Result<Digest> {
    let mut file = File::create(path).with_context(|| format!("create {}", path.display()))?;
    let mut buf = vec![0u8; BUF_SIZE];
    let mut state: u64 = rand::random();
    let mut hasher = blake3::Hasher::new();
    let mut left = size;
    while left > 0 {
        let n = usize::try_from(left.min(BUF_SIZE as u64))?;
        for word in buf[..n].chunks_mut(8) {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            word.copy_from_slice(&z.to_le_bytes()[..word.len()]);
        }
        hasher.update(&buf[..n]);
        file.write_all(&buf[..n])?;
        left -= n as u64;
    }
    file.sync_all()?;
    Ok(Digest::from_bytes(*hasher.finalize().as_bytes()))
}

/// The time SHA-256 alone takes over the file's bytes, read into memory first (in 64 MiB
/// pieces, so a large blob needs no matching buffer): the bound an upload that also hashes
/// BLAKE3 and writes the bytes is measured against.
fn sha256_alone(path: &Path, size: u64) -> anyhow::Result<Duration> {
    use sha2::Digest as _;
    const PIECE: usize = 64 << 20;
    let mut source = File::open(path)?;
    let mut piece = vec![0u8; PIECE];
    let mut hasher = sha2::Sha256::new();
    let mut spent = Duration::ZERO;
    let mut left = size;
    while left > 0 {
        let n = usize::try_from(left.min(PIECE as u64))?;
        source.read_exact(&mut piece[..n])?;
        let start = Instant::now();
        hasher.update(&piece[..n]);
        spent += start.elapsed();
        left -= n as u64;
    }
    std::hint::black_box(hasher.finalize());
    Ok(spent)
}

/// The time the disk takes to store the file's bytes durably: a copy written in 4 MiB pieces
/// and synced (then removed): the other bound of a durable upload.
fn disk_write_alone(path: &Path, copy: &Path) -> anyhow::Result<Duration> {
    let mut source = File::open(path)?;
    let mut buf = vec![0u8; BUF_SIZE];
    let start = Instant::now();
    let mut out = File::create(copy)?;
    loop {
        let n = source.read(&mut buf)?;
        if n == 0 {
            break;
        }
        out.write_all(&buf[..n])?;
    }
    out.sync_all()?;
    let spent = start.elapsed();
    std::fs::remove_file(copy)?;
    Ok(spent)
}

// ---------------------------------------------------------------------------------------------
// The client: blocking HTTP/1.1, one request per connection
// ---------------------------------------------------------------------------------------------

/// What an upload took, and what the server computed.
struct Uploaded {
    /// Until the last byte of the body was handed to the socket.
    body_sent: Duration,
    /// Until the server's answer (the blob is durable and recorded).
    total: Duration,
    sha256: Sha256,
}

/// Streams `file` to `PUT path` (by `sendfile`).
fn upload(addr: SocketAddr, path: &str, token: &str, file: &Path, size: u64) -> anyhow::Result<Uploaded> {
    let mut source = File::open(file)?;
    let start = Instant::now();
    let mut stream = connect(addr)?;
    let head = format!(
        "PUT {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/octet-stream\r\nContent-Length: {size}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes())?;
    // `io::copy` from a file to a socket is `sendfile` on Linux: the client reads no byte into
    // its own memory, so the CPU it takes from airlockd on a shared machine is only the kernel's.
    match std::io::copy(&mut source, &mut stream) {
        Ok(sent) => ensure!(sent == size, "sent {sent} bytes of {size}"),
        Err(e) => {
            // The server may have answered and closed early (a refusal): show its answer.
            let answer = read_small_response(&mut stream).map(|(s, t)| format!("HTTP {s}: {t}"));
            bail!("upload interrupted ({e}); server said: {}", answer.unwrap_or_else(|e| format!("{e:#}")));
        }
    }
    let body_sent = start.elapsed();
    let (status, text) = read_small_response(&mut stream)?;
    let total = start.elapsed();
    ensure!(status == 201 || status == 200, "upload: HTTP {status}: {text}");
    let stored: serde_json::Value = serde_json::from_str(&text).context("upload answer is not JSON")?;
    let sha256 = stored["sha256"]
        .as_str()
        .and_then(Sha256::from_hex)
        .with_context(|| format!("upload answer lacks a sha256: {text}"))?;
    ensure!(stored["size"].as_u64() == Some(size), "server stored a different size: {text}");
    Ok(Uploaded { body_sent, total, sha256 })
}

/// Reads a whole (small) response on a `Connection: close` stream: status and body text.
fn read_small_response(stream: &mut TcpStream) -> anyhow::Result<(u16, String)> {
    let mut bytes = Vec::new();
    stream.read_to_end(&mut bytes)?;
    let end = find_header_end(&bytes).context("no complete HTTP response head")?;
    let head = std::str::from_utf8(&bytes[..end])?;
    let status = parse_status(head)?;
    let body = if header_value(head, "transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        dechunk(&bytes[end..])?
    } else {
        bytes[end..].to_vec()
    };
    Ok((status, String::from_utf8_lossy(&body).trim().to_owned()))
}

fn dechunk(mut data: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n").context("bad chunked body")?;
        let size_text = std::str::from_utf8(&data[..line_end])?;
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16).context("bad chunk size")?;
        if size == 0 {
            return Ok(out);
        }
        let start = line_end + 2;
        let chunk = data.get(start..start + size).context("truncated chunk")?;
        out.extend_from_slice(chunk);
        data = data.get(start + size + 2..).context("truncated chunk")?;
    }
}
