//! `airlock scan`: findings about a node pack or a wheel, each with a rule, a severity, the file
//! and (where there is one) the line. This part covers the archive itself (hostile member names,
//! links and devices, duplicates and case collisions, size and compression-ratio bombs, too many
//! entries), install hooks, and requirements (index overrides, direct URLs and VCS references,
//! a blocklist). Reads are capped; a finding never stops the scan of the rest.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::str::FromStr;

use serde::Serialize;

/// The scanner's version: a report names it, so that a server scanning with another version
/// can say which one to use.
pub const SCANNER_VERSION: &str = concat!("airlock-scan/", env!("CARGO_PKG_VERSION"), "+rules.1");
/// Most archive members examined.
pub const MAX_ENTRIES: usize = 20_000;
/// Most bytes all members may hold uncompressed.
pub const MAX_TOTAL_BYTES: u64 = 4 << 30;
/// A member larger than this, compressed more than `MAX_RATIO` times, is a bomb.
pub const BOMB_MIN_BYTES: u64 = 10 << 20;
pub const MAX_RATIO: u64 = 100;
/// Largest requirements file read.
const MAX_REQUIREMENTS_BYTES: u64 = 1 << 20;

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Low,
    Medium,
    High,
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub rule: &'static str,
    pub severity: Severity,
    pub file: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
    pub detail: String,
}

/// A scan report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub scanner: String,
    pub file: String,
    pub findings: Vec<Finding>,
}

impl Report {
    /// The most severe finding's severity.
    pub fn worst(&self) -> Option<Severity> {
        self.findings.iter().map(|f| f.severity).max()
    }
}

/// A requirement the blocklist refuses: a project name and the versions (PEP 440 specifiers).
#[derive(Debug, Clone)]
pub struct Blocked {
    pub name: String,
    pub versions: pep440_rs::VersionSpecifiers,
}

/// The blocklist airlock ships: releases known to carry malware.
pub fn default_blocklist() -> Vec<Blocked> {
    // ultralytics 8.3.41 and 8.3.42 shipped a cryptominer (December 2024).
    [("ultralytics", "==8.3.41"), ("ultralytics", "==8.3.42")]
        .into_iter()
        .filter_map(|(name, spec)| {
            Some(Blocked {
                name: name.to_owned(),
                versions: pep440_rs::VersionSpecifiers::from_str(spec).ok()?,
            })
        })
        .collect()
}

/// Scans the zip (a pack or a wheel) at `path`.
pub fn scan_file(path: &Path, blocklist: &[Blocked]) -> Result<Report, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut archive = zip::ZipArchive::new(std::io::BufReader::new(file))
        .map_err(|e| format!("{}: not a zip archive: {e}", path.display()))?;
    let mut findings = Vec::new();
    let mut finding = |rule, severity, file: &str, line, detail: String| {
        findings.push(Finding { rule, severity, file: file.to_owned(), line, detail });
    };
    // The zip library keeps one entry per name; an extractor would write both.
    if archive.has_duplicate_names() {
        finding("archive.duplicate", Severity::High, "", None, "the same member name twice".to_owned());
    }
    if archive.len() > MAX_ENTRIES {
        finding(
            "archive.too-many-entries",
            Severity::High,
            "",
            None,
            format!("{} members, over {MAX_ENTRIES}", archive.len()),
        );
    }
    let mut folded: BTreeMap<String, String> = BTreeMap::new();
    let mut total = 0u64;
    let mut requirements = Vec::new();
    for index in 0..archive.len().min(MAX_ENTRIES) {
        let Ok(entry) = archive.by_index_raw(index) else {
            finding("archive.unreadable", Severity::High, "", None, format!("member {index} cannot be read"));
            continue;
        };
        let name = entry.name().map(|n| n.into_owned()).unwrap_or_else(|_| format!("<member {index}>"));
        if name.starts_with('/')
            || name.starts_with('\\')
            || name.get(1..3) == Some(":\\")
            || name.get(1..3) == Some(":/")
        {
            finding(
                "archive.absolute-path",
                Severity::High,
                &name,
                None,
                "an absolute member name".to_owned(),
            );
        }
        if name.split(['/', '\\']).any(|part| part == "..") {
            finding(
                "archive.path-traversal",
                Severity::High,
                &name,
                None,
                "a member name with `..`".to_owned(),
            );
        }
        let mode = entry.unix_mode().unwrap_or(0) & 0o170_000;
        if entry.is_symlink() || mode == 0o120_000 {
            finding("archive.link", Severity::High, &name, None, "a symbolic link".to_owned());
        } else if matches!(mode, 0o020_000 | 0o060_000 | 0o010_000 | 0o140_000) {
            finding("archive.device", Severity::High, &name, None, "a device, pipe or socket".to_owned());
        }
        if let Some(other) = folded.insert(name.to_lowercase(), name.clone()) {
            finding(
                "archive.case-collision",
                Severity::Medium,
                &name,
                None,
                format!(
                    "differs from {other} only in case: one overwrites the other on a case-insensitive disk"
                ),
            );
        }
        let (size, compressed) = (entry.size(), entry.compressed_size().max(1));
        total = total.saturating_add(size);
        if size >= BOMB_MIN_BYTES && size / compressed > MAX_RATIO {
            finding(
                "archive.bomb",
                Severity::High,
                &name,
                None,
                format!("{size} bytes from {compressed} compressed (ratio {})", size / compressed),
            );
        }
        let base = name.rsplit('/').next().unwrap_or_default();
        let depth = name.matches('/').count();
        match base {
            "install.py" | "prestartup_script.py" if depth == 0 => finding(
                "install.hook",
                Severity::Medium,
                &name,
                None,
                "runs when ComfyUI-Manager installs or ComfyUI starts the pack".to_owned(),
            ),
            "setup.py" if depth == 0 => finding(
                "install.setup-py",
                Severity::Medium,
                &name,
                None,
                "runs at install when the pack is installed as a package".to_owned(),
            ),
            "requirements.txt" if depth == 0 => requirements.push(index),
            _ => {}
        }
    }
    if total > MAX_TOTAL_BYTES {
        finding(
            "archive.bomb",
            Severity::High,
            "",
            None,
            format!("{total} bytes uncompressed in all, over {MAX_TOTAL_BYTES}"),
        );
    }
    for index in requirements {
        let Ok(entry) = archive.by_index(index) else { continue };
        let mut bytes = Vec::new();
        if entry.take(MAX_REQUIREMENTS_BYTES).read_to_end(&mut bytes).is_err() {
            continue;
        }
        findings.extend(scan_requirements("requirements.txt", &String::from_utf8_lossy(&bytes), blocklist));
    }
    findings.sort_by(|a, b| {
        b.severity.cmp(&a.severity).then_with(|| a.file.cmp(&b.file)).then(a.line.cmp(&b.line))
    });
    Ok(Report {
        scanner: SCANNER_VERSION.to_owned(),
        file: path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned(),
        findings,
    })
}

