//! Exporting bundles: one tar file that carries a verified log segment, the checkpoint that
//! covers it, and every blob the segment's releases reference, across the air gap.
//!
//! Layout: `manifest.cbor` first (a `BundleManifest`: origin, `from_size..to_size`, checkpoint,
//! leaves, blob list), then one `blobs/<64 hex>` member per blob. The exporter verifies the
//! segment against its pinned root before writing it; the importer verifies it again against the
//! mirror's own state.

use std::io::Write;
use std::path::Path;

use airlock_keys::{RegistryState, ReleaseStatus};
use airlock_proto::api::{
    BundleBlob, BundleManifest, ImportedState, BUNDLE_BLOB_PREFIX, BUNDLE_FORMAT, BUNDLE_MANIFEST,
};
use airlock_proto::{codec, Checkpoint, Clock, Envelope, FileEntry, Statement};
use anyhow::Context;

use crate::follow;
use crate::fsutil::AtomicFile;
use crate::progress::Reporter;
use crate::pull::download_checked;
use crate::remote::Remote;
use crate::state::StateStore;

/// Where a bundle's segment starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFrom {
    /// The whole log (a full bundle, also a backup).
    All,
    /// From this leaf on (the target's current size).
    Size(u64),
}

impl ExportFrom {
    /// The start recorded in a state file written by a previous import.
    pub fn since(state_file: &Path) -> anyhow::Result<Self> {
        let bytes = crate::fsutil::read_capped(state_file, 64 * 1024)?;
        let state: ImportedState = serde_json::from_slice(&bytes)
            .with_context(|| format!("{} is not an import state file", state_file.display()))?;
        Ok(Self::Size(state.size))
    }
}

/// What an export wrote.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ExportReport {
    pub from_size: u64,
    pub to_size: u64,
    pub blobs: usize,
    pub blob_bytes: u64,
    /// When the bundle's checkpoint expires: a site fed by it serves it until then.
    pub expires_at: u64,
}

/// The release files referenced by `leaves`, each digest once, except those of releases that
/// `state` (the log's state at or after them) holds revoked: a bundle neither carries nor needs
/// them, so a registry that purged them still exports and a site still imports.
pub fn referenced_files(leaves: &[Vec<u8>], state: &RegistryState) -> anyhow::Result<Vec<FileEntry>> {
    let mut files: Vec<FileEntry> = Vec::new();
    for leaf in leaves {
        let envelope = Envelope::from_bytes(leaf)?;
        if let Statement::Release(release) = Statement::decode(&envelope.payload_type, &envelope.payload)? {
            let revoked = state
                .release(release.kind, &release.name, &release.version)
                .is_some_and(|r| matches!(r.status, ReleaseStatus::Revoked { .. }));
            if revoked {
                continue;
            }
            for file in release.files {
                if !files.iter().any(|f| f.blake3 == file.blake3) {
                    files.push(file);
                }
            }
        }
    }
    Ok(files)
}

