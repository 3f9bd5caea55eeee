//! Pack zips, read and extracted with the same member rules as `pack::read_pack` (plain
//! relative names, no links, capped counts and sizes): every file is hashed (BLAKE3) so a tree
//! can be compared with the pack it came from.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::Path;

use airlock_proto::Digest;

use crate::pack::{relative_name, MAX_PACK_BYTES, MAX_PACK_FILES};

/// The files of a pack: their names in archive order (as `.tracking` lists them) and digests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PackFiles {
    pub names: Vec<String>,
    pub digests: BTreeMap<String, Digest>,
}

/// Reads the pack at `zip`, hashing every file; with `into`, writes each file below it too.
fn walk(zip: &Path, into: Option<&Path>) -> anyhow::Result<PackFiles> {
    let what = zip.display().to_string();
    let file = std::fs::File::open(zip).map_err(|e| anyhow::anyhow!("{what}: {e}"))?;
    let mut archive = zip::ZipArchive::new(std::io::BufReader::new(file))
        .map_err(|e| anyhow::anyhow!("{what}: not a zip archive: {e}"))?;
    anyhow::ensure!(!archive.has_duplicate_names(), "{what}: holds the same member name twice");
    anyhow::ensure!(archive.len() <= MAX_PACK_FILES, "{what}: holds over {MAX_PACK_FILES} members");
    let mut out = PackFiles::default();
    let mut total = 0u64;
    for index in 0..archive.len() {
        let mut entry = archive.by_index(index).map_err(|e| anyhow::anyhow!("{what}: {e}"))?;
        let raw = entry.name().map_err(|e| anyhow::anyhow!("{what}: {e}"))?.into_owned();
        let name = relative_name(Path::new(raw.trim_end_matches('/')))
            .filter(|_| !raw.contains('\\'))
            .ok_or_else(|| anyhow::anyhow!("{what}: member {raw:?} is not a plain relative path"))?;
        anyhow::ensure!(!entry.is_symlink(), "{what}: member {raw:?} is a symbolic link");
        if entry.is_dir() {
            if let Some(root) = into {
                std::fs::create_dir_all(root.join(&name))?;
            }
            continue;
        }
        total = total.saturating_add(entry.size());
        anyhow::ensure!(total <= MAX_PACK_BYTES, "{what}: holds over {MAX_PACK_BYTES} bytes uncompressed");
        let mut hasher = blake3::Hasher::new();
        let mut writer = match into {
            Some(root) => {
                let path = root.join(&name);
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                // `create_new`: a member can never overwrite another, or follow a link.
                Some(
                    std::fs::File::options()
                        .write(true)
                        .create_new(true)
                        .open(&path)
                        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?,
                )
            }
            None => None,
        };
        let mut buffer = vec![0u8; 64 * 1024];
        let mut read = 0u64;
        loop {
            let n = entry.read(&mut buffer).map_err(|e| anyhow::anyhow!("{what}: {raw}: {e}"))?;
            if n == 0 {
                break;
            }
            read += n as u64;
            anyhow::ensure!(read <= entry.size(), "{what}: {raw} is longer than its header says");
            hasher.update(&buffer[..n]);
            if let Some(writer) = writer.as_mut() {
                writer.write_all(&buffer[..n])?;
            }
        }
        if let Some(writer) = writer {
            writer.sync_all()?;
        }
        out.digests.insert(name.clone(), Digest::from(hasher.finalize()));
        out.names.push(name);
    }
    Ok(out)
}

/// The files a pack holds, with their digests.
pub fn pack_files(zip: &Path) -> anyhow::Result<PackFiles> {
    walk(zip, None)
}

/// Extracts the pack at `zip` into the empty folder `into`.
pub fn extract(zip: &Path, into: &Path) -> anyhow::Result<PackFiles> {
    walk(zip, Some(into))
}

/// The BLAKE3 of a file on disk.
pub fn hash_path(path: &Path) -> std::io::Result<Digest> {
    let mut hasher = blake3::Hasher::new();
    let mut file = std::fs::File::open(path)?;
    std::io::copy(&mut file, &mut hasher)?;
    Ok(Digest::from(hasher.finalize()))
}
