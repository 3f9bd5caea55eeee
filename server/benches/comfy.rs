//! ComfyUI node pack benchmark: `airlock install` of a pack with ten requirements, and
//! `airlock restore` of a lock with twenty packs, both from a mirror (an `airlockd` following a
//! primary on loopback) into a ComfyUI tree with a real virtual environment, uv installing the
//! wheels from the mirror's index with hashes pinned.
//!
//! What it measures, in one run:
//! - **install**: `airlock install bench-pack-00` (verify the log, resolve its ten requirements,
//!   download and verify the pack, extract, uv install of the ten wheels, swap in), with empty
//!   uv and airlock caches;
//! - **restore**: `airlock restore comfy.lock` of PACKS packs and their wheels into a wiped
//!   tree and a fresh environment.
//!
//! The wheels and packs are built here and published with the `airlock` CLI (release build,
//! made by this bench when missing); uv comes from the Python tools environment
//! (`scripts/ensure-deps.sh`).
//!
//! Run (optional argument: packs in the lock, default 20):
//!
//! ```text
//! cargo bench -p airlock-server --bench comfy
//! cargo bench -p airlock-server --bench comfy -- 5
//! ```

#[allow(dead_code)]
mod common;
#[allow(dead_code, clippy::unwrap_used)]
#[path = "../tests/it/pytools.rs"]
mod pytools;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context as _};
use common::{airlock_bin, exit_with, free_addr, number_arg, positional_args, ServerProcess, World};

const REQUIREMENTS: usize = 10;

fn main() -> ExitCode {
    exit_with(run)
}

fn run() -> anyhow::Result<()> {
    let args = positional_args("cargo bench -p airlock-server --bench comfy -- [PACKS]");
    let packs: usize = number_arg(&args, 0, "packs", 20)?;
    ensure!(packs >= 1, "at least one pack");
    let airlock = airlock_bin()?;
    let tmp = tempfile::tempdir()?;
    let world = World::create(&tmp.path().join("primary"), "bench")?;
    airlock_keys::write_secret_key(&world.dir.join("pub.key"), &world.publisher)?;
    let primary = ServerProcess::start_airlockd("airlockd", &world)?;
    let cli = Cli { bin: airlock, dir: tmp.path().to_path_buf(), world: &world };

    eprintln!("publishing {REQUIREMENTS} wheels and {packs} packs to the primary");
    let primary_url = format!("http://{}", primary.addr);
    for i in 0..REQUIREMENTS {
        let name = format!("bench-req-{i:02}");
        let wheel =
            pytools::build_wheel(&tmp.path().join("wheels"), &pytools::WheelSpec::new(&name, "1.0", &[]));
        cli.publish(&primary_url, &wheel, &["--kind", "wheel", "--name", &name, "--version", "1.0"])?;
    }
    for i in 0..packs {
        let dir = tmp.path().join(format!("pack-{i:02}"));
        let requirements: Vec<String> = if i == 0 {
            (0..REQUIREMENTS).map(|r| format!("bench-req-{r:02}>=1.0")).collect()
        } else {
            vec![format!("bench-req-{:02}", i % REQUIREMENTS)]
        };
        write_pack(&dir, &format!("bench-pack-{i:02}"), &requirements)?;
        let zip = tmp.path().join(format!("pack-{i:02}.zip"));
        cli.run(&["pack", dir.to_str().unwrap_or_default(), "-o", zip.to_str().unwrap_or_default()])?;
        cli.publish(&primary_url, &zip, &["--kind", "node"])?;
    }

    let mirror = start_mirror(tmp.path(), &world, primary.addr)?;
    let mirror_url = format!("http://{}", mirror.addr);
    wait_synced(primary.addr, mirror.addr)?;

    let comfy = tmp.path().join("ComfyUI");
    make_tree(&comfy)?;
    let site = ["--comfyui", comfy.to_str().unwrap_or_default(), "--installer", "uv"];
    let started = Instant::now();
    cli.at(&mirror_url, &[&["install", "bench-pack-00"][..], &site].concat())?;
    let install = started.elapsed();
    for i in 1..packs {
        cli.at(&mirror_url, &[&["install", &format!("bench-pack-{i:02}")][..], &site].concat())?;
    }
    let lock = tmp.path().join("comfy.lock");
    cli.at(&mirror_url, &[&["lock", "-o", lock.to_str().unwrap_or_default()][..], &site[..2]].concat())?;
    std::fs::remove_dir_all(&comfy)?;
    make_tree(&comfy)?;
    std::fs::remove_dir_all(tmp.path().join("uv-cache")).ok();
    let started = Instant::now();
    cli.at(&mirror_url, &[&["restore", lock.to_str().unwrap_or_default()][..], &site].concat())?;
    let restore = started.elapsed();
    let installed = std::fs::read_dir(comfy.join("custom_nodes"))?.count();
    ensure!(installed == packs, "restore left {installed} pack folders, not {packs}");

    println!("airlock ComfyUI benchmark: from a mirror on loopback, uv installing the wheels");
    println!("install of a pack with {REQUIREMENTS} requirements: {:.2} s", install.as_secs_f64());
    println!(
        "restore of a lock with {packs} packs and {REQUIREMENTS} wheels into a wiped tree: {:.2} s",
        restore.as_secs_f64()
    );
    drop(mirror);
    drop(primary);
    Ok(())
}

