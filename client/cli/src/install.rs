//! `airlock install`: one node pack into a ComfyUI tree, verified against the log (by id, or a
//! pack file carried on media whose digest is a logged, unrevoked release), with its
//! requirements resolved together with the installed packs' and installed by pip or uv from the
//! mirror's index with every hash pinned from the log; staged, then swapped in whole.

use std::path::{Path, PathBuf};

use airlock_client::comfy::tree::{Marker, MARKER_FORMAT};
use airlock_client::lock::Locked;
use airlock_client::progress::Reporter as _;
use airlock_client::publish::hash_file;
use airlock_client::pull::{check_status, download_verified, NotFound, Target, VerifyError};
use airlock_keys::{RegistryState, ReleaseRecord};
use airlock_proto::{FileEntry, Kind};
use anyhow::Context as _;
use serde_json::json;

use super::comfy::{pack_file, release_of, resolve_packs, Site, SiteArgs};
use super::{Context, ServerArgs};

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
