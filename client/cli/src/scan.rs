//! `airlock scan FILE`: the scanner's findings about a node pack or a wheel
//! (`airlock_client::scan`), for people or as JSON; exit 3 when any finding is high. Given a
//! registry, it scans with the registry's blocklist and also reports the pack's requirements
//! that the registry holds no release for.

use std::path::PathBuf;
use std::str::FromStr;

use airlock_client::scan::{scan_file, Blocklist, Finding, Report, Severity};
use airlock_client::Remote;
use airlock_proto::Kind;
use anyhow::Context as _;

use super::Context;

#[derive(Debug, clap::Args)]
pub struct ScanArgs {
    /// A node pack (zip) or a wheel.
    file: PathBuf,
    /// A registry: scan with its blocklist, and report requirements it cannot satisfy.
    #[arg(long, env = "AIRLOCK_SERVER")]
    server: Option<String>,
    #[arg(long, env = "AIRLOCK_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

/// A scan made a high finding (exit 3, like any failed verification).
#[derive(Debug)]
pub struct HighFindings(pub String);

impl std::fmt::Display for HighFindings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} has high findings", self.0)
    }
}

impl std::error::Error for HighFindings {}

pub async fn scan(args: ScanArgs, context: &Context) -> anyhow::Result<()> {
    let remote =
        args.server.as_deref().map(|s| Remote::new(s, args.token.clone(), &context.tls)).transpose()?;
    let blocklist = match &remote {
        Some(remote) => {
            let policy = remote.scan_policy().await.context("reading the registry's scan policy")?;
            Blocklist::parse(&policy.blocklist).map_err(anyhow::Error::msg)?
        }
        None => Blocklist::default(),
    };
    let mut report = scan_file(&args.file, &blocklist).map_err(anyhow::Error::msg)?;
    if let Some(remote) = &remote {
        report.findings.extend(unavailable(remote, &args.file).await?);
    }
    print(&report, context)?;
    if report.worst() == Some(Severity::High) {
        return Err(HighFindings(report.file).into());
    }
    Ok(())
}

/// Prints a report: one line per finding for people, the report itself as JSON.
pub fn print(report: &Report, context: &Context) -> anyhow::Result<()> {
    let mut human =
        format!("{} scanned by {}: {} finding(s)", report.file, report.scanner, report.findings.len());
    for finding in &report.findings {
        human.push_str(&format!("\n  {finding}"));
    }
    context.finish(&serde_json::to_value(report).context("the report as JSON")?, human);
    Ok(())
}

/// The pack's requirements for which the registry logs no wheel release in the range asked
/// (medium: an install on the site would fail, or need a wheel carried in first). Advisory,
/// and not part of a publish's report, since it depends on what the registry holds today.
pub async fn unavailable(remote: &Remote, pack: &std::path::Path) -> anyhow::Result<Vec<Finding>> {
    let Ok(info) = airlock_client::pack::read_pack(pack) else { return Ok(Vec::new()) };
    let mut findings = Vec::new();
    for line in &info.requirements {
        let Ok(requirement) = pep508_rs::Requirement::<pep508_rs::VerbatimUrl>::from_str(line) else {
            continue;
        };
        let name = requirement.name.to_string();
        let versions: Vec<String> = match remote.releases_of(Kind::Wheel, &name).await? {
            Some(list) => list.releases.iter().map(|r| r.version.as_str().to_owned()).collect(),
            None => Vec::new(),
        };
        if !versions.iter().any(|v| airlock_client::scan::admits(&requirement, v)) {
            let held = if versions.is_empty() { "none".to_owned() } else { versions.join(", ") };
            findings.push(Finding {
                rule: "requirements.unavailable".to_owned(),
                severity: Severity::Medium,
                file: "requirements.txt".to_owned(),
                line: None,
                detail: format!(
                    "{line:?}: the registry holds no wheel release that satisfies it (it holds: {held})"
                ),
            });
        }
    }
    Ok(findings)
}
