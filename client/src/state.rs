//! The client's trusted state on disk, per pinned root (files named by the root's BLAKE3 under
//! `logs/`):
//! - `.leaves`: every verified leaf, appended (4-byte big-endian length, then the bytes);
//! - `.fold`: the verified fold and frontier at some size, sealed (`api::ClientFold`);
//!   rewritten only when the log grows;
//! - `.head`: the newest checkpoint for that size, sealed (`api::ClientHead`); rewritten on
//!   every update.
//!
//! Loading resumes the fold (`TrustedLog::resume`: no leaf is re-verified, so a warm load does
//! not grow with the log's signatures). A fold that is missing, truncated, corrupted or does not
//! resume is refused and rebuilt from the leaves file, every leaf re-verified
//! (`TrustedLog::restore`); `ClientLog::rebuilt` says why. A leaves file shorter than the fold
//! says is fetched again from the registry on the next update and checked against the verified
//! root hash. Every write is durable before it is relied on: leaves are synced before the fold
//! that counts them, and the fold and head are replaced atomically.

use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom};
use std::ops::Range;
use std::path::{Path, PathBuf};

use airlock_keys::{TrustedHead, TrustedLog, TrustedRoot, Verified};
use airlock_proto::api::{
    seal, unseal, ClientFold, ClientHead, IndexRef, LogSnapshot, MAX_SAVED_LOG_BYTES, MAX_SNAPSHOT_BYTES,
    SEAL_BYTES, SNAPSHOT_FORMAT,
};
use airlock_proto::codec;
use airlock_proto::envelope::MAX_ENTRY_BYTES;
use anyhow::Context;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::fsutil;
use crate::index::Index;

/// Largest root file accepted.
pub const MAX_ROOT_FILE_BYTES: u64 = 1 << 20;
/// Largest head file accepted (a checkpoint note, the logged roots and a frontier).
const MAX_HEAD_BYTES: usize = 4 << 20;

/// Where the client keeps state: `$AIRLOCK_HOME`, else `$HOME/.airlock`.
pub fn default_state_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("AIRLOCK_HOME") {
        return PathBuf::from(dir);
    }
    std::env::var_os("HOME")
        .map_or_else(|| PathBuf::from(".airlock"), |home| PathBuf::from(home).join(".airlock"))
}

/// The pinned root and where its log state lives.
#[derive(Debug)]
pub struct StateStore {
    pinned: Verified<TrustedRoot>,
    /// `logs/<root id>`, to which `.leaves`, `.fold` and `.head` are appended.
    stem: PathBuf,
}

impl StateStore {
    /// Loads the root file to pin; the state files are named by the root's BLAKE3.
    pub fn open(state_dir: &Path, root_file: &Path) -> anyhow::Result<Self> {
        let bytes = fsutil::read_capped(root_file, MAX_ROOT_FILE_BYTES)?;
        let pinned = TrustedRoot::pin(&bytes)
            .with_context(|| format!("root file {} does not verify", root_file.display()))?;
        let id = blake3::hash(&bytes).to_hex();
        Ok(Self { pinned, stem: state_dir.join("logs").join(&id[..32]) })
    }

    /// The path of one of the state files: `leaves`, `fold` or `head`.
    pub fn path(&self, which: &str) -> PathBuf {
        self.stem.with_extension(which)
    }

    /// Loads the saved state: the fold resumed with the newest checkpoint, or rebuilt from the
    /// leaves when it cannot be; the empty state when nothing is saved.
    pub fn load(&self) -> anyhow::Result<ClientLog> {
        let leaves_path = self.path("leaves");
        let head = read_sealed::<ClientHead>(&self.path("head"), MAX_HEAD_BYTES);
        let fold = read_sealed::<ClientFold>(&self.path("fold"), MAX_SNAPSHOT_BYTES);
        let head = match head {
            Ok(Some(head)) if head.format == SNAPSHOT_FORMAT => Some(head),
            _ => None,
        };
        let refused = match fold {
            Ok(None) if head.is_none() && !leaves_path.exists() => {
                let log = TrustedLog::restore(self.pinned.clone(), &[], None, 0)?;
                return Ok(ClientLog::new(log, Leaves::stored(leaves_path, 0, 0), None));
            }
            Ok(None) => "it is missing".to_owned(),
            Err(e) => e,
            Ok(Some(fold)) => match self.resume(fold, head.as_ref()) {
                Ok(state) => return Ok(state),
                Err(e) => format!("{e:#}"),
            },
        };
        self.rebuild(head, &refused).with_context(|| {
            format!(
                "the saved state {} was refused ({refused}) and cannot be rebuilt from its leaves; remove {}.* to start again from the pinned root",
                self.path("fold").display(),
                self.stem.display()
            )
        })
    }

