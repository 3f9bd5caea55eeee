//! `airlock`: the airlock client CLI, a thin layer over the `airlock-client` library. Each
//! subcommand lives in a file of its own; this file holds the argument tree, the output
//! conventions and the exit codes. The CLI is the one place that reads the system clock
//! (`Clock::system()`) and draws progress bars.
//!
//! Exit codes: 0 success; 1 error (network, files, the server refused); 2 invalid usage;
//! 3 verification failed (a signature, threshold, digest, size or freshness check);
//! 4 SECURITY ERROR (the registry served a rollback, a fork or an inconsistent log);
//! 5 not found (the name or digest is not in the verified log).

mod audit;
mod bundle;
mod comfy;
mod comfy_lock;
mod doctor;
mod evidence;
mod history;
mod ingest;
mod install;
mod keys;
mod lifecycle;
mod lock;
mod mirror;
mod pack;
mod progress;
mod proof;
mod publish;
mod pull;
mod restore;
mod review;
mod root_create;
mod scan;
mod wheelhouse;
mod wheels;

use std::path::PathBuf;
use std::process::ExitCode;

use airlock_client::follow::FollowError;
use airlock_client::pull::{NotFound, VerifyError};
use airlock_client::{Remote, TlsOptions};
use airlock_proto::Clock;
use clap::{Parser, Subcommand};

use crate::progress::Bars;

/// Exit code: success.
pub const EXIT_OK: u8 = 0;
/// Exit code: an operational error.
pub const EXIT_ERROR: u8 = 1;
/// Exit code: invalid usage.
pub const EXIT_USAGE: u8 = 2;
/// Exit code: a verification check failed.
pub const EXIT_VERIFY: u8 = 3;
/// Exit code: evidence that the registry misbehaved.
pub const EXIT_SECURITY: u8 = 4;
/// Exit code: not in the log.
pub const EXIT_NOT_FOUND: u8 = 5;
/// Exit code: the registry is behind what this client already verified (a lagging mirror).
pub const EXIT_BEHIND: u8 = 6;

