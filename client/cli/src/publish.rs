//! `airlock publish`, `approve`, `submit`, `upload`: getting a release into the log.

use std::path::{Path, PathBuf};

use airlock_client::fsutil;
use airlock_client::progress::Reporter;
use airlock_client::publish::{file_name_of, hash_file};
use airlock_client::statements;
use airlock_client::Remote;
use airlock_keys::{
    read_secret_key, sign_envelope, verify_included, Freshness, Included, InclusionClaim, LogError, RoleName,
    TrustedRoot, Verified,
};
use airlock_proto::api::Submitted;
use airlock_proto::{Clock, Envelope, Kind, Metadata, PackageName, Statement, Version};
use anyhow::Context as _;
use serde_json::json;

use super::keys::{read_envelope, write_envelope, MAX_STATEMENT_FILE};
use super::{Context, ServerArgs};

#[derive(Debug, clap::Args)]
pub struct PublishArgs {
    /// The file to publish: a wheel (name, version, Requires-Python and Requires-Dist are read
    /// from it, its METADATA is published beside it) or a node-pack archive.
    #[arg(required_unless_present = "wheels")]
    pub(crate) file: Option<PathBuf>,
    /// Publish every wheel in this folder (such as `pip download -d DIR`'s output): one release
    /// per project version, all signed in one round (with --sign-only, -o names a folder for
    /// the statements, which `airlock approve` and `airlock submit` take whole).
    #[arg(long, value_name = "DIR", conflicts_with_all = ["file", "name", "version"])]
    pub(crate) wheels: Option<PathBuf>,
    /// wheel or node (a .whl file is a wheel).
    #[arg(long)]
    pub(crate) kind: Option<Kind>,
    /// The project name (read from a wheel; required otherwise).
    #[arg(long)]
    pub(crate) name: Option<String>,
    /// The version (read from a wheel; required otherwise).
    #[arg(long)]
    pub(crate) version: Option<String>,
    /// Your publisher secret key.
    #[arg(long)]
    pub(crate) key: PathBuf,
    /// The root file: the key must be one of its publisher keys.
    #[arg(long)]
    pub(crate) root: PathBuf,
    /// Registry URL (required unless --sign-only).
    #[arg(long, env = "AIRLOCK_SERVER")]
    pub(crate) server: Option<String>,
    #[arg(long, env = "AIRLOCK_TOKEN", hide_env_values = true)]
    pub(crate) token: Option<String>,
    /// Write the signed statement instead of submitting it (for a threshold above 1).
    #[arg(long, requires = "output")]
    pub(crate) sign_only: bool,
    #[arg(short = 'o', long)]
    pub(crate) output: Option<PathBuf>,
    #[arg(long)]
    pub(crate) summary: Option<String>,
    #[arg(long)]
    pub(crate) requires_python: Option<String>,
    /// A dependency requirement line (repeat).
    #[arg(long = "dependency")]
    pub(crate) dependencies: Vec<String>,
    #[arg(long)]
    pub(crate) source_url: Option<String>,
    #[arg(long)]
    pub(crate) source_commit: Option<String>,
    /// The ComfyUI versions a node pack works with (a requirement, e.g. `comfyui>=1.0.0`).
    #[arg(long)]
    pub(crate) comfyui: Option<String>,
    /// Acknowledge scan findings of a node pack (repeat): `all`, a rule (each finding of it),
    /// or `RULE@FILE[:LINE]`. The acknowledgements are signed into the release; the registry's
    /// scan policy admits findings it would otherwise refuse only when acknowledged.
    #[arg(long, value_name = "FINDING")]
    pub(crate) acknowledge: Vec<String>,
}

