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

use crate::service::{now, Service};

/// What one sync did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct SyncReport {
    pub upstream: String,
    pub from_size: u64,
    pub to_size: u64,
    pub blobs_fetched: usize,
    pub bytes_fetched: u64,
}

/// Follows an upstream; one sync runs at a time.
#[derive(Debug)]
pub struct Mirror {
    remote: Remote,
    upstream: String,
    lock: tokio::sync::Mutex<()>,
}

impl Mirror {
    /// A follower of `upstream`.
    pub fn new(upstream: &str) -> anyhow::Result<Self> {
        Ok(Self {
            remote: Remote::new(upstream, None, &TlsOptions::default())?,
            upstream: upstream.to_owned(),
            lock: tokio::sync::Mutex::new(()),
        })
    }

    /// Brings the mirror up to the upstream's newest checkpoint. With nothing new it costs one
    /// checkpoint request. On any failure nothing new becomes visible; blobs already fetched stay
    /// recorded, so the next sync does not download them again.
    pub async fn sync_once(&self, service: &Arc<Service>) -> anyhow::Result<SyncReport> {
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
        let offered = Envelope::from_bytes(&checkpoint)
            .ok()
            .and_then(|e| Checkpoint::decode(&e.payload_type, &e.payload).ok())
            .map_or(0, |c| c.size);
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
        for leaf in &leaves {
            for file in release_files(leaf)? {
                if service.db().blob(&file.blake3)?.is_some() {
                    continue;
                }
                report.bytes_fetched += self.fetch_blob(service, &file).await?;
                report.blobs_fetched += 1;
            }
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

fn release_files(leaf: &[u8]) -> anyhow::Result<Vec<FileEntry>> {
    let envelope = Envelope::from_bytes(leaf)?;
    Ok(match Statement::decode(&envelope.payload_type, &envelope.payload)? {
        Statement::Release(release) => release.files,
        _ => Vec::new(),
    })
}
