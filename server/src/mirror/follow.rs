//! Following an upstream over the network: the server owns a `Follower` for a mirror with an
//! upstream. Each sync fetches the upstream's checkpoint and new leaves, verifies them with the
//! one log verifier, fetches and ingests every blob they reference that the mirror carries, and
//! only then commits, through the mirror's one writer.

use std::sync::Arc;
use std::time::Duration;

use airlock_client::progress::NoProgress;

use airlock_client::{Remote, TlsOptions};
use airlock_keys::TrustedLog;
use airlock_proto::api::{SyncReport, MAX_SAVED_LOG_BYTES};
use airlock_proto::{Checkpoint, Digest, Envelope, FileEntry, Statement};
use anyhow::Context;
use futures_util::StreamExt;

use super::{Mirror, MirrorWriter};
use crate::config::{CarryFilter, Config};
use crate::store::{Checked, Expected, IngestError, StoredBlob};

/// Blobs fetched at once during a sync.
pub const FETCH_CONCURRENCY: usize = 16;

/// Most fetched blobs waiting for one batch commit (`Store::commit_batch`). A batch's syncs
/// also write back the inode table blocks its new files dirtied. That matters on ext4 without
/// a journal: making a file there skips every inode freed in the last minute, or the last five
/// while its inode table block is unwritten, so after many deletions thousands of unsynced new
/// files make each further one slower to create.
const COMMIT_EVERY: usize = 1024;

/// A batch commit of fetched blobs, running on a blocking thread.
type CommitTask = tokio::task::JoinHandle<Result<Vec<StoredBlob>, IngestError>>;

/// Waits for a batch commit and counts what it stored.
async fn committed(task: CommitTask, report: &mut SyncReport) -> anyhow::Result<()> {
    let stored = task.await?.context("committing fetched blobs")?;
    report.blobs_fetched += stored.len() as u64;
    report.bytes_fetched += stored.iter().map(|b| b.size).sum::<u64>();
    Ok(())
}

/// A blob ready for the batch commit.
enum Fetched {
    /// Downloaded from the upstream and checked.
    Downloaded(Checked),
    /// Already in the store's backend, checked there.
    InPlace(Checked),
}

/// Follows one upstream for one mirror.
#[derive(Debug)]
pub struct Follower {
    mirror: Arc<Mirror>,
    remote: Remote,
    upstream: String,
}

impl Follower {
    /// A follower of `upstream` for `mirror`, with the config's upstream token, extra CA and
    /// transfer limits.
    pub fn new(mirror: Arc<Mirror>, upstream: &str, config: &Config) -> anyhow::Result<Self> {
        let tls = TlsOptions { ca_cert: config.upstream_ca_cert.clone() };
        let token = config.upstream_token.as_ref().map(|t| t.0.clone());
        if !upstream.starts_with("https://") {
            if token.is_some() {
                tracing::warn!(
                    upstream,
                    "the upstream token is sent in clear text: the upstream is not https://"
                );
            }
            if tls.ca_cert.is_some() {
                tracing::warn!(upstream, "--upstream-ca-cert is unused: the upstream is not https://");
            }
        }
        Ok(Self {
            mirror,
            remote: Remote::new(upstream, token, &tls)?.with_limits(config.upstream_limits),
            upstream: upstream.to_owned(),
        })
    }

    /// Syncs once and records the outcome in the mirror's status.
    pub async fn sync_once(&self) -> anyhow::Result<SyncReport> {
        let result = self.sync_inner().await;
        self.mirror.note_attempt(result.as_ref().err().map(|e| format!("{e:#}")));
        result
    }

