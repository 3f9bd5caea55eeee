//! The Python environment ComfyUI runs in: found beside the tree (`.venv`, `venv`) or given,
//! inspected by running its interpreter (version, platform tag, installed distributions), and
//! installed into with pip or uv, always `--require-hashes --no-deps` from a list airlock
//! resolved against the verified log, with the mirror's index as the only index.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use airlock_proto::{Kind, PackageName};

use crate::lock::Locked;

/// Distributions every environment has that are tools, not part of what ComfyUI runs: never
/// locked, never removed.
pub const TOOLS: [&str; 4] = ["pip", "setuptools", "wheel", "uv"];

/// The installer used for requirements: the environment's own pip, or uv at a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Installer {
    Pip,
    Uv(PathBuf),
}

/// A Python environment, as its interpreter reports it.
#[derive(Debug, Clone)]
pub struct PythonEnv {
    pub python: PathBuf,
    /// `3.12`.
    pub version: String,
    /// The platform tag wheels are chosen for (`manylinux_2_36_x86_64`, `win_amd64`, ...).
    pub platform: String,
    /// Installed distributions: normalized name → version.
    pub installed: BTreeMap<PackageName, String>,
}

const INSPECT: &str = r#"
import json, platform, sys, sysconfig
import importlib.metadata as m
plat = sysconfig.get_platform().replace("-", "_").replace(".", "_")
libc, libc_version = platform.libc_ver()
if plat.startswith("linux_") and libc == "glibc" and libc_version:
    major, minor = libc_version.split(".")[:2]
    plat = "manylinux_%s_%s_%s" % (major, minor, plat[len("linux_"):])
dists = {}
for d in m.distributions():
    name = d.metadata["Name"]
    if name:
        dists[name] = d.version
print(json.dumps({"version": "%d.%d" % sys.version_info[:2], "platform": plat, "dists": dists}))
"#;

/// The interpreter of the tree at `comfy`: `python` when given, else `.venv` or `venv` in the
/// tree, else `python3` on the PATH.
/// A path is made absolute (never resolved through links: a virtual environment's `python` is a
/// link to its base interpreter), so it can be run from any folder.
pub fn find_python(comfy: &Path, python: Option<&Path>) -> PathBuf {
    let absolute = |path: PathBuf| std::path::absolute(&path).unwrap_or(path);
    if let Some(python) = python {
        return if python.components().count() > 1 {
            absolute(python.to_path_buf())
        } else {
            python.to_path_buf()
        };
    }
    for venv in [".venv", "venv"] {
        for bin in ["bin/python", "Scripts/python.exe"] {
            let candidate = comfy.join(venv).join(bin);
            if candidate.exists() {
                return absolute(candidate);
            }
        }
    }
    PathBuf::from("python3")
}

/// Runs the interpreter to learn what the environment is.
pub fn inspect(python: &Path) -> anyhow::Result<PythonEnv> {
    let out = Command::new(python)
        .args(["-I", "-c", INSPECT])
        .output()
        .map_err(|e| anyhow::anyhow!("cannot run {}: {e}", python.display()))?;
    anyhow::ensure!(
        out.status.success(),
        "{} failed: {}",
        python.display(),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    #[derive(serde::Deserialize)]
    struct Answer {
        version: String,
        platform: String,
        dists: BTreeMap<String, String>,
    }
    let answer: Answer = serde_json::from_slice(&out.stdout)
        .map_err(|e| anyhow::anyhow!("{} answered something unexpected: {e}", python.display()))?;
    let mut installed = BTreeMap::new();
    for (name, version) in answer.dists {
        if let Ok(name) = PackageName::normalize(Kind::Wheel, &name) {
            installed.insert(name, version);
        }
    }
    Ok(PythonEnv {
        python: python.to_path_buf(),
        version: answer.version,
        platform: answer.platform,
        installed,
    })
}

impl PythonEnv {
    /// The resolution target for this environment.
    pub fn target(&self) -> anyhow::Result<crate::target::Target> {
        crate::target::Target::new(&self.version, &self.platform)
            .map_err(|e| anyhow::anyhow!("{}: {e}", self.python.display()))
    }

    /// Installed distributions that are not tools.
    pub fn packages(&self) -> impl Iterator<Item = (&PackageName, &String)> {
        self.installed.iter().filter(|(name, _)| !TOOLS.contains(&name.as_str()))
    }
}

/// The installer to use: the one asked for, else uv when it is on the PATH or beside the
/// interpreter, else pip.
pub fn choose_installer(asked: Option<&str>, python: &Path) -> anyhow::Result<Installer> {
    let beside = python.parent().map(|bin| bin.join("uv")).filter(|p| p.is_file());
    let on_path = || {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths).map(|dir| dir.join("uv")).find(|candidate| candidate.is_file())
        })
    };
    match asked {
        Some("pip") => Ok(Installer::Pip),
        Some("uv") => beside.or_else(on_path).map(Installer::Uv).ok_or_else(|| {
            anyhow::anyhow!("--installer uv: no uv on the PATH or beside {}", python.display())
        }),
        Some(other) => anyhow::bail!("--installer {other}: expected pip or uv"),
        None => Ok(beside.or_else(on_path).map_or(Installer::Pip, Installer::Uv)),
    }
}

/// Installs `locked` into the environment from `index_url` (the mirror's index), hashes pinned,
/// no dependencies beyond the list; `extra_env` carries CA settings for an HTTPS mirror.
pub fn install(
    installer: &Installer,
    python: &Path,
    index_url: &str,
    locked: &[Locked],
    extra_env: &[(String, String)],
) -> anyhow::Result<()> {
    if locked.is_empty() {
        return Ok(());
    }
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("requirements.txt");
    std::fs::write(
        &file,
        crate::lock::requirements_text("written by airlock from the verified log", locked),
    )?;
    let mut command = base(installer, python, "install");
    command
        .args(["--require-hashes", "--no-deps", "--index-url", index_url, "-r"])
        .arg(&file)
        .envs(extra_env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    run(command, "install")
}

/// Removes distributions from the environment.
pub fn uninstall(installer: &Installer, python: &Path, names: &[String]) -> anyhow::Result<()> {
    if names.is_empty() {
        return Ok(());
    }
    let mut command = base(installer, python, "uninstall");
    if *installer == Installer::Pip {
        command.arg("-y");
    }
    command.args(names);
    run(command, "uninstall")
}

fn base(installer: &Installer, python: &Path, verb: &str) -> Command {
    match installer {
        Installer::Pip => {
            let mut command = Command::new(python);
            command.args(["-m", "pip", verb, "--disable-pip-version-check", "--no-input"]);
            command
        }
        Installer::Uv(uv) => {
            let mut command = Command::new(uv);
            command.args(["pip", verb, "--python"]).arg(python);
            command
        }
    }
}

fn run(mut command: Command, verb: &str) -> anyhow::Result<()> {
    let out = command.output().map_err(|e| anyhow::anyhow!("cannot run the installer: {e}"))?;
    anyhow::ensure!(
        out.status.success(),
        "the installer's {verb} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}