    /// The fold, with the head's checkpoint when it is for the same size.
    fn resume(&self, fold: ClientFold, head: Option<&ClientHead>) -> anyhow::Result<ClientLog> {
        let ClientFold { log, leaves_bytes } = fold;
        let mut log = LogSnapshot::from_bytes(&log)?;
        let size = log.fold.size;
        let head = head.filter(|h| h.size == size && h.checkpoint.is_some());
        if let Some(head) = head {
            log.checkpoint.clone_from(&head.checkpoint);
            log.newest_issued_at = log.newest_issued_at.max(head.newest_issued_at);
        }
        let log = TrustedLog::resume(self.pinned.clone(), log)?;
        let leaves = Leaves::stored(self.path("leaves"), size, leaves_bytes);
        let mut state = ClientLog::new(log, leaves, None).with_fold_size(size);
        state.index = head.and_then(|h| h.index);
        Ok(state)
    }

    /// Every saved leaf re-verified against the newest saved checkpoint.
    fn rebuild(&self, head: Option<ClientHead>, refused: &str) -> anyhow::Result<ClientLog> {
        let head = head.context("the head file is missing or corrupt too")?;
        let checkpoint = head.checkpoint.context("the head holds no checkpoint")?;
        let path = self.path("leaves");
        let (all, ends) = read_leaf_records(&path, u64::MAX)?;
        let size = usize::try_from(head.size)?;
        anyhow::ensure!(all.len() >= size, "the leaves file holds {} leaves, the head {size}", all.len());
        let log =
            TrustedLog::restore(self.pinned.clone(), &all[..size], Some(&checkpoint), head.newest_issued_at)
                .context("the saved leaves do not verify")?;
        let bytes = if size == 0 { 0 } else { ends[size - 1] };
        let reason = format!("the saved fold {} was refused ({refused})", self.path("fold").display());
        Ok(ClientLog::new(log, Leaves::stored(path, head.size, bytes), Some(reason)))
    }

