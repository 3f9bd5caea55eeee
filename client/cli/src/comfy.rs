//! What `install`, `restore`, `doctor` and `lock --comfyui` share: the site (the ComfyUI tree,
//! its Python environment, the installer, the mirror's index), finding the logged release of an
//! installed pack, and resolving several packs' requirements together, naming the two packs
//! whose requirements conflict.

use std::path::{Path, PathBuf};
use std::str::FromStr as _;

use airlock_client::comfy::env::{self, Installer, PythonEnv};
use airlock_client::comfy::tree::{ComfyTree, Marker};
use airlock_client::lock::{self, Locked};
use airlock_client::progress::Reporter as _;
use airlock_client::pull::{download_verified, NotFound};
use airlock_client::Remote;
use airlock_keys::{RegistryState, ReleaseRecord, ReleaseStatus};
use airlock_proto::{ChannelName, Digest, FileEntry, Kind, PackageName};

use super::{Context, ServerArgs};

/// Where and how packs and wheels go: the tree, its Python, the installer, and the registry
/// they come from.
#[derive(Debug, Clone, clap::Args)]
pub struct SiteArgs {
    /// The ComfyUI folder (packs go to its custom_nodes).
    #[arg(long, value_name = "DIR")]
    pub comfyui: PathBuf,
    /// The environment's Python (default: DIR/.venv or DIR/venv, else python3 on the PATH).
    #[arg(long, value_name = "PATH")]
    pub python: Option<PathBuf>,
    /// pip or uv (default: uv when it is on the PATH or beside the Python, else pip).
    #[arg(long, value_name = "pip|uv")]
    pub installer: Option<String>,
    /// Resolve packs and wheels within this channel (its index too).
    #[arg(long)]
    pub channel: Option<ChannelName>,
    #[command(flatten)]
    pub server: ServerArgs,
    /// The pinned root the log is verified against.
    #[arg(long)]
    pub root: PathBuf,
}

/// A site ready to change: the verified log, the tree, the environment, the installer.
pub struct Site {
    pub remote: Remote,
    pub log: airlock_client::state::ClientLog,
    pub tree: ComfyTree,
    pub env: PythonEnv,
    pub installer: Installer,
    pub index_url: String,
    pub channel: Option<ChannelName>,
    pub pip_env: Vec<(String, String)>,
}

impl Site {
    pub async fn open(site: &SiteArgs, context: &Context) -> anyhow::Result<Self> {
        let tree = ComfyTree::open(&site.comfyui)?;
        let python = env::find_python(&site.comfyui, site.python.as_deref());
        let env = env::inspect(&python)?;
        let installer = env::choose_installer(site.installer.as_deref(), &python)?;
        let remote = context.remote(&site.server)?;
        let log = context.follow(&remote, &site.root).await?;
        let base = site.server.server.trim_end_matches('/');
        let index_url = match &site.channel {
            Some(channel) => format!("{base}/channels/{channel}/simple/"),
            None => format!("{base}/simple/"),
        };
        // pip and uv read their own CA settings: hand them the one this command trusts.
        let pip_env = context
            .tls
            .ca_cert
            .iter()
            .flat_map(|ca| {
                let ca = ca.display().to_string();
                [("PIP_CERT".to_owned(), ca.clone()), ("SSL_CERT_FILE".to_owned(), ca)]
            })
            .collect();
        Ok(Self { remote, log, tree, env, installer, index_url, channel: site.channel.clone(), pip_env })
    }

    pub fn registry(&self) -> &RegistryState {
        self.log.log.registry()
    }

    /// Installs the resolved wheels.
    pub fn install_wheels(&self, locked: &[Locked]) -> anyhow::Result<()> {
        env::install(&self.installer, &self.env.python, &self.index_url, locked, &self.pip_env)
    }

    /// Removes distributions from the environment.
    pub fn uninstall_wheels(&self, names: &[String]) -> anyhow::Result<()> {
        env::uninstall(&self.installer, &self.env.python, names)
    }

    /// Downloads the pack `file` from the registry into `scratch`, verified against the log.
    pub async fn fetch_pack(
        &self,
        file: &FileEntry,
        scratch: &Path,
        context: &Context,
    ) -> anyhow::Result<PathBuf> {
        let path = scratch.join(format!("{}.zip", file.blake3.to_hex()));
        let progress = context.bars.bytes("downloading", file.size);
        download_verified(&self.remote, file, &path, progress.as_ref()).await?;
        progress.finish();
        Ok(path)
    }
}

