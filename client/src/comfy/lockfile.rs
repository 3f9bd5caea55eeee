//! `comfy.lock`: every pack installed in a ComfyUI tree and every wheel of its environment, by
//! digest, as verified against the log when the lock was made (JSON, keys sorted, one format
//! version). `restore` checks each digest against the log again before it uses it.
//! Also ComfyUI-Manager's snapshot JSON of the same environment.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The lock file format.
pub const FORMAT: &str = "airlock.comfy-lock.v1";
/// Largest lock file read.
pub const MAX_LOCK_BYTES: u64 = 8 << 20;

/// A locked node pack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockedPack {
    pub id: String,
    pub version: String,
    pub filename: String,
    pub blake3: String,
    pub sha256: String,
    pub size: u64,
}

/// A locked wheel project: its version and the hashes of its wheels for the environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockedWheel {
    pub name: String,
    pub version: String,
    pub sha256: Vec<String>,
}

/// `comfy.lock`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComfyLock {
    pub format: String,
    /// The log's origin and the size it was verified at.
    pub origin: String,
    pub log_size: u64,
    pub python: String,
    pub platform: String,
    pub packs: Vec<LockedPack>,
    pub wheels: Vec<LockedWheel>,
}

impl ComfyLock {
    /// Parses a lock file.
    pub fn parse(bytes: &[u8]) -> anyhow::Result<Self> {
        let lock: Self =
            serde_json::from_slice(bytes).map_err(|e| anyhow::anyhow!("not a comfy.lock: {e}"))?;
        anyhow::ensure!(lock.format == FORMAT, "lock format {:?} is not {FORMAT}", lock.format);
        Ok(lock)
    }

    /// The lock's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = serde_json::to_vec_pretty(self).unwrap_or_default();
        bytes.push(b'\n');
        bytes
    }

    /// ComfyUI-Manager's snapshot of the same environment (`save-snapshot` JSON): registry packs
    /// by id and version, and the wheels as `name==version` pips.
    pub fn manager_snapshot(&self) -> ManagerSnapshot {
        ManagerSnapshot {
            comfyui: None,
            git_custom_nodes: BTreeMap::new(),
            cnr_custom_nodes: self.packs.iter().map(|p| (p.id.clone(), p.version.clone())).collect(),
            file_custom_nodes: Vec::new(),
            pips: self.wheels.iter().map(|w| (format!("{}=={}", w.name, w.version), String::new())).collect(),
        }
    }
}

/// ComfyUI-Manager's snapshot JSON (the fields its `restore-snapshot` reads).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManagerSnapshot {
    /// The ComfyUI commit (not known to airlock: `null`).
    pub comfyui: Option<String>,
    /// Packs installed by git clone, by remote URL (airlock installs none).
    pub git_custom_nodes: BTreeMap<String, GitNode>,
    /// Registry packs: id → version.
    pub cnr_custom_nodes: BTreeMap<String, String>,
    /// Single-file nodes (airlock installs none).
    pub file_custom_nodes: Vec<String>,
    /// `name==version` → `""` (or the URL of a URL requirement).
    pub pips: BTreeMap<String, String>,
}

/// A git-installed pack in a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GitNode {
    pub hash: String,
    pub disabled: bool,
}
