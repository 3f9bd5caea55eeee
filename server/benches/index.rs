//! Python index benchmark: `airlockd` against pypiserver on the same wheels, on loopback.
//!
//! What it measures, in one run:
//! - **project pages**: `GET /simple/<name>/` of PROJECTS projects, cycled by 16 threads over
//!   keep-alive connections for SECONDS each, asking for JSON (pip's `Accept`) and then for
//!   HTML (`text/html`); requests/s for each server and the ratio. Every answer must be 200;
//!   the content type each server answered with is printed (pypiserver may answer HTML to a
//!   JSON request);
//! - **install**: `uv pip install --index-url <server>/simple/ bench-big` of a BIG_MIB MiB wheel
//!   into a fresh environment with an empty cache, timed, from each server, and the ratio.
//!
//! The wheels are built here (real wheels, RECORD and all: the test suite's builder); airlockd
//! gets them through the checked-wheel path (METADATA logged beside each wheel) in a fresh
//! temporary world; pypiserver serves the same files from a folder. pip, uv, pypiserver and
//! waitress (the threaded WSGI server pypiserver's `--server auto` picks first) come from the Python tools environment
//! (`scripts/ensure-deps.sh`; pypiserver and waitress are installed into it on first use).
//!
//! Run (optional arguments: projects, default 1000; big wheel MiB, default 100; seconds per
//! page measurement, default 5):
//!
//! ```text
//! cargo bench -p airlock-server --bench index
//! cargo bench -p airlock-server --bench index -- 200 20 2
//! ```

#[allow(dead_code)]
mod common;
#[allow(dead_code, clippy::unwrap_used)]
#[path = "../tests/it/pytools.rs"]
mod pytools;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use airlock_client::statements::{file_entry, release};
use airlock_client::wheel::read_wheel;
use airlock_keys::sign_envelope;
use airlock_proto::{FileName, Kind, Metadata};
use anyhow::ensure;
use common::{exit_with, free_addr, now, number_arg, positional_args, Client, ServerProcess, World};
use rand::RngCore;

const CONNECTIONS: usize = 16;
const PIP_ACCEPT: &str =
    "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01";

fn main() -> ExitCode {
    exit_with(run)
}

fn run() -> anyhow::Result<()> {
    let args =
        positional_args("cargo bench -p airlock-server --bench index -- [PROJECTS] [BIG_MIB] [SECONDS]");
    let projects: usize = number_arg(&args, 0, "projects", 1000)?;
    let big_mib: usize = number_arg(&args, 1, "big wheel MiB", 100)?;
    let seconds: u64 = number_arg(&args, 2, "seconds", 5)?;
    let tmp = tempfile::tempdir()?;
    let tools = pytools::tools();
    ensure_pypiserver(&tools)?;

    eprintln!("building {projects} small wheels and one of {big_mib} MiB");
    let wheels = tmp.path().join("wheels");
    for i in 0..projects {
        let name = format!("bench-pkg-{i:04}");
        pytools::build_wheel(&wheels, &pytools::WheelSpec::new(&name, "1.0", &[]));
    }
    let mut big = vec![0u8; big_mib << 20];
    rand::thread_rng().fill_bytes(&mut big);
    pytools::build_wheel_with(
        &wheels,
        &pytools::WheelSpec::new("bench-big", "1.0", &[]),
        |members| members.push(("bench_big/data.bin".to_owned(), std::mem::take(&mut big))),
        |_| {},
    );

    let world = World::create(&tmp.path().join("airlock"), "bench")?;
    let airlockd = ServerProcess::start_airlockd("airlockd", &world)?;
    eprintln!("publishing the wheels to airlockd");
    publish_all(airlockd.addr, &world, &wheels)?;

    let pypi_addr = free_addr()?;
    let mut command = Command::new(tools.join("bin/pypi-server"));
    command
        .args(["run", "-i", "127.0.0.1", "-p", &pypi_addr.port().to_string(), "--disable-fallback"])
        .args(["--server", "auto", "-a", ".", "-P", "."])
        .arg(&wheels);
    let mut pypiserver =
        ServerProcess::spawn("pypiserver", command, pypi_addr, tmp.path().join("pypiserver.log"))?;
    pypiserver.wait_ready("/simple/")?;

    println!("airlock index benchmark: {projects} projects, {CONNECTIONS} connections, {seconds} s per figure, loopback");
    for (label, accept) in [("JSON (pip's Accept)", PIP_ACCEPT), ("HTML (text/html)", "text/html")] {
        let duration = Duration::from_secs(seconds);
        let (ours, our_type) = pages(airlockd.addr, projects, accept, duration)?;
        let (theirs, their_type) = pages(pypi_addr, projects, accept, duration)?;
        println!(
            "project pages, {label}: airlockd {ours:.0} req/s ({our_type}), pypiserver {theirs:.0} req/s ({their_type}), ratio {:.2}",
            ours / theirs
        );
    }
    let ours = install_time(tmp.path(), "airlockd", airlockd.addr)?;
    let theirs = install_time(tmp.path(), "pypiserver", pypi_addr)?;
    println!(
        "uv pip install of the {big_mib} MiB wheel: airlockd {:.2} s, pypiserver {:.2} s, ratio {:.2}",
        ours.as_secs_f64(),
        theirs.as_secs_f64(),
        theirs.as_secs_f64() / ours.as_secs_f64()
    );
    println!("airlockd peak RSS: {:.1} MiB", airlockd.peak_rss_mib()?);
    drop(pypiserver);
    Ok(())
}

