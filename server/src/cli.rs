//! The `airlockd` command line: `init`, `serve`, `import`, `verify-store`, `witness`, `key rotate`,
//! `token create|list|revoke`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::auth::{create_token, Scope};
use crate::config::{Config, FileConfig, ReadAccess, TlsFiles};
use crate::registry::{Registry, LOG_KEY_FILE, LOG_PUB_FILE};
use crate::store::Store;

/// Default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8470";

#[derive(Debug, Parser)]
#[command(
    name = "airlockd",
    version,
    about = "airlock registry server: signed, content-addressed packages for air-gapped ComfyUI sites"
)]
struct Cli {
    /// How the log is written: text lines, or JSON objects one a line (with each request's id).
    #[arg(long, global = true, value_enum, default_value = "text")]
    log_format: crate::logging::LogFormat,
    /// Write the audit log (every write asked for, accepted or refused) to this file as JSON
    /// lines, apart from the main log.
    #[arg(long, global = true, value_name = "FILE")]
    audit_log: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a data directory and the server's log key; prints the log public key. With
    /// --s3-endpoint and --s3-bucket its blobs go to that bucket (written to
    /// DATA/blob-store.toml).
    Init {
        #[arg(long)]
        data: PathBuf,
        #[command(flatten)]
        bucket: BucketArgs,
    },
    /// Move a stopped data directory's blobs to an S3-compatible bucket: every blob is copied,
    /// checked against its record, read back and checked again before the directory switches
    /// to the bucket. Safe to run again after an interruption. Prints a JSON report.
    MigrateStore {
        #[arg(long)]
        data: PathBuf,
        #[command(flatten)]
        bucket: BucketArgs,
    },
    /// Serve a data directory.
    Serve(Box<ServeArgs>),
    /// Import a bundle into a mirror's data directory (run while the server is stopped).
    Import {
        #[arg(long)]
        data: PathBuf,
        /// Root file, needed when the data directory's log is still empty.
        #[arg(long)]
        root: Option<PathBuf>,
        /// The bundle file (made by `airlock export`).
        file: PathBuf,
        /// Where to write the import state for the next `airlock export --since`
        /// (default DATA/imported-state.json).
        #[arg(long)]
        state_out: Option<PathBuf>,
    },
    /// Check every blob against its digest and the log against its checkpoint: a stopped data
    /// directory (--data), or a running server without repairing (--server; see `scrub`).
    VerifyStore {
        #[command(flatten)]
        target: AdminTarget,
    },
    /// Check every blob and the log on a running server, at an optional rate; with --repair a
    /// mirror fetches damaged or missing blobs again from its upstream. Prints the report (JSON);
    /// exits 1 while problems remain.
    Scrub {
        #[command(flatten)]
        target: AdminTarget,
        /// Fetch damaged or missing blobs again from the upstream.
        #[arg(long)]
        repair: bool,
        /// Read at most this many MiB of blobs a second.
        #[arg(long, value_name = "MIB")]
        rate: Option<u64>,
        /// With --repair: take damaged or missing blobs from this bundle first (a path the
        /// server can read; each blob is checked against the store's own record).
        #[arg(long, value_name = "FILE", requires = "repair")]
        bundle: Option<PathBuf>,
    },
    /// Remove blobs no logged release references: uploads older than the grace period, and
    /// bytes a crash left without a record. Prints what went (JSON).
    Gc {
        #[command(flatten)]
        target: AdminTarget,
        /// List what would be removed and the bytes freed; remove nothing.
        #[arg(long)]
        dry_run: bool,
        /// Keep unreferenced uploads younger than this, such as 7d or 0s (default: 7d on a data
        /// directory, the server's --gc-grace through --server).
        #[arg(long, value_name = "DURATION", value_parser = airlock_proto::clock::parse_duration)]
        grace: Option<u64>,
    },
    /// Remove the blobs of a revoked release (refused for one that is not revoked; a file that
    /// a release which is not revoked also holds is kept). Prints what went (JSON).
    Purge {
        #[command(flatten)]
        target: AdminTarget,
        /// The release, as NAME==VERSION.
        release: String,
        /// wheel or node: needed only when both kinds have this name and version.
        #[arg(long)]
        kind: Option<airlock_proto::Kind>,
        /// With --data: the data directory is a mirror's.
        #[arg(long, requires = "data")]
        mirror: bool,
    },
    /// Make a running server read its TLS certificate and key again (new connections use them;
    /// open ones keep theirs). Tokens take effect without it.
    Reload {
        #[command(flatten)]
        target: AdminTarget,
    },
    /// Run a witness: cosign checkpoints of the logs it witnesses, each only if it extends the
    /// last one it cosigned (c2sp.org/tlog-witness `POST /add-checkpoint`).
    Witness {
        /// Directory for the witness's state and the evidence it keeps.
        #[arg(long)]
        data: PathBuf,
        /// The witness's secret key file.
        #[arg(long)]
        key: PathBuf,
        /// The witness's name, as the root lists it.
        #[arg(long)]
        name: String,
        /// A log to witness, as its verifier key `origin+id+key` (repeat).
        #[arg(long = "log", required = true)]
        logs: Vec<String>,
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8480")]
        listen: String,
    },
    /// The log key: rotate it.
    Key {
        #[command(subcommand)]
        command: KeyCommand,
    },
    /// Manage bearer tokens: on a stopped server's data directory, or through a running server.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// Data directory (made by `airlockd init`).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Address to listen on.
    #[arg(long)]
    listen: Option<String>,
    /// Root file; becomes leaf 0 when the log is empty.
    #[arg(long)]
    root: Option<PathBuf>,
    /// TLS certificate chain (PEM). Plain HTTP without it.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Require a `read` token for reads.
    #[arg(long)]
    require_read_token: bool,
    /// Mirror mode: follow this upstream registry (verifying everything against --root).
    #[arg(long)]
    upstream: Option<String>,
    /// Mirrors: a file holding the bearer token to present to the upstream (one that requires a
    /// read token). A file, so that the token is never on a command line.
    #[arg(long, value_name = "FILE", requires = "upstream")]
    upstream_token_file: Option<PathBuf>,
    /// Mirrors: an extra CA certificate (PEM) to trust for an https:// upstream.
    #[arg(long, value_name = "PEM", requires = "upstream")]
    upstream_ca_cert: Option<PathBuf>,
    /// Mirror mode without a network upstream: fed by `airlock import` of bundles.
    #[arg(long)]
    mirror: bool,
    /// Partial mirror: carry only releases of this kind (repeat).
    #[arg(long = "carry-kind")]
    carry_kinds: Vec<airlock_proto::Kind>,
    /// Partial mirror: carry only names matching this pattern, `*` as wildcard (repeat).
    #[arg(long = "carry-name")]
    carry_names: Vec<String>,
    /// Partial mirror: carry only releases in this channel (repeat).
    #[arg(long = "carry-channel")]
    carry_channels: Vec<airlock_proto::ChannelName>,
    /// UNSAFE break-glass (mirrors): keep serving the upstream's checkpoint this many seconds
    /// after it expires, declaring the extension to clients. Freeze protection is off meanwhile.
    #[arg(long, value_name = "SECS")]
    unsafe_serve_expired_checkpoint_for: Option<u64>,
    /// A witness to send each new checkpoint to for a cosignature, by base URL (repeat).
    #[arg(long = "witness-url")]
    witness_urls: Vec<String>,
    /// Mirrors: act as this site's witness under this name, cosigning each checkpoint verified.
    #[arg(long, requires = "witness_key")]
    witness_name: Option<String>,
    /// Mirrors: the witness's secret key file.
    #[arg(long, requires = "witness_name")]
    witness_key: Option<PathBuf>,
    /// Seconds between a mirror's syncs.
    #[arg(long)]
    sync_interval: Option<u64>,
    /// Seconds a signed checkpoint stays valid.
    #[arg(long)]
    checkpoint_validity: Option<u64>,
    /// RocksDB's memory in MiB: its block cache, which its memtables are charged to (default 64).
    #[arg(long, value_name = "MIB")]
    db_memory_mib: Option<u64>,
    /// Warn (healthz, mirror status, log) when the checkpoint a bundle-fed mirror serves expires
    /// within this time, such as 7d (the default).
    #[arg(long, value_name = "DURATION", value_parser = airlock_proto::clock::parse_duration)]
    freshness_margin: Option<u64>,
    /// The URL clients reach this server at, such as https://mirror.example.internal (for the
    /// absolute download URLs of the Comfy Registry API; default: the request's Host header).
    #[arg(long, value_name = "URL")]
    public_url: Option<String>,
    /// Garbage collection keeps unreferenced uploads younger than this, such as 7d (the default).
    #[arg(long, value_name = "DURATION", value_parser = airlock_proto::clock::parse_duration)]
    gc_grace: Option<u64>,
    /// Also answer the Comfy Registry API at the root (/nodes, /versions), for a site that maps
    /// the registry's host name (api.comfy.org) to this server.
    #[arg(long)]
    comfy_at_root: bool,
    /// Log one line a request (target airlock::access): method, path, status, time, request id.
    #[arg(long)]
    access_log: bool,
    /// Scrub every blob and the log this often, such as 1d (default never); a mirror with an
    /// upstream also repairs what it finds.
    #[arg(long, value_name = "DURATION", value_parser = airlock_proto::clock::parse_duration)]
    scrub_interval: Option<u64>,
    /// How fast a scheduled scrub reads blobs, MiB a second (default unthrottled).
    #[arg(long, value_name = "MIB")]
    scrub_rate: Option<u64>,
    /// With the blobs in a bucket: answer blob GETs with a redirect to the object store, a URL
    /// signed for this long, such as 5m (for clients that can reach the store; they check the
    /// bytes as always).
    #[arg(long, value_name = "DURATION", value_parser = airlock_proto::clock::parse_duration)]
    blob_redirect: Option<u64>,
    /// Send blob bodies over 64 KiB on plain HTTP/1 from file to socket with sendfile, without a
    /// copy through airlockd (filesystem blobs only). Faster where the kernel's sendfile is: the
    /// transfer benchmark shows which (docs/operations.md "Benchmarks").
    #[arg(long)]
    zero_copy: bool,
    /// TOML config file; flags override it.
    #[arg(long)]
    config: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum KeyCommand {
    /// Write the next log key (log.next.key, log.next.pub) beside the current one. The server,
    /// running or not, switches to it at the root leaf whose log role lists it in place of the
    /// current key; checkpoints signed by the retired key after that leaf are refused everywhere.
    Rotate {
        #[arg(long)]
        data: PathBuf,
    },
}

/// An S3-compatible bucket for a data directory's blobs (`crate::store::blob_store`).
#[derive(Debug, clap::Args)]
struct BucketArgs {
    /// Keep blobs in the S3-compatible store at this URL, such as http://127.0.0.1:8333.
    #[arg(long, value_name = "URL", requires = "s3_bucket")]
    s3_endpoint: Option<String>,
    /// The bucket (it must exist).
    #[arg(long, value_name = "NAME", requires = "s3_endpoint")]
    s3_bucket: Option<String>,
    #[arg(long, value_name = "REGION", default_value = "us-east-1")]
    s3_region: String,
    /// Start every key with this, ending in / (several registries in one bucket).
    #[arg(long, value_name = "PREFIX", default_value = "")]
    s3_prefix: String,
    /// Address the bucket as bucket.endpoint (virtual-hosted style) instead of endpoint/bucket.
    #[arg(long)]
    s3_virtual_hosted: bool,
    /// A file holding the access key id and the secret access key, one a line, copied into
    /// blob-store.toml (mode 0600). Without it, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are
    /// read whenever the directory is opened.
    #[arg(long, value_name = "FILE")]
    s3_credentials_file: Option<PathBuf>,
}

impl BucketArgs {
    /// The bucket named, if any.
    fn settings(&self) -> anyhow::Result<Option<crate::store::blob_store::S3Settings>> {
        let (Some(endpoint), Some(bucket)) = (&self.s3_endpoint, &self.s3_bucket) else { return Ok(None) };
        let mut settings = crate::store::blob_store::S3Settings::new(endpoint, bucket);
        settings.region = self.s3_region.clone();
        settings.prefix = self.s3_prefix.clone();
        settings.path_style = !self.s3_virtual_hosted;
        if let Some(path) = &self.s3_credentials_file {
            let bytes = airlock_client::fsutil::read_capped(path, 4096)?;
            let text =
                String::from_utf8(bytes).with_context(|| format!("{} is not UTF-8", path.display()))?;
            let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
            let (Some(id), Some(secret), None) = (lines.next(), lines.next(), lines.next()) else {
                anyhow::bail!("{} must hold two lines: the access key id, then the secret", path.display());
            };
            settings.access_key_id = Some(id.to_owned());
            settings.secret_access_key = Some(secret.to_owned());
        }
        settings.check()?;
        Ok(Some(settings))
    }
}

/// Where admin commands act: a stopped server's data directory, or a running server.
#[derive(Debug, clap::Args)]
struct AdminTarget {
    /// The data directory of a stopped server (RocksDB admits one process).
    #[arg(long, conflicts_with = "server", required_unless_present = "server")]
    data: Option<PathBuf>,
    /// A running server's URL; needs --admin-token-file.
    #[arg(long, requires = "admin_token_file")]
    server: Option<String>,
    /// A file holding an admin token for --server (a file keeps it off the command line).
    #[arg(long, value_name = "FILE")]
    admin_token_file: Option<PathBuf>,
    /// An extra CA certificate (PEM) to trust for an https:// --server with a private CA.
    #[arg(long, value_name = "PEM", requires = "server")]
    ca_cert: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Create a token and print it (shown once; only its hash is stored).
    Create {
        #[command(flatten)]
        target: AdminTarget,
        /// read, publish or admin.
        #[arg(long)]
        scope: String,
        /// A note on who or what the token is for.
        #[arg(long, default_value = "")]
        label: String,
        /// Days until the token stops being accepted (default: never).
        #[arg(long)]
        expires_in_days: Option<u64>,
    },
    /// List token grants: id, scope, label, creation and expiry (never a token).
    List {
        #[command(flatten)]
        target: AdminTarget,
    },
    /// Revoke the tokens with this id or label; a running server refuses them at once.
    Revoke {
        #[command(flatten)]
        target: AdminTarget,
        /// A token id (from `token list`) or label.
        which: String,
    },
}

/// Runs the CLI; returns the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = crate::logging::init(cli.log_format, cli.audit_log.as_deref()) {
        eprintln!("error: {e:#}");
        return ExitCode::FAILURE;
    }
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Init { data, bucket } => init_with(&data, bucket.settings()?.as_ref()),
        Command::MigrateStore { data, bucket } => {
            let bucket = bucket.settings()?.context("name the bucket: --s3-endpoint URL --s3-bucket NAME")?;
            let report = crate::migrate::migrate(&data, &bucket)?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            eprintln!(
                "ok: {} blobs in the bucket ({} copied), each read back and verified; {} now uses it. Its own blobs/ can be removed.",
                report.blobs,
                report.copied,
                data.display()
            );
            Ok(())
        }
        Command::Serve(args) => serve(*args, cli.log_format),
        Command::Import { data, root, file, state_out } => import(&data, root, &file, state_out),
        Command::VerifyStore { target } => verify_store(&target),
        Command::Scrub { target, repair, rate, bundle } => scrub(&target, repair, rate, bundle.as_deref()),
        Command::Witness { data, key, name, logs, listen } => witness(&data, &key, &name, &logs, &listen),
        Command::Token { command } => tokens(command),
        Command::Gc { target, dry_run, grace } => gc(&target, dry_run, grace),
        Command::Reload { target } => {
            anyhow::ensure!(
                target.data.is_none(),
                "reload asks a running server (--server); a stopped one reads its files when it starts"
            );
            let remote = admin_remote(&target)?;
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            let report = runtime.block_on(remote.reload())?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            eprintln!(
                "{}; log level {}{}",
                if report.tls { "reloaded the TLS certificate" } else { "this server has no TLS to reload" },
                report.log_level,
                if report.carry_changed { "; the carry filter changed" } else { "" }
            );
            match report.sync {
                Some(Err(why)) => {
                    anyhow::bail!("the new carry filter is in force, but its sync failed: {why}")
                }
                Some(Ok(sync)) => eprintln!("synced: {} blob(s) fetched", sync.blobs_fetched),
                None => {}
            }
            Ok(())
        }
        Command::Purge { target, release, kind, mirror } => purge(&target, &release, kind, mirror),
        Command::Key { command: KeyCommand::Rotate { data } } => {
            let public = crate::log_keys::LogKeys::rotate(&data)?;
            let next_pub = data.join(crate::log_keys::LOG_NEXT_PUB_FILE);
            println!("next log key: {} (key id {})", next_pub.display(), public.id());
            println!(
                "next: list it in the next root in place of the current log key:\n  airlock root create --from CURRENT_ROOT --log-key {} --remove-key {} -o NEXT_ROOT\nthen sign NEXT_ROOT with the root keys and submit it; this server signs with the new key from that root on",
                next_pub.display(),
                data.join(LOG_PUB_FILE).display()
            );
            Ok(())
        }
    }
}

