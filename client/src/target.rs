//! The Python environment a lock is made for: a Python version and a platform. It decides which
//! wheels install there (their tags, PEP 425) and how environment markers evaluate (PEP 508).

use std::str::FromStr;

use pep508_rs::{MarkerEnvironment, MarkerEnvironmentBuilder};

use crate::wheel::WheelName;

/// A target environment.
#[derive(Debug, Clone)]
pub struct Target {
    /// Minor version of Python 3 (`12` for 3.12).
    pub minor: u32,
    /// A platform tag such as `manylinux_2_28_x86_64`, `linux_x86_64`, `win_amd64`,
    /// `macosx_14_0_arm64`.
    pub platform: String,
    markers: MarkerEnvironment,
}

impl Target {
    /// A target from `--python-version 3.12` and `--platform TAG`.
    pub fn new(python_version: &str, platform: &str) -> Result<Self, String> {
        let minor = python_version
            .strip_prefix("3.")
            .and_then(|m| m.parse::<u32>().ok())
            .ok_or_else(|| format!("--python-version {python_version:?}: expected 3.N, such as 3.12"))?;
        let (sys_platform, system, os_name) = if platform.starts_with("win") {
            ("win32", "Windows", "nt")
        } else if platform.starts_with("macosx") {
            ("darwin", "Darwin", "posix")
        } else if platform.contains("linux") {
            ("linux", "Linux", "posix")
        } else {
            return Err(format!(
                "--platform {platform:?}: expected a linux, manylinux, musllinux, macosx or win tag"
            ));
        };
        // The architecture is the tag's last part (`x86_64` has an underscore of its own);
        // Windows reports AMD64.
        let machine = match platform.rsplit('_').next().unwrap_or_default() {
            _ if platform.ends_with("x86_64") => "x86_64",
            "amd64" => "AMD64",
            other => other,
        };
        let python_version = format!("3.{minor}");
        let full = format!("3.{minor}.0");
        let markers = MarkerEnvironment::try_from(MarkerEnvironmentBuilder {
            implementation_name: "cpython",
            implementation_version: &full,
            os_name,
            platform_machine: machine,
            platform_python_implementation: "CPython",
            platform_release: "",
            platform_system: system,
            platform_version: "",
            python_full_version: &full,
            python_version: &python_version,
            sys_platform,
        })
        .map_err(|e| format!("--python-version {python_version:?}: {e}"))?;
        Ok(Self { minor, platform: platform.to_owned(), markers })
    }

    /// The environment markers evaluate against.
    pub fn markers(&self) -> &MarkerEnvironment {
        &self.markers
    }

    /// The Python version as `3.N`.
    pub fn python_version(&self) -> String {
        format!("3.{}", self.minor)
    }

    /// Whether a release's `Requires-Python` admits this target's Python.
    pub fn admits(&self, requires_python: Option<&str>) -> bool {
        let Some(spec) = requires_python else { return true };
        let Ok(specifiers) = pep440_rs::VersionSpecifiers::from_str(spec) else { return false };
        let Ok(version) = pep440_rs::Version::from_str(&format!("3.{}.0", self.minor)) else { return false };
        specifiers.contains(&version)
    }

    /// Whether a wheel installs on this target (its Python, ABI and platform tags).
    pub fn installs(&self, wheel: &WheelName) -> bool {
        let abi_ok = |abi: &str, python: &str| match abi {
            "none" => true,
            "abi3" => python
                .strip_prefix("cp3")
                .and_then(|m| m.parse::<u32>().ok())
                .is_some_and(|m| m <= self.minor),
            other => {
                other.strip_prefix("cp3").map(|m| m.trim_end_matches(['m', 'd', 'u', 't']))
                    == Some(&self.minor.to_string())
            }
        };
        let python_ok = |python: &str| match python {
            "py3" | "py2.py3" => true,
            other => {
                let exact = [format!("py3{}", self.minor), format!("cp3{}", self.minor)];
                exact.iter().any(|t| t == other)
                    || other
                        .strip_prefix("cp3")
                        .and_then(|m| m.parse::<u32>().ok())
                        .is_some_and(|m| m <= self.minor)
            }
        };
        let pythons: Vec<&str> = wheel.python.split('.').collect();
        let any_python = pythons.iter().any(|p| python_ok(p)) || python_ok(&wheel.python);
        let any_abi = wheel.abi.split('.').any(|abi| pythons.iter().any(|p| abi_ok(abi, p)));
        let any_platform = wheel.platform.split('.').any(|p| platform_ok(&self.platform, p));
        any_python && any_abi && any_platform
    }
}