#[derive(Debug, Parser)]
#[command(
    name = "airlock",
    version,
    about = "airlock client: sign, publish, pull and verify packages for air-gapped ComfyUI sites"
)]
struct Cli {
    /// Print machine-readable JSON on stdout.
    #[arg(long, global = true)]
    json: bool,
    /// Where verified log state is kept (default $AIRLOCK_HOME or ~/.airlock).
    #[arg(long, global = true, env = "AIRLOCK_HOME")]
    state_dir: Option<PathBuf>,
    /// Extra CA certificate (PEM) to trust for https:// servers.
    #[arg(long, global = true)]
    ca_cert: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

/// Server address and token, shared by commands that talk to a registry.
#[derive(Debug, Clone, clap::Args)]
struct ServerArgs {
    /// Registry URL, e.g. http://127.0.0.1:8470.
    #[arg(long, env = "AIRLOCK_SERVER")]
    server: String,
    /// Bearer token (needed for writes).
    #[arg(long, env = "AIRLOCK_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Signing keys.
    Key {
        #[command(subcommand)]
        command: keys::KeyCommand,
    },
    /// Root ceremonies: create and sign.
    Root {
        #[command(subcommand)]
        command: keys::RootCommand,
    },
    /// Merge signatures collected separately over the same statement.
    Merge(keys::MergeArgs),
    /// Show a statement file: type, payload digest, signatures, content.
    Show(keys::ShowArgs),
    /// Build the deterministic pack (zip) of a ComfyUI node checkout or release archive.
    Pack(pack::PackArgs),
    /// Scan a node pack or a wheel: archive attacks, Python code, install hooks, requirements
    /// (exit 3 on a high finding).
    Scan(scan::ScanArgs),
    /// Intake of a node catalog: for each entry the deterministic pack, its scan report and the
    /// release statement for approval, with a summary table.
    Ingest(ingest::IngestArgs),
    /// Upload a file, build and sign its release, and submit it (or write it with --sign-only).
    Publish(publish::PublishArgs),
    /// Add your signature to a statement file.
    Approve(publish::ApproveArgs),
    /// Submit a signed statement file to the registry.
    Submit(publish::SubmitArgs),
    /// Upload a file's bytes to the registry (no statement).
    Upload(publish::UploadArgs),
    /// Yank a logged release: pulls by name skip it; an exact pull still works, with a warning.
    Yank(lifecycle::StatusArgs),
    /// Undo a yank.
    Unyank(lifecycle::StatusArgs),
    /// Revoke a logged release: refused by every pull, even by digest. Final.
    Revoke(lifecycle::StatusArgs),
    /// Add a logged release to a channel (several versions of one name may be in it).
    Promote(lifecycle::ChannelArgs),
    /// Remove a release from a channel.
    Demote(lifecycle::ChannelArgs),
    /// Fetch, verify and write a logged release file.
    Pull(pull::PullArgs),
    /// Resolve Python requirements against the verified log and write a hash-pinned lock
    /// (pip/uv --require-hashes requirements, or PEP 751 pylock.toml).
    Lock(lock::LockArgs),
    /// Install a node pack into a ComfyUI tree, verified against the log, with its requirements
    /// from the mirror's index, hashes pinned.
    Install(install::InstallArgs),
    /// Reproduce a ComfyUI tree and its wheels exactly from a comfy.lock, from the mirror.
    Restore(restore::RestoreArgs),
    /// Check a ComfyUI tree against the log: changed files, yanked or revoked packs and wheels,
    /// unmet requirements, anything not from the mirror (exit 3 when something is wrong).
    Doctor(doctor::DoctorArgs),
    /// List the files at a path whose releases are yanked or revoked (exit 3 on a revoked one).
    Audit(audit::AuditArgs),
    /// Evidence of a registry's misbehaviour (written on a SECURITY ERROR): verify it offline.
    Evidence {
        #[command(subcommand)]
        command: evidence::EvidenceCommand,
    },
    /// The verified log's history: each leaf, what it says, and who signed it (by key names).
    Log(history::LogArgs),
    /// A compliance report (JSON) at the verified checkpoint: releases with approvers, status
    /// changes, channel moves and roots; identical bytes for one checkpoint anywhere.
    Report(history::ReportArgs),
    /// Check a local file against a digest.
    Verify(pull::VerifyArgs),
    /// Write a bundle (log segment, checkpoint and blobs) to carry across the air gap.
    Export(bundle::ExportArgs),
    /// Import a bundle into a running mirror.
    Import(bundle::ImportArgs),
    /// Write an offline proof (C2SP tlog-proof) of a logged release, or verify one offline.
    Proof(proof::ProofArgs),
    /// Offline wheelhouses: the verified wheels in a folder for pip/uv --find-links.
    Wheelhouse {
        #[command(subcommand)]
        command: wheelhouse::WheelhouseCommand,
    },
    /// Mirrors: sync now, show lag.
    Mirror {
        #[command(subcommand)]
        command: mirror::MirrorCommand,
    },
}

/// Output settings, the clock and progress shared by all commands.
#[derive(Debug, Clone)]
struct Context {
    json: bool,
    state_dir: PathBuf,
    tls: TlsOptions,
    clock: Clock,
    bars: Bars,
}

impl Context {
    fn remote(&self, server: &ServerArgs) -> anyhow::Result<Remote> {
        Remote::new(&server.server, server.token.clone(), &self.tls)
    }

    /// Brings the saved log for `root` up to `remote`'s newest checkpoint, verified, and saves it.
    async fn follow(
        &self,
        remote: &Remote,
        root: &std::path::Path,
    ) -> anyhow::Result<airlock_client::state::ClientLog> {
        let store = airlock_client::state::StateStore::open(&self.state_dir, root)?;
        let state =
            airlock_client::follow::update(remote, &self.load(&store)?, &self.clock, &self.bars).await?;
        store.save(&state)?;
        Ok(state)
    }

    /// Loads the saved log, saying so when its fold was refused and rebuilt from the leaves.
    fn load(
        &self,
        store: &airlock_client::state::StateStore,
    ) -> anyhow::Result<airlock_client::state::ClientLog> {
        let state = store.load()?;
        if let Some(why) = &state.rebuilt {
            eprintln!("note: {why}; the state was rebuilt from the saved leaves, every leaf verified again");
        }
        Ok(state)
    }

    /// Prints a human line to stderr unless JSON output was asked for (then stdout stays JSON).
    fn say(&self, line: impl AsRef<str>) {
        if !self.json {
            eprintln!("{}", line.as_ref());
        }
    }

