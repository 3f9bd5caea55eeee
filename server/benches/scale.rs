//! How costs grow with the log: for logs of each size, `airlock pull` of one small release with
//! an empty client state (cold: every leaf fetched and verified), the same pull again (warm: the
//! saved state loaded and brought up to date), and `airlockd` start-up (spawn to `/healthz`).
//!
//! Each log is one root and SIZE-1 release statements (one signed statement each, all naming
//! one small uploaded blob), submitted over one keep-alive connection to a fresh primary.
//!
//! Run (optional argument: comma-separated log sizes, default 1000,10000,100000):
//!
//! ```text
//! cargo bench -p airlock-server --bench scale
//! cargo bench -p airlock-server --bench scale -- 1000,20000
//! ```

#[allow(dead_code)]
mod common;

use std::path::Path;
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context as _};
use common::{airlock_bin, exit_with, positional_args, Client, ServerProcess, World};

fn main() -> ExitCode {
    exit_with(run)
}

fn run() -> anyhow::Result<()> {
    let args = positional_args("cargo bench -p airlock-server --bench scale -- [SIZES]");
    let sizes: Vec<usize> = args
        .first()
        .map_or("1000,10000,100000", String::as_str)
        .split(',')
        .map(|s| s.trim().parse::<usize>().context("sizes: comma-separated whole numbers"))
        .collect::<anyhow::Result<_>>()?;
    ensure!(sizes.iter().all(|s| *s >= 2), "every size must be at least 2 (the root and one release)");
    let airlock = airlock_bin()?;
    let mut rows = Vec::new();
    for size in sizes {
        let tmp = tempfile::tempdir()?;
        let world = World::create(&tmp.path().join("primary"), "bench")?;
        let server = ServerProcess::start_airlockd("airlockd", &world)?;
        eprintln!("logging {size} leaves");
        publish(server.addr, &world, size - 1)?;
        let url = format!("http://{}", server.addr);
        let pull = |state: &Path| -> anyhow::Result<Duration> {
            let started = Instant::now();
            let out = Command::new(&airlock)
                .args(["pull", "bench-pkg-0000001==1.0", "--server", &url, "--root"])
                .arg(&world.root_file)
                .arg("-o")
                .arg(tmp.path().join("out.whl"))
                .env("AIRLOCK_HOME", state)
                .output()
                .context("run airlock pull")?;
            let took = started.elapsed();
            ensure!(out.status.success(), "airlock pull: {}", String::from_utf8_lossy(&out.stderr));
            Ok(took)
        };
        let state = tmp.path().join("state");
        let cold = pull(&state)?;
        let warm = pull(&state)?;
        drop(server);
        let started = Instant::now();
        let server = ServerProcess::start_airlockd("airlockd", &world)?;
        let start_up = started.elapsed();
        drop(server);
        rows.push((size, cold, warm, start_up));
    }
    println!("airlock scale benchmark: release build, loopback");
    println!("{:>10}  {:>10}  {:>10}  {:>10}", "leaves", "cold pull", "warm pull", "start-up");
    for (size, cold, warm, start_up) in rows {
        println!(
            "{size:>10}  {:>8.0}ms  {:>8.0}ms  {:>8.0}ms",
            cold.as_secs_f64() * 1e3,
            warm.as_secs_f64() * 1e3,
            start_up.as_secs_f64() * 1e3
        );
    }
    Ok(())
}

/// Uploads one small blob and logs `count` releases naming it.
fn publish(addr: std::net::SocketAddr, world: &World, count: usize) -> anyhow::Result<()> {
    let mut client = Client::new(addr, Some(world.token.clone()));
    let digests = client.put_blob(b"a small release")?;
    let started = Instant::now();
    for i in 1..=count {
        let name = format!("bench-pkg-{i:07}");
        client.log_wheel_release(world, &name, &format!("bench_pkg_{i:07}-1.0-py3-none-any.whl"), digests)?;
        if i % 10_000 == 0 {
            eprintln!("  {i}/{count}, {:.0}/s", i as f64 / started.elapsed().as_secs_f64());
        }
    }
    Ok(())
}
