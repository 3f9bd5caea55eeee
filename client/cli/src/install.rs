//! `airlock install`: one node pack into a ComfyUI tree, verified against the log (by id, or a
//! pack file carried on media whose digest is a logged, unrevoked release), with its
//! requirements resolved together with the installed packs' and installed by pip or uv from the
//! mirror's index with every hash pinned from the log; staged, then swapped in whole.

use std::path::{Path, PathBuf};

use airlock_client::comfy::tree::Marker;
use airlock_client::lock::Locked;
use airlock_client::publish::hash_file;
use airlock_client::pull::{check_status, NotFound, Target, VerifyError};
use airlock_keys::{RegistryState, ReleaseRecord};
use airlock_proto::Kind;
use anyhow::Context as _;
use serde_json::json;

use super::comfy::{pack_file, release_of, resolve_packs, Site, SiteArgs};
use super::Context;

#[derive(Debug, clap::Args)]
pub struct InstallArgs {
    /// ID, ID==VERSION or ID@VERSION (as ComfyUI-Manager writes it), or a pack file carried on
    /// media (./pack.zip), accepted only when its digest is a logged, unrevoked release.
    pack: String,
    #[command(flatten)]
    site: SiteArgs,
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

/// Finds the release a local pack file is, by its digests. The file is first copied into
/// `scratch` and that copy hashed, so the bytes extracted are the bytes checked even when the
/// medium changes underneath.
fn logged_file<'s>(
    state: &'s RegistryState,
    path: &Path,
    scratch: &Path,
) -> anyhow::Result<(&'s ReleaseRecord, PathBuf)> {
    let copy = scratch.join("local-pack.zip");
    std::fs::copy(path, &copy).with_context(|| format!("cannot read {}", path.display()))?;
    let digests = hash_file(&copy)?;
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
        .ok_or_else(|| NotFound(format!("{} is not a file of a logged release", path.display())))?;
    let what = path.display().to_string();
    if file.size != digests.size {
        return Err(VerifyError::Size { what, expected: file.size, actual: digests.size }.into());
    }
    if file.sha256 != digests.sha256 {
        return Err(VerifyError::Sha256 {
            what,
            expected: file.sha256.to_hex(),
            actual: digests.sha256.to_hex(),
        }
        .into());
    }
    Ok((record, copy))
}

/// Installs one verified pack (downloaded into `scratch` unless `local` is given) with its
/// requirements resolved together with the other installed packs'. Nothing in the tree or the
/// environment changes when the requirements conflict or the download fails verification; the
/// old version of the pack stays until the new one is complete.
async fn install_pack(
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
        None => site.fetch_pack(file, scratch, context).await?,
    };
    let staged = site.tree.stage(&zip, &Marker::of(record, file))?;
    site.install_wheels(&locked)?;
    staged.swap()?;
    Ok(locked)
}

pub async fn install(args: InstallArgs, context: &Context) -> anyhow::Result<()> {
    let wanted = wanted(&args.pack)?;
    let site = Site::open(&args.site, context).await?;
    let state = site.registry();
    let scratch = tempfile::tempdir()?;
    let (record, local) = match &wanted {
        Wanted::File(path) => {
            let (record, copy) = logged_file(state, path, scratch.path())?;
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
            (record.clone(), Some(copy))
        }
        Wanted::Logged(target) => {
            let (record, _) = airlock_client::pull::resolve(state, target, site.channel.as_ref())?;
            (record, None)
        }
    };
    let record = &record;
    if let Some(warning) = check_status(record)? {
        context.say(format!("warning: {warning}"));
    }
    let locked = install_pack(&site, record, local.as_deref(), scratch.path(), context).await?;
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