    /// Prints the result: JSON on stdout, or the human text.
    fn finish(&self, json: &serde_json::Value, human: impl AsRef<str>) {
        if self.json {
            print_stdout(&serde_json::to_string_pretty(json).unwrap_or_default());
        } else if !human.as_ref().is_empty() {
            print_stdout(human.as_ref());
        }
    }
}

/// Prints a line to stdout. A closed pipe (`airlock show X | head`) is not an error: the reader
/// has what it wanted, so the process exits quietly with success.
fn print_stdout(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = writeln!(out, "{text}").and_then(|()| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(i32::from(EXIT_OK));
        }
        eprintln!("error: cannot write to stdout: {e}");
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { EXIT_USAGE } else { EXIT_OK });
        }
    };
    let context = Context {
        json: cli.json,
        state_dir: cli.state_dir.clone().unwrap_or_else(airlock_client::state::default_state_dir),
        tls: TlsOptions { ca_cert: cli.ca_cert.clone() },
        clock: Clock::system(),
        bars: Bars::new(cli.json),
    };
    // One worker: network reads (the next leaf page, a blob) go on while this thread verifies.
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start runtime: {e}");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    match runtime.block_on(run(cli.command, &context)) {
        Ok(()) => ExitCode::from(EXIT_OK),
        Err(error) => {
            let code = exit_code(&error);
            eprintln!("error: {error:#}");
            if let Some(path) = evidence::write_if_any(&error, &context.state_dir, context.clock.now()) {
                eprintln!(
                    "evidence written to {} (check it anywhere with `airlock evidence verify {} --root ROOT`)",
                    path.display(),
                    path.display()
                );
            }
            // Doctor's report is already on stdout: one JSON document for monitoring.
            if context.json && !error.is::<doctor::Unhealthy>() {
                print_stdout(
                    &serde_json::json!({ "error": format!("{error:#}"), "exit_code": code }).to_string(),
                );
            }
            ExitCode::from(code)
        }
    }
}

async fn run(command: Command, context: &Context) -> anyhow::Result<()> {
    match command {
        Command::Key { command } => keys::key(command, context),
        Command::Root { command } => keys::root(command, context),
        Command::Merge(args) => keys::merge(args, context),
        Command::Show(args) => keys::show(args, context),
        Command::Publish(args) => publish::publish(args, context).await,
        Command::Approve(args) => publish::approve(args, context),
        Command::Submit(args) => publish::submit(args, context).await,
        Command::Upload(args) => publish::upload(args, context).await,
        Command::Yank(args) => lifecycle::status(airlock_proto::StatusAction::Yank, args, context).await,
        Command::Unyank(args) => lifecycle::status(airlock_proto::StatusAction::Unyank, args, context).await,
        Command::Revoke(args) => lifecycle::status(airlock_proto::StatusAction::Revoke, args, context).await,
        Command::Promote(args) => lifecycle::channel(airlock_proto::ChannelAction::Add, args, context).await,
        Command::Demote(args) => {
            lifecycle::channel(airlock_proto::ChannelAction::Remove, args, context).await
        }
        Command::Pull(args) => pull::pull(args, context).await,
        Command::Verify(args) => pull::verify(args, context),
        Command::Audit(args) => audit::audit(args, context).await,
        Command::Log(args) => history::log(args, context).await,
        Command::Report(args) => history::report(args, context).await,
        Command::Evidence { command } => evidence::evidence(command, context),
        Command::Export(args) => bundle::export(args, context).await,
        Command::Lock(args) => lock::lock(args, context).await,
        Command::Install(args) => install::install(args, context).await,
        Command::Restore(args) => restore::restore(args, context).await,
        Command::Doctor(args) => doctor::doctor(args, context).await,
        Command::Pack(args) => pack::pack(args, context),
        Command::Scan(args) => scan::scan(args, context).await,
        Command::Ingest(args) => ingest::ingest(args, context).await,
        Command::Import(args) => bundle::import(args, context).await,
        Command::Proof(args) => proof::proof(args, context).await,
        Command::Mirror { command } => mirror::mirror(command, context).await,
        Command::Wheelhouse { command } => wheelhouse::wheelhouse(command, context).await,
    }
}

/// Maps an error to the documented exit code by what caused it.
fn exit_code(error: &anyhow::Error) -> u8 {
    let of_log = |e: &airlock_keys::LogError| match e {
        airlock_keys::LogError::Behind { .. } => EXIT_BEHIND,
        e if e.is_security() => EXIT_SECURITY,
        _ => EXIT_VERIFY,
    };
    for cause in error.chain() {
        if let Some(e) = cause.downcast_ref::<airlock_keys::LogError>() {
            return of_log(e);
        }
        match cause.downcast_ref::<FollowError>() {
            Some(FollowError::Log(e) | FollowError::Security { error: e, .. }) => return of_log(e),
            Some(FollowError::Extension { .. }) => return EXIT_VERIFY,
            _ => {}
        }
        if cause.is::<VerifyError>()
            || cause.is::<airlock_proto::proof::ProofFileError>()
            || cause.is::<airlock_proto::NoteError>()
            || cause.is::<airlock_keys::TrustError>()
            || cause.is::<airlock_keys::ThresholdError>()
            || cause.is::<scan::HighFindings>()
            || cause.is::<doctor::Unhealthy>()
        {
            return EXIT_VERIFY;
        }
        if cause.is::<NotFound>() {
            return EXIT_NOT_FOUND;
        }
    }
    EXIT_ERROR
}
