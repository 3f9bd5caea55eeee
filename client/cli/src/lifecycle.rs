//! `airlock yank`, `unyank`, `revoke`, `promote`, `demote`: status and channel statements about a
//! logged release. Each follows the registry's verified log first, to find the release and the
//! leaf of the latest statement the new one supersedes, then signs it as a publisher and submits
//! it (or writes it with `--sign-only`, for `approve` and `submit`).

use std::path::PathBuf;

use airlock_client::pull::{resolve, Target};
use airlock_client::statements;
use airlock_keys::RegistryState;
use airlock_proto::{ChannelAction, ChannelName, Envelope, Kind, StatusAction};
use serde_json::json;

use super::publish::{load_root, sign_as_publisher, submit_verified, write_for_approval};
use super::{Context, ServerArgs};

#[derive(Debug, clap::Args)]
pub struct StatementArgs {
    /// NAME==VERSION of a logged release.
    target: String,
    /// The kind, when a name exists as both a wheel and a node pack.
    #[arg(long)]
    kind: Option<Kind>,
    /// Your publisher key.
    #[arg(long)]
    key: PathBuf,
    /// The pinned root file; the log is verified against it.
    #[arg(long)]
    root: PathBuf,
    #[command(flatten)]
    server: ServerArgs,
    /// Sign and write the statement to -o instead of submitting it (for `airlock approve` by
    /// other publishers, then `airlock submit`).
    #[arg(long, requires = "output")]
    sign_only: bool,
    #[arg(short = 'o', long)]
    output: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    #[command(flatten)]
    statement: StatementArgs,
    /// Why (shown to everyone who pulls or audits the release).
    #[arg(long)]
    reason: String,
}

#[derive(Debug, clap::Args)]
pub struct ChannelArgs {
    #[command(flatten)]
    statement: StatementArgs,
    /// The channel, e.g. prod.
    #[arg(long)]
    channel: ChannelName,
}

/// What a lifecycle command says about the release.
enum Change {
    Status(StatusAction, String),
    Channel(ChannelAction, ChannelName),
}

pub async fn status(action: StatusAction, args: StatusArgs, context: &Context) -> anyhow::Result<()> {
    run(args.statement, Change::Status(action, args.reason), context).await
}

pub async fn channel(action: ChannelAction, args: ChannelArgs, context: &Context) -> anyhow::Result<()> {
    run(args.statement, Change::Channel(action, args.channel), context).await
}

async fn run(args: StatementArgs, change: Change, context: &Context) -> anyhow::Result<()> {
    let root = load_root(&args.root)?;
    let target = Target::parse(&args.target, args.kind)?;
    anyhow::ensure!(matches!(target, Target::Release { .. }), "{}: expected NAME==VERSION", args.target);
    // The verified log: where the release is, and what the new statement supersedes.
    let remote = context.remote(&args.server)?;
    let state = context.follow(&remote, &args.root).await?;
    let registry: &RegistryState = state.log.registry();
    let (record, _) = resolve(registry, &target, None)?;
    let r = &record.release;
    let (kind, name, version) = (r.kind, r.name.clone(), r.version.clone());
    let now = context.clock.now();
    let (mut envelope, what): (Envelope, String) = match &change {
        Change::Status(action, reason) => {
            let supersedes = registry.latest_status_leaf(kind, &name, &version);
            let envelope = statements::status(
                kind,
                name.clone(),
                version.clone(),
                *action,
                reason.clone(),
                now,
                supersedes,
            )?;
            (envelope, format!("{} {kind} {name}=={version}", past(*action)))
        }
        Change::Channel(action, channel) => {
            let supersedes = registry.latest_channel_leaf(channel, kind, &name);
            let envelope = statements::channel(
                channel.clone(),
                *action,
                kind,
                name.clone(),
                version.clone(),
                now,
                supersedes,
            )?;
            let verb = match action {
                ChannelAction::Add => "added to",
                ChannelAction::Remove => "removed from",
            };
            (envelope, format!("{kind} {name}=={version} {verb} channel {channel}"))
        }
    };
    // The publisher role of the root in force in the verified log (a later root than the pinned
    // one may have replaced the publishers).
    let in_force = registry.root();
    sign_as_publisher(&mut envelope, &args.key, in_force, context)?;
    if args.sign_only {
        return write_for_approval(args.output, &envelope, in_force, json!({}), context);
    }
    let submitted = submit_verified(&remote, &envelope, &root, context).await?;
    context.finish(
        &json!({ "kind": kind, "name": name, "version": version, "leaf_index": submitted.index, "tree_size": submitted.size }),
        format!("{what} at leaf {} of {}; inclusion proof verified", submitted.index, submitted.size),
    );
    Ok(())
}

fn past(action: StatusAction) -> &'static str {
    match action {
        StatusAction::Yank => "yanked",
        StatusAction::Unyank => "unyanked",
        StatusAction::Revoke => "revoked",
    }
}