/// Findings in a requirements file: options that point pip or uv at another index or at loose
/// files, direct URLs and VCS references, and blocklisted releases.
pub fn scan_requirements(file: &str, text: &str, blocklist: &[Blocked]) -> Vec<Finding> {
    let mut findings = Vec::new();
    for (number, raw) in text.lines().enumerate() {
        let line_number = u32::try_from(number + 1).ok();
        let line = raw.split(" #").next().unwrap_or_default().trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut push = |rule, detail: String| {
            findings.push(Finding {
                rule,
                severity: Severity::High,
                file: file.to_owned(),
                line: line_number,
                detail,
            });
        };
        let option = line.split([' ', '=']).next().unwrap_or_default();
        if matches!(
            option,
            "-i" | "--index-url" | "--extra-index-url" | "-f" | "--find-links" | "--trusted-host"
        ) {
            push(
                "requirements.index-override",
                format!("{line:?} points the installer away from the site's index"),
            );
            continue;
        }
        if line.starts_with('-') {
            push("requirements.option", format!("{line:?}: an installer option in a pack's requirements"));
            continue;
        }
        let lower = line.to_ascii_lowercase();
        if ["git+", "hg+", "svn+", "bzr+"].iter().any(|vcs| lower.contains(vcs)) {
            push("requirements.vcs", format!("{line:?} installs from a version-control repository"));
            continue;
        }
        if lower.contains("://") || lower.contains(" @ ") {
            push("requirements.direct-url", format!("{line:?} installs from a URL, not from the index"));
            continue;
        }
        let Ok(requirement) = pep508_rs::Requirement::<pep508_rs::VerbatimUrl>::from_str(line) else {
            push("requirements.unparsable", format!("{line:?} is not a PEP 508 requirement"));
            continue;
        };
        let name = requirement.name.to_string();
        let admitted: Vec<String> = blocklist
            .iter()
            .filter(|b| pep508_rs::PackageName::from_str(&b.name).is_ok_and(|n| n == requirement.name))
            .filter(|blocked| match &requirement.version_or_url {
                Some(pep508_rs::VersionOrUrl::VersionSpecifier(wanted)) => {
                    blocked.versions.iter().any(|b| wanted.contains(b.version()))
                }
                _ => true,
            })
            .map(|blocked| format!("{name}{}", blocked.versions))
            .collect();
        if !admitted.is_empty() {
            push(
                "requirements.blocklisted",
                format!("{line:?} admits {}, which the blocklist refuses", admitted.join(", ")),
            );
        }
    }
    findings
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requirements_rules() {
        let text = "numpy>=1.24\n--extra-index-url https://evil.example/simple\n-i https://x\ngit+https://github.com/x/y\nfoo @ https://x/foo.whl\nultralytics==8.3.41\nultralytics>=8.3\nultralytics==8.3.40\nultralytics\n# fine\n";
        let rules: Vec<(&str, Option<u32>)> =
            scan_requirements("requirements.txt", text, &default_blocklist())
                .iter()
                .map(|f| (f.rule, f.line))
                .collect();
        assert_eq!(
            rules,
            [
                ("requirements.index-override", Some(2)),
                ("requirements.index-override", Some(3)),
                ("requirements.vcs", Some(4)),
                ("requirements.direct-url", Some(5)),
                ("requirements.blocklisted", Some(6)),
                ("requirements.blocklisted", Some(7)),
                ("requirements.blocklisted", Some(9)),
            ]
        );
    }
}
