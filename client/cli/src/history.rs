//! `airlock log`: the verified log's history for people — each leaf's index, type, what it says
//! and which keys signed it, by the names the root in force gives them — or `--json` for scripts.

use std::path::PathBuf;

use airlock_keys::{RoleName, TrustedRoot};
use airlock_proto::{ChannelAction, Envelope, Statement};
use serde_json::json;

use super::{Context, ServerArgs};

#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// The pinned root file; the log is verified against it.
    #[arg(long)]
    root: PathBuf,
    /// Where to write the report (JSON).
    #[arg(short = 'o', long)]
    output: PathBuf,
}

#[derive(Debug, clap::Args)]
pub struct LogArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// The pinned root file; the log is verified against it.
    #[arg(long)]
    root: PathBuf,
}

pub async fn log(args: LogArgs, context: &Context) -> anyhow::Result<()> {
    let remote = context.remote(&args.server)?;
    let state = context.follow(&remote, &args.root).await?;
    let registry = state.log.registry();
    let (mut rows, mut lines) = (Vec::new(), Vec::new());
    for (index, envelope, statement) in decoded(&state.leaves.all()?)? {
        let in_force = in_force(registry, index, &statement);
        let (kind, what, time, role) = describe(&statement);
        let signers = names(in_force, &envelope, role);
        lines.push(format!("{index:>6}  {kind:<8}  {what}  (at {time}; signed by {})", signers.join(", ")));
        rows.push(json!({ "index": index, "type": kind, "what": what, "time": time, "signed_by": signers }));
    }
    context.finish(&json!({ "size": state.log.size(), "leaves": rows }), lines.join("\n"));
    Ok(())
}

/// Every leaf of the verified log, decoded, with its index.
fn decoded(leaves: &[Vec<u8>]) -> anyhow::Result<Vec<(u64, Envelope, Statement)>> {
    leaves
        .iter()
        .zip(0u64..)
        .map(|(leaf, index)| {
            let envelope = Envelope::from_bytes(leaf)?;
            let statement = Statement::decode(&envelope.payload_type, &envelope.payload)?;
            Ok((index, envelope, statement))
        })
        .collect()
}

/// The root in force when leaf `index` was logged (for a root leaf, the root it makes): the one
/// whose keys' signatures count on it.
fn in_force<'a>(
    registry: &'a airlock_keys::RegistryState,
    index: u64,
    statement: &Statement,
) -> &'a TrustedRoot {
    registry.root_at(if matches!(statement, Statement::Root(_)) { index + 1 } else { index })
}

/// The leaf's type, what it says, its signed time, and the role whose signatures count.
fn describe(statement: &Statement) -> (&'static str, String, u64, RoleName) {
    match statement {
        Statement::Root(r) => {
            ("root", format!("root version {} (expires {})", r.version, r.expires), 0, RoleName::Root)
        }
        Statement::Release(r) => {
            let mut text = format!("{} {}=={}", r.kind, r.name, r.version);
            if let Some(report) = &r.metadata.scan_report {
                text.push_str(&format!(" scan report {report}"));
            }
            let acknowledged: Vec<String> =
                r.metadata.acknowledged_findings.iter().map(ToString::to_string).collect();
            if !acknowledged.is_empty() {
                text.push_str(&format!(" acknowledging {}", acknowledged.join("; ")));
            }
            ("release", text, r.published_at, RoleName::Publisher)
        }
        Statement::Status(s) => (
            "status",
            format!("{:?} {} {}=={}: {}", s.action, s.kind, s.name, s.version, s.reason).to_lowercase(),
            s.issued_at,
            RoleName::Publisher,
        ),
        Statement::Channel(c) => {
            let verb = match c.action {
                ChannelAction::Add => "add to",
                ChannelAction::Remove => "remove from",
            };
            (
                "channel",
                format!("{verb} {}: {} {}=={}", c.channel, c.kind, c.name, c.version),
                c.issued_at,
                RoleName::Publisher,
            )
        }
    }
}

/// The names (or short key ids) of the role's keys whose signatures over the leaf verify.
fn names(root: &TrustedRoot, envelope: &Envelope, role: RoleName) -> Vec<String> {
    root.signers(envelope, role)
        .into_iter()
        .map(|id| root.root().key_name(&id).map_or_else(|| id.to_string()[..16].to_owned(), str::to_owned))
        .collect()
}

/// `airlock report -o FILE`: a compliance report at the verified checkpoint — every release with
/// its approvers, every status change and channel move with its reason and signers, every root
/// version with its key sets — as JSON that depends only on the log: two runs at one checkpoint
/// on two machines write identical bytes.
pub async fn report(args: ReportArgs, context: &Context) -> anyhow::Result<()> {
    let remote = context.remote(&args.server)?;
    let state = context.follow(&remote, &args.root).await?;
    let registry = state.log.registry();
    let (mut releases, mut statuses, mut channels, mut roots) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (index, envelope, statement) in decoded(&state.leaves.all()?)? {
        let in_force = in_force(registry, index, &statement);
        match &statement {
            Statement::Root(r) => {
                let role = |role: &airlock_proto::Role| {
                    let keys: Vec<String> = role
                        .keys
                        .iter()
                        .map(|id| r.key_name(id).map_or_else(|| id.to_string(), str::to_owned))
                        .collect();
                    json!({ "keys": keys, "threshold": role.threshold })
                };
                roots.push(json!({
                    "leaf": index, "version": r.version, "expires": r.expires,
                    "root": role(&r.roles.root), "publisher": role(&r.roles.publisher), "log": role(&r.roles.log),
                    "signed_by": names(in_force, &envelope, RoleName::Root),
                }));
            }
            Statement::Release(r) => releases.push(json!({
                "leaf": index, "kind": r.kind, "name": r.name, "version": r.version,
                "published_at": r.published_at,
                "files": r.files.iter().map(|f| json!({ "filename": f.filename, "size": f.size, "blake3": f.blake3.to_string() })).collect::<Vec<_>>(),
                "approved_by": names(in_force, &envelope, RoleName::Publisher),
            })),
            Statement::Status(s) => statuses.push(json!({
                "leaf": index, "action": s.action, "kind": s.kind, "name": s.name, "version": s.version,
                "reason": s.reason, "issued_at": s.issued_at, "signed_by": names(in_force, &envelope, RoleName::Publisher),
            })),
            Statement::Channel(c) => channels.push(json!({
                "leaf": index, "action": c.action, "channel": c.channel, "kind": c.kind, "name": c.name,
                "version": c.version, "issued_at": c.issued_at, "signed_by": names(in_force, &envelope, RoleName::Publisher),
            })),
        }
    }
    let checkpoint = state.log.checkpoint_payload();
    let report = json!({
        "origin": registry.root().origin(),
        "checkpoint": checkpoint.map(|c| json!({ "size": c.size, "root_hash": c.root_hash.to_string(), "issued_at": c.issued_at })),
        "roots": roots, "releases": releases, "statuses": statuses, "channel_moves": channels,
    });
    let mut bytes = serde_json::to_vec_pretty(&report)?;
    bytes.push(b'\n');
    airlock_client::fsutil::write_atomic(&args.output, &bytes, 0o644)?;
    context.finish(
        &json!({ "report": args.output, "size": state.log.size() }),
        format!("wrote the report at log size {} to {}", state.log.size(), args.output.display()),
    );
    Ok(())
}
