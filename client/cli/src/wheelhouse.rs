//! `airlock wheelhouse export DIR`: the verified wheels of the log (or of one channel) in a
//! folder with an `index.html`, for `pip install --no-index --find-links DIR` and uv's
//! equivalent on a machine with no server at all. Revoked and yanked releases are left out;
//! every wheel is checked against its logged size, BLAKE3 and SHA-256 before it is written.

use std::fmt::Write as _;
use std::path::PathBuf;

use airlock_client::pull::download_verified;
use airlock_client::Reporter;
use airlock_keys::ReleaseStatus;
use airlock_proto::{ChannelName, Kind};
use anyhow::Context as _;
use clap::Subcommand;
use serde_json::json;

use super::{Context, ServerArgs};

#[derive(Debug, Subcommand)]
pub enum WheelhouseCommand {
    /// Write the verified wheels and an index.html to a folder.
    Export(ExportArgs),
}

#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// The folder to write (created if missing).
    dir: PathBuf,
    #[command(flatten)]
    server: ServerArgs,
    /// The pinned root the log is verified against.
    #[arg(long)]
    root: PathBuf,
    /// Only the releases this channel holds.
    #[arg(long)]
    channel: Option<ChannelName>,
}

pub async fn wheelhouse(command: WheelhouseCommand, context: &Context) -> anyhow::Result<()> {
    let WheelhouseCommand::Export(args) = command;
    let remote = context.remote(&args.server)?;
    let state = context.follow(&remote, &args.root).await?;
    let registry = state.log.registry();
    let files: Vec<_> = registry
        .releases()
        .filter(|r| r.release.kind == Kind::Wheel && r.status == ReleaseStatus::Active)
        .filter(|r| {
            args.channel
                .as_ref()
                .is_none_or(|c| registry.channel_holds(c, Kind::Wheel, &r.release.name, &r.release.version))
        })
        .flat_map(|r| airlock_client::wheel::wheels_of(&r.release))
        .cloned()
        .collect();
    std::fs::create_dir_all(&args.dir).with_context(|| format!("cannot create {}", args.dir.display()))?;
    // A wheel left from an earlier export that is no longer in the set (yanked, revoked,
    // demoted) would still be found by `--find-links DIR`: remove it.
    let keep: std::collections::BTreeSet<&str> = files.iter().map(|f| f.filename.as_str()).collect();
    for entry in std::fs::read_dir(&args.dir)?.filter_map(Result::ok) {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".whl") && !keep.contains(name.as_str()) {
            std::fs::remove_file(entry.path()).with_context(|| format!("cannot remove {name}"))?;
            context.say(format!("removed {name}: no longer in the exported set"));
        }
    }
    let mut index =
        String::from("<!DOCTYPE html>\n<html>\n<head><title>airlock wheelhouse</title></head>\n<body>\n");
    let mut bytes = 0u64;
    for file in &files {
        let path = args.dir.join(file.filename.as_str());
        let progress = context.bars.bytes("fetching", file.size);
        download_verified(&remote, file, &path, progress.as_ref()).await?;
        progress.finish();
        bytes += file.size;
        // File names hold only letters, digits, `.`, `-`, `_` and `+`: nothing to escape.
        let _ =
            writeln!(index, "<a href=\"{0}#sha256={1}\">{0}</a><br>", file.filename, file.sha256.to_hex());
    }
    index.push_str("</body>\n</html>\n");
    let index_path = args.dir.join("index.html");
    airlock_client::fsutil::write_atomic(&index_path, index.as_bytes(), 0o644)
        .with_context(|| format!("cannot write {}", index_path.display()))?;
    context.finish(
        &json!({ "dir": args.dir, "wheels": files.len(), "bytes": bytes, "log_size": state.log.size() }),
        format!(
            "wrote {} verified wheel(s), {bytes} bytes, and index.html to {}\ninstall with: pip install --no-index --find-links {} NAME",
            files.len(),
            args.dir.display(),
            args.dir.display()
        ),
    );
    Ok(())
}
