//! The server's logs. The main log goes to stderr as text or as JSON objects, one a line
//! (`--log-format`); its level is the config file's `log_level`, else `RUST_LOG` (default
//! `info`), and `airlockd reload` sets it again from the file (`set_level`). Every request's id is sent
//! back as `X-Request-Id`; with JSON logs or the access log, every line logged while a request is
//! answered carries it too (the `request` span). The access log (`--access-log`) is one line a request under the target
//! `airlock::access`. The audit log of writes (`crate::audit`, target `airlock::audit`) is in the
//! main log, or apart from it in a file of JSON lines (`--audit-log FILE`).

use std::io::IsTerminal;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{filter, fmt, reload, EnvFilter, Layer, Registry};

/// The tracing target of the access log.
pub const ACCESS: &str = "airlock::access";

/// How the main log is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object a line, with the request span's fields.
    Json,
}

/// The level filter in force, replaceable while the process runs.
static LEVEL: std::sync::OnceLock<reload::Handle<EnvFilter, Registry>> = std::sync::OnceLock::new();

/// The level the process started with, in `RUST_LOG`'s syntax: `RUST_LOG`, else `info`.
pub fn start_level_spec() -> String {
    std::env::var("RUST_LOG")
        .ok()
        .filter(|spec| check_level(spec).is_ok())
        .unwrap_or_else(|| "info".to_owned())
}

fn start_level() -> EnvFilter {
    EnvFilter::builder().parse_lossy(start_level_spec())
}

/// Parses a level in `RUST_LOG`'s syntax.
pub fn check_level(spec: &str) -> anyhow::Result<EnvFilter> {
    EnvFilter::builder()
        .parse(spec)
        .with_context(|| format!("{spec:?} is not a log level (such as info, or warn,airlock=debug)"))
}

/// Puts a level in force, in `RUST_LOG`'s syntax. A spec that does not parse is refused and the
/// level stays. Without the logger installed (a library user), only the parse is checked.
pub fn set_level(spec: &str) -> anyhow::Result<()> {
    let filter = check_level(spec)?;
    if let Some(handle) = LEVEL.get() {
        handle.reload(filter).context("cannot change the log level")?;
    }
    Ok(())
}

/// Puts back the level the process started with.
pub fn reset_level() -> anyhow::Result<()> {
    if let Some(handle) = LEVEL.get() {
        handle.reload(start_level()).context("cannot change the log level")?;
    }
    Ok(())
}

/// Installs the process's logger.
pub fn init(format: LogFormat, audit_file: Option<&Path>) -> anyhow::Result<()> {
    let (level, handle) = reload::Layer::new(start_level());
    let main = match format {
        LogFormat::Text => {
            // Colour only on a terminal: a log file or pipe gets plain text.
            fmt::layer().with_writer(std::io::stderr).with_ansi(std::io::stderr().is_terminal()).boxed()
        }
        LogFormat::Json => fmt::layer().json().with_current_span(true).with_writer(std::io::stderr).boxed(),
    };
    let apart = audit_file.is_some();
    let main =
        main.with_filter(filter::filter_fn(move |meta| !(apart && meta.target() == crate::audit::TARGET)));
    let audit = match audit_file {
        Some(path) => {
            use std::os::unix::fs::OpenOptionsExt;
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .open(path)
                .with_context(|| format!("cannot open the audit log {}", path.display()))?;
            // Every span (so that each line carries its request's id), and the audit events.
            let only_audit =
                filter::filter_fn(|meta| meta.is_span() || meta.target() == crate::audit::TARGET);
            Some(
                fmt::layer()
                    .json()
                    .with_current_span(true)
                    .with_ansi(false)
                    .with_writer(std::sync::Mutex::new(file))
                    .with_filter(only_audit),
            )
        }
        None => None,
    };
    tracing_subscriber::registry().with(level).with(main).with(audit).try_init()?;
    let _ = LEVEL.set(handle);
    Ok(())
}

/// A new request id: unique within this process, and unlikely to repeat across restarts (a
/// per-process random prefix).
pub fn request_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    static PREFIX: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let prefix = *PREFIX.get_or_init(|| {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u32(std::process::id());
        hasher.finish() as u32
    });
    format!("{prefix:08x}-{:x}", NEXT.fetch_add(1, Ordering::Relaxed))
}