fn import(data: &Path, root: Option<PathBuf>, file: &Path, state_out: Option<PathBuf>) -> anyhow::Result<()> {
    let mut config = Config::new(data);
    config.root = root;
    config.mirror = true;
    let store = Store::open(data, config.clock.clone())?;
    let registry = Registry::open(&config, store)?;
    let mirror = registry.mirror().context("the data directory does not hold a mirror")?;
    let reader =
        std::fs::File::open(file).with_context(|| format!("cannot read bundle {}", file.display()))?;
    let reader = airlock_client::direct::ReadAhead::new(reader);
    let report = crate::mirror::import::import(mirror, reader)
        .with_context(|| format!("bundle {} refused", file.display()))?;
    let state_path = state_out.unwrap_or_else(|| data.join("imported-state.json"));
    let state = serde_json::to_vec_pretty(&report.state)?;
    airlock_client::fsutil::write_atomic(&state_path, &state, 0o644)
        .with_context(|| format!("cannot write {}", state_path.display()))?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    eprintln!(
        "imported leaves {}..{} and {} blob(s); state written to {}",
        report.from_size,
        report.to_size,
        report.blobs_stored,
        state_path.display()
    );
    Ok(())
}

fn witness(data: &Path, key: &Path, name: &str, logs: &[String], listen: &str) -> anyhow::Result<()> {
    let key = airlock_keys::read_secret_key(key)?;
    let logs = logs
        .iter()
        .map(|text| airlock_keys::parse_verifier_key(text).map_err(|e| anyhow::anyhow!("--log {e}")))
        .collect::<anyhow::Result<std::collections::BTreeMap<_, _>>>()?;
    let witness = std::sync::Arc::new(crate::witness::Witness::open(
        data,
        name,
        key,
        logs,
        airlock_proto::Clock::system(),
    )?);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        crate::witness::http::serve(listener, witness, shutdown_signal()).await
    })
}

