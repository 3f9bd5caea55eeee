//! Publishing files: hashing them and naming them. The release statement itself is built by
//! [`crate::statements`] (re-exported here as [`release_envelope`]).

use std::io::Read;
use std::path::Path;

use airlock_proto::{Digest, FileName, Sha256};
use sha2::Digest as _;

pub use crate::statements::release_envelope;

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
