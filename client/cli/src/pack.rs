//! `airlock pack SOURCE -o FILE`: the deterministic pack of a node checkout or release archive
//! (`airlock_client::pack`), the same bytes for the same tree.

use std::path::PathBuf;

use airlock_client::pack::{pack_dir, repack};
use airlock_client::publish::hash_file;
use serde_json::json;

use super::Context;

#[derive(Debug, clap::Args)]
pub struct PackArgs {
    /// A checkout folder, or a .zip / .tar.gz release download.
    source: PathBuf,
    /// The pack to write (a zip).
    #[arg(short = 'o', long)]
    output: PathBuf,
}

pub fn pack(args: PackArgs, context: &Context) -> anyhow::Result<()> {
    let info = if args.source.is_dir() {
        pack_dir(&args.source, &args.output)?
    } else {
        repack(&args.source, &args.output)?
    };
    let digests = hash_file(&args.output)?;
    context.finish(
        &json!({
            "file": args.output, "id": info.id, "version": info.version, "blake3": digests.blake3.to_string(),
            "sha256": digests.sha256.to_hex(), "size": digests.size, "requirements": info.requirements,
        }),
        format!(
            "packed {}=={} into {} ({} bytes, {})",
            info.id,
            info.version,
            args.output.display(),
            digests.size,
            digests.blake3
        ),
    );
    Ok(())
}
