//! `airlock scan`: findings about a node pack or a wheel, each with a rule, a severity, the file
//! and (where there is one) the line. This part covers the archive itself (hostile member names,
//! links and devices, duplicates and case collisions, size and compression-ratio bombs, too many
//! entries), install hooks, requirements (index overrides, direct URLs and VCS references, a
//! blocklist), and Python code on its syntax tree (`python`). Reads are capped; a finding never
//! stops the scan of the rest.

mod python;
mod requirements;

pub use requirements::{admits, scan_requirements};

use std::collections::BTreeMap;
use std::io::{Read, Seek};
use std::path::Path;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The scanner's version: a report names it, so that a server scanning with another version
/// can say which one to use.
pub const SCANNER_VERSION: &str = concat!("airlock-scan/", env!("CARGO_PKG_VERSION"), "+rules.2");
/// Most archive members examined.
pub const MAX_ENTRIES: usize = 20_000;
/// Most bytes all members may hold uncompressed.
pub const MAX_TOTAL_BYTES: u64 = 4 << 30;
/// A member larger than this, compressed more than `MAX_RATIO` times, is a bomb.
pub const BOMB_MIN_BYTES: u64 = 10 << 20;
pub const MAX_RATIO: u64 = 100;
/// Largest requirements file read.
const MAX_REQUIREMENTS_BYTES: u64 = 1 << 20;
/// Most Python source bytes read from one archive; the files past it are reported unscanned.
pub const MAX_PYTHON_BYTES: u64 = 64 << 20;

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Low,
    Medium,
    High,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
        }
    }
}

impl std::str::FromStr for Severity {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "low" => Ok(Self::Low),
            "medium" => Ok(Self::Medium),
            "high" => Ok(Self::High),
            _ => Err(format!("{text:?} is not a severity (low, medium, high)")),
        }
    }
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub rule: String,
    pub severity: Severity,
    pub file: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
    pub detail: String,
}

/// A scan report. Its bytes (`to_bytes`) are a function of the scanned bytes, the file name,
/// the scanner version and the blocklist only, so a server re-making it gets the same digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    pub scanner: String,
    pub file: String,
    /// The blocklist the requirements were checked against, one requirement line each.
    pub blocklist: Vec<String>,
    pub findings: Vec<Finding>,
}

/// Largest report read back (from a file beside a statement, or a blob).
pub const MAX_REPORT_BYTES: u64 = 16 << 20;

impl Report {
    /// The most severe finding's severity.
    pub fn worst(&self) -> Option<Severity> {
        self.findings.iter().map(|f| f.severity).max()
    }

    /// The report as stored: compact JSON, fields in declaration order.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Reads stored report bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, String> {
        if bytes.len() as u64 > MAX_REPORT_BYTES {
            return Err(format!("scan report is over {MAX_REPORT_BYTES} bytes"));
        }
        serde_json::from_slice(bytes).map_err(|e| format!("not a scan report: {e}"))
    }

    /// The findings at or above `severity`.
    pub fn at_least(&self, severity: Severity) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(move |f| f.severity >= severity)
    }
}

impl Finding {
    /// The finding by rule, file and line, as a release acknowledges it.
    pub fn reference(&self) -> airlock_proto::FindingRef {
        airlock_proto::FindingRef { rule: self.rule.clone(), file: self.file.clone(), line: self.line }
    }
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let place = match self.line {
            Some(line) => format!("{}:{line}", self.file),
            None => self.file.clone(),
        };
        write!(f, "{:<6} {:<28} {place}  {}", self.severity.as_str(), self.rule, self.detail)
    }
}

/// A requirement the blocklist refuses: a project name and the versions (PEP 440 specifiers).
#[derive(Debug, Clone)]
pub struct Blocked {
    pub name: pep508_rs::PackageName,
    pub versions: pep440_rs::VersionSpecifiers,
}

/// Requirements no pack may admit, as requirement lines (`name` or `name<specifiers>`).
#[derive(Debug, Clone)]
pub struct Blocklist {
    pub lines: Vec<String>,
    pub entries: Vec<Blocked>,
}

