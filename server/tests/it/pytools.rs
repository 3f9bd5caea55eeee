//! Test support for the Python index: wheels built here (so the suite needs no network), and
//! the real pip and uv, from the virtual environment `scripts/ensure-deps.sh` installs, run
//! with a clean environment against a fresh target environment.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine as _;
use sha2::Digest as _;

/// A wheel to build.
pub struct WheelSpec<'a> {
    pub name: &'a str,
    pub version: &'a str,
    pub requires: &'a [&'a str],
    pub requires_python: Option<&'a str>,
    /// `py3-none-any` unless given.
    pub tag: &'a str,
}

impl<'a> WheelSpec<'a> {
    pub fn new(name: &'a str, version: &'a str, requires: &'a [&'a str]) -> Self {
        Self { name, version, requires, requires_python: Some(">=3.8"), tag: "py3-none-any" }
    }
}

fn record_hash(bytes: &[u8]) -> String {
    format!("sha256={}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(bytes)))
}

/// Writes `spec`'s wheel into `dir` with `members` as they are, or with `tamper` applied to the
/// member list before RECORD is written (`tamper_record` after): returns its path.
pub fn build_wheel_with(
    dir: &Path,
    spec: &WheelSpec,
    tamper: impl FnOnce(&mut Vec<(String, Vec<u8>)>),
    tamper_record: impl FnOnce(&mut String),
) -> PathBuf {
    let module = spec.name.replace('-', "_");
    let dist_info = format!("{module}-{}.dist-info", spec.version);
    let mut metadata = format!(
        "Metadata-Version: 2.1\nName: {}\nVersion: {}\nSummary: test package {}\n",
        spec.name, spec.version, spec.name
    );
    if let Some(requires) = spec.requires_python {
        metadata.push_str(&format!("Requires-Python: {requires}\n"));
    }
    for requirement in spec.requires {
        metadata.push_str(&format!("Requires-Dist: {requirement}\n"));
    }
    let wheel =
        format!("Wheel-Version: 1.0\nGenerator: airlock-tests\nRoot-Is-Purelib: true\nTag: {}\n", spec.tag);
    let mut members: Vec<(String, Vec<u8>)> = vec![
        (format!("{module}/__init__.py"), format!("VERSION = {:?}\n", spec.version).into_bytes()),
        (format!("{dist_info}/METADATA"), metadata.into_bytes()),
        (format!("{dist_info}/WHEEL"), wheel.into_bytes()),
    ];
    tamper(&mut members);
    let mut record: String = members
        .iter()
        .map(|(path, bytes)| format!("{path},{},{}\n", record_hash(bytes), bytes.len()))
        .collect();
    record.push_str(&format!("{dist_info}/RECORD,,\n"));
    tamper_record(&mut record);
    members.push((format!("{dist_info}/RECORD"), record.into_bytes()));
    let filename = format!("{module}-{}-{}.whl", spec.version, spec.tag);
    let path = dir.join(filename);
    std::fs::create_dir_all(dir).unwrap();
    let mut zip = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
    let options =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    for (name, bytes) in members {
        zip.start_file(name, options).unwrap();
        zip.write_all(&bytes).unwrap();
    }
    zip.finish().unwrap();
    path
}

/// Writes `spec`'s wheel into `dir`.
pub fn build_wheel(dir: &Path, spec: &WheelSpec) -> PathBuf {
    build_wheel_with(dir, spec, |_| {}, |_| {})
}

/// The directory of the pip and uv the tests drive.
pub fn tools() -> PathBuf {
    let dir = std::env::var_os("AIRLOCK_PYTOOLS").map_or_else(
        || PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/airlock-pytools"),
        PathBuf::from,
    );
    assert!(
        dir.join("bin/uv").exists() && dir.join("bin/pip").exists(),
        "pip and uv are missing from {}: run scripts/ensure-deps.sh",
        dir.display()
    );
    dir
}

/// What a tool run printed, and whether it succeeded.
#[derive(Debug)]
pub struct ToolRun {
    pub ok: bool,
    pub output: String,
}

/// A fresh Python environment to install into, with pip and uv pointed at it and nothing else:
/// the machine's pip and certificate settings are cleared.
pub struct Target {
    pub dir: PathBuf,
    home: PathBuf,
}

impl Target {
    /// A new environment under `parent`.
    pub fn new(parent: &Path, name: &str) -> Self {
        let dir = parent.join(name);
        let home = parent.join(format!("{name}-home"));
        std::fs::create_dir_all(&home).unwrap();
        let target = Self { dir, home };
        let made = target
            .command("uv")
            .args(["venv", "--quiet", "--python"])
            .arg(tools().join("bin/python"))
            .arg(&target.dir)
            .output()
            .unwrap();
        assert!(made.status.success(), "uv venv: {}", String::from_utf8_lossy(&made.stderr));
        target
    }

    fn command(&self, tool: &str) -> Command {
        let mut command = Command::new(tools().join("bin").join(tool));
        command
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", &self.home)
            .env("PIP_CONFIG_FILE", "/dev/null")
            .env("PIP_NO_INPUT", "1")
            .env("PIP_DISABLE_PIP_VERSION_CHECK", "1")
            .env("PIP_CACHE_DIR", self.home.join("pip-cache"))
            .env("UV_NO_CONFIG", "1")
            .env("UV_PYTHON_DOWNLOADS", "never")
            .env("UV_CACHE_DIR", self.home.join("uv-cache"));
        command
    }

    /// `pip ARGS` installing into this environment.
    pub fn pip(&self, args: &[&str], env: &[(&str, &str)]) -> ToolRun {
        let mut command = self.command("pip");
        command.arg("--python").arg(self.dir.join("bin/python")).args(args).envs(env.iter().copied());
        run(command)
    }

    /// `uv pip ARGS` installing into this environment.
    pub fn uv_pip(&self, args: &[&str], env: &[(&str, &str)]) -> ToolRun {
        let mut command = self.command("uv");
        command
            .args(["pip"])
            .args(args)
            .arg("--python")
            .arg(self.dir.join("bin/python"))
            .envs(env.iter().copied());
        run(command)
    }

    /// The installed version of `module` (its `VERSION`), or `None` when it is not installed.
    pub fn installed(&self, module: &str) -> Option<String> {
        let out = Command::new(self.dir.join("bin/python"))
            .args(["-c", &format!("import {module}; print({module}.VERSION)")])
            .env_clear()
            .output()
            .unwrap();
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }
}

fn run(mut command: Command) -> ToolRun {
    let out = command.output().unwrap();
    ToolRun {
        ok: out.status.success(),
        output: format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
    }
}
