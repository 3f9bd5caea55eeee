//! Mirror mode: follow one upstream registry as a verifying client. New leaves are verified with
//! the same log verifier every client uses; every blob they reference is fetched, checked and
//! made durable; only then are the leaves and the upstream's checkpoint committed, in one batch.
//! The mirror never signs anything: it serves the upstream's checkpoints and leaves byte for byte.

use std::sync::Arc;
use std::time::Duration;

use airlock_client::progress::Progress;
use airlock_client::{Remote, TlsOptions};
use airlock_proto::{Checkpoint, Envelope, FileEntry, Statement};
use anyhow::Context;
use futures_util::StreamExt;

use crate::config::CarryFilter;
use crate::service::{now, Service};
use airlock_keys::TrustedLog;

/// What one sync did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct SyncReport {
    pub upstream: String,
    pub from_size: u64,
    pub to_size: u64,
    pub blobs_fetched: usize,
    pub bytes_fetched: u64,
}

/// How far behind its upstream a mirror is, as of its last sync attempt.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct MirrorStatus {
    pub upstream: String,
    /// Leaves this mirror serves.
    pub size: u64,
    /// The upstream's size at the last successful checkpoint fetch.
    pub upstream_size: u64,
    pub lag_leaves: u64,
    /// Seconds between the upstream checkpoint last seen and the one this mirror serves.
    pub lag_seconds: u64,
    pub last_attempt_at: Option<u64>,
    pub last_success_at: Option<u64>,
    pub last_error: Option<String>,
}

/// Blobs fetched at once during a sync.
pub const FETCH_CONCURRENCY: usize = 4;

/// Follows an upstream; one sync runs at a time.
#[derive(Debug)]
pub struct Mirror {
    remote: Remote,
    upstream: String,
    lock: tokio::sync::Mutex<()>,
    status: std::sync::Mutex<MirrorStatus>,
}

impl Mirror {
    /// A follower of `upstream`.
    pub fn new(upstream: &str, limits: airlock_client::remote::TransferLimits) -> anyhow::Result<Self> {
        Ok(Self {
            remote: Remote::new(upstream, None, &TlsOptions::default())?.with_limits(limits),
            upstream: upstream.to_owned(),
            lock: tokio::sync::Mutex::new(()),
            status: std::sync::Mutex::new(MirrorStatus {
                upstream: upstream.to_owned(),
                ..MirrorStatus::default()
            }),
        })
    }

    /// The mirror's lag and last sync outcome.
    pub fn status(&self, service: &Service) -> MirrorStatus {
        let mut status = self.status.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        status.size = service.mirrored_log().map_or(0, |log| log.size());
        status.lag_leaves = status.upstream_size.saturating_sub(status.size);
        status
    }

    /// Syncs once and records the outcome for `status`.
    pub async fn sync_once(&self, service: &Arc<Service>) -> anyhow::Result<SyncReport> {
        let result = self.sync_inner(service).await;
        let mut status = self.status.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        status.last_attempt_at = Some(now());
        match &result {
            Ok(_) => {
                status.last_success_at = status.last_attempt_at;
                status.last_error = None;
            }
            Err(e) => status.last_error = Some(format!("{e:#}")),
        }
        result
    }

    fn note_upstream(&self, checkpoint: Option<&Checkpoint>, served: Option<&Checkpoint>) {
        let mut status = self.status.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(upstream) = checkpoint {
            status.upstream_size = upstream.size;
            status.lag_seconds = served.map_or(0, |s| upstream.issued_at.saturating_sub(s.issued_at));
        }
    }