    /// Brings the mirror up to the upstream's newest checkpoint. With nothing new it costs one
    /// checkpoint request. On any failure nothing new becomes visible; blobs already fetched stay
    /// recorded, so the next sync does not download them again.
    async fn sync_inner(&self) -> anyhow::Result<SyncReport> {
        let writer = self.mirror.writer().await;
        let trusted = writer.trusted();
        let mut report = SyncReport {
            upstream: self.upstream.clone(),
            from_size: trusted.size(),
            to_size: trusted.size(),
            ..SyncReport::default()
        };
        if self.mirror.take_backfill() {
            let missing = blocking(|| self.missing_of_state(trusted.registry()));
            let fetched = match missing {
                Ok(missing) => self.fetch_all(missing, &mut report).await,
                Err(e) => Err(e),
            };
            if let Err(e) = fetched {
                self.mirror.request_backfill();
                return Err(e.context("fetching the blobs the new carry filter takes in"));
            }
        }
        let checkpoint = self.remote.checkpoint().await?;
        if trusted.checkpoint() == Some(checkpoint.as_slice()) {
            return Ok(report);
        }
        // Read the size before verification only to know how many leaves to fetch; the verifier
        // checks everything, including this size.
        let offered = Checkpoint::from_note_unverified(&checkpoint).ok();
        if let Some(offered) = &offered {
            self.mirror.note_upstream(offered.size, offered.issued_at);
        }
        let offered = offered.map_or(0, |c| c.size);
        let started = std::time::Instant::now();
        let (next, leaves) = if offered > trusted.size() {
            tracing::info!(upstream = %self.upstream, have = trusted.size(), upstream_size = offered, "mirror behind upstream; syncing");
            // The log key must have signed this size before any leaf is fetched.
            let roots = self.remote.roots().await?;
            let size = trusted
                .precheck(&checkpoint, &roots)
                .with_context(|| format!("upstream {} did not verify", self.upstream))?;
            let mut pending = trusted.begin_update(&checkpoint)?;
            let mut leaves = Vec::new();
            self.remote
                .leaves_each(trusted.size(), size, MAX_SAVED_LOG_BYTES, &NoProgress, |page| {
                    // Folding checks every signature: off the async workers' hands.
                    blocking(|| pending.push(&page))?;
                    leaves.extend(page);
                    Ok::<(), anyhow::Error>(())
                })
                .await
                .with_context(|| format!("upstream {} did not verify", self.upstream))?;
            let now = self.mirror.clock().now();
            (pending.finish_at(now, airlock_keys::ExpiredCheckpoint::Refuse), leaves)
        } else {
            let now = self.mirror.clock().now();
            let next = match trusted.update(&checkpoint, &[], now) {
                // An upstream behind this mirror (a lagging mirror upstream, say) is not a
                // rollback when its checkpoint matches this mirror's own log at that size.
                Err(airlock_keys::LogError::Rollback { .. }) => {
                    let store = self.mirror.store();
                    Err(trusted.judge_older(&checkpoint, now, |size| {
                        airlock_proto::merkle::root_from_source(store.as_ref(), size)
                            .ok()
                            .map(airlock_proto::Hash32)
                    }))
                }
                other => other,
            };
            (next, Vec::new())
        };
        let next = next.with_context(|| format!("upstream {} did not verify", self.upstream))?;
        let verified = started.elapsed();
        let missing = self.missing_blobs(&leaves, &next)?;
        self.fetch_all(missing, &mut report).await?;
        let fetched = started.elapsed();
        report.to_size = next.size();
        let blobs = report.blobs_fetched;
        commit(writer, leaves, next).await?;
        if report.to_size > report.from_size {
            let ms = |d: Duration| d.as_millis() as u64;
            tracing::info!(
                upstream = %self.upstream,
                from = report.from_size,
                to = report.to_size,
                blobs,
                leaves_ms = ms(verified),
                blobs_ms = ms(fetched - verified),
                commit_ms = ms(started.elapsed() - fetched),
                "mirror synced"
            );
        }
        Ok(report)
    }

