//! Pull: resolve a name==version or a digest in the verified log, download each file with a byte
//! cap, verify size, BLAKE3 and SHA-256, and only then move it into place.

use std::path::{Path, PathBuf};

use airlock_keys::{RegistryState, ReleaseRecord, ReleaseStatus};
use airlock_proto::{ChannelName, Digest, FileEntry, Kind, PackageName, Version};

use crate::fsutil::AtomicFile;
use crate::progress::Progress;
use crate::remote::Remote;
use crate::sha256_thread::Sha256Hasher;

/// What to pull.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `NAME==VERSION`, optionally restricted to one kind.
    Release { kind: Option<Kind>, name: String, version: Version },
    /// `NAME`: the newest release that is neither yanked nor revoked.
    Newest { kind: Option<Kind>, name: String },
    /// `blake3:<hex>`: one file of a logged release.
    Digest(Digest),
}

/// A check that failed on downloaded or logged data. Names what failed.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("{what} has size {actual}, the log says {expected}")]
    Size { what: String, expected: u64, actual: u64 },
    #[error("{what} hashes to {actual}, the log says {expected}")]
    Blake3 { what: String, expected: Digest, actual: Digest },
    #[error("{what} has sha256 {actual}, the log says {expected}")]
    Sha256 { what: String, expected: String, actual: String },
    #[error("{kind} {name}=={version} is revoked: {reason}")]
    Revoked { kind: Kind, name: PackageName, version: Version, reason: String },
}

/// The target is not in the verified log.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct NotFound(pub String);

impl Target {
    /// Parses `blake3:<hex>`, `NAME==VERSION` or `NAME`.
    pub fn parse(text: &str, kind: Option<Kind>) -> anyhow::Result<Self> {
        if text.starts_with("blake3:") {
            return Ok(Self::Digest(text.parse()?));
        }
        match text.split_once("==") {
            Some((name, version)) => {
                Ok(Self::Release { kind, name: name.to_owned(), version: Version::new(version)? })
            }
            None if !text.is_empty() && !text.contains(['=', '<', '>', '~', '!', ' ']) => {
                Ok(Self::Newest { kind, name: text.to_owned() })
            }
            None => anyhow::bail!("{text:?}: expected NAME, NAME==VERSION or blake3:<hex>"),
        }
    }
}

/// What resolving a target needs of the verified state: the fold itself, or the index of it
/// that a pull reads when the registry brought no new leaf (`crate::index`). With a channel,
/// only the releases that channel holds are seen.
pub trait ReleaseView {
    /// The release `kind` `name`==`version`.
    fn release_in(
        &self,
        kind: Kind,
        name: &PackageName,
        version: &Version,
        channel: Option<&ChannelName>,
    ) -> anyhow::Result<Option<ReleaseRecord>>;
    /// Every release of `kind` `name`.
    fn releases_in(
        &self,
        kind: Kind,
        name: &PackageName,
        channel: Option<&ChannelName>,
    ) -> anyhow::Result<Vec<ReleaseRecord>>;
    /// The release holding a file with this BLAKE3 (one that is not revoked when several do).
    fn release_by_digest_in(
        &self,
        digest: &Digest,
        channel: Option<&ChannelName>,
    ) -> anyhow::Result<Option<ReleaseRecord>>;
}

impl ReleaseView for RegistryState {
    fn release_in(
        &self,
        kind: Kind,
        name: &PackageName,
        version: &Version,
        channel: Option<&ChannelName>,
    ) -> anyhow::Result<Option<ReleaseRecord>> {
        Ok(self.release(kind, name, version).filter(|r| self.in_channel(r, channel)).cloned())
    }

    fn releases_in(
        &self,
        kind: Kind,
        name: &PackageName,
        channel: Option<&ChannelName>,
    ) -> anyhow::Result<Vec<ReleaseRecord>> {
        Ok(self.releases_of(kind, name).filter(|r| self.in_channel(r, channel)).cloned().collect())
    }

    fn release_by_digest_in(
        &self,
        digest: &Digest,
        channel: Option<&ChannelName>,
    ) -> anyhow::Result<Option<ReleaseRecord>> {
        Ok(self.release_by_digest(digest).filter(|r| self.in_channel(r, channel)).cloned())
    }
}

