//! Small-object serving: `airlockd` against nginx serving the same file, with wrk on loopback.
//!
//! One 11 KB blob is uploaded and logged (so anyone may read it), and nginx (two workers,
//! sendfile, no access log) serves a copy under the same path. wrk then asks each server for it:
//! with 16 connections on 2 threads (throughput), and on one keep-alive connection (sequential
//! latency). Each run lasts SECS seconds (default 5). Prints requests/s and the ratio
//! airlockd/nginx. Then, for memory, a 1 GiB blob is logged and `airlockd` serves 64 wrk
//! connections on the small blob while four curl clients each download the large one; its peak
//! RSS over the whole run is printed.
//!
//! Needs nginx and wrk (`apt-get install nginx wrk`); without either the benchmark says so and
//! stops.
//!
//! ```text
//! cargo bench -p airlock-server --bench serve [-- SECS]
//! ```

#[allow(dead_code)]
mod common;

use std::process::{Command, ExitCode};

use anyhow::{bail, Context};
use common::download::wrk;
use common::nginx::start_nginx;
use common::{exit_with, number_arg, positional_args, Client, ServerProcess, World};

/// The blob's size: a typical small file of a node pack or a Simple API page.
const BLOB_BYTES: usize = 11 * 1024;

fn main() -> ExitCode {
    exit_with(run)
}

fn run() -> anyhow::Result<()> {
    let args = positional_args("cargo bench -p airlock-server --bench serve -- [SECS]");
    let secs: u64 = number_arg(&args, 0, "SECS", 5)?;
    if Command::new("wrk").arg("--version").output().is_err() {
        bail!("wrk is not installed (`apt-get install wrk`)");
    }
    let tmp = tempfile::tempdir()?;
    let world = World::create(&tmp.path().join("primary"), "bench")?;
    let airlockd = ServerProcess::start_airlockd("airlockd", &world)?;
    let blob: Vec<u8> = (0..BLOB_BYTES).map(|i| (i * 31 % 251) as u8).collect();
    let mut client = Client::new(airlockd.addr, Some(world.token.clone()));
    let digests = client.put_blob(&blob)?;
    client.log_wheel_release(&world, "served", "served-1.0-py3-none-any.whl", digests)?;
    let path = format!("/v1/blobs/blake3/{}", digests.blake3.to_hex());
    let www = tmp.path().join("www");
    let file = www.join(path.trim_start_matches('/'));
    std::fs::create_dir_all(file.parent().context("blob path")?)?;
    std::fs::write(&file, &blob)?;
    let Some(nginx) = start_nginx(tmp.path(), &www, 2, &path)? else {
        bail!("nginx is not installed (`apt-get install nginx`)");
    };

    let rate = |server: &ServerProcess, threads: u32, connections: u32| -> anyhow::Result<f64> {
        wrk(&format!("http://{}{path}", server.addr), threads, connections, secs)
    };
    let mut rows = Vec::new();
    for (label, threads, connections) in [("16 connections", 2, 16), ("1 keep-alive connection", 1, 1)] {
        let ours = rate(&airlockd, threads, connections)?;
        let theirs = rate(&nginx, threads, connections)?;
        rows.push((label, ours, theirs));
    }
    println!("airlock small-object benchmark: one {BLOB_BYTES}-byte blob, wrk on loopback, {secs} s per run");
    for (label, ours, theirs) in rows {
        println!(
            "{label:<24} airlockd {ours:>9.0} req/s   nginx {theirs:>9.0} req/s   ratio {:.2}",
            ours / theirs
        );
    }

    // Memory under load: 64 small-object clients and four 1 GiB downloads at once.
    let large: Vec<u8> = (0..LARGE_BYTES).map(|i| (i % 251) as u8).collect();
    let digests = client.put_blob(&large)?;
    drop(large);
    client.log_wheel_release(&world, "large", "large-1.0-py3-none-any.whl", digests)?;
    let large_url = format!("http://{}/v1/blobs/blake3/{}", airlockd.addr, digests.blake3.to_hex());
    let downloads: Vec<_> = (0..4)
        .map(|_| Command::new("curl").args(["-sf", "-o", "/dev/null", &large_url]).spawn())
        .collect::<Result<_, _>>()
        .context("run curl")?;
    let under_load = rate(&airlockd, 2, 64)?;
    for mut download in downloads {
        anyhow::ensure!(download.wait()?.success(), "a 1 GiB download failed");
    }
    println!(
        "64 connections + four 1 GiB downloads: airlockd {under_load:.0} req/s, peak RSS {:.1} MiB over the whole run",
        airlockd.peak_rss_mib()?
    );
    Ok(())
}

/// The large blob of the memory run.
const LARGE_BYTES: usize = 1 << 30;