/// The blocklist airlock ships: releases known to carry malware. ultralytics 8.3.41 and 8.3.42
/// shipped a cryptominer (December 2024).
pub const DEFAULT_BLOCKLIST: [&str; 2] = ["ultralytics==8.3.41", "ultralytics==8.3.42"];

impl Default for Blocklist {
    fn default() -> Self {
        Self::parse(&DEFAULT_BLOCKLIST.map(str::to_owned))
            .unwrap_or(Self { lines: Vec::new(), entries: Vec::new() })
    }
}

impl Blocklist {
    /// Parses requirement lines; the lines are kept sorted, as a report names them.
    pub fn parse(lines: &[String]) -> Result<Self, String> {
        let mut sorted = lines.to_vec();
        sorted.sort();
        sorted.dedup();
        let entries = sorted
            .iter()
            .map(|line| {
                let requirement = pep508_rs::Requirement::<pep508_rs::VerbatimUrl>::from_str(line)
                    .map_err(|e| format!("blocklist entry {line:?}: {e}"))?;
                let versions = match requirement.version_or_url {
                    Some(pep508_rs::VersionOrUrl::VersionSpecifier(v)) => {
                        pep440_rs::VersionSpecifiers::from_str(&v.to_string()).map_err(|e| e.to_string())?
                    }
                    None => pep440_rs::VersionSpecifiers::from_str("").map_err(|e| e.to_string())?,
                    Some(_) => {
                        return Err(format!("blocklist entry {line:?} is a URL, not name and versions"))
                    }
                };
                Ok(Blocked { name: requirement.name, versions })
            })
            .collect::<Result<_, String>>()?;
        Ok(Self { lines: sorted, entries })
    }
}

/// Scans the zip (a pack or a wheel) at `path`.
pub fn scan_file(path: &Path, blocklist: &Blocklist) -> Result<Report, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    scan_reader(std::io::BufReader::new(file), name, blocklist)
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Scans a zip read from `reader`, reported under the file name `name`.
pub fn scan_reader<R: Read + Seek>(reader: R, name: &str, blocklist: &Blocklist) -> Result<Report, String> {
    let mut archive = zip::ZipArchive::new(reader).map_err(|e| format!("not a zip archive: {e}"))?;
    let mut findings = Vec::new();
    let mut finding = |rule: &str, severity, file: &str, line, detail: String| {
        findings.push(Finding { rule: rule.to_owned(), severity, file: file.to_owned(), line, detail });
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
    let mut sources = Vec::new();
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
            _ if base.ends_with(".py") => sources.push(index),
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
        findings.extend(scan_requirements(
            "requirements.txt",
            &String::from_utf8_lossy(&bytes),
            &blocklist.entries,
        ));
    }
    let mut python = Vec::new();
    let mut python_bytes = 0u64;
    for index in sources {
        let Ok(entry) = archive.by_index(index) else { continue };
        let name = entry.name().unwrap_or_default().into_owned();
        let size = entry.size();
        python_bytes = python_bytes.saturating_add(size.min(python::MAX_FILE_BYTES as u64 + 1));
        if python_bytes > MAX_PYTHON_BYTES {
            findings.push(Finding {
                rule: "python.unscanned".to_owned(),
                severity: Severity::Medium,
                file: name,
                line: None,
                detail: format!("past the {MAX_PYTHON_BYTES}-byte cap on Python read per archive"),
            });
            continue;
        }
        let mut bytes = Vec::new();
        if entry.take(python::MAX_FILE_BYTES as u64 + 1).read_to_end(&mut bytes).is_ok() {
            python.push((name, bytes));
        }
    }
    findings.extend(python::scan_sources(python));
    // A total order, so that the report's bytes do not depend on the order of discovery.
    findings.sort_by(|a, b| {
        (b.severity, &a.file, a.line, &a.rule, &a.detail)
            .cmp(&(a.severity, &b.file, b.line, &b.rule, &b.detail))
    });
    findings.dedup();
    Ok(Report {
        scanner: SCANNER_VERSION.to_owned(),
        file: name.to_owned(),
        blocklist: blocklist.lines.clone(),
        findings,
    })
}
