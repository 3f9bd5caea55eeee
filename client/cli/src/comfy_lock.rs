//! `airlock lock --comfyui DIR`: the packs installed in a ComfyUI tree and the wheels of its
//! environment, each found in the verified log, written as `comfy.lock` (and, with
//! `--manager-snapshot`, as ComfyUI-Manager's snapshot JSON). Anything the log does not hold
//! is refused by name: a lock records only what the mirror can restore.

use std::path::Path;

use airlock_client::comfy::lockfile::{ComfyLock, LockedPack, LockedWheel, FORMAT};
use airlock_client::fsutil;
use anyhow::Context as _;
use serde_json::json;

use super::comfy::{installed_release, is_revoked, pack_file, release_of, Site, SiteArgs};
use super::lock::LockArgs;
use super::Context;

pub async fn lock_tree(args: &LockArgs, dir: &Path, context: &Context) -> anyhow::Result<()> {
    let site = Site::open(
        &SiteArgs {
            comfyui: dir.to_path_buf(),
            python: args.python.clone(),
            installer: None,
            channel: args.channel.clone(),
            server: args.server.clone(),
            root: args.root.clone(),
        },
        context,
    )
    .await?;
    let (environment, state) = (&site.env, site.registry());
    let target = environment.target()?;
    let mut packs = Vec::new();
    let mut problems = Vec::new();
    for entry in site.tree.entries()? {
        let Some(marker) = entry.marker else {
            if entry.path.is_dir() {
                problems.push(format!("custom_nodes/{} was not installed by airlock", entry.name));
            }
            continue;
        };
        let record = match release_of(state, &marker) {
            Ok(record) => record,
            Err(e) => {
                problems.push(format!("{e:#}"));
                continue;
            }
        };
        if is_revoked(record) {
            problems.push(format!("pack {}=={} is revoked", marker.id, marker.version));
            continue;
        }
        let file = pack_file(record)?;
        packs.push(LockedPack {
            id: marker.id.clone(),
            version: marker.version.clone(),
            filename: file.filename.to_string(),
            blake3: file.blake3.to_hex(),
            sha256: file.sha256.to_hex(),
            size: file.size,
        });
    }
    // The wheels: each installed distribution pinned, resolved against the log for its files.
    let mut pins = Vec::new();
    for (name, version) in environment.packages() {
        if installed_release(state, name, version).is_some() {
            pins.push(format!("{name}=={version}"));
        } else {
            problems.push(format!(
                "wheel {name}=={version} is installed but not in the log (not from the mirror)"
            ));
        }
    }
    anyhow::ensure!(problems.is_empty(), "cannot lock {}:\n  {}", dir.display(), problems.join("\n  "));
    let requirements =
        airlock_client::lock::parse_requirements(&pins.join("\n")).map_err(anyhow::Error::msg)?;
    let locked = airlock_client::lock::resolve(state, &requirements, args.channel.as_ref(), &target)?;
    let wheels: Vec<LockedWheel> = locked
        .iter()
        .map(|l| LockedWheel {
            name: l.name.to_string(),
            version: l.version.to_string(),
            sha256: l.wheels.iter().map(|w| w.sha256.to_hex()).collect(),
        })
        .collect();
    let lock = ComfyLock {
        format: FORMAT.to_owned(),
        origin: state.root().origin().to_owned(),
        log_size: site.log.log.size(),
        python: environment.version.clone(),
        platform: environment.platform.clone(),
        packs,
        wheels,
    };
    fsutil::write_atomic(&args.output, &lock.to_bytes(), 0o644)
        .with_context(|| format!("cannot write {}", args.output.display()))?;
    if let Some(path) = &args.manager_snapshot {
        let bytes = serde_json::to_vec_pretty(&lock.manager_snapshot())?;
        fsutil::write_atomic(path, &bytes, 0o644)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    context.finish(
        &json!({ "file": args.output, "packs": lock.packs.len(), "wheels": lock.wheels.len(), "log_size": lock.log_size }),
        format!(
            "wrote {} ({} packs, {} wheels, log size {})",
            args.output.display(),
            lock.packs.len(),
            lock.wheels.len(),
            lock.log_size
        ),
    );
    Ok(())
}
