//! A ComfyUI tree's `custom_nodes` folder. A pack installs into `custom_nodes/<id>/` as
//! ComfyUI-Manager lays out a registry install: the pack's files at the root, `.tracking`
//! listing them (Manager's marker of a registry pack), and `.airlock.json`, the marker naming
//! the logged pack (by BLAKE3) the folder came from. An install is staged beside the target and
//! swapped in only when complete; the previous version stays in place until then.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::extract::{self, PackFiles};

/// Manager's tracking file: the pack's member names, one per line.
pub const TRACKING: &str = ".tracking";
/// airlock's marker.
pub const MARKER: &str = ".airlock.json";
/// The marker's format.
pub const MARKER_FORMAT: &str = "airlock.installed.v1";
/// Largest marker read.
const MAX_MARKER_BYTES: u64 = 64 * 1024;
/// Prefix of staging and retired folders (Manager and ComfyUI skip dot folders).
const STAGE_PREFIX: &str = ".airlock-stage-";
const OLD_PREFIX: &str = ".airlock-old-";

/// What `.airlock.json` records: the logged pack a folder was installed from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Marker {
    pub format: String,
    pub id: String,
    pub version: String,
    /// The pack's file name in its release.
    pub filename: String,
    /// BLAKE3 of the pack (hex).
    pub blake3: String,
    /// The log leaf of the release.
    pub leaf_index: u64,
}

impl Marker {
    /// The marker of `file`, the pack of the logged node release `record`.
    pub fn of(record: &airlock_keys::ReleaseRecord, file: &airlock_proto::FileEntry) -> Self {
        Self {
            format: MARKER_FORMAT.to_owned(),
            id: record.release.name.to_string(),
            version: record.release.version.to_string(),
            filename: file.filename.to_string(),
            blake3: file.blake3.to_hex(),
            leaf_index: record.leaf_index,
        }
    }
}

/// One folder (or file) of `custom_nodes`.
#[derive(Debug, Clone)]
pub struct Entry {
    pub name: String,
    pub path: PathBuf,
    /// The marker, when the folder was installed by airlock and the marker reads.
    pub marker: Option<Marker>,
    /// Why a marker that exists could not be read.
    pub marker_error: Option<String>,
}

/// A ComfyUI tree.
#[derive(Debug, Clone)]
pub struct ComfyTree {
    root: PathBuf,
}

impl ComfyTree {
    /// Opens the tree at `dir` (a ComfyUI folder); creates `custom_nodes` when missing, and puts
    /// back a folder an interrupted swap left retired.
    pub fn open(dir: &Path) -> anyhow::Result<Self> {
        anyhow::ensure!(dir.is_dir(), "{} is not a folder (pass the ComfyUI folder)", dir.display());
        let tree = Self { root: dir.to_path_buf() };
        std::fs::create_dir_all(tree.custom_nodes())?;
        tree.recover()?;
        Ok(tree)
    }

    /// The ComfyUI folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `custom_nodes`.
    pub fn custom_nodes(&self) -> PathBuf {
        self.root.join("custom_nodes")
    }

    /// The folder of pack `id`.
    pub fn pack_dir(&self, id: &str) -> PathBuf {
        self.custom_nodes().join(id)
    }

