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
use airlock_proto::api::{
    BundleManifest, ImportReport, ImportedState, BUNDLE_BLOB_PREFIX, BUNDLE_MANIFEST, MAX_SAVED_LOG_BYTES,
};
use airlock_proto::{codec, Digest, FileEntry};

use super::Mirror;
use crate::store::{Expected, IngestError, Store};

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

/// Blobs an import stored: taken back out unless the import commits.
struct Stored<'a> {
    store: &'a Store,
    digests: Vec<Digest>,
    committed: bool,
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

/// Imports a bundle read from `reader` into the mirror. Blocking: it waits for the mirror's
/// writer, so it must not run on an async worker thread.
pub fn import(mirror: &Arc<Mirror>, reader: impl Read) -> Result<ImportReport, ImportError> {
    let writer = mirror.blocking_writer();
    let trusted = writer.trusted();
    let store = mirror.store();
    let mut archive = tar::Archive::new(reader);
    let mut entries = archive.entries().map_err(|e| format_error(e.to_string()))?;

    // 1. The manifest comes first and is verified before any blob is read.
    let mut first =
        entries.next().ok_or_else(|| format_error("empty file"))?.map_err(|e| format_error(e.to_string()))?;
    check_member(&first)?;
    if member_path(&first)? != BUNDLE_MANIFEST {
        return Err(format_error(format!("the first member must be {BUNDLE_MANIFEST}")));
    }
    let manifest_bytes = read_member(&mut first, MAX_SAVED_LOG_BYTES as u64)?;
    let manifest: BundleManifest = codec::decode("bundle manifest", &manifest_bytes, MAX_SAVED_LOG_BYTES)
        .map_err(|e| format_error(e.to_string()))?;
    let have = trusted.size();
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

    // 2. Blobs: only those the new leaves reference and the mirror lacks; each through ingest.
    let mut needed: HashMap<Digest, FileEntry> = HashMap::new();
    for file in referenced_files(&new_leaves).map_err(ImportError::Internal)? {
        if store.blob(&file.blake3)?.is_none() {
            needed.insert(file.blake3, file);
        }
    }
    let mut stored = Stored { store: store.as_ref(), digests: Vec::new(), committed: false };
    for entry in entries {
        let entry = entry.map_err(|e| format_error(e.to_string()))?;
        check_member(&entry)?;
        let path = member_path(&entry)?;
        let hex = path
            .strip_prefix(BUNDLE_BLOB_PREFIX)
            .ok_or_else(|| format_error(format!("unexpected member {path:?}")))?;
        let digest =
            Digest::from_hex(hex).map_err(|_| format_error(format!("unexpected member {path:?}")))?;
        let Some(file) = needed.remove(&digest) else {
            continue; // Not needed (already held, or referenced by no new release): skip its bytes.
        };
        let blob = store
            .ingest(Expected::logged(digest, file.size, file.sha256))
            .and_then(|ingest| ingest.from_reader(entry))
            .map_err(|source| ImportError::Blob { digest, source })?;
        stored.digests.push(blob.digest);
    }
    if let Some(missing) = needed.keys().next() {
        return Err(ImportError::MissingBlob(*missing));
    }

    // 3. Commit: every leaf and the checkpoint in one batch, through the writer.
    let blobs_stored = stored.digests.len() as u64;
    writer.commit(&new_leaves, next)?;
    stored.committed = true;
    let log = writer.trusted();
    Ok(ImportReport {
        from_size: have,
        to_size: log.size(),
        blobs_stored,
        state: ImportedState { origin: manifest.origin, size: log.size(), root_hash: log.root_hash() },
    })
}

/// Only plain files with plain relative names are accepted.
fn check_member<R: Read>(entry: &tar::Entry<'_, R>) -> Result<(), ImportError> {
    let kind = entry.header().entry_type();
    if !matches!(kind, tar::EntryType::Regular) {
        return Err(format_error(format!("member of type {kind:?} refused: only regular files are allowed")));
    }
    Ok(())
}

fn member_path<R: Read>(entry: &tar::Entry<'_, R>) -> Result<String, ImportError> {
    let raw = entry.path_bytes();
    let path = std::str::from_utf8(&raw).map_err(|_| format_error("member name is not UTF-8"))?.to_owned();
    if path.starts_with('/')
        || path.split('/').any(|c| c == ".." || c == "." || c.is_empty())
        || path.contains('\\')
    {
        return Err(format_error(format!("member name {path:?} refused")));
    }
    Ok(path)
}

fn read_member<R: Read>(entry: &mut tar::Entry<'_, R>, cap: u64) -> Result<Vec<u8>, ImportError> {
    let size = entry.header().size().map_err(|e| format_error(e.to_string()))?;
    if size > cap {
        return Err(format_error(format!("member is {size} bytes, over the {cap}-byte cap")));
    }
    let mut bytes = Vec::new();
    entry.take(cap + 1).read_to_end(&mut bytes).map_err(|e| format_error(e.to_string()))?;
    Ok(bytes)
}