/// `airlockd token create`: opens the store of a stopped server and adds a token grant.
pub fn token_create(data: &Path, scope: Scope, label: &str) -> anyhow::Result<String> {
    let store = Store::open(data, airlock_proto::Clock::system())?;
    Ok(create_token(&store, scope, label, airlock_proto::clock::system_now(), None)?.0)
}

/// `airlockd token create|list|revoke`, on a stopped server's store or through a running one.
fn tokens(command: TokenCommand) -> anyhow::Result<()> {
    let target = match &command {
        TokenCommand::Create { target, .. }
        | TokenCommand::List { target }
        | TokenCommand::Revoke { target, .. } => target,
    };
    if let Some(data) = &target.data {
        let store = Store::open(data, airlock_proto::Clock::system())?;
        let now = store.now();
        return match command {
            TokenCommand::Create { scope, label, expires_in_days, .. } => {
                let scope = parse_scope(&scope)?;
                let expires_at = expires_in_days.map(|days| now.saturating_add(days.saturating_mul(86_400)));
                let (token, id) = create_token(&store, scope, &label, now, expires_at)?;
                eprintln!("token {id} ({scope}{})", expiry_note(expires_at));
                println!("{token}");
                Ok(())
            }
            TokenCommand::List { .. } => print_tokens(&crate::auth::list_tokens(&store)?),
            TokenCommand::Revoke { which, .. } => {
                report_revoked(crate::auth::revoke_tokens(&store, &which)?, &which)
            }
        };
    }
    let remote = admin_remote(target)?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async move {
        match command {
            TokenCommand::Create { scope, label, expires_in_days, .. } => {
                parse_scope(&scope)?;
                let now = airlock_proto::clock::system_now();
                let expires_at = expires_in_days.map(|days| now.saturating_add(days.saturating_mul(86_400)));
                let wanted = airlock_proto::api::TokenCreate { scope: scope.clone(), label, expires_at };
                let created = remote.create_token(&wanted).await?;
                eprintln!("token {} ({scope}{})", created.id, expiry_note(expires_at));
                println!("{}", created.token);
                Ok(())
            }
            TokenCommand::List { .. } => print_tokens(&remote.list_tokens().await?.tokens),
            TokenCommand::Revoke { which, .. } => {
                report_revoked(usize::try_from(remote.revoke_token(&which).await?.revoked)?, &which)
            }
        }
    })
}