    /// Saves a verified state: new leaves appended and synced, then the fold if the log grew (or
    /// was rebuilt), with the index written beside them when it changed; then the head.
    pub fn save(&self, state: &ClientLog) -> anyhow::Result<()> {
        if let Some(parent) = self.stem.parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
        }
        let leaves_path = self.path("leaves");
        let size = state.log.size();
        let grown = state.fold_size != Some(size) || state.rebuilt.is_some() || state.leaves.rewrite;
        let kept_index = state.index.filter(|_| !grown);
        if kept_index.is_none() {
            // Until the new head is written, no head vouches for a fold or index being
            // replaced: a crash in between leaves the fold to be loaded in full.
            self.forget_index()?;
        }
        // The new leaves appended and synced, then the fold that counts them, on one thread;
        // the index (itself built on every core) beside them.
        let write_leaves_and_fold = || -> anyhow::Result<()> {
            let leaves_bytes = state
                .leaves
                .persist(&leaves_path)
                .with_context(|| format!("cannot write {}", leaves_path.display()))?;
            if grown {
                let log = serde_bytes::ByteBuf::from(state.log.snapshot().to_bytes()?);
                write_sealed(&self.path("fold"), &ClientFold { log, leaves_bytes })?;
            }
            Ok(())
        };
        let index = std::thread::scope(|scope| -> anyhow::Result<IndexRef> {
            let files = scope.spawn(write_leaves_and_fold);
            let index = match kept_index {
                Some(index) => Ok(index),
                None => crate::index::write(&self.path("index"), state.log.registry()),
            };
            files.join().unwrap_or_else(|_| Err(anyhow::anyhow!("the leaves and fold writer failed")))?;
            index
        })?;
        let (roots, frontier) = state.log.head_parts();
        let head = ClientHead {
            format: SNAPSHOT_FORMAT,
            size,
            checkpoint: state.log.checkpoint().map(|c| serde_bytes::ByteBuf::from(c.to_vec())),
            newest_issued_at: state.log.newest_issued_at(),
            roots,
            frontier,
            index: Some(index),
        };
        write_sealed(&self.path("head"), &head)
    }

    /// The state a pull needs when the registry brings no new leaf: the head (the roots, the
    /// frontier and the newest checkpoint, checked as `TrustedHead::resume` checks them) and the
    /// index of the fold at the same size. `None` when either is missing or does not check out:
    /// the caller then loads the fold (`load`), which repairs both when it saves.
    pub fn load_warm(&self) -> Option<WarmState> {
        let head = read_sealed::<ClientHead>(&self.path("head"), MAX_HEAD_BYTES).ok()??;
        if head.format != SNAPSHOT_FORMAT {
            return None;
        }
        let index_ref = head.index?;
        let checkpoint = head.checkpoint?.into_vec();
        let trusted = TrustedHead::resume(
            self.pinned.clone(),
            head.roots,
            head.frontier,
            checkpoint,
            head.newest_issued_at,
        )
        .ok()?;
        let index = Index::open(&self.path("index"), &index_ref).ok()?;
        (index.size() == trusted.size()).then_some(WarmState { head: trusted, index, index_ref })
    }

    /// Drops the head's claim on the index (the index was found damaged): the next save writes
    /// the index and the head again.
    pub fn forget_index(&self) -> anyhow::Result<()> {
        match std::fs::remove_file(self.path("head")) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(e).with_context(|| format!("cannot remove {}", self.path("head").display()))
            }
            _ => Ok(()),
        }
    }

    /// Saves a head confirmed without the fold (its newest checkpoint), beside the same index.
    pub fn save_warm(&self, warm: &WarmState) -> anyhow::Result<()> {
        let (roots, frontier) = warm.head.parts();
        let head = ClientHead {
            format: SNAPSHOT_FORMAT,
            size: warm.head.size(),
            checkpoint: Some(serde_bytes::ByteBuf::from(warm.head.checkpoint().to_vec())),
            newest_issued_at: warm.head.newest_issued_at(),
            roots,
            frontier,
            index: Some(warm.index_ref),
        };
        write_sealed(&self.path("head"), &head)
    }
}

/// A verified head and the index of the fold it stands for.
#[derive(Debug)]
pub struct WarmState {
    pub head: Verified<TrustedHead>,
    pub index: Index,
    index_ref: IndexRef,
}

impl WarmState {
    /// The same state with a newer head of the same log.
    pub fn with_head(self, head: Verified<TrustedHead>) -> Self {
        Self { head, ..self }
    }
}

fn write_sealed<T: Serialize>(path: &Path, value: &T) -> anyhow::Result<()> {
    let body = codec::encode("saved state", value)?;
    fsutil::write_atomic(path, &seal(&body), 0o600)
        .with_context(|| format!("cannot write {}", path.display()))
}

/// A sealed file's value; `Ok(None)` when there is no file, `Err` naming why it was refused.
fn read_sealed<T: Serialize + DeserializeOwned>(path: &Path, cap: usize) -> Result<Option<T>, String> {
    if !path.exists() {
        return Ok(None);
    }
    let bytes = fsutil::read_capped(path, (cap + SEAL_BYTES) as u64).map_err(|e| format!("{e:#}"))?;
    let body = unseal(&bytes).map_err(|e| e.to_string())?;
    codec::decode("saved state", body, cap).map(Some).map_err(|e| e.to_string())
}

