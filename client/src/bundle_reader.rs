//! Reading a bundle (a tar stream) without trusting it: the manifest must come first and is
//! decoded under a cap before any blob is read; every later member must be a regular file named
//! `blobs/<hex>`; nothing is ever written by a member's name. What the bytes mean (does the
//! segment verify, is a blob needed) is the caller's: it gets the manifest, then each blob member
//! by its address, and may skip a member by not reading it.

use std::io::Read;

use airlock_proto::api::{BundleManifest, BUNDLE_BLOB_PREFIX, BUNDLE_MANIFEST, MAX_SAVED_LOG_BYTES};
use airlock_proto::{codec, Digest};

/// Why a bundle could not be read: its form (naming what is wrong), or the caller's refusal.
#[derive(Debug, thiserror::Error)]
pub enum BundleReadError<E> {
    #[error("the bundle is not a valid airlock bundle: {0}")]
    Format(String),
    #[error(transparent)]
    Refused(E),
}

fn format_error<E>(detail: impl Into<String>) -> BundleReadError<E> {
    BundleReadError::Format(detail.into())
}

/// Reads the bundle from `reader`: `on_manifest` with the decoded manifest (it returns the
/// caller's state), then `on_blob` with that state, each blob member's digest (from its name)
/// and its bytes. A member the callback does not read is skipped. Returns the state.
pub fn read_bundle<R: Read, S, E>(
    reader: R,
    on_manifest: impl FnOnce(BundleManifest) -> Result<S, E>,
    mut on_blob: impl FnMut(&mut S, Digest, &mut dyn Read) -> Result<(), E>,
) -> Result<S, BundleReadError<E>> {
    let mut archive = tar::Archive::new(reader);
    let mut entries = archive.entries().map_err(|e| format_error(e.to_string()))?;
    let mut first =
        entries.next().ok_or_else(|| format_error("empty file"))?.map_err(|e| format_error(e.to_string()))?;
    check_member(&first)?;
    if member_path(&first)? != BUNDLE_MANIFEST {
        return Err(format_error(format!("the first member must be {BUNDLE_MANIFEST}")));
    }
    let manifest_bytes = read_member(&mut first, MAX_SAVED_LOG_BYTES as u64)?;
    let manifest: BundleManifest = codec::decode("bundle manifest", &manifest_bytes, MAX_SAVED_LOG_BYTES)
        .map_err(|e| format_error(e.to_string()))?;
    let mut state = on_manifest(manifest).map_err(BundleReadError::Refused)?;
    for entry in entries {
        let mut entry = entry.map_err(|e| format_error(e.to_string()))?;
        check_member(&entry)?;
        let path = member_path(&entry)?;
        let digest = path
            .strip_prefix(BUNDLE_BLOB_PREFIX)
            .and_then(|hex| Digest::from_hex(hex).ok())
            .ok_or_else(|| format_error(format!("unexpected member {path:?}")))?;
        on_blob(&mut state, digest, &mut entry).map_err(BundleReadError::Refused)?;
    }
    Ok(state)
}

/// Only plain files are accepted.
fn check_member<R: Read, E>(entry: &tar::Entry<'_, R>) -> Result<(), BundleReadError<E>> {
    let kind = entry.header().entry_type();
    if !matches!(kind, tar::EntryType::Regular) {
        return Err(format_error(format!("member of type {kind:?} refused: only regular files are allowed")));
    }
    Ok(())
}

/// The member's name: UTF-8, relative, without `.`, `..`, empty components or backslashes.
fn member_path<R: Read, E>(entry: &tar::Entry<'_, R>) -> Result<String, BundleReadError<E>> {
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

fn read_member<R: Read, E>(entry: &mut tar::Entry<'_, R>, cap: u64) -> Result<Vec<u8>, BundleReadError<E>> {
    let size = entry.header().size().map_err(|e| format_error(e.to_string()))?;
    if size > cap {
        return Err(format_error(format!("member is {size} bytes, over the {cap}-byte cap")));
    }
    let mut bytes = Vec::new();
    entry.take(cap + 1).read_to_end(&mut bytes).map_err(|e| format_error(e.to_string()))?;
    Ok(bytes)
}
