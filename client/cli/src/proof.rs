//! `airlock proof NAME==VERSION -o FILE` and `airlock proof verify FILE --root ROOT`: offline
//! proofs of one release in the C2SP tlog-proof form.

use std::path::PathBuf;

use airlock_client::fsutil;
use airlock_client::proof::{prove, verify_file, ProvenStatement};
use airlock_client::pull::Target;
use airlock_client::Remote;
use airlock_keys::TrustedRoot;
use airlock_proto::proof::MAX_PROOF_FILE_BYTES;
use airlock_proto::{Kind, Statement};
use anyhow::Context as _;
use serde_json::json;

use super::keys::MAX_STATEMENT_FILE;
use super::Context;

#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ProofArgs {
    #[command(subcommand)]
    command: Option<ProofCommand>,
    /// NAME==VERSION (or blake3:<hex>) of a logged release.
    target: Option<String>,
    /// Registry URL.
    #[arg(long, env = "AIRLOCK_SERVER")]
    server: Option<String>,
    #[arg(long, env = "AIRLOCK_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// The pinned root file; the log is verified against it before the proof is written.
    #[arg(long)]
    root: Option<PathBuf>,
    /// Where to write the proof (a .tlog-proof file).
    #[arg(short = 'o', long)]
    output: Option<PathBuf>,
    /// Restrict NAME==VERSION to one kind.
    #[arg(long)]
    kind: Option<Kind>,
}

#[derive(Debug, clap::Subcommand)]
pub enum ProofCommand {
    /// Check a proof file offline against a root: no registry is contacted.
    Verify {
        /// The proof file (written by `airlock proof`).
        file: PathBuf,
        /// The root to check the log's signature against.
        #[arg(long)]
        root: PathBuf,
    },
}

fn describe(proven: &ProvenStatement) -> String {
    match &proven.statement {
        Statement::Release(r) => format!("{} {}=={}", r.kind, r.name, r.version),
        Statement::Status(s) => format!("{:?} of {} {}=={}", s.action, s.kind, s.name, s.version),
        Statement::Channel(c) => format!("{} {}=={} in channel {}", c.kind, c.name, c.version, c.channel),
        Statement::Root(r) => format!("root version {}", r.version),
    }
}

fn report(proven: &ProvenStatement) -> serde_json::Value {
    let files = match &proven.statement {
        Statement::Release(r) => r.files.iter().map(|f| json!({"filename": f.filename, "size": f.size, "blake3": f.blake3.to_string(), "sha256": f.sha256.to_hex()})).collect(),
        _ => Vec::new(),
    };
    json!({
        "statement": describe(proven),
        "leaf_index": proven.included.index,
        "tree_size": proven.included.size,
        "root_hash": proven.included.root_hash.to_hex(),
        "files": files,
    })
}

pub async fn proof(args: ProofArgs, context: &Context) -> anyhow::Result<()> {
    if let Some(ProofCommand::Verify { file, root }) = args.command {
        return verify(&file, &root, context);
    }
    let target = args.target.context("name the release: airlock proof NAME==VERSION -o FILE")?;
    let server = args.server.context("--server is required")?;
    let root = args.root.context("--root is required")?;
    let output = args.output.context("-o FILE is required")?;
    let target = Target::parse(&target, args.kind)?;
    let remote = Remote::new(&server, args.token, &context.tls)?;
    let state = context.follow(&remote, &root).await?;
    let (proof, proven) = prove(&remote, &state, &target, &context.clock).await?;
    fsutil::write_atomic(&output, &proof.to_bytes(), 0o644)
        .with_context(|| format!("cannot write {}", output.display()))?;
    let mut json = report(&proven);
    json["file"] = json!(output);
    context.finish(
        &json,
        format!(
            "wrote {}: {} is leaf {} of {} (inclusion verified)",
            output.display(),
            describe(&proven),
            proven.included.index,
            proven.included.size
        ),
    );
    Ok(())
}

fn verify(file: &std::path::Path, root: &std::path::Path, context: &Context) -> anyhow::Result<()> {
    let root_bytes = fsutil::read_capped(root, MAX_STATEMENT_FILE)?;
    let root = TrustedRoot::pin(&root_bytes)
        .with_context(|| format!("root file {} does not verify", root.display()))?;
    let bytes = fsutil::read_capped(file, MAX_PROOF_FILE_BYTES as u64)?;
    let proven =
        verify_file(&root, &bytes).with_context(|| format!("proof {} does not verify", file.display()))?;
    context.finish(
        &report(&proven),
        format!(
            "{}: verified offline: {} is leaf {} of the log of {} leaves (root {}), signed by the log key of {}",
            file.display(),
            describe(&proven),
            proven.included.index,
            proven.included.size,
            proven.included.root_hash,
            root.origin()
        ),
    );
    Ok(())
}
