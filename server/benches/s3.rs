//! Serving from an S3-compatible bucket: `airlockd` with its blobs on SeaweedFS against
//! SeaweedFS's own S3 endpoint serving the same objects (through presigned URLs, so that both
//! are plain GETs without a per-request signature).
//!
//! One 1 GiB blob and one 11 KB blob are uploaded through `airlockd` (so they are in the
//! bucket) and logged. Then: the 1 GiB GET, timed whole (best of RUNS, default 3), from each;
//! and the 11 KB GET under wrk (16 connections, 2 threads, SECS seconds, default 5) against
//! each. Prints MB/s, requests/s and the ratios airlockd/SeaweedFS.
//!
//! SeaweedFS is started for the run (`scripts/seaweedfs.sh`, which `scripts/ensure-deps.sh`
//! provides), unless `AIRLOCK_TEST_S3_ENDPOINT` and its credentials name one already running.
//! Needs wrk (`apt-get install wrk`).
//!
//! ```text
//! cargo bench -p airlock-server --bench s3 [-- RUNS SECS]
//! ```

#[allow(dead_code)]
mod common;

use std::process::{Command, ExitCode};
use std::time::Duration;

use airlock_server::store::blob_store::{self, S3Settings};
use airlock_server::store::{BlobBackend, S3Backend};
use anyhow::{bail, Context};
use common::download::{download, wrk};
use common::{exit_with, mb_per_s, number_arg, positional_args, Client, ServerProcess, World};

const SMALL_BYTES: usize = 11 * 1024;
const LARGE_BYTES: usize = 1 << 30;

fn main() -> ExitCode {
    exit_with(run)
}

/// A SeaweedFS for the run, stopped when dropped.
struct Seaweed(Option<std::path::PathBuf>);

impl Drop for Seaweed {
    fn drop(&mut self) {
        if let Some(dir) = self.0.take() {
            let _ = Command::new(script()).args(["stop", &dir.display().to_string()]).status();
        }
    }
}

fn script() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/seaweedfs.sh")
}

/// The bucket: the one named in the environment, else a SeaweedFS started for the run.
fn bucket(tmp: &std::path::Path) -> anyhow::Result<(S3Settings, Seaweed)> {
    if std::env::var("AIRLOCK_TEST_S3_ENDPOINT").is_ok() {
        let bucket = blob_store::test_bucket("bench").context("the bucket in the environment")?;
        return Ok((bucket, Seaweed(None)));
    }
    let dir = tmp.join("seaweedfs");
    let status = Command::new(script()).args(["start", &dir.display().to_string()]).status()?;
    anyhow::ensure!(status.success(), "SeaweedFS did not start (scripts/seaweedfs.sh)");
    let seaweed = Seaweed(Some(dir.clone()));
    let env = std::fs::read_to_string(dir.join("env"))?;
    let var = |name: &str| -> anyhow::Result<String> {
        env.lines()
            .find_map(|l| l.strip_prefix(&format!("export AIRLOCK_TEST_S3_{name}=")))
            .map(str::to_owned)
            .with_context(|| format!("{name} missing from the SeaweedFS environment"))
    };
    let mut bucket = S3Settings::new(var("ENDPOINT")?, var("BUCKET")?);
    bucket.access_key_id = Some(var("ACCESS_KEY_ID")?);
    bucket.secret_access_key = Some(var("SECRET_ACCESS_KEY")?);
    bucket.prefix = "bench/".to_owned();
    Ok((bucket, seaweed))
}

fn run() -> anyhow::Result<()> {
    let args = positional_args("cargo bench -p airlock-server --bench s3 -- [RUNS SECS]");
    let runs: usize = number_arg(&args, 0, "RUNS", 3)?;
    let secs: u64 = number_arg(&args, 1, "SECS", 5)?;
    if Command::new("wrk").arg("--version").output().is_err() {
        bail!("wrk is not installed (`apt-get install wrk`)");
    }
    let tmp = tempfile::tempdir()?;
    let (bucket, _seaweed) = bucket(tmp.path())?;
    let world = World::create(&tmp.path().join("primary"), "bench")?;
    blob_store::write(&world.data, &bucket)?;
    let airlockd = ServerProcess::start_airlockd("airlockd", &world)?;
    let mut client = Client::new(airlockd.addr, Some(world.token.clone()));
    let backend = S3Backend::open(&bucket)?;

    let small: Vec<u8> = (0..SMALL_BYTES).map(|i| (i * 31 % 251) as u8).collect();
    let small_digests = client.put_blob(&small)?;
    client.log_wheel_release(&world, "small", "small-1.0-py3-none-any.whl", small_digests)?;
    eprintln!("uploading 1 GiB through airlockd into the bucket ...");
    let large: Vec<u8> = (0..LARGE_BYTES).map(|i| (i % 251) as u8).collect();
    let large_digests = client.put_blob(&large)?;
    drop(large);
    client.log_wheel_release(&world, "large", "large-1.0-py3-none-any.whl", large_digests)?;

    // The store's own URLs for the same objects.
    let signed = |digest| -> anyhow::Result<(std::net::SocketAddr, String)> {
        let url = backend.presign(&digest, Duration::from_secs(3600))?.context("no presigned URL")?;
        let rest = url.strip_prefix("http://").context("the bench runs SeaweedFS over http")?;
        let (host, path) = rest.split_once('/').context("a presigned URL without a path")?;
        Ok((host.parse()?, format!("/{path}")))
    };
    let (store_addr, large_on_store) = signed(large_digests.blake3)?;
    let (_, small_on_store) = signed(small_digests.blake3)?;
    let large_path = format!("/v1/blobs/blake3/{}", large_digests.blake3.to_hex());
    let small_path = format!("/v1/blobs/blake3/{}", small_digests.blake3.to_hex());

    let mut buf = vec![0u8; 1 << 20];
    let size = LARGE_BYTES as u64;
    eprintln!("warm-up downloads (BLAKE3-verified) ...");
    download(airlockd.addr, &large_path, size, &mut buf, Some(&large_digests.blake3)).context("airlockd")?;
    download(store_addr, &large_on_store, size, &mut buf, Some(&large_digests.blake3))
        .context("SeaweedFS")?;
    let (mut ours, mut theirs) = (0f64, 0f64);
    for _ in 0..runs {
        ours = ours.max(mb_per_s(size, download(airlockd.addr, &large_path, size, &mut buf, None)?));
        theirs = theirs.max(mb_per_s(size, download(store_addr, &large_on_store, size, &mut buf, None)?));
    }
    let small_ours = wrk(&format!("http://{}{small_path}", airlockd.addr), 2, 16, secs)?;
    let small_theirs = wrk(&format!("http://{store_addr}{small_on_store}"), 2, 16, secs)?;
    println!("airlock S3 benchmark: blobs on SeaweedFS, loopback; best of {runs} for 1 GiB, wrk {secs} s for 11 KB");
    println!(
        "1 GiB GET   airlockd {ours:>8.0} MB/s     SeaweedFS {theirs:>8.0} MB/s     ratio {:.2}",
        ours / theirs
    );
    println!(
        "11 KB GET   airlockd {small_ours:>8.0} req/s    SeaweedFS {small_theirs:>8.0} req/s    ratio {:.2}",
        small_ours / small_theirs
    );
    println!("airlockd peak RSS over the run: {:.1} MiB", airlockd.peak_rss_mib()?);
    Ok(())
}
