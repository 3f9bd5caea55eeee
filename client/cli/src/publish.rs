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
    /// The file to publish (a wheel or a node-pack archive).
    file: PathBuf,
    #[arg(long)]
    kind: Kind,
    #[arg(long)]
    name: String,
    #[arg(long)]
    version: String,
    /// Your publisher secret key.
    #[arg(long)]
    key: PathBuf,
    /// The root file: the key must be one of its publisher keys.
    #[arg(long)]
    root: PathBuf,
    /// Registry URL (required unless --sign-only).
    #[arg(long, env = "AIRLOCK_SERVER")]
    server: Option<String>,
    #[arg(long, env = "AIRLOCK_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Write the signed statement instead of submitting it (for a threshold above 1).
    #[arg(long, requires = "output")]
    sign_only: bool,
    #[arg(short = 'o', long)]
    output: Option<PathBuf>,
    #[arg(long)]
    summary: Option<String>,
    #[arg(long)]
    requires_python: Option<String>,
    /// A dependency requirement line (repeat).
    #[arg(long = "dependency")]
    dependencies: Vec<String>,
    #[arg(long)]
    source_url: Option<String>,
    #[arg(long)]
    source_commit: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct ApproveArgs {
    /// The statement file; your signature is added in place unless -o is given.
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
    let root = load_root(&args.root)?;
    let name = PackageName::normalize(args.kind, &args.name)?;
    let version = Version::new(&args.version)?;
    let filename = file_name_of(&args.file)?;
    let digests = hash_file(&args.file)?;
    let remote = match &args.server {
        Some(server) => Some(Remote::new(server, args.token.clone(), &context.tls)?),
        None if args.sign_only => None,
        None => anyhow::bail!("--server is required unless --sign-only is given"),
    };
    if let Some(remote) = &remote {
        let progress = context.bars.bytes("uploading", digests.size);
        remote.upload_blob(&args.file, &digests.blake3, progress.as_ref()).await?;
        progress.finish();
        context.say(format!("uploaded {} ({} bytes, {})", filename, digests.size, digests.blake3));
    }
    let metadata = Metadata {
        summary: args.summary,
        requires_python: args.requires_python,
        dependencies: args.dependencies,
        comfyui: None,
        source_url: args.source_url,
        source_commit: args.source_commit,
        scan_report: None,
    };
    let mut envelope = statements::release(
        args.kind,
        name.clone(),
        version.clone(),
        vec![statements::file_entry(filename, digests)],
        metadata,
        context.clock.now(),
    )?;
    // Signed for the root in force at the registry (reached from the pinned root through its
    // verified root chain), the pinned root itself when signing offline.
    let in_force = match &remote {
        Some(remote) => {
            root.walk(&remote.roots().await?).context("the registry's root chain does not verify")?
        }
        None => root.clone(),
    };
    sign_as_publisher(&mut envelope, &args.key, &in_force, context)?;
    if args.sign_only {
        let extra = json!({ "blake3": digests.blake3.to_string() });
        return write_for_approval(args.output, &envelope, &in_force, extra, context);
    }
    let remote = remote.context("--server is required")?;
    let submitted = submit_verified(&remote, &envelope, &root, context).await?;
    context.finish(
        &json!({
            "kind": args.kind, "name": name, "version": version,
            "blake3": digests.blake3.to_string(), "sha256": digests.sha256.to_hex(), "size": digests.size,
            "leaf_index": submitted.index, "tree_size": submitted.size, "existing": submitted.existing,
        }),
        format!(
            "published {} {name}=={version} ({}) at leaf {} of {}; inclusion proof verified",
            args.kind, digests.blake3, submitted.index, submitted.size
        ),
    );
    Ok(())
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
    let mut envelope = read_envelope(&args.file)?;
    sign_as_publisher(&mut envelope, &args.key, &root, context)?;
    let output = args.output.unwrap_or(args.file);
    write_envelope(&output, &envelope)?;
    let note = threshold_note(&envelope, &root);
    context.finish(
        &json!({ "statement": output, "signatures": envelope.signatures.len() }),
        format!("wrote {} ({note})", output.display()),
    );
    Ok(())
}

pub async fn submit(args: SubmitArgs, context: &Context) -> anyhow::Result<()> {
    let envelope = read_envelope(&args.file)?;
    let leaf = envelope.to_bytes()?;
    let remote = context.remote(&args.server)?;
    let submitted = remote.submit(leaf.clone()).await?;
    if let Some(root) = &args.root {
        let root = load_root(root)?;
        check_included(&root, &remote.roots().await?, &leaf, &submitted, &context.clock)?;
    }
    context.finish(
        &serde_json::to_value(&submitted)?,
        format!(
            "logged at leaf {} of {}{}",
            submitted.index,
            submitted.size,
            if submitted.existing { " (already logged)" } else { "" }
        ),
    );
    Ok(())
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
