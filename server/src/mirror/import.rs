//! Importing bundles into a mirror. Everything is verified against the mirror's own state before
//! anything becomes visible: the segment with the shared log verifier, every blob through the one
//! ingest path (size, BLAKE3 and SHA-256). Tar members are never written by their names: a blob
//! lands at the address of its verified digest, so traversal, links and odd members are refused
//! without touching anything outside the store. An import holds the mirror's writer from start to
//! end; a failed one takes back the blobs it stored, so it leaves no trace.

use std::collections::HashMap;
use std::io::Read;
use std::sync::Arc;

use airlock_client::bundle::referenced_files;
use airlock_client::bundle_reader::{read_bundle, BundleReadError};
use airlock_proto::api::{BundleManifest, ImportReport, ImportedState};
use airlock_proto::{Digest, FileEntry};

use super::Mirror;
use crate::store::{Checked, Expected, IngestError, Store};

/// Why a bundle was refused. Each names what failed.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("the bundle is not a valid airlock bundle: {0}")]
    Format(String),
    #[error("the bundle ends at leaf {bundle}, but this mirror already has {mirror} leaves: it is older than the mirror's state")]
    Older { bundle: u64, mirror: u64 },
    #[error("the bundle starts at leaf {from}, but this mirror has only {mirror} leaves: missing leaves {mirror}..{from}")]
    Gap { from: u64, mirror: u64 },
    #[error("the bundle does not verify: {0:#}")]
    Verification(anyhow::Error),
    #[error("blob {digest} in the bundle: {source}")]
    Blob { digest: Digest, source: IngestError },
    #[error("the bundle lacks blob {0}, which its releases reference")]
    MissingBlob(Digest),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

fn format_error(detail: impl Into<String>) -> ImportError {
    ImportError::Format(detail.into())
}

/// Most checked blobs waiting for one batch commit (`Store::commit_batch`).
const COMMIT_EVERY: usize = 4096;

/// Blobs an import stored: taken back out unless the import commits.
struct Stored<'a> {
    store: &'a Store,
    digests: Vec<Digest>,
    committed: bool,
}

impl Stored<'_> {
    /// Commits checked blobs in one batch (durable and recorded), to be taken back if the
    /// import fails later.
    fn commit(&mut self, checked: Vec<Checked>) -> Result<(), ImportError> {
        let digests: Vec<Digest> = checked.iter().map(|c| c.blob.digest).collect();
        self.store.commit_batch(checked).map_err(|e| match digests.first() {
            Some(&digest) if digests.len() == 1 => ImportError::Blob { digest, source: e },
            _ => ImportError::Internal(anyhow::Error::from(e).context("committing the bundle's blobs")),
        })?;
        self.digests.extend(digests);
        Ok(())
    }
}

impl Drop for Stored<'_> {
    fn drop(&mut self) {
        if !self.committed {
            for digest in &self.digests {
                if let Err(e) = self.store.discard_unreferenced(digest) {
                    tracing::warn!(%digest, error = format!("{e:#}"), "cannot take back a blob of a failed import");
                }
            }
        }
    }
}

/// What the manifest of a bundle gave: the verified segment and the blobs still needed.
struct Segment {
    origin: String,
    new_leaves: Vec<Vec<u8>>,
    next: airlock_keys::Verified<airlock_keys::TrustedLog>,
    needed: HashMap<Digest, FileEntry>,
    /// Blobs checked and parked, waiting for their batch commit.
    checked: Vec<Checked>,
}

/// Imports a bundle read from `reader` into the mirror. Blocking: it waits for the mirror's
/// writer, so it must not run on an async worker thread.
pub fn import(mirror: &Arc<Mirror>, reader: impl Read) -> Result<ImportReport, ImportError> {
    let writer = mirror.blocking_writer();
    let trusted = writer.trusted();
    let store = mirror.store();
    let have = trusted.size();
    let mut stored = Stored { store: store.as_ref(), digests: Vec::new(), committed: false };
    let read = read_bundle(
        reader,
        // 1. The manifest comes first and is verified before any blob is read.
        |manifest: BundleManifest| -> Result<Segment, ImportError> {
            if manifest.to_size < have {
                return Err(ImportError::Older { bundle: manifest.to_size, mirror: have });
            }
            if manifest.from_size > have {
                return Err(ImportError::Gap { from: manifest.from_size, mirror: have });
            }
            if manifest.leaves.len() as u64 != manifest.to_size - manifest.from_size {
                return Err(format_error("the leaf count does not match the segment bounds"));
            }
            let skip = usize::try_from(have - manifest.from_size).map_err(|e| format_error(e.to_string()))?;
            let new_leaves: Vec<Vec<u8>> = manifest.leaves[skip..].iter().map(|b| b.to_vec()).collect();
            let next = trusted
                .update(&manifest.checkpoint, &new_leaves, mirror.clock().now())
                .map_err(|e| ImportError::Verification(e.into()))?;
            // 2. Blobs: only those the new leaves reference and the mirror lacks.
            let mut needed: HashMap<Digest, FileEntry> = HashMap::new();
            for file in referenced_files(&new_leaves, next.registry()).map_err(ImportError::Internal)? {
                if store.blob(&file.blake3)?.is_none() {
                    needed.insert(file.blake3, file);
                }
            }
            Ok(Segment { origin: manifest.origin, new_leaves, next, needed, checked: Vec::new() })
        },
        // Each needed blob through the one ingest path, committed in batches; others are
        // skipped unread.
        |segment: &mut Segment, digest, member| {
            let Some(file) = segment.needed.remove(&digest) else { return Ok(()) };
            let checked = store
                .ingest(Expected::logged(digest, file.size, file.sha256))
                .and_then(|ingest| ingest.check_reader(member))
                .map_err(|source| ImportError::Blob { digest, source })?;
            segment.checked.push(checked);
            if segment.checked.len() >= COMMIT_EVERY {
                stored.commit(std::mem::take(&mut segment.checked))?;
            }
            Ok(())
        },
    );
    let Segment { origin, new_leaves, next, needed, checked } = match read {
        Ok(segment) => segment,
        Err(BundleReadError::Format(detail)) => return Err(ImportError::Format(detail)),
        Err(BundleReadError::Refused(e)) => return Err(e),
    };
    if let Some(missing) = needed.keys().next() {
        return Err(ImportError::MissingBlob(*missing));
    }
    stored.commit(checked)?;

    // 3. Commit: every leaf and the checkpoint in one batch, through the writer.
    let blobs_stored = stored.digests.len() as u64;
    writer.commit(&new_leaves, next)?;
    stored.committed = true;
    let log = writer.trusted();
    Ok(ImportReport {
        from_size: have,
        to_size: log.size(),
        blobs_stored,
        state: ImportedState { origin, size: log.size(), root_hash: log.root_hash() },
    })
}