/// Whether a wheel's platform tag installs on the target's platform tag.
fn platform_ok(target: &str, wheel: &str) -> bool {
    if wheel == "any" || wheel == target {
        return true;
    }
    let glibc = |tag: &str| -> Option<(u32, u32, String)> {
        let legacy = [("manylinux1_", (2, 5)), ("manylinux2010_", (2, 12)), ("manylinux2014_", (2, 17))];
        for (prefix, (major, minor)) in legacy {
            if let Some(arch) = tag.strip_prefix(prefix) {
                return Some((major, minor, arch.to_owned()));
            }
        }
        let rest = tag.strip_prefix("manylinux_")?;
        let mut parts = rest.splitn(3, '_');
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        Some((major, minor, parts.next()?.to_owned()))
    };
    if let (Some((tmaj, tmin, tarch)), Some((wmaj, wmin, warch))) = (glibc(target), glibc(wheel)) {
        return tarch == warch && (wmaj, wmin) <= (tmaj, tmin);
    }
    // A plain linux target takes any manylinux wheel of its architecture.
    if let (Some(arch), Some((_, _, warch))) = (target.strip_prefix("linux_"), glibc(wheel)) {
        return arch == warch;
    }
    let macos = |tag: &str| -> Option<(u32, u32, String)> {
        let rest = tag.strip_prefix("macosx_")?;
        let mut parts = rest.splitn(3, '_');
        Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?, parts.next()?.to_owned()))
    };
    if let (Some((tmaj, tmin, tarch)), Some((wmaj, wmin, warch))) = (macos(target), macos(wheel)) {
        let arch_ok = warch == tarch || warch == "universal2" && (tarch == "arm64" || tarch == "x86_64");
        return arch_ok && (wmaj, wmin) <= (tmaj, tmin);
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wheel(name: &str) -> WheelName {
        WheelName::parse(name).unwrap()
    }

    #[test]
    fn tags_decide_what_installs() {
        let linux = Target::new("3.12", "manylinux_2_28_x86_64").unwrap();
        assert!(linux.installs(&wheel("a-1.0-py3-none-any.whl")));
        assert!(linux.installs(&wheel("a-1.0-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl")));
        assert!(linux.installs(&wheel("a-1.0-cp39-abi3-manylinux_2_28_x86_64.whl")));
        assert!(!linux.installs(&wheel("a-1.0-cp311-cp311-manylinux_2_17_x86_64.whl")));
        assert!(!linux.installs(&wheel("a-1.0-cp312-cp312-manylinux_2_34_x86_64.whl")));
        assert!(!linux.installs(&wheel("a-1.0-cp312-cp312-manylinux_2_17_aarch64.whl")));
        assert!(!linux.installs(&wheel("a-1.0-cp312-cp312-win_amd64.whl")));
        let windows = Target::new("3.12", "win_amd64").unwrap();
        assert!(windows.installs(&wheel("a-1.0-cp312-cp312-win_amd64.whl")));
        assert!(!windows.installs(&wheel("a-1.0-cp312-cp312-manylinux_2_17_x86_64.whl")));
        let mac = Target::new("3.11", "macosx_14_0_arm64").unwrap();
        assert!(mac.installs(&wheel("a-1.0-cp311-cp311-macosx_11_0_universal2.whl")));
        assert!(!mac.installs(&wheel("a-1.0-cp311-cp311-macosx_15_0_arm64.whl")));
        let plain = Target::new("3.12", "linux_x86_64").unwrap();
        assert!(plain.installs(&wheel("a-1.0-cp312-cp312-manylinux_2_28_x86_64.whl")));
        assert!(Target::new("2.7", "linux_x86_64").is_err());
        assert!(Target::new("3.12", "solaris").is_err());
    }

    #[test]
    fn requires_python_and_markers_follow_the_target() {
        let target = Target::new("3.10", "win_amd64").unwrap();
        assert!(target.admits(Some(">=3.8")));
        assert!(!target.admits(Some(">=3.11")));
        assert!(target.admits(None));
        let requirement = pep508_rs::Requirement::<pep508_rs::VerbatimUrl>::from_str(
            "x; sys_platform == 'win32' and python_version < '3.11'",
        )
        .unwrap();
        assert!(requirement.evaluate_markers(target.markers(), &[]));
        let linux = Target::new("3.12", "linux_x86_64").unwrap();
        assert!(!requirement.evaluate_markers(linux.markers(), &[]));
    }
}