/// `airlockd verify-store`: a stopped data directory read directly, or a running server's scrub
/// without repair.
fn verify_store(target: &AdminTarget) -> anyhow::Result<()> {
    let Some(data) = &target.data else { return scrub(target, false, None, None) };
    let store = Store::open(data, airlock_proto::Clock::system())?;
    let report = crate::verify_store::verify_store(&store)?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    anyhow::ensure!(
        report.problems.is_empty(),
        "{} problem(s) found in {}",
        report.problems.len(),
        data.display()
    );
    eprintln!("ok: {} leaves, {} blobs verified", report.log_size, report.blobs);
    Ok(())
}

/// `airlockd scrub`: through a running server.
fn scrub(target: &AdminTarget, repair: bool, rate: Option<u64>, bundle: Option<&Path>) -> anyhow::Result<()> {
    anyhow::ensure!(
        target.data.is_none(),
        "a scrub runs on a running server (--server); check a stopped data directory with `airlockd verify-store --data`"
    );
    let remote = admin_remote(target)?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    // A relative path means the one this command was given: send it whole.
    let bundle = bundle
        .map(|path| std::path::absolute(path).with_context(|| format!("bad bundle path {}", path.display())))
        .transpose()?
        .map(|path| path.to_string_lossy().into_owned());
    let wanted = airlock_proto::api::ScrubRequest { repair, rate_mib_per_s: rate, bundle };
    let report = runtime.block_on(remote.scrub(&wanted))?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    anyhow::ensure!(
        report.store.problems.is_empty(),
        "{} problem(s) remain ({} repaired)",
        report.store.problems.len(),
        report.repaired.len()
    );
    eprintln!(
        "ok: {} leaves, {} blobs verified, {} repaired",
        report.store.log_size,
        report.store.blobs,
        report.repaired.len()
    );
    Ok(())
}