    fn recover(&self) -> anyhow::Result<()> {
        for entry in std::fs::read_dir(self.custom_nodes())? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(id) = name.strip_prefix(OLD_PREFIX) {
                let target = self.pack_dir(id);
                if target.exists() {
                    std::fs::remove_dir_all(entry.path())?;
                } else {
                    std::fs::rename(entry.path(), target)?;
                }
            } else if name.starts_with(STAGE_PREFIX) {
                std::fs::remove_dir_all(entry.path())?;
            }
        }
        Ok(())
    }

    /// Every entry of `custom_nodes` but dot names and `__pycache__`, ordered by name.
    pub fn entries(&self) -> anyhow::Result<Vec<Entry>> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(self.custom_nodes())? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || name == "__pycache__" {
                continue;
            }
            let path = entry.path();
            let (marker, marker_error) = match read_marker(&path) {
                Ok(marker) => (marker, None),
                Err(e) => (None, Some(format!("{e:#}"))),
            };
            out.push(Entry { name, path, marker, marker_error });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// The packs airlock installed: id → marker.
    pub fn installed(&self) -> anyhow::Result<BTreeMap<String, Marker>> {
        Ok(self.entries()?.into_iter().filter_map(|e| e.marker.map(|m| (e.name, m))).collect())
    }

    /// Extracts the verified pack at `zip` into a staging folder beside `custom_nodes/<id>`,
    /// with `.tracking` and the marker. Nothing in place changes until `Staged::swap`.
    pub fn stage(&self, zip: &Path, marker: &Marker) -> anyhow::Result<Staged> {
        let stage = self.custom_nodes().join(format!("{STAGE_PREFIX}{}", marker.id));
        if stage.exists() {
            std::fs::remove_dir_all(&stage)?;
        }
        std::fs::create_dir_all(&stage)?;
        let mut staged =
            Staged { stage: stage.clone(), target: self.pack_dir(&marker.id), files: PackFiles::default() };
        let files = extract::extract(zip, &stage)?;
        anyhow::ensure!(
            !files.digests.contains_key(TRACKING) && !files.digests.contains_key(MARKER),
            "the pack holds {TRACKING} or {MARKER}, which the install writes itself"
        );
        crate::fsutil::write_atomic(&stage.join(TRACKING), files.names.join("\n").as_bytes(), 0o644)?;
        let marker_bytes = serde_json::to_vec_pretty(marker)?;
        crate::fsutil::write_atomic(&stage.join(MARKER), &marker_bytes, 0o644)?;
        staged.files = files;
        Ok(staged)
    }

    /// Removes pack folder `id` (retired first, so a crash leaves nothing half-removed in place).
    pub fn remove(&self, id: &str) -> anyhow::Result<()> {
        let target = self.pack_dir(id);
        if target.exists() {
            let old = self.custom_nodes().join(format!("{OLD_PREFIX}{id}"));
            std::fs::rename(&target, &old)?;
            std::fs::remove_dir_all(&old)?;
        }
        Ok(())
    }
}

/// A complete install waiting beside its target. Dropped without `swap`, it is removed.
#[derive(Debug)]
pub struct Staged {
    stage: PathBuf,
    target: PathBuf,
    pub files: PackFiles,
}

impl Staged {
    /// Puts the staged folder in place: the old folder is retired by one rename, the new one
    /// moved in by another, then the old one removed. A crash between the two renames is put
    /// back by the next `ComfyTree::open`.
    pub fn swap(mut self) -> anyhow::Result<()> {
        let parent = self.target.parent().map(Path::to_path_buf).unwrap_or_default();
        let id = self.target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let old = parent.join(format!("{OLD_PREFIX}{id}"));
        if old.exists() {
            std::fs::remove_dir_all(&old)?;
        }
        let had_old = self.target.exists();
        if had_old {
            std::fs::rename(&self.target, &old)?;
        }
        std::fs::rename(&self.stage, &self.target)?;
        self.stage = PathBuf::new();
        if let Ok(dir) = std::fs::File::open(&parent) {
            let _ = dir.sync_all();
        }
        if had_old {
            std::fs::remove_dir_all(&old)?;
        }
        Ok(())
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.stage.as_os_str().is_empty() {
            let _ = std::fs::remove_dir_all(&self.stage);
        }
    }
}

/// The marker of the folder `dir`; `None` when it has none.
pub fn read_marker(dir: &Path) -> anyhow::Result<Option<Marker>> {
    let path = dir.join(MARKER);
    if !path.is_file() {
        return Ok(None);
    }
    let bytes = crate::fsutil::read_capped(&path, MAX_MARKER_BYTES)?;
    let marker: Marker = serde_json::from_slice(&bytes)
        .map_err(|e| anyhow::anyhow!("{}: not an airlock marker: {e}", path.display()))?;
    anyhow::ensure!(
        marker.format == MARKER_FORMAT,
        "{}: format {:?} is not {MARKER_FORMAT}",
        path.display(),
        marker.format
    );
    Ok(Some(marker))
}