    /// The carried blobs of `leaves` the store does not hold yet, each once.
    fn missing_blobs(&self, leaves: &[Vec<u8>], next: &TrustedLog) -> anyhow::Result<Vec<FileEntry>> {
        self.not_held(carried_files(leaves, next, &self.mirror.carry())?)
    }

    /// The blobs of every release the carry filter takes in that the store does not hold, each
    /// once (a backfill after the filter widened). Revoked releases need none.
    fn missing_of_state(&self, state: &airlock_keys::RegistryState) -> anyhow::Result<Vec<FileEntry>> {
        let carry = self.mirror.carry();
        let files = state
            .releases()
            .filter(|r| !matches!(r.status, airlock_keys::ReleaseStatus::Revoked { .. }))
            .filter(|r| carry.carries(&r.release, state))
            .flat_map(|r| r.release.files.iter().cloned());
        self.not_held(files)
    }

    fn not_held(&self, files: impl IntoIterator<Item = FileEntry>) -> anyhow::Result<Vec<FileEntry>> {
        let mut missing: Vec<FileEntry> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for file in files {
            if seen.insert(file.blake3) && self.mirror.store().blob(&file.blake3)?.is_none() {
                missing.push(file);
            }
        }
        Ok(missing)
    }

    /// Fetches blobs several at a time and commits them in batches (a few syncs a batch, not
    /// several a blob), each batch committed while the next one is fetched. Every transfer
    /// finishes even after one fails, and what completed is committed and recorded, so the next
    /// sync does not fetch it again.
    async fn fetch_all(&self, missing: Vec<FileEntry>, report: &mut SyncReport) -> anyhow::Result<()> {
        let mut fetches = futures_util::stream::iter(
            missing.into_iter().map(|file| async move { self.fetch_blob(&file).await }),
        )
        .buffer_unordered(FETCH_CONCURRENCY);
        let mut first_error = None;
        let mut checked = Vec::new();
        let mut adopted = Vec::new();
        let mut committing = None;
        while let Some(fetched) = fetches.next().await {
            match fetched {
                Ok(Fetched::Downloaded(blob)) => checked.push(blob),
                Ok(Fetched::InPlace(blob)) => adopted.push(blob),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
            if checked.len() >= COMMIT_EVERY {
                if let Some(previous) = committing.take() {
                    committed(previous, report).await?;
                }
                committing = Some(self.commit_blobs(std::mem::take(&mut checked)));
            }
        }
        if let Some(previous) = committing.take() {
            committed(previous, report).await?;
        }
        committed(self.commit_blobs(checked), report).await?;
        let recorded = self.commit_blobs(adopted).await?.context("recording blobs the bucket holds")?;
        report.blobs_adopted += recorded.len() as u64;
        first_error.map_or(Ok(()), Err)
    }

    /// Starts committing checked blobs in one batch, on a blocking thread (it syncs).
    fn commit_blobs(&self, checked: Vec<Checked>) -> CommitTask {
        let store = Arc::clone(self.mirror.store());
        tokio::task::spawn_blocking(move || store.commit_batch(checked))
    }

    /// One blob for the batch commit: taken in place when the store's backend already holds it
    /// (a bucket another front end shares) and its bytes check out, else downloaded through
    /// the ingest path (size, BLAKE3 and SHA-256 checked before it is parked).
    async fn fetch_blob(&self, file: &FileEntry) -> anyhow::Result<Fetched> {
        let (store, file_entry) = (Arc::clone(self.mirror.store()), file.clone());
        let held = tokio::task::spawn_blocking(move || {
            store.adopt(file_entry.blake3, file_entry.size, file_entry.sha256)
        })
        .await??;
        match held {
            Some(checked) => Ok(Fetched::InPlace(checked)),
            None => Ok(Fetched::Downloaded(self.fetch_checked(file.blake3, file.size, file.sha256).await?)),
        }
    }

    /// Fetches a damaged or missing blob again from the upstream through the ingest path and
    /// commits it over what the store holds (`crate::scrub`).
    pub async fn repair(
        &self,
        digest: Digest,
        size: u64,
        sha256: airlock_proto::Sha256,
    ) -> anyhow::Result<()> {
        let checked = self.fetch_checked(digest, size, sha256).await?;
        let store = Arc::clone(self.mirror.store());
        tokio::task::spawn_blocking(move || store.commit_batch(vec![checked])).await??;
        Ok(())
    }

    async fn fetch_checked(
        &self,
        digest: Digest,
        size: u64,
        sha256: airlock_proto::Sha256,
    ) -> anyhow::Result<Checked> {
        let ingest = self.mirror.store().ingest(Expected::logged(digest, size, sha256))?;
        let (remote, upstream) = (self.remote.clone(), self.upstream.clone());
        let runtime = tokio::runtime::Handle::current();
        // Writing into the store may block (a disk write, an object store's part upload): the
        // download runs on a blocking thread, never holding up an async worker.
        tokio::task::spawn_blocking(move || -> anyhow::Result<Checked> {
            let mut ingest = ingest;
            let mut refused = None;
            runtime
                .block_on(remote.download_blob(&digest, size.saturating_add(1), &NoProgress, |chunk| {
                    ingest.write(chunk.clone()).map_err(|e| {
                        let io = std::io::Error::other(e.to_string());
                        refused = Some(e);
                        io
                    })
                }))
                .map_err(|e| match refused.take() {
                    Some(refused) => anyhow::Error::from(refused),
                    None => anyhow::Error::from(e),
                })
                .with_context(|| format!("fetching blob {digest} from {upstream}"))?;
            ingest.check().with_context(|| format!("blob {digest} from {upstream}"))
        })
        .await?
    }

    /// Syncs now and then every `interval`, until the task is aborted. Errors are logged.
    pub async fn run_periodically(self: Arc<Self>, interval: Duration) {
        loop {
            if let Err(e) = self.sync_once().await {
                tracing::warn!(upstream = %self.upstream, error = format!("{e:#}"), "mirror sync failed");
            }
            tokio::time::sleep(interval).await;
        }
    }
}

/// Commits through the writer on a blocking thread (it fsyncs).
async fn commit(
    writer: MirrorWriter,
    leaves: Vec<Vec<u8>>,
    next: airlock_keys::Verified<TrustedLog>,
) -> anyhow::Result<()> {
    tokio::task::spawn_blocking(move || writer.commit(&leaves, next)).await?
}

/// The files a mirror must hold after `leaves`: those of new releases it carries, and those of
/// releases that a new channel statement moves into a carried channel.
fn carried_files(
    leaves: &[Vec<u8>],
    next: &TrustedLog,
    carry: &CarryFilter,
) -> anyhow::Result<Vec<FileEntry>> {
    let state = next.registry();
    let mut files = Vec::new();
    for leaf in leaves {
        let envelope = Envelope::from_bytes(leaf)?;
        let release = match Statement::decode(&envelope.payload_type, &envelope.payload)? {
            Statement::Release(release) => Some(release),
            Statement::Channel(c) => state.release(c.kind, &c.name, &c.version).map(|r| r.release.clone()),
            Statement::Root(_) | Statement::Status(_) => None,
        };
        if let Some(release) = release {
            // A release revoked by the end of the sync needs no blobs here (an upstream may
            // have purged them).
            let revoked = state
                .release(release.kind, &release.name, &release.version)
                .is_some_and(|r| matches!(r.status, airlock_keys::ReleaseStatus::Revoked { .. }));
            if !revoked && carry.carries(&release, state) {
                files.extend(release.files);
            }
        }
    }
    Ok(files)
}

/// Runs CPU-heavy work without stalling the async workers: in place on a multi-threaded
/// runtime (the worker hands its other tasks on), directly otherwise.
fn blocking<T>(work: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(work),
        _ => work(),
    }
}