/// `airlockd gc`: on a stopped data directory, or through a running server.
fn gc(target: &AdminTarget, dry_run: bool, grace: Option<u64>) -> anyhow::Result<()> {
    let report = if let Some(data) = &target.data {
        let store = Store::open(data, airlock_proto::Clock::system())?;
        anyhow::ensure!(
            store.sharing() == crate::store::blob_store::Sharing::Own,
            "this data directory shares its bucket with other front ends: collect through the running collector (--server), which syncs first"
        );
        let grace = grace.map_or(crate::gc::DEFAULT_GRACE, Duration::from_secs);
        crate::gc::collect(&store, None, None, crate::gc::GcOptions { dry_run, grace })?
    } else {
        let remote = admin_remote(target)?;
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        runtime.block_on(remote.gc(&airlock_proto::api::GcRequest { dry_run, grace_secs: grace }))?
    };
    println!("{}", serde_json::to_string_pretty(&report)?);
    eprintln!(
        "{} {} blob(s), {} bytes; {} unreferenced upload(s) kept within the grace period",
        if report.dry_run { "would remove" } else { "removed" },
        report.removed.len(),
        report.bytes_freed,
        report.kept_in_grace
    );
    Ok(())
}

/// `airlockd purge`: on a stopped data directory, or through a running server.
fn purge(
    target: &AdminTarget,
    release: &str,
    kind: Option<airlock_proto::Kind>,
    mirror: bool,
) -> anyhow::Result<()> {
    let (name, version) = release
        .split_once("==")
        .with_context(|| format!("{release:?}: name the release as NAME==VERSION"))?;
    let wanted = airlock_proto::api::PurgeRequest {
        kind,
        name: name.to_owned(),
        version: airlock_proto::Version::new(version)?,
    };
    let report = if let Some(data) = &target.data {
        let store = Store::open(data, airlock_proto::Clock::system())?;
        anyhow::ensure!(
            store.sharing() == crate::store::blob_store::Sharing::Own,
            "this data directory shares its bucket with other front ends: purge through the running collector (--server), which syncs first"
        );
        let mut config = crate::Config::new(data);
        config.mirror = mirror;
        let registry = crate::registry::Registry::open(&config, std::sync::Arc::clone(&store))?;
        crate::purge::purge(&store, &registry, &wanted)?
    } else {
        let remote = admin_remote(target)?;
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        runtime.block_on(remote.purge(&wanted))?
    };
    println!("{}", serde_json::to_string_pretty(&report)?);
    eprintln!(
        "purged {} blob(s) of {} {}=={}; kept {} shared with a release that is not revoked",
        report.removed.len(),
        report.kind,
        report.name,
        report.version,
        report.kept_shared.len()
    );
    Ok(())
}

