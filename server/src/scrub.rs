//! Scrub on a running server (`POST /v1/admin/scrub`, `airlockd scrub`, `airlockd verify-store
//! --server`, and every `--scrub-interval`): every recorded blob read back through the store and
//! checked (size, BLAKE3, SHA-256), at an optional rate so that serving is not starved, then the
//! log re-verified against its checkpoint. With `repair`, each damaged or missing blob is taken
//! again through the ingest path, first from a bundle when one is named, then, for what it lacks,
//! from a mirror's upstream, and committed over the bad bytes; what cannot be repaired stays in
//! the report's problems, never dropped. Each problem and repair is logged, and the metrics count
//! runs, problems and repairs.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use airlock_proto::api::{RepairedBlob, ScrubReport};
use airlock_proto::Digest;

use crate::app::App;
use crate::store::{BlobRecord, Expected, Store};
use crate::verify_store::{blob_problem, check_log};

/// How a scrub runs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScrubOptions {
    pub repair: bool,
    /// Bytes of blobs read per second at most.
    pub rate: Option<u64>,
    /// With `repair`: a bundle to take blobs from before asking the upstream.
    pub bundle: Option<PathBuf>,
}

/// A blob the scrub found wrong: its record and what was wrong.
struct Damaged {
    digest: Digest,
    record: BlobRecord,
    problem: String,
}

/// Scrubs the store of a running server.
pub async fn scrub(app: &Arc<App>, options: ScrubOptions) -> anyhow::Result<ScrubReport> {
    let started = Instant::now();
    let store = Arc::clone(&app.store);
    let digests = tokio::task::spawn_blocking(move || store.blob_digests()).await??;
    let mut damaged = Vec::new();
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
        if let Some(problem) = problem {
            tracing::warn!(%digest, problem, "scrub found a damaged blob");
            damaged.push(Damaged { digest: *digest, record, problem });
        }
    }
    let (repaired, mut problems) = if options.repair {
        repair(app, damaged, options.bundle).await
    } else {
        (Vec::new(), problems_of(damaged))
    };
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

fn problems_of(damaged: Vec<Damaged>) -> Vec<String> {
    damaged.into_iter().map(|d| d.problem).collect()
}

/// Repairs what it can of `damaged`: from the bundle first, then from the upstream. Returns the
/// repaired blobs and, for each of the others, its problem and why it was not repaired.
async fn repair(
    app: &Arc<App>,
    mut damaged: Vec<Damaged>,
    bundle: Option<PathBuf>,
) -> (Vec<RepairedBlob>, Vec<String>) {
    let mut repaired = Vec::new();
    let mut reasons: HashMap<Digest, String> = HashMap::new();
    if let Some(path) = bundle {
        let wanted: HashMap<Digest, BlobRecord> =
            damaged.iter().map(|d| (d.digest, d.record.clone())).collect();
        let store = Arc::clone(&app.store);
        let from_bundle = tokio::task::spawn_blocking(move || repair_from_bundle(&store, &path, wanted))
            .await
            .map_err(anyhow::Error::from)
            .and_then(|r| r);
        match from_bundle {
            Ok(outcome) => {
                damaged.retain(|d| match outcome.get(&d.digest) {
                    Some(Ok(())) => {
                        tracing::info!(digest = %d.digest, "scrub repaired a blob from a bundle");
                        repaired.push(RepairedBlob { digest: d.digest, problem: d.problem.clone() });
                        false
                    }
                    Some(Err(why)) => {
                        reasons.insert(d.digest, format!("the bundle's copy was refused: {why}"));
                        true
                    }
                    None => {
                        reasons.insert(d.digest, "the bundle does not hold it".to_owned());
                        true
                    }
                });
            }
            Err(e) => {
                let why = format!("the bundle was not read: {e:#}");
                for d in &damaged {
                    reasons.insert(d.digest, why.clone());
                }
            }
        }
    }
    let mut problems = Vec::new();
    for Damaged { digest, record, problem } in damaged {
        let upstream = match &app.follower {
            None => Err("this server has no upstream to fetch it from".to_owned()),
            Some(follower) => follower
                .repair(digest, record.size, record.sha256)
                .await
                .map_err(|e| format!("the upstream failed: {e:#}")),
        };
        match upstream {
            Ok(()) => {
                tracing::info!(%digest, "scrub repaired a blob from the upstream");
                repaired.push(RepairedBlob { digest, problem });
            }
            Err(why) => {
                let reason = match reasons.remove(&digest) {
                    Some(first) => format!("{first}; {why}"),
                    None => why,
                };
                problems.push(format!("{problem} (not repaired: {reason})"));
            }
        }
    }
    (repaired, problems)
}

/// Reads a bundle and puts back each wanted blob it holds, through the ingest path against the
/// store's own record (so the bundle need not be this registry's or current: only the bytes
/// count). Returns, for each wanted blob met, whether its copy was taken. Blocking.
fn repair_from_bundle(
    store: &Arc<Store>,
    path: &Path,
    mut wanted: HashMap<Digest, BlobRecord>,
) -> anyhow::Result<HashMap<Digest, Result<(), String>>> {
    use anyhow::Context;
    let file = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let read = airlock_client::bundle_reader::read_bundle(
        std::io::BufReader::with_capacity(1 << 20, file),
        |_manifest| Ok::<_, std::convert::Infallible>(HashMap::new()),
        |outcome: &mut HashMap<Digest, Result<(), String>>, digest, member| {
            let Some(record) = wanted.remove(&digest) else { return Ok(()) };
            let taken = store
                .ingest(Expected::logged(digest, record.size, record.sha256))
                .and_then(|ingest| ingest.check_reader(member))
                .and_then(|checked| store.commit_batch(vec![checked]))
                .map(|_| ())
                .map_err(|e| e.to_string());
            outcome.insert(digest, taken);
            Ok(())
        },
    );
    read.map_err(|e| anyhow::anyhow!("{e}"))
}

/// Scrubs every `interval` (repairing when the server has an upstream), until aborted.
pub async fn run_periodically(app: Arc<App>, interval: Duration, rate: Option<u64>) {
    let options = ScrubOptions { repair: app.follower.is_some(), rate, bundle: None };
    let mut tick = tokio::time::interval(interval);
    tick.tick().await;
    loop {
        tick.tick().await;
        if let Err(e) = scrub(&app, options.clone()).await {
            tracing::warn!(error = format!("{e:#}"), "scheduled scrub failed");
        }
    }
}
