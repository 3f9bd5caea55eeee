//! Removing blobs: the only place bytes leave the store (garbage collection, a purge of a
//! revoked release's blobs, and a failed bundle import taking back what it stored).
//!
//! A blob is judged and removed under the store's removal lock, which every commit holds
//! shared from placing its bytes to recording them: a removal never sees bytes a commit is
//! about to record, and never deletes bytes a commit recorded after the judgement. A blob that a
//! logged release references is never removed, unless every such release is revoked and an
//! operator purges it, or a partial mirror's carry filter no longer takes any of them. Callers that also log statements (a primary's submit, a mirror's
//! writer) hold their own lock around each removal, so that a statement is never logged for a
//! blob removed a moment before (see `crate::gc`, `crate::purge`).

use std::sync::{PoisonError, RwLockReadGuard};

use airlock_proto::api::GcReason;
use airlock_proto::{Digest, Timestamp};

use super::blob_store::Sharing;
use super::Store;

/// What garbage collection may do with one blob, judged now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removable {
    /// A logged release references it, or nothing of it is stored.
    Keep,
    /// Unreferenced, but stored after the grace cut-off.
    InGrace,
    /// May go.
    Yes { bytes: u64, reason: GcReason },
}

impl Store {
    /// The removal lock, exclusively. Taken by polling rather than by waiting: a waiting writer
    /// would hold back new readers, and a commit to an object store can hold its read lock for
    /// the length of a large upload, during which blob requests must go on.
    fn exclusive(&self) -> std::sync::RwLockWriteGuard<'_, ()> {
        loop {
            match self.removal.try_write() {
                Ok(guard) => return guard,
                Err(std::sync::TryLockError::Poisoned(poisoned)) => return poisoned.into_inner(),
                Err(std::sync::TryLockError::WouldBlock) => {
                    std::thread::sleep(std::time::Duration::from_millis(2))
                }
            }
        }
    }

    /// Held (shared) by a commit from placing a blob's bytes until they are recorded.
    pub(super) fn commit_guard(&self) -> RwLockReadGuard<'_, ()> {
        self.removal.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// The backend's temporary objects older than `cutoff` that crashes left (removed unless
    /// `remove` is false): name and bytes.
    pub fn collect_stages(
        &self,
        cutoff: std::time::SystemTime,
        remove: bool,
    ) -> anyhow::Result<Vec<(String, u64)>> {
        Ok(self.blobs.collect_stages(cutoff, remove)?)
    }

    /// Every digest the store holds a record or bytes of, sorted, each once.
    pub fn blob_candidates(&self) -> anyhow::Result<Vec<Digest>> {
        let mut digests = self.db.blob_digests()?;
        digests.extend(self.blobs.list()?);
        digests.sort();
        digests.dedup();
        Ok(digests)
    }

    /// Whether garbage collection may remove `digest`, judged under the removal lock, and with
    /// `remove` its removal there and then: the record first, then the bytes, then the
    /// remembered record. Never while a logged release references it, unless `uncarried` (the
    /// caller judged from the registry state that no release holding it passes a partial
    /// mirror's carry filter); an upload recorded at or before `cutoff` and referenced by
    /// nothing; bytes without a record (a commit cut short by a crash).
    pub fn collect_blob(
        &self,
        digest: &Digest,
        cutoff: Timestamp,
        uncarried: bool,
        remove: bool,
    ) -> anyhow::Result<Removable> {
        let _exclusive = self.exclusive();
        let judged = self.judge(digest, cutoff, uncarried)?;
        if let (true, Removable::Yes { reason, .. }) = (remove, judged) {
            if reason != GcReason::Unrecorded {
                self.db.delete_blob(digest)?;
            }
            self.blobs.delete(digest)?;
            self.visible.write().unwrap_or_else(PoisonError::into_inner).remove(digest);
        }
        Ok(judged)
    }

    fn judge(&self, digest: &Digest, cutoff: Timestamp, uncarried: bool) -> anyhow::Result<Removable> {
        if self.is_referenced(digest)? {
            // Other front ends of a shared bucket may carry what this one does not.
            if !uncarried || self.sharing != Sharing::Own {
                return Ok(Removable::Keep);
            }
            let bytes = self.stored_bytes(digest)?;
            return Ok(
                bytes.map_or(Removable::Keep, |bytes| Removable::Yes { bytes, reason: GcReason::Uncarried })
            );
        }
        Ok(match self.db.blob(digest)? {
            Some(record) if record.stored_at <= cutoff => {
                Removable::Yes { bytes: record.size, reason: GcReason::Unreferenced }
            }
            Some(_) => Removable::InGrace,
            // In a shared bucket, bytes this front end has no record of may be another's commit
            // in progress: only those older than the grace period go.
            None if self.sharing != Sharing::Own => match self.blobs.written(digest)? {
                Some((bytes, at)) if at <= cutoff => Removable::Yes { bytes, reason: GcReason::Unrecorded },
                Some(_) => Removable::InGrace,
                None => Removable::Keep,
            },
            None => match self.blobs.stat(digest)? {
                Some(bytes) => Removable::Yes { bytes, reason: GcReason::Unrecorded },
                None => Removable::Keep,
            },
        })
    }

    /// The record of a stored blob, for an upload of bytes the store already holds: an
    /// unreferenced one is recorded again as stored now, so its grace period starts over (a
    /// publisher re-uploading before a submit is not caught by a collection in between).
    pub fn blob_uploaded_again(&self, digest: &Digest) -> anyhow::Result<Option<super::BlobRecord>> {
        let _commit = self.commit_guard();
        let Some(mut record) = self.db.blob(digest)? else { return Ok(None) };
        if !self.is_referenced(digest)? {
            record.stored_at = self.now();
            self.db.put_blobs(&[(*digest, record.clone())])?;
        }
        Ok(Some(record))
    }

    /// Removes a blob whose every logged release is revoked (the caller judged that from the
    /// registry state, holding its append lock): the record, the bytes, and the remembered
    /// answer that it is visible. Returns the bytes it held, or `None` when nothing was stored.
    pub fn purge_blob(&self, digest: &Digest) -> anyhow::Result<Option<u64>> {
        let _exclusive = self.exclusive();
        let bytes = self.stored_bytes(digest)?;
        self.db.delete_blob(digest)?;
        self.blobs.delete(digest)?;
        self.visible.write().unwrap_or_else(PoisonError::into_inner).remove(digest);
        Ok(bytes)
    }

    /// The size a blob's record gives, or its bytes' size when it has no record; `None` when
    /// nothing of it is stored.
    fn stored_bytes(&self, digest: &Digest) -> anyhow::Result<Option<u64>> {
        Ok(match self.db.blob(digest)? {
            Some(record) => Some(record.size),
            None => self.blobs.stat(digest)?,
        })
    }

    /// Removes a blob that no logged release references, whatever its age: the record first,
    /// then the bytes, so a file whose record exists is never deleted. Refused (`false`) for a
    /// referenced blob.
    pub fn discard_unreferenced(&self, digest: &Digest) -> anyhow::Result<bool> {
        let _exclusive = self.exclusive();
        if self.is_referenced(digest)? {
            return Ok(false);
        }
        self.db.delete_blob(digest)?;
        // In a shared bucket the bytes may be another front end's: only the record goes, and the
        // collector removes what no one records.
        if self.sharing == Sharing::Own {
            self.blobs.delete(digest)?;
        }
        Ok(true)
    }
}
