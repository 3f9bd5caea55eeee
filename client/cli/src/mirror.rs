//! `airlock mirror sync` and `airlock mirror status`: drive and watch a mirror.

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
            let report = context.remote(&server)?.mirror_sync().await?;
            let human = format!(
                "synced from {}: leaves {}..{}, {} blob(s), {} bytes fetched",
                report.upstream, report.from_size, report.to_size, report.blobs_fetched, report.bytes_fetched
            );
            context.finish(&serde_json::to_value(&report)?, human);
        }
        MirrorCommand::Status { server } => {
            let status = context.remote(&server)?.mirror_status().await?;
            let mut human = format!(
                "upstream {}\nsize {} of {} ({} leaves behind, {} s)\nlast success {}\nlast error {}",
                status.upstream,
                status.size,
                status.upstream_size,
                status.lag_leaves,
                status.lag_seconds,
                status.last_success_at.map_or_else(|| "null".to_owned(), |t| t.to_string()),
                status.last_error.as_deref().unwrap_or("none")
            );
            if let Some(fresh) = &status.freshness {
                use airlock_proto::clock::format_duration;
                human.push_str(&format!(
                    "\ncheckpoint expires in {} (at {})\nroot version {} expires in {} (at {})",
                    format_duration(fresh.checkpoint_seconds_left),
                    fresh.checkpoint_expires_at,
                    fresh.root_version,
                    format_duration(fresh.root_seconds_left),
                    fresh.root_expires_at
                ));
                for warning in &fresh.warnings {
                    human.push_str(&format!("\nWARNING: {warning}"));
                    context.say(format!("warning: {warning}"));
                }
            }
            context.finish(&serde_json::to_value(&status)?, human);
        }
    }
    Ok(())
}