/// The client of a running server's admin endpoints, from --server and --admin-token-file.
fn admin_remote(target: &AdminTarget) -> anyhow::Result<airlock_client::Remote> {
    let (Some(server), Some(file)) = (&target.server, &target.admin_token_file) else {
        anyhow::bail!("pass --data DIR (server stopped) or --server URL --admin-token-file FILE");
    };
    let token = String::from_utf8(airlock_client::fsutil::read_capped(file, 4096)?)
        .context("the admin token file is not text")?
        .trim()
        .to_owned();
    airlock_client::Remote::new(
        server,
        Some(token),
        &airlock_client::TlsOptions { ca_cert: target.ca_cert.clone() },
    )
}

fn parse_scope(scope: &str) -> anyhow::Result<Scope> {
    Scope::parse(scope).with_context(|| format!("unknown scope {scope:?}: use read, publish or admin"))
}

fn expiry_note(expires_at: Option<u64>) -> String {
    expires_at.map(|at| format!(", expires at {at}")).unwrap_or_default()
}

fn print_tokens(tokens: &[airlock_proto::api::TokenInfo]) -> anyhow::Result<()> {
    for t in tokens {
        let expires = t.expires_at.map_or_else(|| "never".to_owned(), |at| at.to_string());
        println!("{}  {:<7}  created {}  expires {expires}  {}", t.id, t.scope, t.created_at, t.label);
    }
    Ok(())
}

