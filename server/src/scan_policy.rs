//! The scan policy a primary applies to every node release it is asked to log: it re-scans the
//! pack with its own scanner and blocklist, refuses a release whose recorded report digest is
//! not the one it makes (naming the scanner version or blocklist that differs when the
//! publisher's report was uploaded), refuses findings at the `reject` severity, and admits
//! findings at the `acknowledge` severity only when the release statement lists each of them.
//! The report it made is what it stores under that digest.

use std::collections::BTreeSet;
use std::io::{Read, Seek, SeekFrom, Write};

use airlock_client::scan::{self, Blocklist, Report, Severity};
use airlock_proto::{Digest, Kind, Release};

use crate::store::{BlobRead, Store};

/// What a primary does with scan findings (config `scan_reject`, `scan_acknowledge`,
/// `scan_blocklist`).
#[derive(Debug, Clone)]
pub struct ScanPolicy {
    /// Findings at or above this are refused outright.
    pub reject: Option<Severity>,
    /// Findings at or above this (and below `reject`) need the statement's acknowledgement.
    pub acknowledge: Option<Severity>,
    pub blocklist: Blocklist,
}

impl Default for ScanPolicy {
    fn default() -> Self {
        Self { reject: None, acknowledge: Some(Severity::High), blocklist: Blocklist::default() }
    }
}

/// A report the policy admitted: to be stored under `digest` with the release.
#[derive(Debug)]
pub struct Reviewed {
    pub digest: Digest,
    pub bytes: Vec<u8>,
}

impl ScanPolicy {
    /// The policy as `GET /v1/scan/policy` answers it.
    pub fn describe(&self) -> airlock_proto::api::ScanPolicy {
        airlock_proto::api::ScanPolicy {
            scanner: scan::SCANNER_VERSION.to_owned(),
            blocklist: self.blocklist.lines.clone(),
            reject: self.reject.map(|s| s.as_str().to_owned()),
            acknowledge: self.acknowledge.map(|s| s.as_str().to_owned()),
        }
    }

    /// Reviews a release: `Ok(None)` for one the policy does not cover (wheels), the report to
    /// store for a node pack it admits, and an error naming what failed otherwise. Blocking.
    pub fn review(&self, store: &Store, release: &Release) -> Result<Option<Reviewed>, String> {
        if release.kind != Kind::Node {
            return Ok(None);
        }
        let [file] = release.files.as_slice() else {
            return Err(format!("a node release holds one pack file, not {}", release.files.len()));
        };
        let name = file.filename.as_str();
        let blob = store
            .open_blob(&file.blake3, 0, file.size)
            .map_err(|_| format!("file {name}: blob {} has not been uploaded", file.blake3))?;
        let report = match blob {
            BlobRead::File { file: handle, .. } => {
                scan::scan_reader(std::io::BufReader::new(handle), name, &self.blocklist)
            }
            other => {
                let mut spool =
                    tempfile::tempfile().map_err(|e| format!("cannot spool {name} to scan it: {e}"))?;
                copy_all(other.into_reader(), &mut spool)
                    .map_err(|e| format!("cannot read {name} to scan it: {e}"))?;
                scan::scan_reader(std::io::BufReader::new(spool), name, &self.blocklist)
            }
        }
        .map_err(|e| format!("file {name}: {e}"))?;
        let bytes = report.to_bytes();
        let digest = Digest::of(&bytes);
        let claimed = release.metadata.scan_report.ok_or_else(|| {
            format!(
                "node release {}=={} names no scan report: publish it with `airlock publish`, which scans the pack with {}",
                release.name,
                release.version,
                scan::SCANNER_VERSION
            )
        })?;
        if claimed != digest {
            return Err(self.explain_mismatch(store, &claimed, &digest, &report));
        }
        self.judge(&report, release)?;
        Ok(Some(Reviewed { digest, bytes }))
    }

    /// Why the claimed report is not ours: another scanner version, another blocklist, or other
    /// findings (a report made for other bytes, or edited).
    fn explain_mismatch(&self, store: &Store, claimed: &Digest, ours: &Digest, report: &Report) -> String {
        let theirs = store.open_blob(claimed, 0, scan::MAX_REPORT_BYTES).ok().and_then(|blob| {
            let mut bytes = Vec::new();
            blob.into_reader().take(scan::MAX_REPORT_BYTES).read_to_end(&mut bytes).ok()?;
            Report::from_bytes(&bytes).ok()
        });
        let base = format!(
            "the release's scan report {claimed} is not the report this server makes of the pack ({ours})"
        );
        match theirs {
            Some(theirs) if theirs.scanner != report.scanner => format!(
                "{base}: it was made by {}; this server scans with {}: scan with that version",
                theirs.scanner, report.scanner
            ),
            Some(theirs) if theirs.blocklist != report.blocklist => format!(
                "{base}: it was made with the blocklist {:?}; this server's is {:?} (GET /v1/scan/policy)",
                theirs.blocklist, report.blocklist
            ),
            Some(_) => {
                format!("{base}: its findings differ from this server's; it was not made from these bytes")
            }
            None => format!(
                "{base} (scanner {}); re-scan with that version and upload the report",
                report.scanner
            ),
        }
    }

    /// Applies the severities: refused findings, then findings the statement must acknowledge.
    fn judge(&self, report: &Report, release: &Release) -> Result<(), String> {
        if let Some(reject) = self.reject {
            let refused: Vec<String> = report.at_least(reject).map(|f| f.reference().to_string()).collect();
            if !refused.is_empty() {
                return Err(format!(
                    "the scan policy refuses {} findings at {} or above: {}",
                    release.name,
                    reject.as_str(),
                    refused.join("; ")
                ));
            }
        }
        let Some(needed) = self.acknowledge else { return Ok(()) };
        let acknowledged: BTreeSet<_> = release.metadata.acknowledged_findings.iter().collect();
        let missing: Vec<String> = report
            .at_least(needed)
            .map(|f| f.reference())
            .filter(|f| !acknowledged.contains(f))
            .map(|f| f.to_string())
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        Err(format!(
            "{}=={} has {} finding(s) at {} or above that the statement does not acknowledge: {} (review them, then publish with --acknowledge)",
            release.name,
            release.version,
            missing.len(),
            needed.as_str(),
            missing.join("; ")
        ))
    }
}

fn copy_all(mut from: impl Read, to: &mut std::fs::File) -> std::io::Result<()> {
    std::io::copy(&mut from, to)?;
    to.flush()?;
    to.seek(SeekFrom::Start(0))?;
    Ok(())
}