/// Compares a pack folder with the files of the pack it came from: (added, changed, missing),
/// each sorted. The install's own files (`.tracking`, the marker) and Python's `__pycache__`
/// folders are not counted as added.
pub fn compare(dir: &Path, pack: &PackFiles) -> anyhow::Result<(Vec<String>, Vec<String>, Vec<String>)> {
    let mut on_disk = BTreeMap::new();
    let walker = ignore::WalkBuilder::new(dir).standard_filters(false).follow_links(false).build();
    for entry in walker {
        let entry = entry?;
        let Some(kind) = entry.file_type() else { continue };
        if kind.is_dir() {
            continue;
        }
        let relative = entry.path().strip_prefix(dir)?;
        let name = relative.to_string_lossy().replace('\\', "/");
        if name == TRACKING || name == MARKER || name.split('/').any(|part| part == "__pycache__") {
            continue;
        }
        on_disk.insert(name, entry.path().to_path_buf());
    }
    let mut added = Vec::new();
    let mut changed = Vec::new();
    for (name, path) in &on_disk {
        match pack.digests.get(name) {
            None => added.push(name.clone()),
            Some(expected) => {
                let meta = std::fs::symlink_metadata(path)?;
                if !meta.is_file() || extract::hash_path(path)? != *expected {
                    changed.push(name.clone());
                }
            }
        }
    }
    let missing = pack.digests.keys().filter(|name| !on_disk.contains_key(*name)).cloned().collect();
    Ok((added, changed, missing))
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;

    fn zip_of(path: &Path, members: &[(&str, &[u8])]) {
        let mut zip = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
        for (name, bytes) in members {
            zip.start_file(*name, zip::write::SimpleFileOptions::default()).unwrap();
            zip.write_all(bytes).unwrap();
        }
        zip.finish().unwrap();
    }

    fn marker(version: &str) -> Marker {
        Marker {
            format: MARKER_FORMAT.to_owned(),
            id: "demo".to_owned(),
            version: version.to_owned(),
            filename: "demo.zip".to_owned(),
            blake3: "00".repeat(32),
            leaf_index: 1,
        }
    }

    #[test]
    fn a_staged_install_swaps_in_whole_and_an_interrupted_swap_is_put_back() {
        let dir = tempfile::tempdir().unwrap();
        let tree = ComfyTree::open(dir.path()).unwrap();
        let one = dir.path().join("one.zip");
        zip_of(&one, &[("pyproject.toml", b"[project]"), ("nodes/a.py", b"a = 1\n")]);
        let staged = tree.stage(&one, &marker("1.0.0")).unwrap();
        assert!(!tree.pack_dir("demo").exists(), "nothing in place before the swap");
        staged.swap().unwrap();
        assert_eq!(
            std::fs::read_to_string(tree.pack_dir("demo/.tracking")).unwrap(),
            "pyproject.toml\nnodes/a.py"
        );
        assert_eq!(tree.installed().unwrap()["demo"].version, "1.0.0");

        // A staged install dropped before its swap leaves the old one and no stage.
        let two = dir.path().join("two.zip");
        zip_of(&two, &[("pyproject.toml", b"[project]"), ("nodes/b.py", b"b = 2\n")]);
        drop(tree.stage(&two, &marker("2.0.0")).unwrap());
        assert_eq!(tree.installed().unwrap()["demo"].version, "1.0.0");
        assert_eq!(std::fs::read_dir(tree.custom_nodes()).unwrap().count(), 1);

        // A crash between the two renames: the next open puts the old folder back.
        std::fs::rename(tree.pack_dir("demo"), tree.custom_nodes().join(".airlock-old-demo")).unwrap();
        let tree = ComfyTree::open(dir.path()).unwrap();
        assert_eq!(tree.installed().unwrap()["demo"].version, "1.0.0");

        // The comparison with the pack names what changed.
        let files = extract::pack_files(&one).unwrap();
        std::fs::write(tree.pack_dir("demo").join("nodes/a.py"), "a = 2\n").unwrap();
        std::fs::write(tree.pack_dir("demo").join("extra.py"), "").unwrap();
        std::fs::create_dir_all(tree.pack_dir("demo").join("nodes/__pycache__")).unwrap();
        std::fs::write(tree.pack_dir("demo").join("nodes/__pycache__/a.pyc"), "").unwrap();
        std::fs::remove_file(tree.pack_dir("demo").join("pyproject.toml")).unwrap();
        let (added, changed, missing) = compare(&tree.pack_dir("demo"), &files).unwrap();
        assert_eq!(
            (added, changed, missing),
            (vec!["extra.py".to_owned()], vec!["nodes/a.py".to_owned()], vec!["pyproject.toml".to_owned()])
        );
    }

    #[test]
    fn hostile_members_are_refused_and_nothing_escapes() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("ComfyUI")).unwrap();
        let tree = ComfyTree::open(&dir.path().join("ComfyUI")).unwrap();
        for (name, members) in [
            ("slip", vec![("../escape.py", &b"x"[..])]),
            ("absolute", vec![("/tmp/abs.py", &b"x"[..])]),
            ("backslash", vec![("a\\..\\..\\b.py", &b"x"[..])]),
            ("own-marker", vec![(MARKER, &b"{}"[..])]),
        ] {
            let zip = dir.path().join(format!("{name}.zip"));
            zip_of(&zip, &members);
            assert!(tree.stage(&zip, &marker("1.0.0")).is_err(), "{name}");
            assert!(!dir.path().join("escape.py").exists());
            assert!(!tree.pack_dir("demo").exists());
        }
    }
}
