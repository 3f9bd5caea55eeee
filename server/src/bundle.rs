//! Importing bundles into a mirror. Everything is verified against the mirror's own state before
//! anything becomes visible: the segment with the shared log verifier, every blob by BLAKE3, size
//! and SHA-256. Tar members are never written by their names: a blob goes through the staging
//! area and lands at the path of its verified digest, so traversal, links and odd members are
//! refused without touching anything outside the store. A failed import leaves no trace.

use std::collections::HashMap;
use std::io::Read;
use std::sync::Arc;

use airlock_client::bundle::referenced_files;
use airlock_proto::api::{
    BundleManifest, ImportedState, BUNDLE_BLOB_PREFIX, BUNDLE_MANIFEST, MAX_SAVED_LOG_BYTES,
};
use airlock_proto::{codec, Digest, FileEntry};
use anyhow::Context;

use crate::service::{now, Service};
use crate::store::StoredBlob;

/// What an import did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ImportReport {
    pub from_size: u64,
    pub to_size: u64,
    pub blobs_stored: usize,
    pub state: ImportedState,
}

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
    #[error("blob {digest} in the bundle: {detail}")]
    Blob { digest: String, detail: String },
    #[error("the bundle lacks blob {0}, which its releases reference")]
    MissingBlob(Digest),
    #[error("this server is not a mirror; import bundles into a mirror (`airlockd serve --mirror`)")]
    NotAMirror,
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

fn format_error(detail: impl Into<String>) -> ImportError {
    ImportError::Format(detail.into())
}

/// Installed blobs of an import in progress: removed again unless the import commits.
struct Staged<'a> {
    service: &'a Service,
    blobs: Vec<StoredBlob>,
    committed: bool,
}

impl Drop for Staged<'_> {
    fn drop(&mut self) {
        if !self.committed {
            for blob in &self.blobs {
                let _ = std::fs::remove_file(self.service.blobs().path(&blob.digest));
            }
        }
    }
}