/// Finds the release a target names in the verified state; with `channel`, only among the
/// releases that channel holds. `NAME` takes the newest release (PEP 440 order for wheels,
/// semantic versions for node packs) that is neither yanked nor revoked. Returns the release and
/// the files the target names.
pub fn resolve<V: ReleaseView + ?Sized>(
    state: &V,
    target: &Target,
    channel: Option<&ChannelName>,
) -> anyhow::Result<(ReleaseRecord, Vec<FileEntry>)> {
    let where_ = channel.map(|c| format!(" in channel {c}")).unwrap_or_default();
    match target {
        Target::Digest(digest) => {
            let record = state
                .release_by_digest_in(digest, channel)?
                .ok_or_else(|| NotFound(format!("no logged release{where_} holds {digest}")))?;
            let files = record.release.files.iter().filter(|f| f.blake3 == *digest).cloned().collect();
            Ok((record, files))
        }
        Target::Release { kind, name, version } => {
            let mut found = Vec::new();
            for kind in kinds(*kind) {
                let name = PackageName::normalize(kind, name)?;
                found.extend(state.release_in(kind, &name, version, channel)?);
            }
            match found.len() {
                0 => Err(NotFound(format!("{name}=={version} is not in the log{where_}")).into()),
                1 => {
                    let record = found.remove(0);
                    let files = record.release.files.clone();
                    Ok((record, files))
                }
                _ => anyhow::bail!("{name}=={version} exists as both a wheel and a node pack: pass --kind"),
            }
        }
        Target::Newest { kind, name } => {
            let mut candidates: Vec<ReleaseRecord> = Vec::new();
            let mut kinds_found = Vec::new();
            for kind in kinds(*kind) {
                let name = PackageName::normalize(kind, name)?;
                let of_kind = state.releases_in(kind, &name, channel)?;
                if !of_kind.is_empty() {
                    kinds_found.push(kind);
                }
                candidates.extend(of_kind);
            }
            anyhow::ensure!(
                kinds_found.len() < 2,
                "{name} exists as both a wheel and a node pack: pass --kind"
            );
            let total = candidates.len();
            let newest =
                candidates.into_iter().filter(|r| r.status == ReleaseStatus::Active).max_by(|a, b| {
                    crate::versions::compare(a.release.kind, &a.release.version, &b.release.version)
                });
            match newest {
                Some(record) => {
                    let files = record.release.files.clone();
                    Ok((record, files))
                }
                None if total == 0 => Err(NotFound(format!("{name} is not in the log{where_}")).into()),
                None => Err(NotFound(format!(
                    "every release of {name}{where_} is yanked or revoked ({total}); pull an exact NAME==VERSION to take a yanked one"
                ))
                .into()),
            }
        }
    }
}

fn kinds(kind: Option<Kind>) -> Vec<Kind> {
    kind.map_or_else(|| vec![Kind::Wheel, Kind::Node], |k| vec![k])
}

/// Refuses revoked releases; returns a warning for yanked ones.
pub fn check_status(record: &ReleaseRecord) -> Result<Option<String>, VerifyError> {
    let r = &record.release;
    match &record.status {
        ReleaseStatus::Active => Ok(None),
        ReleaseStatus::Yanked { reason } => {
            Ok(Some(format!("{} {}=={} is yanked: {reason}", r.kind, r.name, r.version)))
        }
        ReleaseStatus::Revoked { reason } => Err(VerifyError::Revoked {
            kind: r.kind,
            name: r.name.clone(),
            version: r.version.clone(),
            reason: reason.clone(),
        }),
    }
}

/// Where each file goes: one file to `out` (or into `out` if it is a directory); several files
/// into the directory `out`, each under its validated file name.
pub fn output_paths(out: &Path, files: &[&FileEntry]) -> anyhow::Result<Vec<PathBuf>> {
    if files.len() == 1 && !out.is_dir() {
        return Ok(vec![out.to_path_buf()]);
    }
    if !out.exists() {
        std::fs::create_dir_all(out)?;
    }
    anyhow::ensure!(
        out.is_dir(),
        "{} must be a directory: the release holds {} files",
        out.display(),
        files.len()
    );
    Ok(files.iter().map(|f| out.join(f.filename.as_str())).collect())
}

/// Downloads one file to `path`, verifying it before it becomes visible.
pub async fn download_verified(
    remote: &Remote,
    file: &FileEntry,
    path: &Path,
    progress: &dyn Progress,
) -> anyhow::Result<()> {
    let mut output = AtomicFile::create(path, 0o644)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    download_checked(remote, file, progress, |chunk| output.write_all_bytes(chunk)).await?;
    output.commit().map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    Ok(())
}

/// Received chunks (each at most a read of the connection) that may wait for the SHA-256 thread.
const SHA256_QUEUE: usize = 32;

/// Streams one file's bytes into `sink` while hashing them, then checks the size, BLAKE3 and
/// SHA-256 against `file`. On an error the caller must discard what `sink` received.
pub async fn download_checked(
    remote: &Remote,
    file: &FileEntry,
    progress: &dyn Progress,
    mut sink: impl FnMut(&[u8]) -> std::io::Result<()>,
) -> anyhow::Result<()> {
    let mut blake3 = blake3::Hasher::new();
    // SHA-256 of a large blob on its own thread, beside BLAKE3 and the sink on this one.
    let mut sha256 = Sha256Hasher::for_size(Some(file.size), SHA256_QUEUE);
    // Cap at size + 1: a longer answer is cut there and refused below.
    let received = remote
        .download_blob(&file.blake3, file.size.saturating_add(1), progress, |chunk| {
            sha256.update(chunk.clone())?;
            blake3.update(chunk);
            sink(chunk)
        })
        .await;
    let what = format!("blob {} ({})", file.blake3, file.filename);
    let received = match received {
        Err(crate::remote::RemoteError::TooLarge { .. }) => {
            return Err(
                VerifyError::Size { what, expected: file.size, actual: file.size.saturating_add(1) }.into()
            )
        }
        other => other?,
    };
    if received != file.size {
        return Err(VerifyError::Size { what, expected: file.size, actual: received }.into());
    }
    let actual = Digest::from(blake3.finalize());
    if actual != file.blake3 {
        return Err(VerifyError::Blake3 { what, expected: file.blake3, actual }.into());
    }
    let actual_sha = sha256.finish()?;
    if actual_sha != file.sha256.0 {
        return Err(VerifyError::Sha256 {
            what,
            expected: file.sha256.to_hex(),
            actual: hex::encode(actual_sha),
        }
        .into());
    }
    Ok(())
}
