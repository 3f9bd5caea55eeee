//! `airlock install` and `airlock restore`: node packs into a ComfyUI tree, verified against the
//! log, with their requirements installed by pip or uv from the mirror's index with every hash
//! pinned from the log. Shared with `doctor` and `lock --comfyui`: finding the logged release
//! of an installed pack, and resolving the requirements of a set of packs, naming the packs
//! whose requirements conflict.

use std::path::{Path, PathBuf};

use airlock_client::comfy::env::{self, Installer, PythonEnv};
use airlock_client::comfy::lockfile::ComfyLock;
use airlock_client::comfy::tree::{ComfyTree, Marker, MARKER_FORMAT};
use airlock_client::lock::{self, Locked};
use airlock_client::progress::Reporter as _;
use airlock_client::publish::hash_file;
use airlock_client::pull::{check_status, download_verified, NotFound, Target, VerifyError};
use airlock_client::Remote;
use airlock_keys::{RegistryState, ReleaseRecord, ReleaseStatus};
use airlock_proto::{ChannelName, FileEntry, Kind};
use anyhow::Context as _;
use serde_json::json;

use super::{Context, ServerArgs};

/// Where and how packs and wheels go: the tree, its Python, the installer.
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
}

#[derive(Debug, clap::Args)]
pub struct InstallArgs {
    /// ID, ID==VERSION or ID@VERSION (as ComfyUI-Manager writes it), or a pack file carried on
    /// media (./pack.zip), accepted only when its digest is a logged, unrevoked release.
    pack: String,
    #[command(flatten)]
    site: SiteArgs,
    #[command(flatten)]
    server: ServerArgs,
    /// The pinned root the log is verified against.
    #[arg(long)]
    root: PathBuf,
    /// Run the pack's install.py after the install (never by default: it is arbitrary code).
    #[arg(long)]
    run_install_script: bool,
}

#[derive(Debug, clap::Args)]
pub struct RestoreArgs {
    /// The lock file (airlock lock --comfyui DIR -o comfy.lock).
    lock: PathBuf,
    #[command(flatten)]
    site: SiteArgs,
    #[command(flatten)]
    server: ServerArgs,
    /// The pinned root the log is verified against.
    #[arg(long)]
    root: PathBuf,
}

/// A site ready to change: the verified log, the tree, the environment, the installer.
pub struct Site {
    pub remote: Remote,
    pub log: airlock_client::state::ClientLog,
    pub tree: ComfyTree,
    pub env: PythonEnv,
    pub installer: (Installer, PathBuf),
    pub index_url: String,
    pub channel: Option<ChannelName>,
    pub pip_env: Vec<(String, String)>,
}

impl Site {
    pub async fn open(
        site: &SiteArgs,
        server: &ServerArgs,
        root: &Path,
        context: &Context,
    ) -> anyhow::Result<Self> {
        let tree = ComfyTree::open(&site.comfyui)?;
        let python = env::find_python(&site.comfyui, site.python.as_deref());
        let env = env::inspect(&python)?;
        let installer = env::choose_installer(site.installer.as_deref(), &python)?;
        let remote = context.remote(server)?;
        let log = context.follow(&remote, root).await?;
        let base = server.server.trim_end_matches('/');
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
        env::install(
            (self.installer.0, &self.installer.1),
            &self.env.python,
            &self.index_url,
            locked,
            &self.pip_env,
        )
    }
}

/// The logged release an installed pack's marker names, checked to agree with the marker.
pub fn release_of<'s>(state: &'s RegistryState, marker: &Marker) -> anyhow::Result<&'s ReleaseRecord> {
    let digest = marker.digest()?;
    let record = state
        .release_by_digest(&digest)
        .filter(|r| r.release.kind == Kind::Node)
        .ok_or_else(|| NotFound(format!("pack {} ({digest}) is not a logged node release", marker.id)))?;
    anyhow::ensure!(
        record.release.name.as_str() == marker.id && record.release.version.as_str() == marker.version,
        "the marker of {} says {}=={}, but {digest} is {}=={} in the log",
        marker.id,
        marker.id,
        marker.version,
        record.release.name,
        record.release.version
    );
    Ok(record)
}