struct Cli<'a> {
    bin: PathBuf,
    dir: PathBuf,
    world: &'a World,
}

impl Cli<'_> {
    fn run(&self, args: &[&str]) -> anyhow::Result<String> {
        let tools = pytools::tools();
        let out = Command::new(&self.bin)
            .args(args)
            .current_dir(&self.dir)
            .env("AIRLOCK_HOME", self.dir.join("state"))
            .env("PATH", format!("{}:/usr/bin:/bin", tools.join("bin").display()))
            .env("UV_NO_CONFIG", "1")
            .env("UV_CACHE_DIR", self.dir.join("uv-cache"))
            .env("UV_PYTHON_DOWNLOADS", "never")
            .output()
            .context("run airlock")?;
        ensure!(
            out.status.success(),
            "airlock {}: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn root(&self) -> String {
        self.world.root_file.display().to_string()
    }

    /// `airlock ARGS --server URL --root ROOT`.
    fn at(&self, url: &str, args: &[&str]) -> anyhow::Result<String> {
        let root = self.root();
        self.run(&[args, &["--server", url, "--root", &root]].concat())
    }

    fn publish(&self, url: &str, file: &Path, extra: &[&str]) -> anyhow::Result<()> {
        let key = self.world.dir.join("pub.key").display().to_string();
        let file = file.display().to_string();
        let token = self.world.token.clone();
        self.at(url, &[&["publish", &file, "--key", &key, "--token", &token][..], extra].concat())?;
        Ok(())
    }
}

fn write_pack(dir: &Path, name: &str, requirements: &[String]) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir.join("nodes"))?;
    std::fs::write(
        dir.join("pyproject.toml"),
        format!("[project]\nname = \"{name}\"\nversion = \"1.0.0\"\n"),
    )?;
    std::fs::write(dir.join("requirements.txt"), requirements.join("\n"))?;
    std::fs::write(dir.join("__init__.py"), "NODE_CLASS_MAPPINGS = {}\n")?;
    for n in 0..20 {
        std::fs::write(
            dir.join(format!("nodes/node_{n}.py")),
            format!("def node_{n}(x):\n    return x\n").repeat(50),
        )?;
    }
    Ok(())
}

/// A ComfyUI folder with its own virtual environment.
fn make_tree(comfy: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(comfy.join("custom_nodes"))?;
    let status = Command::new(pytools::tools().join("bin/python"))
        .args(["-m", "venv"])
        .arg(comfy.join(".venv"))
        .status()
        .context("python -m venv")?;
    ensure!(status.success(), "python -m venv failed");
    Ok(())
}

fn start_mirror(dir: &Path, world: &World, upstream: SocketAddr) -> anyhow::Result<ServerProcess> {
    let addr = free_addr()?;
    let data = dir.join("mirror");
    common::airlockd_init(&data)?;
    let mut command = Command::new(env!("CARGO_BIN_EXE_airlockd"));
    command.arg("serve").arg("--data").arg(&data).arg("--listen").arg(addr.to_string());
    command.arg("--upstream").arg(format!("http://{upstream}")).arg("--root").arg(&world.root_file);
    command.arg("--sync-interval").arg("1");
    let mut mirror = ServerProcess::spawn("airlockd mirror", command, addr, dir.join("mirror.log"))?;
    mirror.wait_ready("/healthz")?;
    Ok(mirror)
}

/// The log size `/healthz` reports.
fn log_size(addr: SocketAddr) -> anyhow::Result<u64> {
    let (status, body) = common::Client::new(addr, None).request("GET", "/healthz", None, b"")?;
    ensure!(status == 200, "{addr} /healthz: HTTP {status}");
    Ok(serde_json::from_slice::<serde_json::Value>(&body)?["log_size"].as_u64().unwrap_or(0))
}

/// Waits until the mirror serves the primary's log size.
fn wait_synced(primary: SocketAddr, mirror: SocketAddr) -> anyhow::Result<()> {
    let want = log_size(primary)?;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(120) {
        if log_size(mirror).unwrap_or(0) >= want {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    anyhow::bail!("the mirror did not reach log size {want} in 120 s")
}