/// Reads leaf records from `path` until `limit` bytes or the end; returns the leaves and the
/// byte offset where each ends. A record cut short ends the read (a crash mid-append).
fn read_leaf_records(path: &Path, limit: u64) -> anyhow::Result<(Vec<Vec<u8>>, Vec<u64>)> {
    let mut file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), Vec::new())),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let cap = limit.min(MAX_SAVED_LOG_BYTES as u64);
    let mut bytes = Vec::new();
    (&mut file)
        .take(cap)
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let (mut leaves, mut ends, mut at) = (Vec::new(), Vec::new(), 0usize);
    while let Some(head) = bytes.get(at..at + 4) {
        let len = u32::from_be_bytes(head.try_into()?) as usize;
        anyhow::ensure!(
            len <= MAX_ENTRY_BYTES,
            "{}: a leaf record of {len} bytes at offset {at}",
            path.display()
        );
        let Some(leaf) = bytes.get(at + 4..at + 4 + len) else { break };
        leaves.push(leaf.to_vec());
        at += 4 + len;
        ends.push(at as u64);
    }
    Ok((leaves, ends))
}

/// The verified leaves: those saved in the leaves file, and those verified since.
#[derive(Debug, Clone)]
pub struct Leaves {
    path: PathBuf,
    /// Leaves and bytes of the file that the saved fold counts.
    stored: u64,
    stored_bytes: u64,
    /// Leaves verified since they were saved.
    new: Vec<Vec<u8>>,
    /// The file is to be written again from `new` alone (it was fetched again; nothing counts
    /// as stored).
    rewrite: bool,
}

impl Leaves {
    fn stored(path: PathBuf, stored: u64, stored_bytes: u64) -> Self {
        Self { path, stored, stored_bytes, new: Vec::new(), rewrite: false }
    }

    /// Number of leaves.
    pub fn len(&self) -> u64 {
        self.stored + self.new.len() as u64
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes the leaves take in the leaves file (each with its 4-byte length).
    pub fn bytes(&self) -> u64 {
        let new: usize = self.new.iter().map(|leaf| leaf.len() + 4).sum();
        self.stored_bytes + new as u64
    }

    /// Why the saved leaves cannot be read, if they cannot: the file is shorter than the fold
    /// says (then the next update fetches them again).
    pub fn damage(&self) -> Option<String> {
        if self.stored_bytes == 0 {
            return None;
        }
        let len = std::fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0);
        (len < self.stored_bytes).then(|| {
            format!(
                "{} holds {len} bytes, the saved fold counts {} bytes of leaves",
                self.path.display(),
                self.stored_bytes
            )
        })
    }

    /// Leaves `range`, read from the file where they are saved.
    pub fn read(&self, range: Range<u64>) -> anyhow::Result<Vec<Vec<u8>>> {
        anyhow::ensure!(
            range.start <= range.end && range.end <= self.len(),
            "leaves {}..{} asked of {}",
            range.start,
            range.end,
            self.len()
        );
        let stored = self.stored;
        let mut out = Vec::new();
        if range.start < stored {
            if let Some(damage) = self.damage() {
                anyhow::bail!("the saved leaves are damaged: {damage}; `airlock sync` fetches them again");
            }
            let (all, _) = read_leaf_records(&self.path, self.stored_bytes)?;
            anyhow::ensure!(
                all.len() as u64 == stored,
                "{} holds {} leaves, not {stored}",
                self.path.display(),
                all.len()
            );
            let end = range.end.min(stored);
            out.extend(
                all.into_iter().skip(usize::try_from(range.start)?).take(usize::try_from(end - range.start)?),
            );
        }
        let from = range.start.max(stored) - stored;
        let to = range.end.max(stored) - stored;
        out.extend(self.new[usize::try_from(from)?..usize::try_from(to)?].iter().cloned());
        Ok(out)
    }

    /// Every leaf.
    pub fn all(&self) -> anyhow::Result<Vec<Vec<u8>>> {
        self.read(0..self.len())
    }

    /// One leaf.
    pub fn get(&self, index: u64) -> anyhow::Result<Vec<u8>> {
        self.read(index..index + 1)?.pop().context("no such leaf")
    }

    /// These leaves followed by `more`.
    pub(crate) fn appended(&self, more: Vec<Vec<u8>>) -> Self {
        let mut next = self.clone();
        next.new.extend(more);
        next
    }

    /// Every leaf, fetched again: the file is rewritten from these.
    pub(crate) fn replaced(&self, all: Vec<Vec<u8>>) -> Self {
        Self { path: self.path.clone(), stored: 0, stored_bytes: 0, new: all, rewrite: true }
    }