/// The pack file of a node release.
pub fn pack_file(record: &ReleaseRecord) -> anyhow::Result<&FileEntry> {
    let files = &record.release.files;
    files
        .iter()
        .find(|f| f.filename.as_str().ends_with(".zip"))
        .or_else(|| files.first())
        .ok_or_else(|| anyhow::anyhow!("{} {} holds no file", record.release.name, record.release.version))
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

/// What `install` is asked for.
enum Wanted {
    File(PathBuf),
    Logged(Target),
}

fn wanted(text: &str) -> anyhow::Result<Wanted> {
    let path = Path::new(text);
    if path.is_file() || text.ends_with(".zip") || text.contains('/') {
        anyhow::ensure!(path.is_file(), "{text}: no such pack file");
        return Ok(Wanted::File(path.to_path_buf()));
    }
    let text = match text.split_once('@') {
        Some((id, "latest")) => id.to_owned(),
        Some((id, version)) => format!("{id}=={version}"),
        None => text.to_owned(),
    };
    Ok(Wanted::Logged(Target::parse(&text, Some(Kind::Node))?))
}

/// Finds the release a local pack file is, by its digests.
fn logged_file<'s>(state: &'s RegistryState, path: &Path) -> anyhow::Result<(&'s ReleaseRecord, FileEntry)> {
    let digests = hash_file(path)?;
    let record = state
        .release_by_digest(&digests.blake3)
        .filter(|r| r.release.kind == Kind::Node)
        .ok_or_else(|| {
            NotFound(format!(
                "{} ({}) is not a logged node pack: only packs the log holds can be installed",
                path.display(),
                digests.blake3
            ))
        })?;
    let file = record
        .release
        .files
        .iter()
        .find(|f| f.blake3 == digests.blake3)
        .cloned()
        .ok_or_else(|| NotFound(format!("{} is not a file of a logged release", path.display())))?;
    if file.sha256 != digests.sha256 || file.size != digests.size {
        return Err(VerifyError::Sha256 {
            what: path.display().to_string(),
            expected: file.sha256.to_hex(),
            actual: digests.sha256.to_hex(),
        }
        .into());
    }
    Ok((record, file))
}

/// Installs one verified pack (downloaded into `scratch` unless `local` is given) with its
/// requirements resolved together with the other installed packs'. Nothing in the tree or the
/// environment changes when the requirements conflict or the download fails verification; the
/// old version of the pack stays until the new one is complete.
pub async fn install_pack(
    site: &Site,
    record: &ReleaseRecord,
    local: Option<&Path>,
    scratch: &Path,
    context: &Context,
) -> anyhow::Result<Vec<Locked>> {
    let release = &record.release;
    let id = release.name.to_string();
    let file = pack_file(record)?;
    let state = site.registry();
    let mut packs = Vec::new();
    for (other, marker) in site.tree.installed()? {
        if other == id {
            continue;
        }
        let requirements = release_of(state, &marker).map(|r| r.release.metadata.dependencies.clone())?;
        packs.push((other, requirements));
    }
    packs.push((id.clone(), release.metadata.dependencies.clone()));
    let locked = resolve_packs(state, &packs, site.channel.as_ref(), &site.env.target()?)?;
    let zip = match local {
        Some(path) => path.to_path_buf(),
        None => {
            let path = scratch.join(format!("{}.zip", file.blake3.to_hex()));
            let progress = context.bars.bytes("downloading", file.size);
            download_verified(&site.remote, file, &path, progress.as_ref()).await?;
            progress.finish();
            path
        }
    };
    let marker = Marker {
        format: MARKER_FORMAT.to_owned(),
        id: id.clone(),
        version: release.version.to_string(),
        filename: file.filename.to_string(),
        blake3: file.blake3.to_hex(),
        leaf_index: record.leaf_index,
    };
    let staged = site.tree.stage(&zip, &marker)?;
    site.install_wheels(&locked)?;
    staged.swap()?;
    Ok(locked)
}

