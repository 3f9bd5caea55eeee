//! The requirements rules: options that point pip or uv at another index or at loose files,
//! direct URLs and VCS references, and requirements the blocklist refuses.

use std::str::FromStr;

use super::{Blocked, Finding, Severity};

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
        let mut push = |rule: &str, detail: String| {
            findings.push(Finding {
                rule: rule.to_owned(),
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
            .filter(|b| b.name == requirement.name)
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

/// Whether `requirement` admits `version` of its project (any version when it names none; no
/// version that does not parse).
pub fn admits(requirement: &pep508_rs::Requirement<pep508_rs::VerbatimUrl>, version: &str) -> bool {
    match &requirement.version_or_url {
        Some(pep508_rs::VersionOrUrl::VersionSpecifier(wanted)) => {
            pep440_rs::Version::from_str(version).is_ok_and(|v| wanted.contains(&v))
        }
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scan::Blocklist;

    #[test]
    fn requirements_rules() {
        let text = "numpy>=1.24\n--extra-index-url https://evil.example/simple\n-i https://x\ngit+https://github.com/x/y\nfoo @ https://x/foo.whl\nultralytics==8.3.41\nultralytics>=8.3\nultralytics==8.3.40\nultralytics\n# fine\n";
        let findings = scan_requirements("requirements.txt", text, &Blocklist::default().entries);
        let rules: Vec<(&str, Option<u32>)> = findings.iter().map(|f| (f.rule.as_str(), f.line)).collect();
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