    /// Brings the mirror up to the upstream's newest checkpoint. With nothing new it costs one
    /// checkpoint request. On any failure nothing new becomes visible; blobs already fetched stay
    /// recorded, so the next sync does not download them again.
    async fn sync_inner(&self, service: &Arc<Service>) -> anyhow::Result<SyncReport> {
        let _one_at_a_time = self.lock.lock().await;
        let trusted = service.mirrored_log().context("not a mirror")?;
        let mut report = SyncReport {
            upstream: self.upstream.clone(),
            from_size: trusted.size(),
            to_size: trusted.size(),
            ..SyncReport::default()
        };
        let checkpoint = self.remote.checkpoint().await?;
        if trusted.checkpoint() == Some(checkpoint.as_slice()) {
            return Ok(report);
        }
        let offered_checkpoint = Envelope::from_bytes(&checkpoint)
            .ok()
            .and_then(|e| Checkpoint::decode(&e.payload_type, &e.payload).ok());
        self.note_upstream(offered_checkpoint.as_ref(), trusted.checkpoint_payload().as_ref());
        let offered = offered_checkpoint.map_or(0, |c| c.size);
        if offered > trusted.size() {
            tracing::info!(upstream = %self.upstream, have = trusted.size(), upstream_size = offered, "mirror behind upstream; syncing");
        }
        let leaves = if offered > trusted.size() {
            self.remote.leaves(trusted.size(), offered, &Progress::hidden()).await?
        } else {
            Vec::new()
        };
        let (next, leaves, checkpoint) = tokio::task::spawn_blocking(move || {
            let next = trusted.update(&checkpoint, &leaves, now());
            (next, leaves, checkpoint)
        })
        .await?;
        let next = next.with_context(|| format!("upstream {} did not verify", self.upstream))?;
        if leaves.is_empty() {
            let worker = Arc::clone(service);
            tokio::task::spawn_blocking(move || worker.refresh_mirrored_checkpoint(&checkpoint, next))
                .await??;
            return Ok(report);
        }
        let mut missing: Vec<FileEntry> = Vec::new();
        for file in carried_files(&leaves, &next, &service.config().carry)? {
            if service.db().blob(&file.blake3)?.is_none() && !missing.iter().any(|f| f.blake3 == file.blake3)
            {
                missing.push(file);
            }
        }
        let mut fetches = futures_util::stream::iter(
            missing.into_iter().map(|file| async move { self.fetch_blob(service, &file).await }),
        )
        .buffer_unordered(FETCH_CONCURRENCY);
        // Let every transfer finish even after one fails, so that what completed is recorded
        // and the next sync does not fetch it again.
        let mut first_error = None;
        while let Some(fetched) = fetches.next().await {
            match fetched {
                Ok(bytes) => {
                    report.bytes_fetched += bytes;
                    report.blobs_fetched += 1;
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        drop(fetches);
        if let Some(error) = first_error {
            return Err(error);
        }
        report.to_size = next.size();
        let worker = Arc::clone(service);
        tokio::task::spawn_blocking(move || worker.commit_mirrored(&leaves, &checkpoint, next)).await??;
        tracing::info!(upstream = %self.upstream, from = report.from_size, to = report.to_size, blobs = report.blobs_fetched, "mirror synced");
        Ok(report)
    }

    /// Downloads one blob into the store, verifying size, BLAKE3 and SHA-256 before recording it.
    async fn fetch_blob(&self, service: &Arc<Service>, file: &FileEntry) -> anyhow::Result<u64> {
        let mut writer = service.blobs().begin()?;
        let received = self
            .remote
            .download_blob(&file.blake3, file.size + 1, &Progress::hidden(), |chunk| writer.write(chunk))
            .await
            .with_context(|| format!("fetching blob {} from {}", file.blake3, self.upstream))?;
        anyhow::ensure!(
            received == file.size,
            "blob {} is {received} bytes, the log says {}",
            file.blake3,
            file.size
        );
        let worker = Arc::clone(service);
        let expected = file.clone();
        tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
            let stored = writer.finish(worker.blobs(), &expected.blake3)?;
            anyhow::ensure!(
                stored.sha256 == expected.sha256,
                "blob {} has another sha256 than the log says",
                expected.blake3
            );
            worker.record_blob(&stored)
        })
        .await??;
        Ok(received)
    }

    /// Syncs now and then every `interval`, until the process ends. Errors are logged.
    pub async fn run_periodically(self: Arc<Self>, service: Arc<Service>, interval: Duration) {
        loop {
            if let Err(e) = self.sync_once(&service).await {
                tracing::warn!(upstream = %self.upstream, error = format!("{e:#}"), "mirror sync failed");
            }
            tokio::time::sleep(interval).await;
        }
    }
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
            if carry.carries(&release, state) {
                files.extend(release.files);
            }
        }
    }
    Ok(files)
}
