//! `airlock lock --comfyui DIR`: the packs installed in a ComfyUI tree and the wheels of its
//! environment, each found in the verified log, written as `comfy.lock` (and, with
//! `--manager-snapshot`, as ComfyUI-Manager's snapshot JSON). Anything the log does not hold
//! is refused by name: a lock records only what the mirror can restore.

use std::path::Path;

use airlock_client::comfy::env;
use airlock_client::comfy::lockfile::{ComfyLock, LockedPack, LockedWheel, FORMAT};
use airlock_client::comfy::tree::ComfyTree;
use airlock_client::fsutil;
use airlock_proto::Kind;
use anyhow::Context as _;
use serde_json::json;

use super::lock::LockArgs;
use super::Context;

pub async fn lock_tree(args: &LockArgs, dir: &Path, context: &Context) -> anyhow::Result<()> {
    let tree = ComfyTree::open(dir)?;
    let python = env::find_python(dir, args.python.as_deref());
    let environment = env::inspect(&python)?;
    let target = environment.target()?;
    let remote = context.remote(&args.server)?;
    let log = context.follow(&remote, &args.root).await?;
    let state = log.log.registry();
    let mut packs = Vec::new();
    let mut problems = Vec::new();
    for entry in tree.entries()? {
        let Some(marker) = entry.marker else {
            if entry.path.is_dir() {
                problems.push(format!("custom_nodes/{} was not installed by airlock", entry.name));
            }
            continue;
        };
        let record = match crate::comfy::release_of(state, &marker) {
            Ok(record) => record,
            Err(e) => {
                problems.push(format!("{e:#}"));
                continue;
            }
        };
        if crate::comfy::is_revoked(record) {
            problems.push(format!("pack {}=={} is revoked", marker.id, marker.version));
            continue;
        }
        let file = crate::comfy::pack_file(record)?;
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
        let logged = state
            .releases_of(Kind::Wheel, name)
            .any(|r| crate::comfy::same_version(r.release.version.as_str(), version));
        if logged {
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
        log_size: log.log.size(),
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
