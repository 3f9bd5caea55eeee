//! `airlockd verify-store`: checks a data directory through the store. Every recorded blob's
//! bytes must have the recorded size, hash to their BLAKE3 name and to the recorded SHA-256; the
//! stored log must re-verify from leaf 0 to the stored checkpoint. Blocking.

use std::sync::Arc;

use airlock_client::bundle::referenced_files;
use airlock_keys::{TrustedLog, TrustedRoot};
use airlock_proto::api::VerifyStoreReport;
use airlock_proto::{Digest, Sha256};
use anyhow::Context;

use crate::store::{BlobRecord, Store};

/// Checks everything the store holds; problems are collected, each naming what failed.
pub fn verify_store(store: &Arc<Store>) -> anyhow::Result<VerifyStoreReport> {
    let mut problems = Vec::new();
    let digests = store.blob_digests()?;
    for digest in &digests {
        let Some(record) = store.blob(digest)? else { continue };
        if let Some(problem) = blob_problem(store, digest, &record) {
            problems.push(problem);
        }
    }
    let mut report = check_log(store)?;
    report.blobs = digests.len() as u64;
    problems.append(&mut report.problems);
    report.problems = problems;
    Ok(report)
}

/// What is wrong with a recorded blob's bytes, if anything: missing, another size, another
/// BLAKE3 or SHA-256 than its name and `record`.
pub fn blob_problem(store: &Store, digest: &Digest, record: &BlobRecord) -> Option<String> {
    match check_blob(store, digest, record.size) {
        Err(e) => Some(format!("blob {digest}: {e}")),
        Ok((size, _, _)) if size != record.size => {
            Some(format!("blob {digest}: holds {size} bytes, the record says {}", record.size))
        }
        Ok((size, blake3, _)) if blake3 != *digest => {
            Some(format!("blob {digest}: holds {size} bytes hashing to {blake3}"))
        }
        Ok((_, _, sha256)) if sha256 != record.sha256 => {
            Some(format!("blob {digest}: SHA-256 is {sha256}, the record says {}", record.sha256))
        }
        Ok(_) => None,
    }
}

/// The stored log re-verified from leaf 0 to the stored checkpoint, and the logged blobs the
/// store does not hold. The report's `blobs` is left at 0.
pub fn check_log(store: &Store) -> anyhow::Result<VerifyStoreReport> {
    let mut problems = Vec::new();
    let leaves = store.all_leaves()?;
    let mut root_hash = None;
    let mut not_held = 0u64;
    if let Some(first) = leaves.first() {
        let pinned = TrustedRoot::pin(first).context("leaf 0 is not a valid root")?;
        let checkpoint = store.checkpoint()?;
        match TrustedLog::restore(pinned, &leaves, checkpoint.as_deref(), 0) {
            Ok(log) => {
                root_hash = Some(log.root_hash());
                for file in referenced_files(&leaves, log.registry())? {
                    if store.blob(&file.blake3)?.is_none() {
                        // Only a partial mirror lacks the logged blobs of releases that are not
                        // revoked: a primary and a full mirror never commit a release before its
                        // blobs are durable, and only a purge removes a revoked one's.
                        not_held += 1;
                    }
                }
            }
            Err(e) => problems.push(format!("log: {e}")),
        }
    }
    Ok(VerifyStoreReport { log_size: leaves.len() as u64, root_hash, blobs: 0, not_held, problems })
}

/// Reads a blob whole (up to one byte past its recorded size), hashing it both ways.
fn check_blob(store: &Store, digest: &Digest, size: u64) -> std::io::Result<(u64, Digest, Sha256)> {
    crate::store::hash_reader(store.open_blob(digest, 0, size.saturating_add(1))?.into_reader())
}