fn report_revoked(revoked: usize, which: &str) -> anyhow::Result<()> {
    anyhow::ensure!(revoked > 0, "no token has id or label {which:?}");
    println!("revoked {revoked} token(s) matching {which:?}");
    Ok(())
}

/// `airlockd init`: makes the data directory (0700) and the log key.
pub fn init(data: &Path) -> anyhow::Result<()> {
    init_with(data, None)
}

/// `init`, keeping the blobs in `bucket` when one is given (checked to answer before anything
/// is written).
pub fn init_with(data: &Path, bucket: Option<&crate::store::blob_store::S3Settings>) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    let key_path = data.join(LOG_KEY_FILE);
    anyhow::ensure!(
        !key_path.exists(),
        "{} already exists; this data directory is initialised",
        key_path.display()
    );
    if let Some(bucket) = bucket {
        crate::store::S3Backend::open(bucket).context("the bucket does not answer; nothing was written")?;
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(data)
        .with_context(|| format!("cannot create {}", data.display()))?;
    let key = airlock_keys::SecretKey::generate();
    airlock_keys::write_secret_key(&key_path, &key)?;
    let public = key.public();
    airlock_keys::write_public_key(&data.join(LOG_PUB_FILE), &public)?;
    if let Some(bucket) = bucket {
        crate::store::blob_store::write(data, bucket)?;
        println!("blobs go to bucket {} at {}", bucket.bucket, bucket.endpoint);
    }
    println!("initialised {}", data.display());
    println!("log public key: {} (key id {})", data.join(LOG_PUB_FILE).display(), public.id());
    println!(
        "next: put this key in the root's log role (`airlock root create --log-key {}`)",
        data.join(LOG_PUB_FILE).display()
    );
    Ok(())
}