/// Verifies the registry's log up to its newest checkpoint and writes the segment from `from`
/// with its blobs to `out` (atomically: a half-written bundle never appears at `out`), each blob
/// streamed from the registry into the file and checked on the way (no staging copy). Checkpoint
/// freshness is judged at `clock`'s time.
/// With `valid_for`, the bundle carries a checkpoint the registry signs for that many seconds
/// (`POST /v1/admin/checkpoint`, an admin token): a bundle-fed site serves it until the next
/// delivery. Without it, the registry's current (short-lived) checkpoint.
pub async fn export(
    remote: &Remote,
    store: &StateStore,
    from: ExportFrom,
    out: &Path,
    clock: &Clock,
    reporter: &dyn Reporter,
    valid_for: Option<u64>,
) -> anyhow::Result<ExportReport> {
    let before = store.load()?;
    let after = match valid_for {
        None => follow::update(remote, &before, clock, reporter).await?,
        Some(secs) => {
            let checkpoint = remote
                .checkpoint_valid_for(secs)
                .await
                .context("the registry did not sign a checkpoint for the bundle")?;
            follow::update_to_checkpoint(remote, &before, clock, reporter, checkpoint).await?
        }
    };
    store.save(&after)?;
    let to_size = after.log.size();
    let from_size = match from {
        ExportFrom::All => 0,
        ExportFrom::Size(n) => n,
    };
    anyhow::ensure!(
        from_size <= to_size,
        "the registry has {to_size} leaves; cannot export from leaf {from_size}"
    );
    let segment = &after.leaves.read(from_size..to_size)?;
    let files = referenced_files(segment, after.log.registry())?;
    let checkpoint = after.log.checkpoint().context("the registry has no checkpoint")?.to_vec();
    let manifest = BundleManifest {
        format: BUNDLE_FORMAT,
        origin: after.log.registry().root().origin().to_owned(),
        from_size,
        to_size,
        checkpoint: serde_bytes::ByteBuf::from(checkpoint),
        leaves: segment.iter().cloned().map(serde_bytes::ByteBuf::from).collect(),
        blobs: files.iter().map(|f| BundleBlob { digest: f.blake3, size: f.size }).collect(),
    };
    let manifest_bytes = codec::encode("bundle manifest", &manifest)?;
    // Each blob streams from the registry into the bundle while it is hashed; a blob that fails
    // its check ends the export, and the unfinished file is removed.
    let output = AtomicFile::create(out, 0o644).with_context(|| format!("cannot write {}", out.display()))?;
    let mut tar = TarWriter::new(output);
    tar.member(BUNDLE_MANIFEST, &manifest_bytes)?;
    let mut blob_bytes = 0u64;
    for file in &files {
        let name = format!("{BUNDLE_BLOB_PREFIX}{}", file.blake3.to_hex());
        tar.header(&name, file.size)?;
        let progress = reporter.bytes("fetching", file.size);
        download_checked(remote, file, progress.as_ref(), |chunk| tar.data(chunk)).await?;
        progress.finish();
        tar.end_member(file.size)?;
        blob_bytes += file.size;
    }
    tar.finish()?.commit().with_context(|| format!("cannot write {}", out.display()))?;
    let expires_at = Checkpoint::from_note_unverified(&manifest.checkpoint).map_or(0, |c| c.expires_at);
    Ok(ExportReport { from_size, to_size, blobs: files.len(), blob_bytes, expires_at })
}

/// Writes a tar stream member by member, a member's data in as many pieces as it arrives.
/// Every name is a bundle name (`manifest.cbor`, `blobs/<64 hex>`), which fits a ustar header.
struct TarWriter<W: Write> {
    out: W,
}

/// The tar block size: headers and padded data fill whole blocks.
const TAR_BLOCK: usize = 512;

impl<W: Write> TarWriter<W> {
    fn new(out: W) -> Self {
        Self { out }
    }

    fn header(&mut self, name: &str, size: u64) -> anyhow::Result<()> {
        let mut header = tar::Header::new_ustar();
        header.set_path(name).with_context(|| format!("cannot name {name} in the bundle"))?;
        header.set_entry_type(tar::EntryType::Regular);
        header.set_size(size);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_cksum();
        self.out.write_all(header.as_bytes()).with_context(|| format!("cannot add {name} to the bundle"))
    }

    fn data(&mut self, chunk: &[u8]) -> std::io::Result<()> {
        self.out.write_all(chunk)
    }

    /// Pads the member that `size` bytes of data ended to a whole block.
    fn end_member(&mut self, size: u64) -> anyhow::Result<()> {
        let rest = (size % TAR_BLOCK as u64) as usize;
        if rest != 0 {
            self.out.write_all(&[0u8; TAR_BLOCK][rest..]).context("cannot write the bundle")?;
        }
        Ok(())
    }

    fn member(&mut self, name: &str, bytes: &[u8]) -> anyhow::Result<()> {
        self.header(name, bytes.len() as u64)?;
        self.data(bytes).with_context(|| format!("cannot add {name} to the bundle"))?;
        self.end_member(bytes.len() as u64)
    }

    /// Writes the two zero blocks that end a tar stream and returns the output.
    fn finish(mut self) -> anyhow::Result<W> {
        self.out.write_all(&[0u8; 2 * TAR_BLOCK]).context("cannot finish the bundle")?;
        Ok(self.out)
    }
}
