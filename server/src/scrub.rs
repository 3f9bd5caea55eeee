//! Scrub on a running server (`POST /v1/admin/scrub`, `airlockd scrub`, `airlockd verify-store
//! --server`, and every `--scrub-interval`): every recorded blob read back through the store and
//! checked (size, BLAKE3, SHA-256), at an optional rate so that serving is not starved, then the
//! log re-verified against its checkpoint. With `repair`, a mirror fetches each damaged or
//! missing blob again from its upstream through the ingest path and commits it over the bad
//! bytes; what cannot be repaired stays in the report's problems, never dropped. Each problem and
//! repair is logged, and the metrics count runs, problems and repairs.

use std::sync::Arc;
use std::time::{Duration, Instant};

use airlock_proto::api::{RepairedBlob, ScrubReport};

use crate::app::App;
use crate::verify_store::{blob_problem, check_log};

/// How a scrub runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScrubOptions {
    pub repair: bool,
    /// Bytes of blobs read per second at most.
    pub rate: Option<u64>,
}

/// Scrubs the store of a running server.
pub async fn scrub(app: &Arc<App>, options: ScrubOptions) -> anyhow::Result<ScrubReport> {
    let started = Instant::now();
    let store = Arc::clone(&app.store);
    let digests = tokio::task::spawn_blocking(move || store.blob_digests()).await??;
    let mut problems = Vec::new();
    let mut repaired = Vec::new();
    let mut bytes_read = 0u64;
    for digest in &digests {
        let (store, d) = (Arc::clone(&app.store), *digest);
        let checked = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
            // A record gone meanwhile (a collection) is nothing to check.
            Ok(store.blob(&d)?.map(|record| (blob_problem(&store, &d, &record), record)))
        })
        .await??;
        let Some((problem, record)) = checked else { continue };
        bytes_read += record.size;
        if let Some(rate) = options.rate.filter(|&r| r > 0) {
            // Keep the average at or under the rate: wait until the bytes read so far are due.
            let due = Duration::from_secs_f64(bytes_read as f64 / rate as f64);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                tokio::time::sleep(wait).await;
            }
        }
        let Some(problem) = problem else { continue };
        tracing::warn!(%digest, problem, "scrub found a damaged blob");
        let outcome = match (&app.follower, options.repair) {
            (_, false) => Err(problem.clone()),
            (None, true) => {
                Err(format!("{problem} (not repaired: this server has no upstream to fetch it from)"))
            }
            (Some(follower), true) => follower
                .repair(*digest, record.size, record.sha256)
                .await
                .map_err(|e| format!("{problem} (repair failed: {e:#})")),
        };
        match outcome {
            Ok(()) => {
                tracing::info!(%digest, "scrub repaired a blob from the upstream");
                repaired.push(RepairedBlob { digest: *digest, problem });
            }
            Err(remaining) => problems.push(remaining),
        }
    }
    let store = Arc::clone(&app.store);
    let mut report = tokio::task::spawn_blocking(move || check_log(&store)).await??;
    report.blobs = digests.len() as u64;
    problems.append(&mut report.problems);
    report.problems = problems;
    let report = ScrubReport { store: report, repaired };
    app.metrics.scrubbed(&report);
    tracing::info!(
        blobs = report.store.blobs,
        problems = report.store.problems.len(),
        repaired = report.repaired.len(),
        seconds = started.elapsed().as_secs(),
        "scrub finished"
    );
    Ok(report)
}

/// Scrubs every `interval` (repairing when the server has an upstream), until aborted.
pub async fn run_periodically(app: Arc<App>, interval: Duration, rate: Option<u64>) {
    let options = ScrubOptions { repair: app.follower.is_some(), rate };
    let mut tick = tokio::time::interval(interval);
    tick.tick().await;
    loop {
        tick.tick().await;
        if let Err(e) = scrub(&app, options).await {
            tracing::warn!(error = format!("{e:#}"), "scheduled scrub failed");
        }
    }
}