    /// Writes the leaves not yet saved and returns the bytes the file then holds for them.
    fn persist(&self, path: &Path) -> std::io::Result<u64> {
        let records = |leaves: &[Vec<u8>]| {
            let mut out = Vec::with_capacity(leaves.iter().map(|l| l.len() + 4).sum());
            for leaf in leaves {
                out.extend_from_slice(&(leaf.len() as u32).to_be_bytes());
                out.extend_from_slice(leaf);
            }
            out
        };
        if self.rewrite {
            fsutil::write_atomic(path, &records(&self.new), 0o600)?;
            return Ok(self.bytes());
        }
        if self.new.is_empty() {
            return Ok(self.stored_bytes);
        }
        use std::os::unix::fs::OpenOptionsExt;
        let mut file = OpenOptions::new().write(true).create(true).truncate(false).mode(0o600).open(path)?;
        // Whatever follows the counted leaves is a crash's leftover: it goes.
        file.set_len(self.stored_bytes)?;
        file.seek(SeekFrom::End(0))?;
        // A page of records at a time, with write-back started as they go.
        let mut write_back = fsutil::WriteBack::default();
        for page in self.new.chunks(1024) {
            write_back.write(&file, &records(page))?;
        }
        write_back.wait()?;
        file.sync_all()?;
        Ok(self.bytes())
    }
}

/// A verified log with the leaves behind it (the client keeps every leaf so that evidence and
/// proofs can be made, and so that the state can be rebuilt and re-verified from scratch).
#[derive(Debug, Clone)]
pub struct ClientLog {
    pub log: Verified<TrustedLog>,
    pub leaves: Leaves,
    /// Why the saved fold was refused, when this state was rebuilt from the leaves.
    pub rebuilt: Option<String>,
    /// The size of the saved fold this state was loaded from.
    fold_size: Option<u64>,
    /// The saved index of that fold, when the head vouched for it.
    index: Option<IndexRef>,
}

impl ClientLog {
    fn new(log: Verified<TrustedLog>, leaves: Leaves, rebuilt: Option<String>) -> Self {
        Self { log, leaves, rebuilt, fold_size: None, index: None }
    }

    fn with_fold_size(mut self, size: u64) -> Self {
        self.fold_size = Some(size);
        self
    }

    /// The state after an update: `log`, with `new_leaves` appended or, when the saved leaves
    /// were fetched again, `refetched` as every leaf.
    pub(crate) fn advanced(
        &self,
        log: Verified<TrustedLog>,
        new_leaves: Vec<Vec<u8>>,
        refetched: Option<Vec<Vec<u8>>>,
    ) -> Self {
        let leaves = match refetched {
            Some(mut all) => {
                all.extend(new_leaves);
                self.leaves.replaced(all)
            }
            None => self.leaves.appended(new_leaves),
        };
        Self { log, leaves, rebuilt: self.rebuilt.clone(), fold_size: self.fold_size, index: self.index }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    /// New leaves go after the ones the fold counts, many pages of them, and whatever a crash
    /// left past the counted bytes is cut first.
    #[test]
    fn persisted_leaves_read_back_in_order_and_a_crash_leftover_goes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("leaves");
        let first: Vec<Vec<u8>> = (0..3u8).map(|i| vec![i; 5]).collect();
        let mut leaves = Leaves::stored(path.clone(), 0, 0);
        leaves.new.clone_from(&first);
        let counted = leaves.persist(&path).unwrap();
        assert_eq!(counted, 27);
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(b"\0\0\0\x09cut short").unwrap();
        let mut more = Leaves::stored(path.clone(), 3, counted);
        more.new = (0..2500u32).map(|i| i.to_be_bytes().repeat(i as usize % 7 + 1)).collect();
        let total = more.persist(&path).unwrap();
        assert_eq!(total, std::fs::metadata(&path).unwrap().len(), "the leftover is gone");
        let read = Leaves::stored(path.clone(), 2503, total).read(0..2503).unwrap();
        assert_eq!(read, first.iter().chain(&more.new).cloned().collect::<Vec<_>>());
    }
}
