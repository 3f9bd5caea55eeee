//! Review bound to digests, on the client side: a node pack is scanned with the registry's
//! scanner and blocklist at publish, its report's digest goes into the release (with the
//! findings the publisher acknowledges), the report travels beside a statement signed for
//! approval, and `airlock approve` shows the findings of exactly that report before signing.

use std::path::{Path, PathBuf};

use airlock_client::fsutil;
use airlock_client::scan::{self, Blocklist, Report};
use airlock_client::Remote;
use airlock_proto::{Digest, FindingRef, Kind, Release, Statement};
use anyhow::Context as _;

use super::Context;

/// A pack's scan, ready to be named by a release.
#[derive(Debug)]
pub struct Scanned {
    pub report: Report,
    pub bytes: Vec<u8>,
    pub digest: Digest,
    pub acknowledged: Vec<FindingRef>,
}

/// Scans `pack` as the registry will (its scanner version and blocklist, when it is reachable;
/// the shipped blocklist when signing offline), and resolves `--acknowledge` against the
/// findings.
pub async fn scan_pack(
    pack: &Path,
    remote: Option<&Remote>,
    acknowledge: &[String],
    context: &Context,
) -> anyhow::Result<Scanned> {
    let blocklist = match remote {
        Some(remote) => {
            let policy = remote.scan_policy().await.context("reading the registry's scan policy")?;
            anyhow::ensure!(
                policy.scanner == scan::SCANNER_VERSION,
                "the registry scans with {}; this airlock scans with {}: publish with the airlock of that version",
                policy.scanner,
                scan::SCANNER_VERSION
            );
            Blocklist::parse(&policy.blocklist).map_err(anyhow::Error::msg)?
        }
        None => Blocklist::default(),
    };
    let report = scan::scan_file(pack, &blocklist).map_err(anyhow::Error::msg)?;
    let acknowledged = acknowledged(&report, acknowledge)?;
    let bytes = report.to_bytes();
    let digest = Digest::of(&bytes);
    context.say(format!(
        "scanned {} with {}: {} finding(s), report {digest}{}",
        report.file,
        report.scanner,
        report.findings.len(),
        if acknowledged.is_empty() {
            String::new()
        } else {
            format!(", {} acknowledged", acknowledged.len())
        }
    ));
    for finding in &report.findings {
        context.say(format!("  {finding}"));
    }
    Ok(Scanned { report, bytes, digest, acknowledged })
}

/// The findings `--acknowledge` names: `all`, a rule (every finding of it), or
/// `RULE@FILE[:LINE]`. Each must name at least one finding of the report.
pub fn acknowledged(report: &Report, specs: &[String]) -> anyhow::Result<Vec<FindingRef>> {
    let mut chosen = std::collections::BTreeSet::new();
    for spec in specs {
        let (rule, place) = spec.split_once('@').map_or((spec.as_str(), None), |(r, p)| (r, Some(p)));
        let matching: Vec<FindingRef> = report
            .findings
            .iter()
            .map(scan::Finding::reference)
            .filter(|f| spec == "all" || f.rule == rule)
            .filter(|f| match place {
                None => true,
                Some(place) => match f.line {
                    Some(line) => place == f.file || place == format!("{}:{line}", f.file),
                    None => place == f.file,
                },
            })
            .collect();
        anyhow::ensure!(!matching.is_empty(), "--acknowledge {spec}: the scan report has no such finding");
        chosen.extend(matching);
    }
    Ok(chosen.into_iter().collect())
}

/// Where the report of a statement written for approval is kept: beside it.
pub fn report_path(statement: &Path) -> PathBuf {
    let mut name = statement.as_os_str().to_owned();
    name.push(".report.json");
    PathBuf::from(name)
}

/// The scan report a release statement names, read from beside the statement and checked
/// against the digest the statement records; `None` for a release that names none.
pub fn report_of(statement_file: &Path, release: &Release) -> anyhow::Result<Option<Report>> {
    let Some(digest) = release.metadata.scan_report else { return Ok(None) };
    let path = report_path(statement_file);
    let bytes = fsutil::read_capped(&path, scan::MAX_REPORT_BYTES).with_context(|| {
        format!(
            "{} names scan report {digest}: its findings must be reviewed before approving; put the report at {}",
            statement_file.display(),
            path.display()
        )
    })?;
    let actual = Digest::of(&bytes);
    anyhow::ensure!(
        actual == digest,
        "{} is report {actual}, not the report {digest} the statement names",
        path.display()
    );
    Ok(Some(Report::from_bytes(&bytes).map_err(anyhow::Error::msg)?))
}

/// What an approver is about to sign for a release: its files by digest, its scan findings and
/// the findings it acknowledges.
pub fn describe_for_approval(release: &Release, report: Option<&Report>) -> (Vec<String>, serde_json::Value) {
    let mut lines = Vec::new();
    for file in &release.files {
        lines.push(format!(
            "  file {} {} sha256:{} ({} bytes)",
            file.filename,
            file.blake3,
            file.sha256.to_hex(),
            file.size
        ));
    }
    if let Some(license) = &release.metadata.license {
        lines.push(format!("  license {license}"));
    }
    if let Some(report) = report {
        lines.push(format!("  scan report by {}: {} finding(s)", report.scanner, report.findings.len()));
        for finding in &report.findings {
            let acknowledged = release.metadata.acknowledged_findings.contains(&finding.reference());
            lines.push(format!("    {finding}{}", if acknowledged { "  [acknowledged]" } else { "" }));
        }
    } else if release.kind == Kind::Node {
        lines.push("  no scan report".to_owned());
    }
    let json = serde_json::json!({
        "files": release.files.iter().map(|f| serde_json::json!({
            "filename": f.filename, "blake3": f.blake3.to_string(), "sha256": f.sha256.to_hex(), "size": f.size,
        })).collect::<Vec<_>>(),
        "scan_report": release.metadata.scan_report.map(|d| d.to_string()),
        "findings": report.map(|r| r.findings.clone()).unwrap_or_default(),
        "acknowledged_findings": release.metadata.acknowledged_findings,
    });
    (lines, json)
}

/// The release a statement holds, if it is one.
pub fn release_of(envelope: &airlock_proto::Envelope) -> Option<Release> {
    match Statement::decode(&envelope.payload_type, &envelope.payload) {
        Ok(Statement::Release(release)) => Some(release),
        _ => None,
    }
}

/// Uploads a report (so that a server that re-makes another one can say which scanner or
/// blocklist differs).
pub async fn upload_report(remote: &Remote, bytes: &[u8], digest: &Digest) -> anyhow::Result<()> {
    let spool = tempfile::NamedTempFile::new().context("spooling the scan report")?;
    std::fs::write(spool.path(), bytes).context("spooling the scan report")?;
    remote.upload_blob(spool.path(), digest, &airlock_client::progress::NoProgress).await?;
    Ok(())
}
