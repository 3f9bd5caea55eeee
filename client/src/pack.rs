//! ComfyUI node packs: a zip with the pack's files at the archive root and a `pyproject.toml`
//! (`[project] name` = the pack id, lower-cased; `version` x.y.z; optional `[tool.comfy]`).
//!
//! `pack_dir` builds one from a checkout deterministically: files only, sorted by path, fixed
//! times (1980-01-01) and modes (0644), `.git` and what `.comfyignore` or `.gitignore` match left
//! out, so the same tree always gives the same bytes (and BLAKE3). `repack` does the same from a
//! zip or tar.gz release download (one top-level folder is stripped). `read_pack` reads what a
//! release states from a pack. Every read is capped; links, `..` and absolute names are refused.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};

use airlock_proto::{Kind, PackageName, Version};

/// Most files a pack may hold.
pub const MAX_PACK_FILES: usize = 20_000;
/// Most bytes a pack may hold, all files together, uncompressed.
pub const MAX_PACK_BYTES: u64 = 4 << 30;
/// Largest `pyproject.toml` or `requirements.txt` read.
pub const MAX_MANIFEST_BYTES: u64 = 1 << 20;

/// Why a pack could not be made or read.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {reason}")]
pub struct PackError {
    pub what: String,
    pub reason: String,
}

fn error(what: impl Into<String>, reason: impl Into<String>) -> PackError {
    PackError { what: what.into(), reason: reason.into() }
}

/// What a pack says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackInfo {
    /// `[project] name`, lower-cased: the pack id.
    pub id: PackageName,
    /// `[project] version`, as x.y.z (`2.5` becomes `2.5.0`, as ComfyUI-Manager reads it).
    pub version: Version,
    pub description: Option<String>,
    pub repository: Option<String>,
    pub license: Option<String>,
    pub publisher_id: Option<String>,
    pub display_name: Option<String>,
    /// `requirements.txt` lines (comments and blank lines dropped), then `[project]
    /// dependencies`.
    pub requirements: Vec<String>,
}

