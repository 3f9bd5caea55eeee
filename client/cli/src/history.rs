//! `airlock log`: the verified log's history for people — each leaf's index, type, what it says
//! and which keys signed it, by the names the root in force gives them — or `--json` for scripts.

use std::path::PathBuf;

use airlock_client::follow;
use airlock_client::state::StateStore;
use airlock_keys::{RoleName, TrustedRoot};
use airlock_proto::{ChannelAction, Envelope, Statement};
use serde_json::json;

use super::{Context, ServerArgs};

#[derive(Debug, clap::Args)]
pub struct LogArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// The pinned root file; the log is verified against it.
    #[arg(long)]
    root: PathBuf,
}

pub async fn log(args: LogArgs, context: &Context) -> anyhow::Result<()> {
    let store = StateStore::open(&context.state_dir, &args.root)?;
    let remote = context.remote(&args.server)?;
    let state = follow::update(&remote, &store.load()?, &context.clock, &context.bars).await?;
    store.save(&state)?;
    let registry = state.log.registry();
    let (mut rows, mut lines) = (Vec::new(), Vec::new());
    for (index, leaf) in state.leaves.iter().enumerate() {
        let envelope = Envelope::from_bytes(leaf)?;
        let statement = Statement::decode(&envelope.payload_type, &envelope.payload)?;
        let index = index as u64;
        // The root in force when this leaf was logged (a root leaf: the root it makes).
        let in_force =
            registry.root_at(if matches!(statement, Statement::Root(_)) { index + 1 } else { index });
        let (kind, what, time, role) = describe(&statement);
        let signers = names(in_force, &envelope, role);
        lines.push(format!("{index:>6}  {kind:<8}  {what}  (at {time}; signed by {})", signers.join(", ")));
        rows.push(json!({ "index": index, "type": kind, "what": what, "time": time, "signed_by": signers }));
    }
    context.finish(&json!({ "size": state.log.size(), "leaves": rows }), lines.join("\n"));
    Ok(())
}

/// The leaf's type, what it says, its signed time, and the role whose signatures count.
fn describe(statement: &Statement) -> (&'static str, String, u64, RoleName) {
    match statement {
        Statement::Root(r) => {
            ("root", format!("root version {} (expires {})", r.version, r.expires), 0, RoleName::Root)
        }
        Statement::Release(r) => {
            ("release", format!("{} {}=={}", r.kind, r.name, r.version), r.published_at, RoleName::Publisher)
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
