//! `airlock publish FILE.whl` and `airlock publish --wheels DIR`: each project version becomes
//! one release holding its wheels and, beside each, the exact bytes of its METADATA as
//! `<wheel>.metadata` (PEP 658), so the metadata pip and uv read is as verified as the wheel.
//! Name, version, Requires-Python and Requires-Dist come from the wheels themselves, which are
//! checked first (`airlock_client::wheel`).

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use airlock_client::progress::Reporter;
use airlock_client::publish::{hash_file, FileDigests};
use airlock_client::statements;
use airlock_client::wheel::{read_wheel, WheelInfo};
use airlock_client::Remote;
use airlock_proto::statement::MAX_RELEASE_FILES;
use airlock_proto::{Envelope, FileName, Kind, Metadata, PackageName, Version};
use anyhow::Context as _;
use serde_json::json;

use crate::keys::write_envelope;
use crate::publish::{
    in_force_root, load_root, publish_remote, sign_as_publisher, submit_verified, threshold_note,
    write_for_approval, PublishArgs,
};
use crate::Context;

/// The wheels of one project version.
pub(crate) struct Group {
    pub(crate) name: PackageName,
    pub(crate) version: Version,
    wheels: Vec<(PathBuf, WheelInfo)>,
}

/// Reads every wheel and groups them by project version. A wheel that fails its checks stops
/// everything, naming the file and the reason; so do wheels of one version that disagree on
/// what they require.
pub(crate) fn group(paths: &[PathBuf]) -> anyhow::Result<Vec<Group>> {
    let mut groups: BTreeMap<(PackageName, Version), Vec<(PathBuf, WheelInfo)>> = BTreeMap::new();
    for path in paths {
        let info = read_wheel(path).map_err(|e| anyhow::anyhow!("refused: {e}"))?;
        let key = (info.name.name.clone(), info.name.version.clone());
        groups.entry(key).or_default().push((path.clone(), info));
    }
    groups
        .into_iter()
        .map(|((name, version), wheels)| {
            let (_, first) = &wheels[0];
            for (path, other) in &wheels[1..] {
                anyhow::ensure!(
                    other.requires_python == first.requires_python && other.requires_dist == first.requires_dist,
                    "refused: {}: its Requires-Python or Requires-Dist differs from {}'s, another wheel of {name}=={version}",
                    path.display(),
                    first.filename
                );
            }
            anyhow::ensure!(
                wheels.len() * 2 <= MAX_RELEASE_FILES,
                "{name}=={version} has {} wheels; a release holds at most {} (with their metadata files)",
                wheels.len(),
                MAX_RELEASE_FILES / 2
            );
            Ok(Group { name, version, wheels })
        })
        .collect()
}

/// The digests of `bytes`, and a temporary file holding them (for the upload).
fn stage_bytes(bytes: &[u8]) -> anyhow::Result<(tempfile::NamedTempFile, FileDigests)> {
    let mut file = tempfile::NamedTempFile::new()?;
    file.write_all(bytes)?;
    file.flush()?;
    let digests = hash_file(file.path())?;
    Ok((file, digests))
}

/// Uploads a group's wheels and metadata files (when a registry is given) and builds its
/// unsigned release.
pub(crate) async fn build(
    group: &Group,
    remote: Option<&Remote>,
    context: &Context,
) -> anyhow::Result<Envelope> {
    let mut files = Vec::new();
    for (path, info) in &group.wheels {
        let digests = hash_file(path)?;
        let (metadata_file, metadata_digests) = stage_bytes(&info.metadata_bytes)?;
        if let Some(remote) = remote {
            let progress = context.bars.bytes("uploading", digests.size);
            remote.upload_blob(path, &digests.blake3, progress.as_ref()).await?;
            progress.finish();
            remote
                .upload_blob(metadata_file.path(), &metadata_digests.blake3, &airlock_client::NoProgress)
                .await?;
            context.say(format!(
                "uploaded {} ({} bytes, {}) and its METADATA",
                info.filename, digests.size, digests.blake3
            ));
        }
        files.push(statements::file_entry(FileName::new(&info.filename)?, digests));
        files.push(statements::file_entry(
            FileName::new(&format!("{}.metadata", info.filename))?,
            metadata_digests,
        ));
    }
    let first = &group.wheels[0].1;
    let metadata = Metadata {
        summary: first.summary.clone(),
        requires_python: first.requires_python.clone(),
        dependencies: first.requires_dist.clone(),
        ..Metadata::default()
    };
    Ok(statements::release(
        Kind::Wheel,
        group.name.clone(),
        group.version.clone(),
        files,
        metadata,
        context.clock.now(),
    )?)
}