/// The logged node release whose pack has the BLAKE3 `blake3` (hex), checked to be `id`==`version`
/// as the caller (a marker, a lock) says.
pub fn release_named<'s>(
    state: &'s RegistryState,
    id: &str,
    version: &str,
    blake3: &str,
) -> anyhow::Result<&'s ReleaseRecord> {
    let digest = Digest::from_hex(blake3).map_err(|e| anyhow::anyhow!("pack {id}: blake3: {e}"))?;
    let record = state
        .release_by_digest(&digest)
        .filter(|r| r.release.kind == Kind::Node)
        .ok_or_else(|| NotFound(format!("pack {id} ({digest}) is not a logged node release")))?;
    anyhow::ensure!(
        record.release.name.as_str() == id && record.release.version.as_str() == version,
        "{id}=={version} is named with {digest}, but {digest} is {}=={} in the log",
        record.release.name,
        record.release.version
    );
    Ok(record)
}

/// The logged release an installed pack's marker names, checked to agree with the marker.
pub fn release_of<'s>(state: &'s RegistryState, marker: &Marker) -> anyhow::Result<&'s ReleaseRecord> {
    release_named(state, &marker.id, &marker.version, &marker.blake3)
}

/// The pack file of a node release.
pub fn pack_file(record: &ReleaseRecord) -> anyhow::Result<&FileEntry> {
    airlock_client::pack::pack_file(&record.release)
        .ok_or_else(|| anyhow::anyhow!("{} {} holds no file", record.release.name, record.release.version))
}

/// The logged release of an installed distribution (`1.0` and `1.0.0` are the same version).
pub fn installed_release<'s>(
    state: &'s RegistryState,
    name: &PackageName,
    version: &str,
) -> Option<&'s ReleaseRecord> {
    let wanted = pep440_rs::Version::from_str(version).ok();
    state.releases_of(Kind::Wheel, name).find(|r| {
        match (&wanted, pep440_rs::Version::from_str(r.release.version.as_str())) {
            (Some(wanted), Ok(logged)) => *wanted == logged,
            _ => r.release.version.as_str() == version,
        }
    })
}

/// Resolves the requirements of `packs` (each a pack id and its requirement lines) together.
/// When they cannot be satisfied together, names the packs whose requirements conflict.
pub fn resolve_packs(
    state: &RegistryState,
    packs: &[(String, Vec<String>)],
    channel: Option<&ChannelName>,
    target: &airlock_client::target::Target,
) -> anyhow::Result<Vec<Locked>> {
    let parse = |(id, lines): &(String, Vec<String>)| {
        lock::parse_requirements(&lines.join("\n"))
            .map_err(|e| anyhow::anyhow!("pack {id}: requirements: {e}"))
    };
    let mut all = Vec::new();
    for pack in packs {
        all.extend(parse(pack)?);
    }
    let error = match lock::resolve(state, &all, channel, target) {
        Ok(locked) => return Ok(locked),
        Err(error) => error,
    };
    // Which packs cannot go together: each alone first, then each pair.
    for pack in packs {
        if let Err(alone) = lock::resolve(state, &parse(pack)?, channel, target) {
            anyhow::bail!("the requirements of pack {} cannot be met from the log: {alone}", pack.0);
        }
    }
    for (i, first) in packs.iter().enumerate() {
        for second in &packs[i + 1..] {
            let mut both = parse(first)?;
            both.extend(parse(second)?);
            if let Err(conflict) = lock::resolve(state, &both, channel, target) {
                anyhow::bail!(
                    "packs {} ({}) and {} ({}) have conflicting requirements: {conflict}",
                    first.0,
                    first.1.join(", "),
                    second.0,
                    second.1.join(", ")
                );
            }
        }
    }
    Err(anyhow::Error::from(error).context("the packs' requirements cannot be met together"))
}

/// Why a requirement is not met by what `installed` reports (the installed version of a
/// normalized name), or `None` when it is met or does not apply to the target.
pub fn requirement_problem(
    line: &str,
    target: &airlock_client::target::Target,
    installed: impl Fn(&PackageName) -> Option<String>,
) -> Option<String> {
    let requirement = match pep508_rs::Requirement::<pep508_rs::VerbatimUrl>::from_str(line) {
        Ok(requirement) => requirement,
        Err(e) => return Some(format!("unreadable: {e}")),
    };
    if !requirement.evaluate_markers(target.markers(), &[]) {
        return None;
    }
    let name = PackageName::normalize(Kind::Wheel, requirement.name.as_ref()).ok()?;
    let Some(version) = installed(&name) else { return Some("not installed".to_owned()) };
    (!airlock_client::scan::admits(&requirement, &version)).then(|| format!("{name} {version} is installed"))
}

/// Whether a release is revoked (a yanked one is flagged, not refused).
pub fn is_revoked(record: &ReleaseRecord) -> bool {
    matches!(record.status, ReleaseStatus::Revoked { .. })
}