/// Imports a bundle read from `reader` into the mirror. Blocking.
pub fn import(service: &Arc<Service>, reader: impl Read) -> Result<ImportReport, ImportError> {
    let trusted = service.mirrored_log().ok_or(ImportError::NotAMirror)?;
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
    let mirror = trusted.size();
    if manifest.to_size < mirror {
        return Err(ImportError::Older { bundle: manifest.to_size, mirror });
    }
    if manifest.from_size > mirror {
        return Err(ImportError::Gap { from: manifest.from_size, mirror });
    }
    if manifest.leaves.len() as u64 != manifest.to_size - manifest.from_size {
        return Err(format_error("the leaf count does not match the segment bounds"));
    }
    let skip = usize::try_from(mirror - manifest.from_size).map_err(|e| format_error(e.to_string()))?;
    let new_leaves: Vec<Vec<u8>> = manifest.leaves[skip..].iter().map(|b| b.to_vec()).collect();
    let next = trusted
        .update(&manifest.checkpoint, &new_leaves, now())
        .map_err(|e| ImportError::Verification(e.into()))?;

    // 2. Blobs: only those the new leaves reference and the mirror lacks; each verified.
    let mut needed: HashMap<Digest, FileEntry> = HashMap::new();
    for file in referenced_files(&new_leaves).map_err(ImportError::Internal)? {
        if service.db().blob(&file.blake3)?.is_none() {
            needed.insert(file.blake3, file);
        }
    }
    let mut staged = Staged { service, blobs: Vec::new(), committed: false };
    for entry in entries {
        let mut entry = entry.map_err(|e| format_error(e.to_string()))?;
        check_member(&entry)?;
        let path = member_path(&entry)?;
        let hex = path
            .strip_prefix(BUNDLE_BLOB_PREFIX)
            .ok_or_else(|| format_error(format!("unexpected member {path:?}")))?;
        let digest =
            Digest::from_hex(hex).map_err(|_| format_error(format!("unexpected member {path:?}")))?;
        let Some(file) = needed.remove(&digest) else {
            continue; // Not needed (already held): skip its bytes.
        };
        let size = entry.header().size().map_err(|e| format_error(e.to_string()))?;
        if size != file.size {
            return Err(ImportError::Blob {
                digest: digest.to_string(),
                detail: format!("{size} bytes, the log says {}", file.size),
            });
        }
        let mut writer = service.blobs().begin().context("cannot stage a blob")?;
        let mut buffer = vec![0u8; 1 << 20];
        loop {
            let n = entry.read(&mut buffer).map_err(|e| format_error(e.to_string()))?;
            if n == 0 {
                break;
            }
            writer.write(&buffer[..n]).context("cannot stage a blob")?;
        }
        let stored = writer
            .finish(service.blobs(), &digest)
            .map_err(|e| ImportError::Blob { digest: digest.to_string(), detail: e.to_string() })?;
        if stored.sha256 != file.sha256 {
            return Err(ImportError::Blob {
                digest: digest.to_string(),
                detail: "SHA-256 differs from the log".to_owned(),
            });
        }
        staged.blobs.push(stored);
    }
    if let Some(missing) = needed.keys().next() {
        return Err(ImportError::MissingBlob(*missing));
    }

    // 3. Commit: blob records, then every leaf and the checkpoint in one batch.
    for blob in &staged.blobs {
        service.record_blob(blob)?;
    }
    let blobs_stored = staged.blobs.len();
    service.commit_mirrored(&new_leaves, &manifest.checkpoint, next)?;
    staged.committed = true;
    let log = service.mirrored_log().context("mirror state vanished")?;
    Ok(ImportReport {
        from_size: mirror,
        to_size: log.size(),
        blobs_stored,
        state: ImportedState {
            origin: manifest.origin,
            size: log.size(),
            root_hash: log.root_hash().to_hex(),
        },
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

/// A blocking reader over request-body chunks sent from the async side.
#[derive(Debug)]
pub struct ChannelReader {
    rx: tokio::sync::mpsc::Receiver<bytes::Bytes>,
    current: bytes::Bytes,
}

impl ChannelReader {
    /// Reads what is sent on `rx` until the sender is dropped.
    pub fn new(rx: tokio::sync::mpsc::Receiver<bytes::Bytes>) -> Self {
        Self { rx, current: bytes::Bytes::new() }
    }
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(chunk) => self.current = chunk,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

/// Checks a data directory: every recorded blob's bytes hash to its name with the recorded
/// size, and the stored log re-verifies from leaf 0 to the stored checkpoint. Blocking.
pub fn verify_store(data: &std::path::Path) -> anyhow::Result<VerifyStoreReport> {
    let db = crate::store::Db::open(&data.join(crate::service::DB_DIR))?;
    let blobs = crate::store::BlobStore::open(data)?;
    let mut problems = Vec::new();
    let digests = db.blob_digests()?;
    for digest in &digests {
        let record = db.blob(digest)?.context("blob record vanished")?;
        match std::fs::File::open(blobs.path(digest)) {
            Err(e) => problems.push(format!("blob {digest}: {e}")),
            Ok(mut file) => {
                let mut hasher = blake3::Hasher::new();
                let size = std::io::copy(&mut file, &mut hasher)?;
                let actual = Digest::from(hasher.finalize());
                if actual != *digest || size != record.size {
                    problems.push(format!("blob {digest}: holds {size} bytes hashing to {actual}"));
                }
            }
        }
    }
    let size = db.log_size()?;
    let leaves = (0..size)
        .map(|i| db.leaf(i)?.with_context(|| format!("log leaf {i} missing")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut root_hash = String::new();
    let mut not_held = 0usize;
    if let Some(first) = leaves.first() {
        let pinned = airlock_keys::TrustedRoot::pin(first).context("leaf 0 is not a valid root")?;
        let checkpoint = db.checkpoint()?;
        match airlock_keys::TrustedLog::restore(pinned, &leaves, checkpoint.as_deref(), 0) {
            Ok(log) => {
                root_hash = log.root_hash().to_hex();
                for file in referenced_files(&leaves)? {
                    if db.blob(&file.blake3)?.is_none() {
                        // Only a partial mirror lacks logged blobs: a primary and a full mirror
                        // never commit a release before its blobs are durable.
                        not_held += 1;
                    }
                }
            }
            Err(e) => problems.push(format!("log: {e}")),
        }
    }
    Ok(VerifyStoreReport { log_size: size, root_hash, blobs: digests.len(), not_held, problems })
}

/// What `verify_store` found.
#[derive(Debug, Clone, serde::Serialize)]
pub struct VerifyStoreReport {
    pub log_size: u64,
    pub root_hash: String,
    pub blobs: usize,
    /// Logged blobs this store does not hold (a partial mirror's uncarried releases).
    pub not_held: usize,
    pub problems: Vec<String>,
}
