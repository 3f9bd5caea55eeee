//! `airlock restore comfy.lock --comfyui DIR`: every digest of the lock checked against the
//! verified log again, the packs' requirements checked against the lock's wheels before anything
//! changes, then the packs and wheels reproduced exactly from the mirror.

use std::path::PathBuf;

use airlock_client::comfy::lockfile::ComfyLock;
use airlock_client::comfy::tree::Marker;
use airlock_client::lock::Locked;
use airlock_client::pull::{check_status, NotFound};
use airlock_keys::{RegistryState, ReleaseRecord};
use airlock_proto::{FileEntry, Kind};
use anyhow::Context as _;
use serde_json::json;

use super::comfy::{pack_file, release_named, requirement_problem, Site, SiteArgs};
use super::Context;

#[derive(Debug, clap::Args)]
pub struct RestoreArgs {
    /// The lock file (airlock lock --comfyui DIR -o comfy.lock).
    lock: PathBuf,
    #[command(flatten)]
    site: SiteArgs,
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
        let record = release_named(state, &pack.id, &pack.version, &pack.blake3)?;
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
                wheels.iter().find(|w| w.name == *name).map(|w| w.version.to_string())
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

pub async fn restore(args: RestoreArgs, context: &Context) -> anyhow::Result<()> {
    let bytes =
        airlock_client::fsutil::read_capped(&args.lock, airlock_client::comfy::lockfile::MAX_LOCK_BYTES)?;
    let lock = ComfyLock::parse(&bytes).with_context(|| args.lock.display().to_string())?;
    let site = Site::open(&args.site, context).await?;
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
        let zip = site.fetch_pack(file, scratch.path(), context).await?;
        if installed.get(id).is_some_and(|m| m.blake3 == file.blake3.to_hex()) {
            let files = airlock_client::comfy::extract::pack_files(&zip)?;
            let (added, edited, missing) =
                airlock_client::comfy::tree::compare(&site.tree.pack_dir(id), &files)?;
            if added.is_empty() && edited.is_empty() && missing.is_empty() {
                continue;
            }
        }
        site.tree.stage(&zip, &Marker::of(record, file))?.swap()?;
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
    site.uninstall_wheels(&extra)?;
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
