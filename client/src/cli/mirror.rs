//! `airlock mirror sync` and `airlock mirror status`: drive and watch a mirror.

use serde_json::Value;

use super::{Context, ServerArgs};

#[derive(Debug, clap::Subcommand)]
pub enum MirrorCommand {
    /// Make the mirror sync from its upstream now (needs an admin token on the mirror).
    Sync {
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Show how far the mirror is behind its upstream.
    Status {
        #[command(flatten)]
        server: ServerArgs,
    },
}

pub async fn mirror(command: MirrorCommand, context: &Context) -> anyhow::Result<()> {
    match command {
        MirrorCommand::Sync { server } => {
            let report: Value = context.remote(&server)?.post_json("/v1/mirror/sync").await?;
            let human = format!(
                "synced from {}: leaves {}..{}, {} blob(s), {} bytes fetched",
                report["upstream"].as_str().unwrap_or("?"),
                report["from_size"],
                report["to_size"],
                report["blobs_fetched"],
                report["bytes_fetched"]
            );
            context.finish(&report, human);
        }
        MirrorCommand::Status { server } => {
            let status: Value = context.remote(&server)?.get_json("/v1/mirror/status").await?;
            let human = format!(
                "upstream {}\nsize {} of {} ({} leaves behind, {} s)\nlast success {}\nlast error {}",
                status["upstream"].as_str().unwrap_or("?"),
                status["size"],
                status["upstream_size"],
                status["lag_leaves"],
                status["lag_seconds"],
                status["last_success_at"],
                status["last_error"].as_str().unwrap_or("none")
            );
            context.finish(&status, human);
        }
    }
    Ok(())
}