/// `airlock publish FILE.whl`.
pub async fn publish_one(args: &PublishArgs, file: &Path, context: &Context) -> anyhow::Result<()> {
    let groups = group(&[file.to_path_buf()])?;
    let [group] = &groups[..] else { unreachable!("one wheel makes one group") };
    if let Some(name) = &args.name {
        let given = PackageName::normalize(Kind::Wheel, name)?;
        anyhow::ensure!(given == group.name, "--name {name} but the wheel is {}", group.name);
    }
    if let Some(version) = &args.version {
        let given = airlock_client::wheel::normalize_version(version).map_err(anyhow::Error::msg)?;
        anyhow::ensure!(given == group.version, "--version {version} but the wheel is {}", group.version);
    }
    let root = load_root(&args.root)?;
    let remote = publish_remote(args, context)?;
    let mut envelope = build(group, remote.as_ref(), context).await?;
    let in_force = in_force_root(&root, remote.as_ref()).await?;
    sign_as_publisher(&mut envelope, &args.key, &in_force, context)?;
    if args.sign_only {
        return write_for_approval(args.output.clone(), &envelope, &in_force, json!({}), context);
    }
    let remote = remote.context("--server is required")?;
    let submitted = submit_verified(&remote, &envelope, &root, context).await?;
    context.finish(
        &json!({
            "kind": Kind::Wheel, "name": group.name, "version": group.version,
            "leaf_index": submitted.index, "tree_size": submitted.size, "existing": submitted.existing,
        }),
        format!(
            "published wheel {}=={} at leaf {} of {}; inclusion proof verified",
            group.name, group.version, submitted.index, submitted.size
        ),
    );
    Ok(())
}

/// `airlock publish --wheels DIR`: every wheel in the folder, one release per project version,
/// signed in one round; with --sign-only the statements go to the folder -o names.
pub async fn publish_dir(args: &PublishArgs, dir: &Path, context: &Context) -> anyhow::Result<()> {
    let paths = airlock_client::fsutil::files_with_extension(dir, "whl")?;
    let groups = group(&paths)?;
    let root = load_root(&args.root)?;
    let remote = publish_remote(args, context)?;
    let in_force = in_force_root(&root, remote.as_ref()).await?;
    if args.sign_only {
        let out = args.output.as_deref().context("--sign-only needs -o DIR")?;
        std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    }
    let mut done = Vec::new();
    let mut lines = Vec::new();
    for group in &groups {
        let mut envelope = build(group, remote.as_ref(), context).await?;
        sign_as_publisher(&mut envelope, &args.key, &in_force, context)?;
        if args.sign_only {
            let out =
                args.output.as_deref().unwrap_or(dir).join(format!("{}-{}.cbor", group.name, group.version));
            write_envelope(&out, &envelope)?;
            lines.push(format!("wrote {} ({})", out.display(), threshold_note(&envelope, &in_force)));
            done.push(json!({ "name": group.name, "version": group.version, "statement": out }));
        } else {
            let remote = remote.as_ref().context("--server is required")?;
            let submitted = submit_verified(remote, &envelope, &root, context).await?;
            lines.push(format!(
                "published wheel {}=={} at leaf {}",
                group.name, group.version, submitted.index
            ));
            done.push(json!({ "name": group.name, "version": group.version, "leaf_index": submitted.index }));
        }
    }
    if args.sign_only {
        lines.push(format!(
            "next: `airlock approve {}` by other publishers, then `airlock submit {}`",
            args.output.as_deref().unwrap_or(dir).display(),
            args.output.as_deref().unwrap_or(dir).display()
        ));
    }
    context.finish(&json!({ "releases": done, "wheels": paths.len() }), lines.join("\n"));
    Ok(())
}
