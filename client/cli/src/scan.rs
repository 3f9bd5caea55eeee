//! `airlock scan FILE`: the scanner's findings about a node pack or a wheel
//! (`airlock_client::scan`), for people or as JSON; exit 3 when any finding is high.

use std::path::PathBuf;

use airlock_client::scan::{default_blocklist, scan_file, Severity};
use anyhow::Context as _;

use super::Context;

#[derive(Debug, clap::Args)]
pub struct ScanArgs {
    /// A node pack (zip) or a wheel.
    file: PathBuf,
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

pub fn scan(args: ScanArgs, context: &Context) -> anyhow::Result<()> {
    let report = scan_file(&args.file, &default_blocklist()).map_err(anyhow::Error::msg)?;
    let mut human =
        format!("{} scanned by {}: {} finding(s)", report.file, report.scanner, report.findings.len());
    for finding in &report.findings {
        let place = match finding.line {
            Some(line) => format!("{}:{line}", finding.file),
            None => finding.file.clone(),
        };
        human.push_str(&format!(
            "\n  {:<6} {:<30} {place}  {}",
            format!("{:?}", finding.severity).to_lowercase(),
            finding.rule,
            finding.detail
        ));
    }
    context.finish(&serde_json::to_value(&report).context("the report as JSON")?, human);
    if report.worst() == Some(Severity::High) {
        return Err(HighFindings(report.file).into());
    }
    Ok(())
}