#[derive(Debug, clap::Args)]
pub struct ApproveArgs {
    /// The statement file, or a folder of them; your signature is added in place unless -o is
    /// given.
    file: PathBuf,
    #[arg(long)]
    key: PathBuf,
    /// The root file: the key must be one of its publisher keys.
    #[arg(long)]
    root: PathBuf,
    #[arg(short = 'o', long)]
    output: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct SubmitArgs {
    /// The statement file, or a folder of them (submitted in name order).
    file: PathBuf,
    #[command(flatten)]
    server: ServerArgs,
    /// Verify the answer's checkpoint and inclusion proof against this root.
    #[arg(long)]
    root: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct UploadArgs {
    file: PathBuf,
    #[command(flatten)]
    server: ServerArgs,
}

pub(crate) fn load_root(path: &Path) -> anyhow::Result<Verified<TrustedRoot>> {
    let bytes = fsutil::read_capped(path, MAX_STATEMENT_FILE)?;
    TrustedRoot::pin(&bytes).with_context(|| format!("root file {} does not verify", path.display()))
}

pub(crate) fn sign_as_publisher(
    envelope: &mut Envelope,
    key_path: &Path,
    root: &TrustedRoot,
    context: &Context,
) -> anyhow::Result<()> {
    let secret = read_secret_key(key_path)?;
    let public = secret.public();
    anyhow::ensure!(
        root.authorises(&public, RoleName::Publisher),
        "key {} ({}) is not a publisher key in the root; refusing to sign",
        public.id(),
        key_path.display()
    );
    let statement = Statement::decode(&envelope.payload_type, &envelope.payload)?;
    context.say(format!(
        "signing {} {} payload {} with key {}",
        envelope.payload_type,
        describe(&statement),
        envelope.payload_digest(),
        public.id()
    ));
    sign_envelope(envelope, &secret);
    Ok(())
}

fn describe(statement: &Statement) -> String {
    match statement {
        Statement::Release(r) => format!("{} {}=={}", r.kind, r.name, r.version),
        Statement::Status(s) => format!("{:?} {} {}=={}", s.action, s.kind, s.name, s.version),
        Statement::Channel(c) => {
            format!("{:?} {} {}=={} in channel {}", c.action, c.kind, c.name, c.version, c.channel)
        }
        Statement::Root(r) => format!("root version {}", r.version),
    }
}

pub(crate) fn threshold_note(envelope: &Envelope, root: &TrustedRoot) -> String {
    let needed = root.role(RoleName::Publisher).threshold;
    match root.check_role(envelope, RoleName::Publisher) {
        Ok(()) => format!("publisher threshold ({needed}) met"),
        Err(e) => format!("{} of {needed} publisher signatures so far", e.valid),
    }
}

pub async fn publish(args: PublishArgs, context: &Context) -> anyhow::Result<()> {
    let is_wheel = |path: &Path| path.extension().is_some_and(|e| e == "whl");
    match (&args.wheels, &args.file) {
        (Some(dir), _) => return crate::wheels::publish_dir(&args, dir, context).await,
        (None, Some(file)) if is_wheel(file) && args.kind.unwrap_or(Kind::Wheel) == Kind::Wheel => {
            return crate::wheels::publish_one(&args, file, context).await
        }
        _ => {}
    }
    let file = args.file.clone().context("give a file to publish, or --wheels DIR")?;
    let kind = args.kind.context("--kind is required for a file that is not a wheel")?;
    let root = load_root(&args.root)?;
    // A node pack states its own id, version, description, repository and requirements.
    let pack = match kind {
        Kind::Node => Some(airlock_client::pack::read_pack(&file)?),
        Kind::Wheel => None,
    };
    let name = match (&pack, args.name.as_deref()) {
        (Some(pack), Some(given)) => {
            let given = PackageName::normalize(kind, given)?;
            anyhow::ensure!(
                given == pack.id,
                "--name {given} but the pack's pyproject.toml names {}",
                pack.id
            );
            given
        }
        (Some(pack), None) => pack.id.clone(),
        (None, given) => PackageName::normalize(kind, given.context("--name is required")?)?,
    };
    let version = match (&pack, args.version.as_deref()) {
        (Some(pack), Some(given)) => {
            let given = airlock_client::pack::normalize_version(given).map_err(anyhow::Error::msg)?;
            anyhow::ensure!(
                given == pack.version,
                "--version {given} but the pack's pyproject.toml says {}",
                pack.version
            );
            given
        }
        (Some(pack), None) => pack.version.clone(),
        (None, given) => Version::new(given.context("--version is required")?)?,
    };
    let filename = file_name_of(&file)?;
    let digests = hash_file(&file)?;
    let remote = publish_remote(&args, context)?;
    if let Some(remote) = &remote {
        let progress = context.bars.bytes("uploading", digests.size);
        remote.upload_blob(&file, &digests.blake3, progress.as_ref()).await?;
        progress.finish();
        context.say(format!("uploaded {} ({} bytes, {})", filename, digests.size, digests.blake3));
    }
    let scanned = match kind {
        Kind::Node => {
            Some(crate::review::scan_pack(&file, remote.as_ref(), &args.acknowledge, context).await?)
        }
        Kind::Wheel => {
            anyhow::ensure!(
                args.acknowledge.is_empty(),
                "--acknowledge is for node packs, which are scanned"
            );
            None
        }
    };
    if let (Some(remote), Some(scanned)) = (&remote, &scanned) {
        crate::review::upload_report(remote, &scanned.bytes, &scanned.digest).await?;
    }
    let mut dependencies = args.dependencies.clone();
    if dependencies.is_empty() {
        dependencies = pack.as_ref().map(|p| p.requirements.clone()).unwrap_or_default();
    }
    let metadata = Metadata {
        summary: args.summary.clone().or_else(|| pack.as_ref().and_then(|p| p.description.clone())),
        requires_python: args.requires_python.clone(),
        dependencies,
        comfyui: args.comfyui.clone(),
        source_url: args.source_url.clone().or_else(|| pack.as_ref().and_then(|p| p.repository.clone())),
        source_commit: args.source_commit.clone(),
        license: pack.as_ref().and_then(|p| p.license.clone()),
        scan_report: scanned.as_ref().map(|s| s.digest),
        acknowledged_findings: scanned.as_ref().map(|s| s.acknowledged.clone()).unwrap_or_default(),
    };
    let mut envelope = statements::release(
        kind,
        name.clone(),
        version.clone(),
        vec![statements::file_entry(filename, digests)],
        metadata,
        context.clock.now(),
    )?;
    // Signed for the root in force at the registry (reached from the pinned root through its
    // verified root chain), the pinned root itself when signing offline.
    let in_force = in_force_root(&root, remote.as_ref()).await?;
    sign_as_publisher(&mut envelope, &args.key, &in_force, context)?;
    if args.sign_only {
        let extra = json!({ "blake3": digests.blake3.to_string() });
        if let (Some(output), Some(scanned)) = (&args.output, &scanned) {
            fsutil::write_atomic(&crate::review::report_path(output), &scanned.bytes, 0o644)?;
        }
        return write_for_approval(args.output.clone(), &envelope, &in_force, extra, context);
    }
    let remote = remote.context("--server is required")?;
    let submitted = submit_verified(&remote, &envelope, &root, context).await?;
    context.finish(
        &json!({
            "kind": kind, "name": name, "version": version,
            "blake3": digests.blake3.to_string(), "sha256": digests.sha256.to_hex(), "size": digests.size,
            "leaf_index": submitted.index, "tree_size": submitted.size, "existing": submitted.existing,
        }),
        format!(
            "published {kind} {name}=={version} ({}) at leaf {} of {}; inclusion proof verified",
            digests.blake3, submitted.index, submitted.size
        ),
    );
    Ok(())
}

/// The registry a publish uploads to: required unless it only signs.
pub(crate) fn publish_remote(args: &PublishArgs, context: &Context) -> anyhow::Result<Option<Remote>> {
    match &args.server {
        Some(server) => Ok(Some(Remote::new(server, args.token.clone(), &context.tls)?)),
        None if args.sign_only => Ok(None),
        None => anyhow::bail!("--server is required unless --sign-only is given"),
    }
}

/// The root in force at the registry, reached from the pinned root through its verified root
/// chain; the pinned root itself when there is no registry to ask (signing offline).
pub(crate) async fn in_force_root(
    root: &Verified<TrustedRoot>,
    remote: Option<&Remote>,
) -> anyhow::Result<Verified<TrustedRoot>> {
    match remote {
        Some(remote) => {
            root.walk(&remote.roots().await?).context("the registry's root chain does not verify")
        }
        None => Ok(root.clone()),
    }
}

/// `--sign-only`: writes the signed statement for other publishers to approve, saying how far
/// its threshold is met; `extra` adds fields to the JSON output.
pub(crate) fn write_for_approval(
    output: Option<PathBuf>,
    envelope: &Envelope,
    root: &TrustedRoot,
    mut extra: serde_json::Value,
    context: &Context,
) -> anyhow::Result<()> {
    let output = output.context("--sign-only needs -o FILE")?;
    write_envelope(&output, envelope)?;
    let note = threshold_note(envelope, root);
    extra["statement"] = json!(output);
    extra["payload"] = json!(envelope.payload_digest().to_string());
    context.finish(
        &extra,
        format!(
            "wrote {} ({note}); next: `airlock approve {}` by other publishers, then `airlock submit`",
            output.display(),
            output.display()
        ),
    );
    Ok(())
}

/// Submits a signed statement and verifies the answer's checkpoint and inclusion proof.
pub(crate) async fn submit_verified(
    remote: &Remote,
    envelope: &Envelope,
    root: &Verified<TrustedRoot>,
    context: &Context,
) -> anyhow::Result<Submitted> {
    let leaf = envelope.to_bytes()?;
    let submitted = remote.submit(leaf.clone()).await?;
    check_included(root, &remote.roots().await?, &leaf, &submitted, &context.clock)?;
    Ok(submitted)
}

/// Checks a submission answer with the one verifier: the checkpoint is for the pinned root's
/// origin, signed by the log role of the newest root the registry's root chain (`chain`) leads
/// to from the pinned one (so a log-key rotation is followed), fresh now, and the inclusion
/// proof leads from our exact leaf to its root hash.
pub(crate) fn check_included(
    root: &Verified<TrustedRoot>,
    chain: &[Vec<u8>],
    leaf: &[u8],
    submitted: &Submitted,
    clock: &Clock,
) -> Result<Verified<Included>, LogError> {
    // A payload logged before, maybe under other signatures: the proof is for the logged leaf,
    // which must carry the same payload as ours.
    let leaf = match &submitted.logged_leaf {
        Some(logged) if submitted.existing => {
            let same = |bytes: &[u8]| Envelope::from_bytes(bytes).ok().map(|e| (e.payload_type, e.payload));
            if same(&logged.0).is_none() || same(&logged.0) != same(leaf) {
                return Err(LogError::Inclusion {
                    index: submitted.index,
                    size: submitted.size,
                    detail:
                        "the leaf the registry says is already logged does not carry this statement's payload"
                            .to_owned(),
                });
            }
            logged.0.as_slice()
        }
        _ => leaf,
    };
    let claim = InclusionClaim {
        leaf,
        index: submitted.index,
        size: submitted.size,
        checkpoint: &submitted.checkpoint.0,
        proof: &submitted.inclusion_proof,
    };
    let in_force = root.walk(chain).map_err(LogError::Roots)?;
    verify_included(&in_force, claim, Freshness::At(clock.now()))
}

pub fn approve(args: ApproveArgs, context: &Context) -> anyhow::Result<()> {
    let root = load_root(&args.root)?;
    let files = statement_files(&args.file)?;
    anyhow::ensure!(
        args.output.is_none() || files.len() == 1,
        "-o names one file; a folder is approved in place"
    );
    let mut lines = Vec::new();
    let mut approved = Vec::new();
    for file in files {
        let mut envelope = read_envelope(&file)?;
        // What is signed: the files by digest and, for a scanned pack, the findings of exactly
        // the report the statement names.
        let mut shown = json!({});
        if let Some(release) = crate::review::release_of(&envelope) {
            let report = crate::review::report_of(&file, &release)?;
            let (described, json) = crate::review::describe_for_approval(&release, report.as_ref());
            lines.push(format!("approving {} {}=={}:", release.kind, release.name, release.version));
            lines.extend(described);
            shown = json;
        }
        sign_as_publisher(&mut envelope, &args.key, &root, context)?;
        let output = args.output.clone().unwrap_or(file.clone());
        write_envelope(&output, &envelope)?;
        if output != file {
            let report = crate::review::report_path(&file);
            if report.exists() {
                std::fs::copy(&report, crate::review::report_path(&output))
                    .with_context(|| format!("copying {} beside {}", report.display(), output.display()))?;
            }
        }
        let note = threshold_note(&envelope, &root);
        lines.push(format!("wrote {} ({note})", output.display()));
        shown["statement"] = json!(output);
        shown["signatures"] = json!(envelope.signatures.len());
        approved.push(shown);
    }
    let json = match &approved[..] {
        [one] => one.clone(),
        many => json!(many),
    };
    context.finish(&json, lines.join("\n"));
    Ok(())
}

pub async fn submit(args: SubmitArgs, context: &Context) -> anyhow::Result<()> {
    let remote = context.remote(&args.server)?;
    let root = args.root.as_deref().map(load_root).transpose()?;
    let mut answers = Vec::new();
    let mut lines = Vec::new();
    for file in statement_files(&args.file)? {
        let envelope = read_envelope(&file)?;
        let leaf = envelope.to_bytes()?;
        let report = crate::review::report_path(&file);
        if report.exists() {
            let bytes = fsutil::read_capped(&report, airlock_client::scan::MAX_REPORT_BYTES)?;
            crate::review::upload_report(&remote, &bytes, &airlock_proto::Digest::of(&bytes)).await?;
        }
        let submitted =
            remote.submit(leaf.clone()).await.with_context(|| format!("{} refused", file.display()))?;
        if let Some(root) = &root {
            check_included(root, &remote.roots().await?, &leaf, &submitted, &context.clock)?;
        }
        lines.push(format!(
            "{}: logged at leaf {} of {}{}",
            file.display(),
            submitted.index,
            submitted.size,
            if submitted.existing { " (already logged)" } else { "" }
        ));
        answers.push(submitted);
    }
    let json = match &answers[..] {
        [one] => serde_json::to_value(one)?,
        many => serde_json::to_value(many)?,
    };
    context.finish(&json, lines.join("\n"));
    Ok(())
}

/// A statement file, or every `.cbor` file in a folder (`publish --wheels --sign-only` writes
/// one per release), in name order.
pub(crate) fn statement_files(path: &Path) -> anyhow::Result<Vec<PathBuf>> {
    if !path.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    fsutil::files_with_extension(path, "cbor")
}

pub async fn upload(args: UploadArgs, context: &Context) -> anyhow::Result<()> {
    let digests = hash_file(&args.file)?;
    let remote = context.remote(&args.server)?;
    let progress = context.bars.bytes("uploading", digests.size);
    let stored = remote.upload_blob(&args.file, &digests.blake3, progress.as_ref()).await?;
    progress.finish();
    context.finish(
        &serde_json::to_value(&stored)?,
        format!("uploaded {} ({} bytes)", stored.digest, stored.size),
    );
    Ok(())
}