/// The files of a checkout that go into its pack: relative paths with `/`, sorted. Files that
/// `.gitignore` or `.comfyignore` match are left out, except under the paths `[tool.comfy]
/// includes` names (built assets a repository does not track); `.git` always is.
fn collect(dir: &Path, includes: &[String]) -> Result<Vec<(String, PathBuf)>, PackError> {
    let what = dir.display().to_string();
    let mut files = BTreeMap::new();
    walk(dir, dir, true, &mut files)?;
    for include in includes {
        let relative = relative_name(Path::new(include)).ok_or_else(|| {
            error("pyproject.toml", format!("[tool.comfy] includes {include:?} is not a plain relative path"))
        })?;
        let path = dir.join(&relative);
        // No link anywhere on the way: an include must not reach outside the checkout.
        let mut step = dir.to_path_buf();
        for part in relative.split('/') {
            step.push(part);
            match std::fs::symlink_metadata(&step) {
                Ok(meta) if meta.file_type().is_symlink() => {
                    return Err(error(
                        "pyproject.toml",
                        format!(
                            "[tool.comfy] includes {include:?} goes through the symbolic link {}",
                            step.display()
                        ),
                    ))
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
        let meta = std::fs::symlink_metadata(&path);
        if meta.as_ref().is_ok_and(std::fs::Metadata::is_file) {
            files.insert(relative, path);
        } else if meta.as_ref().is_ok_and(std::fs::Metadata::is_dir) {
            walk(dir, &path, false, &mut files)?;
        }
    }
    if files.len() > MAX_PACK_FILES {
        return Err(error(&what, format!("holds over {MAX_PACK_FILES} files")));
    }
    Ok(files.into_iter().collect())
}

/// Adds the files under `start` (named relative to `dir`), honouring the ignore files or not.
fn walk(
    dir: &Path,
    start: &Path,
    ignores: bool,
    files: &mut BTreeMap<String, PathBuf>,
) -> Result<(), PackError> {
    let what = dir.display().to_string();
    let mut builder = ignore::WalkBuilder::new(start);
    builder.standard_filters(false).git_ignore(ignores).require_git(false).follow_links(false);
    if ignores {
        builder.add_custom_ignore_filename(".comfyignore");
    }
    let walker = builder.filter_entry(|entry| entry.file_name() != ".git").build();
    for entry in walker {
        let entry = entry.map_err(|e| error(&what, e.to_string()))?;
        let file_type = entry.file_type().ok_or_else(|| error(&what, "cannot read a file type"))?;
        if file_type.is_dir() {
            continue;
        }
        let relative = entry.path().strip_prefix(dir).map_err(|e| error(&what, e.to_string()))?;
        let name = relative_name(relative)
            .ok_or_else(|| error(&what, format!("{} is not a plain relative path", relative.display())))?;
        if file_type.is_symlink() {
            return Err(error(&what, format!("{name} is a symbolic link; a pack holds files only")));
        }
        if !file_type.is_file() {
            return Err(error(&what, format!("{name} is not a regular file")));
        }
        files.insert(name, entry.path().to_path_buf());
        if files.len() > MAX_PACK_FILES {
            return Err(error(&what, format!("holds over {MAX_PACK_FILES} files")));
        }
    }
    Ok(())
}

/// A relative path as a `/`-separated UTF-8 name with no `..`, root or prefix.
pub(crate) fn relative_name(path: &Path) -> Option<String> {
    let mut parts = Vec::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => parts.push(part.to_str()?.to_owned()),
            _ => return None,
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

/// Builds the pack of the checkout `dir` at `out`; returns what it says about itself.
pub fn pack_dir(dir: &Path, out: &Path) -> Result<PackInfo, PackError> {
    let pyproject = dir.join("pyproject.toml");
    if !pyproject.is_file() {
        return Err(error(
            dir.display().to_string(),
            "has no pyproject.toml at its root; a node pack needs one",
        ));
    }
    let includes = includes_of(&read_capped(&pyproject, "pyproject.toml")?)?;
    let files = collect(dir, &includes)?;
    let what = dir.display().to_string();
    let mut total = 0u64;
    let mut manifest = BTreeMap::new();
    for (name, path) in &files {
        let len = std::fs::metadata(path).map_err(|e| error(name, e.to_string()))?.len();
        total = total.saturating_add(len);
        if total > MAX_PACK_BYTES {
            return Err(error(&what, format!("holds over {MAX_PACK_BYTES} bytes")));
        }
        if name == "pyproject.toml" || name == "requirements.txt" {
            manifest.insert(name.clone(), read_capped(path, name)?);
        }
    }
    let info = info_from(&manifest)?;
    let output = crate::fsutil::AtomicFile::create(out, 0o644)
        .map_err(|e| error(out.display().to_string(), e.to_string()))?;
    let mut zip = zip::ZipWriter::new(output);
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .last_modified_time(zip::DateTime::default())
        .unix_permissions(0o644)
        .large_file(total > u64::from(u32::MAX));
    for (name, path) in &files {
        zip.start_file(name.as_str(), options).map_err(|e| error(name, e.to_string()))?;
        let mut file = std::fs::File::open(path).map_err(|e| error(name, e.to_string()))?;
        std::io::copy(&mut file, &mut zip).map_err(|e| error(name, e.to_string()))?;
    }
    let output = zip.finish().map_err(|e| error(out.display().to_string(), e.to_string()))?;
    output.commit().map_err(|e| error(out.display().to_string(), e.to_string()))?;
    Ok(info)
}

fn read_capped(path: &Path, name: &str) -> Result<Vec<u8>, PackError> {
    let file = std::fs::File::open(path).map_err(|e| error(name, e.to_string()))?;
    let mut bytes = Vec::new();
    file.take(MAX_MANIFEST_BYTES + 1).read_to_end(&mut bytes).map_err(|e| error(name, e.to_string()))?;
    if bytes.len() as u64 > MAX_MANIFEST_BYTES {
        return Err(error(name, format!("is over {MAX_MANIFEST_BYTES} bytes")));
    }
    Ok(bytes)
}

/// Repacks a release download (a zip or a tar.gz; one top-level folder, as forges make them, is
/// stripped) into the deterministic pack at `out`.
pub fn repack(archive: &Path, out: &Path) -> Result<PackInfo, PackError> {
    let what = archive.display().to_string();
    let staging = tempfile::tempdir().map_err(|e| error(&what, e.to_string()))?;
    let name = archive.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    if name.ends_with(".tar.gz") || name.ends_with(".tgz") {
        let file = std::fs::File::open(archive).map_err(|e| error(&what, e.to_string()))?;
        // Capped as a whole: the tar reader takes long-name and pax headers whole into memory.
        let capped = flate2::read::GzDecoder::new(file).take(MAX_PACK_BYTES + (64 << 20));
        extract_tar(capped, staging.path(), &what)?;
    } else if name.ends_with(".zip") {
        extract_zip(archive, staging.path(), &what)?;
    } else {
        return Err(error(&what, "expected a .zip, .tar.gz or .tgz release archive, or a folder"));
    }
    let mut root = staging.path().to_path_buf();
    let entries: Vec<PathBuf> = std::fs::read_dir(&root)
        .map_err(|e| error(&what, e.to_string()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    if let [only] = entries.as_slice() {
        if only.is_dir() && !root.join("pyproject.toml").exists() {
            root = only.clone();
        }
    }
    pack_dir(&root, out)
}

/// Writes one archive member under `root`, refusing names that are not plain relative paths and
/// counting against the caps.
fn place(
    root: &Path,
    name: &str,
    what: &str,
    count: &mut usize,
    total: &mut u64,
    reader: &mut dyn Read,
) -> Result<(), PackError> {
    let relative = relative_name(Path::new(name))
        .ok_or_else(|| error(what, format!("member {name:?} is not a plain relative path")))?;
    *count += 1;
    if *count > MAX_PACK_FILES {
        return Err(error(what, format!("holds over {MAX_PACK_FILES} files")));
    }
    let path = root.join(&relative);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| error(what, e.to_string()))?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(|e| error(what, format!("member {relative}: {e}")))?;
    let left = MAX_PACK_BYTES.saturating_sub(*total);
    let written =
        std::io::copy(&mut reader.take(left + 1), &mut file).map_err(|e| error(what, e.to_string()))?;
    *total += written;
    if *total > MAX_PACK_BYTES {
        return Err(error(what, format!("holds over {MAX_PACK_BYTES} bytes uncompressed")));
    }
    file.flush().map_err(|e| error(what, e.to_string()))
}

fn extract_tar(reader: impl Read, root: &Path, what: &str) -> Result<(), PackError> {
    let mut archive = tar::Archive::new(reader);
    let (mut count, mut total) = (0, 0);
    for entry in archive.entries().map_err(|e| error(what, e.to_string()))? {
        let mut entry = entry.map_err(|e| error(what, e.to_string()))?;
        let name = entry.path().map_err(|e| error(what, e.to_string()))?.to_string_lossy().into_owned();
        match entry.header().entry_type() {
            tar::EntryType::Directory => {
                count += 1;
                if count > MAX_PACK_FILES {
                    return Err(error(what, format!("holds over {MAX_PACK_FILES} entries")));
                }
                continue;
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {}
            // pax headers carry metadata only.
            tar::EntryType::XGlobalHeader | tar::EntryType::XHeader => continue,
            other => return Err(error(what, format!("member {name:?} is a {other:?}, not a file"))),
        }
        place(root, &name, what, &mut count, &mut total, &mut entry)?;
    }
    Ok(())
}

fn extract_zip(path: &Path, root: &Path, what: &str) -> Result<(), PackError> {
    let file = std::fs::File::open(path).map_err(|e| error(what, e.to_string()))?;
    let mut archive = zip::ZipArchive::new(std::io::BufReader::new(file))
        .map_err(|e| error(what, format!("not a zip archive: {e}")))?;
    if archive.has_duplicate_names() {
        return Err(error(what, "holds the same member name twice"));
    }
    let (mut count, mut total) = (0, 0);
    for index in 0..archive.len() {
        let mut entry = archive.by_index(index).map_err(|e| error(what, e.to_string()))?;
        let name = entry.name().map_err(|e| error(what, e.to_string()))?.into_owned();
        if entry.is_dir() {
            continue;
        }
        if entry.is_symlink() {
            return Err(error(what, format!("member {name:?} is a symbolic link")));
        }
        place(root, &name, what, &mut count, &mut total, &mut entry)?;
    }
    Ok(())
}

/// What a built pack (a zip) says about itself: its root `pyproject.toml` and `requirements.txt`.
pub fn read_pack(path: &Path) -> Result<PackInfo, PackError> {
    let what = path.display().to_string();
    let file = std::fs::File::open(path).map_err(|e| error(&what, e.to_string()))?;
    let mut archive = zip::ZipArchive::new(std::io::BufReader::new(file))
        .map_err(|e| error(&what, format!("not a zip archive: {e}")))?;
    // The same member rules as a repack: a pack handed in pre-built gets no easier pass.
    if archive.has_duplicate_names() {
        return Err(error(&what, "holds the same member name twice"));
    }
    if archive.len() > MAX_PACK_FILES {
        return Err(error(&what, format!("holds over {MAX_PACK_FILES} members")));
    }
    let mut total = 0u64;
    for index in 0..archive.len() {
        let entry = archive.by_index_raw(index).map_err(|e| error(&what, e.to_string()))?;
        let name = entry.name().map_err(|e| error(&what, e.to_string()))?.into_owned();
        if relative_name(Path::new(&name)).is_none() || name.contains('\\') {
            return Err(error(&what, format!("member {name:?} is not a plain relative path")));
        }
        if entry.is_symlink() {
            return Err(error(&what, format!("member {name:?} is a symbolic link")));
        }
        total = total.saturating_add(entry.size());
        if total > MAX_PACK_BYTES {
            return Err(error(&what, format!("holds over {MAX_PACK_BYTES} bytes uncompressed")));
        }
    }
    let mut manifest = BTreeMap::new();
    for name in ["pyproject.toml", "requirements.txt"] {
        let Ok(entry) = archive.by_name(name) else { continue };
        let mut bytes = Vec::new();
        entry.take(MAX_MANIFEST_BYTES + 1).read_to_end(&mut bytes).map_err(|e| error(name, e.to_string()))?;
        if bytes.len() as u64 > MAX_MANIFEST_BYTES {
            return Err(error(name, format!("is over {MAX_MANIFEST_BYTES} bytes")));
        }
        manifest.insert(name.to_owned(), bytes);
    }
    info_from(&manifest).map_err(|e| error(format!("{what}: {}", e.what), e.reason))
}

/// `[tool.comfy] includes` of a pyproject.toml.
fn includes_of(pyproject: &[u8]) -> Result<Vec<String>, PackError> {
    let text = std::str::from_utf8(pyproject).map_err(|_| error("pyproject.toml", "is not UTF-8"))?;
    let doc: toml::Table = toml::from_str(text).map_err(|e| error("pyproject.toml", e.to_string()))?;
    Ok(doc
        .get("tool")
        .and_then(|t| t.get("comfy"))
        .and_then(|c| c.get("includes"))
        .and_then(toml::Value::as_array)
        .map(|list| list.iter().filter_map(toml::Value::as_str).map(str::to_owned).collect())
        .unwrap_or_default())
}

fn info_from(manifest: &BTreeMap<String, Vec<u8>>) -> Result<PackInfo, PackError> {
    let text = manifest
        .get("pyproject.toml")
        .ok_or_else(|| error("pyproject.toml", "is missing from the pack's root"))?;
    let text = std::str::from_utf8(text).map_err(|_| error("pyproject.toml", "is not UTF-8"))?;
    let doc: toml::Table = toml::from_str(text).map_err(|e| error("pyproject.toml", e.to_string()))?;
    let project = doc
        .get("project")
        .and_then(toml::Value::as_table)
        .ok_or_else(|| error("pyproject.toml", "has no [project] table"))?;
    let string =
        |table: &toml::Table, key: &str| table.get(key).and_then(toml::Value::as_str).map(str::to_owned);
    let name = string(project, "name").ok_or_else(|| error("pyproject.toml", "[project] has no name"))?;
    let id = PackageName::normalize(Kind::Node, name.trim())
        .map_err(|e| error("pyproject.toml", format!("[project] name: {e}")))?;
    let version =
        string(project, "version").ok_or_else(|| error("pyproject.toml", "[project] has no version"))?;
    let version = normalize_version(&version).map_err(|reason| error("pyproject.toml", reason))?;
    let license = match project.get("license") {
        Some(toml::Value::String(text)) => Some(text.clone()),
        Some(toml::Value::Table(table)) => {
            string(table, "text").or_else(|| string(table, "file").map(|f| format!("see {f}")))
        }
        _ => None,
    };
    let repository = project.get("urls").and_then(toml::Value::as_table).and_then(|urls| {
        urls.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("repository"))
            .and_then(|(_, v)| v.as_str())
            .map(str::to_owned)
    });
    let comfy = doc.get("tool").and_then(|t| t.get("comfy")).and_then(toml::Value::as_table);
    let mut requirements: Vec<String> = match manifest.get("requirements.txt") {
        Some(bytes) => std::str::from_utf8(bytes)
            .map_err(|_| error("requirements.txt", "is not UTF-8"))?
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(str::to_owned)
            .collect(),
        None => Vec::new(),
    };
    if let Some(deps) = project.get("dependencies").and_then(toml::Value::as_array) {
        requirements.extend(deps.iter().filter_map(toml::Value::as_str).map(str::to_owned));
    }
    Ok(PackInfo {
        id,
        version,
        description: string(project, "description"),
        repository,
        license,
        publisher_id: comfy.and_then(|c| string(c, "PublisherId")),
        display_name: comfy.and_then(|c| string(c, "DisplayName")),
        requirements,
    })
}

/// The pack file of a node release: its `.zip` (a node release holds one file).
pub fn pack_file(release: &airlock_proto::Release) -> Option<&airlock_proto::FileEntry> {
    let files = &release.files;
    files.iter().find(|f| f.filename.as_str().ends_with(".zip")).or_else(|| files.first())
}

/// A pack version as x.y.z: `2.5` becomes `2.5.0`; anything else must be semantic.
pub fn normalize_version(text: &str) -> Result<Version, String> {
    let text = text.trim();
    let padded = match text.split('.').count() {
        1 => format!("{text}.0.0"),
        2 => format!("{text}.0"),
        _ => text.to_owned(),
    };
    let parsed =
        semver::Version::parse(&padded).map_err(|e| format!("version {text:?} is not x.y.z: {e}"))?;
    Version::new(&parsed.to_string()).map_err(|e| format!("version {text:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_padded_to_three_parts() {
        assert_eq!(normalize_version("2.5").unwrap().as_str(), "2.5.0");
        assert_eq!(normalize_version("1").unwrap().as_str(), "1.0.0");
        assert_eq!(normalize_version("1.2.3-beta.1").unwrap().as_str(), "1.2.3-beta.1");
        assert!(normalize_version("1.x").is_err());
    }

    #[test]
    fn relative_names_are_plain() {
        assert_eq!(relative_name(Path::new("a/b.py")).as_deref(), Some("a/b.py"));
        assert_eq!(relative_name(Path::new("../a")), None);
        assert_eq!(relative_name(Path::new("/etc/passwd")), None);
    }
}