fn serve(args: ServeArgs, log_format: crate::logging::LogFormat) -> anyhow::Result<()> {
    let file = args.config.as_deref().map(FileConfig::load).transpose()?.unwrap_or_default();
    let scan = file.scan_policy()?;
    let carried = file.carry();
    if let Some(level) = &file.log_level {
        crate::logging::set_level(level).context("log_level in the config file")?;
    }
    let data = args.data.or(file.data).context("--data is required (or `data` in the config file)")?;
    let listen = args.listen.or(file.listen).unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
    let mut config = Config::new(data);
    config.root = args.root.or(file.root);
    config.tls = match (args.tls_cert.or(file.tls_cert), args.tls_key.or(file.tls_key)) {
        (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
        (None, None) => None,
        _ => anyhow::bail!("TLS needs both a certificate and a key"),
    };
    config.read_access = if args.require_read_token {
        ReadAccess::TokenRequired
    } else {
        file.read_access.unwrap_or_default()
    };
    if let Some(secs) = args.checkpoint_validity.or(file.checkpoint_validity_secs) {
        anyhow::ensure!(secs >= 2, "checkpoint validity must be at least 2 seconds");
        config.checkpoint_validity = Duration::from_secs(secs);
    }
    if let Some(mib) = args.db_memory_mib.or(file.db_memory_mib) {
        anyhow::ensure!((8..=65_536).contains(&mib), "db_memory_mib must be between 8 and 65536, not {mib}");
        config.db_memory_mib = mib;
    }
    if let Some(secs) = args.freshness_margin.or(file.freshness_margin_secs) {
        config.freshness_margin = Duration::from_secs(secs);
    }
    if let Some(secs) = args.gc_grace.or(file.gc_grace_secs) {
        config.gc_grace = Duration::from_secs(secs);
    }
    config.scan = scan;
    config.public_url = args.public_url.or(file.public_url).map(|url| url.trim_end_matches('/').to_owned());
    if let Some(url) = &config.public_url {
        anyhow::ensure!(
            url.starts_with("http://") || url.starts_with("https://"),
            "public URL {url:?} must start with http:// or https://"
        );
    }
    config.comfy_at_root = args.comfy_at_root || file.comfy_at_root.unwrap_or(false);
    config.access_log = args.access_log || file.access_log.unwrap_or(false);
    config.log_request_ids = config.access_log || log_format == crate::logging::LogFormat::Json;
    config.scrub_interval =
        args.scrub_interval.or(file.scrub_interval_secs).filter(|&s| s > 0).map(Duration::from_secs);
    config.scrub_rate_mib_per_s = args.scrub_rate.or(file.scrub_rate_mib_per_s);
    config.upstream = args.upstream.or(file.upstream);
    config.upstream_ca_cert = args.upstream_ca_cert.or(file.upstream_ca_cert);
    if let Some(path) = args.upstream_token_file.or(file.upstream_token_file) {
        let bytes = airlock_client::fsutil::read_capped(&path, 4096)
            .with_context(|| format!("cannot read the upstream token file {}", path.display()))?;
        let token = String::from_utf8(bytes).ok().map(|t| t.trim().to_owned()).filter(|t| !t.is_empty());
        let token = token.with_context(|| format!("{} holds no token", path.display()))?;
        config.upstream_token = Some(crate::config::UpstreamToken(token));
    }
    config.mirror = args.mirror || file.mirror.unwrap_or(false);
    if let Some(secs) = args.unsafe_serve_expired_checkpoint_for {
        tracing::warn!(
            seconds = secs,
            "UNSAFE: this mirror will serve an expired upstream checkpoint for up to {secs} s after it expires"
        );
        config.unsafe_serve_expired_checkpoint_for = Some(Duration::from_secs(secs));
    }
    config.carry_from_flags =
        !(args.carry_kinds.is_empty() && args.carry_names.is_empty() && args.carry_channels.is_empty());
    config.carry = if config.carry_from_flags {
        crate::config::CarryFilter {
            kinds: args.carry_kinds,
            names: args.carry_names,
            channels: args.carry_channels,
        }
    } else {
        carried
    };
    config.config_file = args.config.as_deref().map(std::path::absolute).transpose()?;
    config.zero_copy = args.zero_copy || file.zero_copy.unwrap_or(false);
    config.blob_redirect =
        args.blob_redirect.or(file.blob_redirect_secs).filter(|&s| s > 0).map(Duration::from_secs);
    if let Some(valid_for) = config.blob_redirect {
        // The longest a SigV4 presigned URL may be valid.
        anyhow::ensure!(
            valid_for.as_secs() <= 7 * 86_400,
            "--blob-redirect is at most 7d, the longest a signed URL lives"
        );
    }
    if let Some(secs) = args.sync_interval.or(file.sync_interval_secs) {
        anyhow::ensure!(secs >= 1, "sync interval must be at least 1 second");
        config.sync_interval = Some(Duration::from_secs(secs));
    }
    config.witnesses =
        if args.witness_urls.is_empty() { file.witnesses.unwrap_or_default() } else { args.witness_urls };
    config.mirror_witness =
        match (args.witness_name.or(file.witness_name), args.witness_key.or(file.witness_key)) {
            (Some(name), Some(key)) => {
                anyhow::ensure!(config.is_mirror(), "--witness-name and --witness-key are for mirrors");
                Some((name, key))
            }
            (None, None) => None,
            _ => anyhow::bail!("a mirror's witness needs both a name and a key"),
        };
    if let Some(max) = file.max_blob_bytes {
        config.limits.max_blob_bytes = max;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        crate::server::run(listener, config, shutdown_signal()).await
    })
}

async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(signal) => signal,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term.recv() => {},
    }
}