pub async fn install(args: InstallArgs, context: &Context) -> anyhow::Result<()> {
    let wanted = wanted(&args.pack)?;
    let site = Site::open(&args.site, &args.server, &args.root, context).await?;
    let state = site.registry();
    let (record, local) = match &wanted {
        Wanted::File(path) => {
            let (record, _) = logged_file(state, path)?;
            if let Some(channel) = &site.channel {
                let r = &record.release;
                anyhow::ensure!(
                    state.channel_holds(channel, r.kind, &r.name, &r.version),
                    "{} is {}=={}, which channel {channel} does not hold",
                    path.display(),
                    r.name,
                    r.version
                );
            }
            (record, Some(path.as_path()))
        }
        Wanted::Logged(target) => {
            let (record, _) = airlock_client::pull::resolve(state, target, site.channel.as_ref())?;
            (record, None)
        }
    };
    if let Some(warning) = check_status(record)? {
        context.say(format!("warning: {warning}"));
    }
    let scratch = tempfile::tempdir()?;
    let locked = install_pack(&site, record, local, scratch.path(), context).await?;
    let r = &record.release;
    let dir = site.tree.pack_dir(r.name.as_str());
    let mut notes = Vec::new();
    let script = dir.join("install.py");
    if script.is_file() {
        if args.run_install_script {
            run_install_script(&site, &dir)?;
            notes.push("ran install.py".to_owned());
        } else {
            notes
                .push("the pack has an install.py, not run (pass --run-install-script to run it)".to_owned());
        }
    }
    let wheels: Vec<String> = locked.iter().map(|l| format!("{}=={}", l.name, l.version)).collect();
    let file = pack_file(record)?;
    context.finish(
        &json!({
            "id": r.name, "version": r.version, "blake3": file.blake3.to_string(), "leaf_index": record.leaf_index,
            "path": dir, "wheels": wheels, "notes": notes,
        }),
        format!(
            "installed {}=={} ({}) into {}\nrequirements: {}{}",
            r.name,
            r.version,
            file.blake3,
            dir.display(),
            if wheels.is_empty() { "none".to_owned() } else { wheels.join(" ") },
            notes.iter().map(|n| format!("\n{n}")).collect::<String>()
        ),
    );
    Ok(())
}

fn run_install_script(site: &Site, dir: &Path) -> anyhow::Result<()> {
    let status = std::process::Command::new(&site.env.python)
        .arg("install.py")
        .current_dir(dir)
        .status()
        .with_context(|| format!("cannot run install.py in {}", dir.display()))?;
    anyhow::ensure!(status.success(), "install.py in {} failed ({status})", dir.display());
    Ok(())
}

/// Checks every digest of a lock against the verified log: the packs it names (logged, node,
/// not revoked, the same id and version) and the wheels (logged files of that release).
fn verified_lock<'s>(
    state: &'s RegistryState,
    lock: &ComfyLock,
    target: &airlock_client::target::Target,
) -> anyhow::Result<(Vec<&'s ReleaseRecord>, Vec<Locked>)> {
    let mut packs = Vec::new();
    for pack in &lock.packs {
        let marker = Marker {
            format: MARKER_FORMAT.to_owned(),
            id: pack.id.clone(),
            version: pack.version.clone(),
            filename: pack.filename.clone(),
            blake3: pack.blake3.clone(),
            leaf_index: 0,
        };
        let record = release_of(state, &marker)?;
        check_status(record)?;
        packs.push(record);
    }
    let mut wheels = Vec::new();
    for wheel in &lock.wheels {
        let name = airlock_proto::PackageName::normalize(Kind::Wheel, &wheel.name)?;
        let version = airlock_proto::Version::new(&wheel.version)?;
        let record = state
            .release(Kind::Wheel, &name, &version)
            .ok_or_else(|| NotFound(format!("wheel {name}=={version} of the lock is not in the log")))?;
        check_status(record)?;
        let files: Vec<FileEntry> = record
            .release
            .files
            .iter()
            .filter(|f| wheel.sha256.contains(&f.sha256.to_hex()))
            .cloned()
            .collect();
        anyhow::ensure!(
            files.len() == wheel.sha256.len(),
            "the lock's hashes of {name}=={version} are not all logged files of that release"
        );
        wheels.push(Locked {
            name,
            version,
            wheels: files,
            requires_python: record.release.metadata.requires_python.clone(),
            published_at: record.release.published_at,
        });
    }
    // Every pack's requirements must be met by the lock's wheels, before anything changes.
    let mut unmet = Vec::new();
    for record in &packs {
        for line in &record.release.metadata.dependencies {
            if let Some(problem) = requirement_problem(line, target, |name| {
                wheels.iter().find(|w| w.name.as_str() == name).map(|w| w.version.to_string())
            }) {
                unmet.push(format!("pack {} requires {line}: {problem}", record.release.name));
            }
        }
    }
    anyhow::ensure!(
        unmet.is_empty(),
        "the lock's wheels do not meet its packs' requirements:\n  {}",
        unmet.join("\n  ")
    );
    Ok((packs, wheels))
}

