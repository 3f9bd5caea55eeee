//! `airlock audit PATH`: which of the files at PATH (a file, or a directory walked recursively)
//! belong to releases that are yanked or revoked in the verified log. Files that no logged release
//! holds are listed as such. Exits 3 when any file belongs to a revoked release.

use std::path::{Path, PathBuf};

use airlock_client::publish::hash_file;
use airlock_client::pull::VerifyError;
use airlock_keys::ReleaseStatus;
use serde_json::json;

use super::{Context, ServerArgs};

/// Most files one audit reads.
const MAX_FILES: usize = 100_000;

#[derive(Debug, clap::Args)]
pub struct AuditArgs {
    /// A file, or a directory (walked recursively) of installed or downloaded files.
    path: PathBuf,
    #[command(flatten)]
    server: ServerArgs,
    /// The pinned root file; the log is verified against it.
    #[arg(long)]
    root: PathBuf,
}

pub async fn audit(args: AuditArgs, context: &Context) -> anyhow::Result<()> {
    let remote = context.remote(&args.server)?;
    let state = context.follow(&remote, &args.root).await?;
    let registry = state.log.registry();
    let mut files = Vec::new();
    collect(&args.path, &mut files)?;
    let (mut rows, mut lines, mut revoked) = (Vec::new(), Vec::new(), None);
    for path in &files {
        let digest = hash_file(path)?.blake3;
        let Some(record) = registry.release_by_digest(&digest) else {
            rows.push(json!({ "path": path, "blake3": digest.to_string(), "status": "not logged" }));
            lines.push(format!("not logged  {}", path.display()));
            continue;
        };
        let r = &record.release;
        let (status, reason) = match &record.status {
            ReleaseStatus::Active => continue,
            ReleaseStatus::Yanked { reason } => ("yanked", reason),
            ReleaseStatus::Revoked { reason } => {
                revoked.get_or_insert_with(|| VerifyError::Revoked {
                    kind: r.kind,
                    name: r.name.clone(),
                    version: r.version.clone(),
                    reason: reason.clone(),
                });
                ("revoked", reason)
            }
        };
        rows.push(json!({
            "path": path, "blake3": digest.to_string(), "status": status, "reason": reason,
            "kind": r.kind, "name": r.name, "version": r.version,
        }));
        lines.push(format!(
            "{status:<10}  {}  {} {}=={}: {reason}",
            path.display(),
            r.kind,
            r.name,
            r.version
        ));
    }
    let summary = format!("audited {} file(s) against the log at size {}", files.len(), state.log.size());
    lines.push(summary.clone());
    context.finish(
        &json!({ "files": files.len(), "log_size": state.log.size(), "findings": rows }),
        lines.join("\n"),
    );
    match revoked {
        Some(first) => Err(anyhow::Error::from(first).context("a revoked release is present")),
        None => Ok(()),
    }
}

fn collect(path: &Path, files: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    let meta = std::fs::symlink_metadata(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    if meta.is_file() {
        anyhow::ensure!(files.len() < MAX_FILES, "more than {MAX_FILES} files under the audited path");
        files.push(path.to_path_buf());
    } else if meta.is_dir() {
        let mut entries: Vec<PathBuf> =
            std::fs::read_dir(path)?.map(|e| e.map(|e| e.path())).collect::<Result<_, _>>()?;
        entries.sort();
        for entry in entries {
            collect(&entry, files)?;
        }
    }
    Ok(())
}
