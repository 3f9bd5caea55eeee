//! Building releases: hashing files and assembling the release statement to sign.

use std::io::Read;
use std::path::Path;

use airlock_proto::{
    Digest, Envelope, FileEntry, FileName, Kind, Metadata, PackageName, PayloadType, Release, Sha256,
    Statement, Version,
};
use sha2::Digest as _;

/// Size and digests of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileDigests {
    pub size: u64,
    pub blake3: Digest,
    pub sha256: Sha256,
}

/// Hashes a file in large reads (BLAKE3 and SHA-256 in one pass).
pub fn hash_file(path: &Path) -> anyhow::Result<FileDigests> {
    let mut file =
        std::fs::File::open(path).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    let mut blake3 = blake3::Hasher::new();
    let mut sha256 = sha2::Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buffer).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
        if n == 0 {
            break;
        }
        blake3.update(&buffer[..n]);
        sha256.update(&buffer[..n]);
        size += n as u64;
    }
    Ok(FileDigests { size, blake3: blake3.finalize().into(), sha256: Sha256(sha256.finalize().into()) })
}

/// The file name a path is published under: its last component, validated.
pub fn file_name_of(path: &Path) -> anyhow::Result<FileName> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| anyhow::anyhow!("{} has no usable file name", path.display()))?;
    Ok(FileName::new(name)?)
}

/// An unsigned release envelope for one file.
pub fn release_envelope(
    kind: Kind,
    name: PackageName,
    version: Version,
    file: (FileName, FileDigests),
    metadata: Metadata,
    published_at: u64,
) -> anyhow::Result<Envelope> {
    let (filename, digests) = file;
    let release = Release {
        payload_type: PayloadType::Release,
        kind,
        name,
        version,
        files: vec![FileEntry {
            filename,
            size: digests.size,
            blake3: digests.blake3,
            sha256: digests.sha256,
        }],
        metadata,
        published_at,
    };
    let (payload_type, payload) = Statement::Release(release).encode()?;
    Ok(Envelope::unsigned(payload_type.as_str(), payload))
}