/// Why a requirement is not met by what `installed` reports (the version of a normalized
/// name), or `None` when it is met or does not apply to the target.
pub fn requirement_problem(
    line: &str,
    target: &airlock_client::target::Target,
    installed: impl Fn(&str) -> Option<String>,
) -> Option<String> {
    use std::str::FromStr as _;
    let requirement = match pep508_rs::Requirement::<pep508_rs::VerbatimUrl>::from_str(line) {
        Ok(requirement) => requirement,
        Err(e) => return Some(format!("unreadable: {e}")),
    };
    if !requirement.evaluate_markers(target.markers(), &[]) {
        return None;
    }
    let name = airlock_proto::PackageName::normalize(Kind::Wheel, requirement.name.as_ref()).ok()?;
    let Some(version) = installed(name.as_str()) else { return Some("not installed".to_owned()) };
    if let Some(pep508_rs::VersionOrUrl::VersionSpecifier(specifiers)) = &requirement.version_or_url {
        match pep440_rs::Version::from_str(&version) {
            Ok(v) if specifiers.contains(&v) => {}
            _ => return Some(format!("{name} {version} is installed")),
        }
    }
    None
}

pub async fn restore(args: RestoreArgs, context: &Context) -> anyhow::Result<()> {
    let bytes =
        airlock_client::fsutil::read_capped(&args.lock, airlock_client::comfy::lockfile::MAX_LOCK_BYTES)?;
    let lock = ComfyLock::parse(&bytes).with_context(|| args.lock.display().to_string())?;
    let site = Site::open(&args.site, &args.server, &args.root, context).await?;
    let target = site.env.target()?;
    if lock.python != site.env.version || lock.platform != site.env.platform {
        context.say(format!(
            "warning: the lock was made for Python {} on {}; this environment is Python {} on {}",
            lock.python, lock.platform, site.env.version, site.env.platform
        ));
    }
    let state = site.registry();
    let (packs, wheels) = verified_lock(state, &lock, &target)?;
    let scratch = tempfile::tempdir()?;
    // Packs first, each staged and swapped whole; those in place and intact are kept.
    let installed = site.tree.installed()?;
    let mut changed = Vec::new();
    for record in &packs {
        let file = pack_file(record)?;
        let id = record.release.name.as_str();
        let zip = scratch.path().join(format!("{}.zip", file.blake3.to_hex()));
        let progress = context.bars.bytes("downloading", file.size);
        download_verified(&site.remote, file, &zip, progress.as_ref()).await?;
        progress.finish();
        if installed.get(id).is_some_and(|m| m.blake3 == file.blake3.to_hex()) {
            let files = airlock_client::comfy::extract::pack_files(&zip)?;
            let (added, edited, missing) =
                airlock_client::comfy::tree::compare(&site.tree.pack_dir(id), &files)?;
            if added.is_empty() && edited.is_empty() && missing.is_empty() {
                continue;
            }
        }
        let marker = Marker {
            format: MARKER_FORMAT.to_owned(),
            id: id.to_owned(),
            version: record.release.version.to_string(),
            filename: file.filename.to_string(),
            blake3: file.blake3.to_hex(),
            leaf_index: record.leaf_index,
        };
        site.tree.stage(&zip, &marker)?.swap()?;
        changed.push(format!("{id}=={}", record.release.version));
    }
    let keep: Vec<&str> = packs.iter().map(|r| r.release.name.as_str()).collect();
    let mut removed = Vec::new();
    for id in installed.keys().filter(|id| !keep.contains(&id.as_str())) {
        site.tree.remove(id)?;
        removed.push(id.clone());
    }
    // Then the wheels: the lock's set exactly.
    site.install_wheels(&wheels)?;
    let extra: Vec<String> = site
        .env
        .packages()
        .filter(|(name, _)| !wheels.iter().any(|w| w.name == **name))
        .map(|(name, _)| name.to_string())
        .collect();
    env::uninstall((site.installer.0, &site.installer.1), &site.env.python, &extra)?;
    context.finish(
        &json!({
            "packs": lock.packs.len(), "wheels": wheels.len(), "installed": changed, "removed_packs": removed,
            "removed_wheels": extra, "log_size": site.log.log.size(),
        }),
        format!(
            "restored {} packs ({} reinstalled{}) and {} wheels from {}{}",
            lock.packs.len(),
            changed.len(),
            if removed.is_empty() { String::new() } else { format!(", {} removed", removed.len()) },
            wheels.len(),
            args.lock.display(),
            if extra.is_empty() { String::new() } else { format!("; uninstalled {}", extra.join(" ")) }
        ),
    );
    Ok(())
}

/// Whether a release is offered: not revoked (a yanked pack is flagged, not refused).
pub fn is_revoked(record: &ReleaseRecord) -> bool {
    matches!(record.status, ReleaseStatus::Revoked { .. })
}

/// Whether two version texts are the same PEP 440 version (`1.0` and `1.0.0` are).
pub fn same_version(a: &str, b: &str) -> bool {
    use std::str::FromStr as _;
    match (pep440_rs::Version::from_str(a), pep440_rs::Version::from_str(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}
