//! `airlockd reload` (`POST /v1/admin/reload`): what can change without a restart. The TLS
//! certificate and key are read again; from the config file the server was started with, the
//! log level (`log_level`) and a mirror's carry filter (`carry_*`, unless flags set it at start).
//! Everything is read and checked first and nothing changes unless all of it loads. A carry
//! filter that changed is followed by a sync, which fetches the blobs the filter now takes in;
//! blobs it no longer carries stay until garbage collection. Tokens need no reload: every
//! request reads them from the store.

use std::sync::Arc;

use airlock_proto::api::ReloadReport;
use anyhow::Context;

use crate::app::App;
use crate::config::{CarryFilter, FileConfig};

/// What a reload will put in force, all of it loaded and checked.
struct Loaded {
    tls: Option<tokio_rustls::TlsAcceptor>,
    /// The file's level (`None`: the start level).
    level: Option<String>,
    carry: Option<CarryFilter>,
}

/// Reads everything a reload changes, changing nothing. Blocking (it reads files).
fn load(app: &App) -> anyhow::Result<Loaded> {
    let file = match &app.config.config_file {
        Some(path) => Some(FileConfig::load(path)?),
        None => None,
    };
    let level = file.as_ref().and_then(|f| f.log_level.clone());
    if let Some(spec) = &level {
        // Parsed now, so that a bad level refuses the whole reload.
        crate::logging::check_level(spec).context("log_level in the config file")?;
    }
    let carry = match (&file, app.registry.mirror()) {
        (Some(file), Some(_)) if !app.config.carry_from_flags => Some(file.carry()),
        _ => None,
    };
    let tls = match &app.config.tls {
        Some(files) => Some(crate::server::load_tls(files).context("the TLS certificate was not reloaded")?),
        None => None,
    };
    Ok(Loaded { tls, level, carry })
}

/// Reloads what can change while the server runs (see the module documentation).
pub async fn reload(app: &Arc<App>) -> anyhow::Result<ReloadReport> {
    let reader = Arc::clone(app);
    let loaded = tokio::task::spawn_blocking(move || load(&reader)).await??;
    let tls = match (&app.tls, loaded.tls) {
        (Some(shared), Some(acceptor)) => {
            shared.install(acceptor);
            true
        }
        _ => false,
    };
    match &loaded.level {
        Some(spec) => crate::logging::set_level(spec)?,
        None => crate::logging::reset_level()?,
    }
    let carry_changed = match (loaded.carry, app.registry.mirror()) {
        (Some(carry), Some(mirror)) => mirror.set_carry(carry),
        _ => false,
    };
    let sync = match (&app.follower, carry_changed) {
        (Some(follower), true) => Some(follower.sync_once().await.map_err(|e| format!("{e:#}"))),
        _ => None,
    };
    let report = ReloadReport {
        tls,
        config_file: app.config.config_file.as_ref().map(|p| p.display().to_string()),
        log_level: loaded.level.unwrap_or_else(crate::logging::start_level_spec),
        carry_changed,
        sync,
    };
    tracing::info!(
        target: crate::audit::TARGET,
        tls = report.tls,
        log_level = report.log_level,
        carry_changed = report.carry_changed,
        "configuration reloaded"
    );
    Ok(report)
}
