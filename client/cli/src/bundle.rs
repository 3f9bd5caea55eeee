//! `airlock export` and `airlock import`: bundles for the air gap.

use std::path::PathBuf;

use airlock_client::bundle::{export as export_bundle, ExportFrom};
use airlock_client::progress::Reporter;
use airlock_client::state::StateStore;
use serde_json::json;

use super::{Context, ServerArgs};

#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// The pinned root: the segment is verified against it before it is written.
    #[arg(long)]
    root: PathBuf,
    /// Start at this leaf (the target mirror's size).
    #[arg(long, conflicts_with_all = ["since", "all"])]
    from_size: Option<u64>,
    /// Start where the import that wrote this state file ended.
    #[arg(long, conflicts_with = "all")]
    since: Option<PathBuf>,
    /// The whole log and every blob (a full bundle, also a backup).
    #[arg(long)]
    all: bool,
    /// Carry a checkpoint valid this long, such as 30d, so that the site it feeds keeps serving
    /// until the next delivery: the registry signs it on request (an admin token), up to the
    /// longest validity its root allows. Without it, the registry's current checkpoint (about a
    /// day).
    #[arg(long, value_name = "DURATION", value_parser = airlock_proto::clock::parse_duration)]
    valid_for: Option<u64>,
    #[arg(short = 'o', long)]
    output: PathBuf,
}

#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// The bundle file.
    file: PathBuf,
    /// The running mirror (needs an admin token).
    #[command(flatten)]
    server: ServerArgs,
}

pub async fn export(args: ExportArgs, context: &Context) -> anyhow::Result<()> {
    let from = match (args.from_size, &args.since, args.all) {
        (Some(n), None, false) => ExportFrom::Size(n),
        (None, Some(state), false) => ExportFrom::since(state)?,
        (None, None, true) => ExportFrom::All,
        _ => anyhow::bail!("say where the bundle starts: --from-size N, --since STATE_FILE or --all"),
    };
    let store = StateStore::open(&context.state_dir, &args.root)?;
    let remote = context.remote(&args.server)?;
    let report =
        export_bundle(&remote, &store, from, &args.output, &context.clock, &context.bars, args.valid_for)
            .await?;
    context.finish(
        &json!({ "file": args.output, "report": report }),
        format!(
            "wrote {}: leaves {}..{}, {} blob(s), {} bytes of blobs; its checkpoint expires in {} (at {})",
            args.output.display(),
            report.from_size,
            report.to_size,
            report.blobs,
            report.blob_bytes,
            airlock_proto::clock::format_duration(report.expires_at.saturating_sub(context.clock.now())),
            report.expires_at
        ),
    );
    Ok(())
}

pub async fn import(args: ImportArgs, context: &Context) -> anyhow::Result<()> {
    let remote = context.remote(&args.server)?;
    let progress = context.bars.bytes("importing", 0);
    let report = remote.import_bundle(&args.file, progress.as_ref()).await?;
    progress.finish();
    let human = format!(
        "imported leaves {}..{} and {} blob(s)",
        report.from_size, report.to_size, report.blobs_stored
    );
    context.finish(&serde_json::to_value(&report)?, human);
    Ok(())
}