/// Installs pypiserver and waitress into the tools environment when missing.
fn ensure_pypiserver(tools: &Path) -> anyhow::Result<()> {
    if tools.join("bin/pypi-server").exists() {
        return Ok(());
    }
    eprintln!("installing pypiserver and waitress into {}", tools.display());
    let status =
        Command::new(tools.join("bin/pip")).args(["install", "-q", "pypiserver", "waitress"]).status()?;
    ensure!(status.success(), "pip install pypiserver waitress failed");
    Ok(())
}

/// Uploads each wheel and its METADATA and logs its release, signed by the world's publisher.
fn publish_all(addr: SocketAddr, world: &World, wheels: &Path) -> anyhow::Result<()> {
    let mut client = Client::new(addr, Some(world.token.clone()));
    let mut paths: Vec<PathBuf> =
        std::fs::read_dir(wheels)?.map(|e| e.map(|e| e.path())).collect::<Result<_, _>>()?;
    paths.sort();
    for path in paths {
        let info = read_wheel(&path)?;
        let wheel = client.put_blob(&std::fs::read(&path)?)?;
        let metadata = client.put_blob(&info.metadata_bytes)?;
        let mut envelope = release(
            Kind::Wheel,
            info.name.name.clone(),
            info.name.version.clone(),
            vec![
                file_entry(FileName::new(&info.filename)?, wheel),
                file_entry(FileName::new(&format!("{}.metadata", info.filename))?, metadata),
            ],
            Metadata { requires_python: info.requires_python.clone(), ..Metadata::default() },
            now(),
        )?;
        sign_envelope(&mut envelope, &world.publisher);
        let (status, body) =
            client.request("POST", "/v1/statements", Some("application/cbor"), &envelope.to_bytes()?)?;
        ensure!(
            status == 201,
            "release of {}: HTTP {status}: {}",
            info.filename,
            String::from_utf8_lossy(&body)
        );
    }
    Ok(())
}

/// Project pages per second from `addr` over `CONNECTIONS` keep-alive connections for
/// `duration`, and the content type of the first answer.
fn pages(
    addr: SocketAddr,
    projects: usize,
    accept: &str,
    duration: Duration,
) -> anyhow::Result<(f64, String)> {
    let mut probe = Client::new(addr, None);
    let (status, headers, _) = probe.request_with("GET", "/simple/bench-pkg-0000/", &[("Accept", accept)])?;
    ensure!(status == 200, "GET /simple/bench-pkg-0000/ on {addr}: HTTP {status}");
    let content_type = headers.get("content-type").cloned().unwrap_or_default();
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let workers: Vec<_> = (0..CONNECTIONS)
        .map(|worker| {
            let (done, stop, accept) = (Arc::clone(&done), Arc::clone(&stop), accept.to_owned());
            std::thread::spawn(move || -> anyhow::Result<()> {
                let mut client = Client::new(addr, None);
                let mut i = worker;
                while !stop.load(Ordering::Relaxed) {
                    let path = format!("/simple/bench-pkg-{:04}/", i % projects);
                    let (status, _, _) = client.request_with("GET", &path, &[("Accept", &accept)])?;
                    ensure!(status == 200, "GET {path}: HTTP {status}");
                    done.fetch_add(1, Ordering::Relaxed);
                    i += CONNECTIONS;
                }
                Ok(())
            })
        })
        .collect();
    std::thread::sleep(duration);
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.join().map_err(|_| anyhow::anyhow!("a load thread panicked"))??;
    }
    Ok((done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64(), content_type))
}

/// How long `uv pip install bench-big` takes from `addr` into a fresh environment, empty cache.
fn install_time(dir: &Path, name: &str, addr: SocketAddr) -> anyhow::Result<Duration> {
    let target = pytools::Target::new(dir, &format!("env-{name}"));
    let index = format!("http://{addr}/simple/");
    let started = Instant::now();
    let run = target.uv_pip(&["install", "--index-url", &index, "bench-big"], &[]);
    let took = started.elapsed();
    ensure!(run.ok, "uv pip install from {name}: {}", run.output);
    ensure!(target.installed("bench_big").as_deref() == Some("1.0"), "bench-big not installed from {name}");
    Ok(took)
}
