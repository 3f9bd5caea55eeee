//! How costs grow with the log. For logs of each size, written straight into a data directory by
//! the generator (`common::generate`: the root and SIZE-1 signed releases of one small file):
//! - `airlockd` start-up (spawn to `/healthz`) over a log it has never opened (every leaf
//!   replayed and verified, then the fold saved), and again with the saved fold (median of 5);
//! - `airlock pull` of one small release with an empty client state (cold: every leaf fetched
//!   and verified, and the client state saved; its rate is leaves per second of the whole pull,
//!   and the verify rate the one the pull reports for fetching and verifying the leaves before
//!   it saves them), and the same pull again (warm: the
//!   head confirmed against the registry's checkpoint and the target read from the index, no
//!   leaf fetched and the fold not read; median of 5).
//!
//! Run (optional argument: comma-separated log sizes, default 1000,100000,1000000):
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
use common::generate::{generate_log, release_name};
use common::{airlock_bin, exit_with, positional_args, ServerProcess, World};

/// Runs of each repeated measure (start-up with the saved fold, warm pull); the median is shown.
const RUNS: usize = 5;

fn median(mut runs: Vec<Duration>) -> Duration {
    runs.sort();
    runs[runs.len() / 2]
}

/// The rate of fetching and verifying leaves that a cold `airlock pull` reports on stderr
/// ("... fetched and verified in 12.3 s (81234 leaves/s), state saved in ...").
fn verify_rate(said: &str) -> anyhow::Result<f64> {
    let rate = said
        .split(" leaves/s)")
        .next()
        .filter(|before| before.len() < said.len())
        .and_then(|before| before.rsplit('(').next())
        .and_then(|n| n.trim().parse().ok());
    rate.with_context(|| format!("airlock pull reported no verify rate: {said}"))
}

fn main() -> ExitCode {
    exit_with(run)
}

struct Row {
    size: usize,
    first_start: Duration,
    start: Duration,
    cold: Duration,
    /// Leaves fetched and verified per second, as the cold pull reported it.
    verify_rate: f64,
    warm: Duration,
}

fn run() -> anyhow::Result<()> {
    let args = positional_args("cargo bench -p airlock-server --bench scale -- [SIZES]");
    let sizes: Vec<usize> = args
        .first()
        .map_or("1000,100000,1000000", String::as_str)
        .split(',')
        .map(|s| s.trim().parse::<usize>().context("sizes: comma-separated whole numbers"))
        .collect::<anyhow::Result<_>>()?;
    ensure!(sizes.iter().all(|s| *s >= 2), "every size must be at least 2 (the root and one release)");
    let airlock = airlock_bin()?;
    let mut rows = Vec::new();
    for size in sizes {
        // AIRLOCK_SCALE_KEEP=DIR keeps each world under DIR (to profile a start by hand).
        let keep = std::env::var_os("AIRLOCK_SCALE_KEEP");
        let tmp = tempfile::Builder::new()
            .prefix(&format!("scale-{size}-"))
            .disable_cleanup(keep.is_some())
            .tempdir_in(keep.map_or_else(std::env::temp_dir, Into::into))?;
        let world = World::create(&tmp.path().join("primary"), "bench")?;
        eprintln!("generating a log of {size} leaves");
        generate_log(&world, size - 1)?;
        let timed_start = || -> anyhow::Result<(ServerProcess, Duration)> {
            let started = Instant::now();
            let server = ServerProcess::start_airlockd("airlockd", &world)?;
            Ok((server, started.elapsed()))
        };
        let (server, first_start) = timed_start()?;
        drop(server);
        let mut starts = Vec::new();
        for _ in 1..RUNS {
            let (server, took) = timed_start()?;
            starts.push(took);
            drop(server);
        }
        let (server, took) = timed_start()?;
        starts.push(took);
        let start = median(starts);
        let url = format!("http://{}", server.addr);
        let target = format!("{}==1.0", release_name(size - 1));
        let pull = |state: &Path| -> anyhow::Result<(Duration, String)> {
            let started = Instant::now();
            let out = Command::new(&airlock)
                .args(["pull", &target, "--server", &url, "--root"])
                .arg(&world.root_file)
                .arg("-o")
                .arg(tmp.path().join("out.whl"))
                .env("AIRLOCK_HOME", state)
                .output()
                .context("run airlock pull")?;
            let took = started.elapsed();
            let said = String::from_utf8_lossy(&out.stderr).into_owned();
            ensure!(out.status.success(), "airlock pull: {said}");
            Ok((took, said))
        };
        let state = tmp.path().join("state");
        let (cold, said) = pull(&state)?;
        let verify_rate = verify_rate(&said)?;
        let warm = median(
            (0..RUNS).map(|_| pull(&state).map(|(took, _)| took)).collect::<anyhow::Result<Vec<_>>>()?,
        );
        drop(server);
        rows.push(Row { size, first_start, start, cold, verify_rate, warm });
    }
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!("airlock scale benchmark: release build, loopback, generated logs");
    println!(
        "{:>10}  {:>14}  {:>14}  {:>10}  {:>16}  {:>16}  {:>10}",
        "leaves", "first start-up", "start-up", "cold pull", "cold pull rate", "verify rate", "warm pull"
    );
    for row in rows {
        println!(
            "{:>10}  {:>12.0}ms  {:>12.0}ms  {:>8.0}ms  {:>10.0} leaf/s  {:>10.0} leaf/s  {:>8.0}ms",
            row.size,
            ms(row.first_start),
            ms(row.start),
            ms(row.cold),
            row.size as f64 / row.cold.as_secs_f64(),
            row.verify_rate,
            ms(row.warm),
        );
    }
    Ok(())
}
