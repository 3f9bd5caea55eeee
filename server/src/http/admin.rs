//! `/v1/admin/checkpoint`: a long-lived checkpoint for a bundle (primaries).
//! `/v1/admin/tokens`: token grants on a running server (RocksDB admits one process, so while
//! the server runs it does the work): list them, create one, revoke by id or label. Admin scope.
//! A created token appears once, in the answer; it is never logged.
//! `/v1/admin/gc`: garbage collection on a running server (`crate::gc`); `/v1/admin/purge`: the
//! blobs of a revoked release (`crate::purge`); `/v1/admin/scrub`: every blob and the log checked,
//! damaged blobs repaired (`crate::scrub`).

use std::sync::Arc;

use airlock_proto::api::{
    CheckpointRequest, GcRequest, PurgeRequest, ScrubRequest, TokenCreate, TokenCreated, TokenList,
    TokensRevoked,
};
use http::{Method, Response, StatusCode};
use hyper::body::Incoming;

use crate::app::App;
use crate::auth::{self, Caller, Scope};
use crate::error::ApiError;
use crate::http::body::{self, Body};
use crate::store::blob_store::Sharing;

/// Largest token request body.
const MAX_TOKEN_REQUEST: usize = 4096;

/// `GET` (list) or `POST` (create) `/v1/admin/tokens`.
pub async fn tokens(
    app: &Arc<App>,
    method: &Method,
    caller: &Caller,
    mut request: Incoming,
) -> Result<Response<Body>, ApiError> {
    caller.require(Scope::Admin)?;
    if method == Method::GET {
        return Ok(body::json(StatusCode::OK, &TokenList { tokens: auth::list_tokens(&app.store)? }));
    }
    let bytes =
        body::read_capped(&mut request, MAX_TOKEN_REQUEST, app.config.limits.body_idle_timeout).await?;
    let wanted: TokenCreate = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::BadRequest(format!("not a token request: {e}")))?;
    let scope = Scope::parse(&wanted.scope).ok_or_else(|| {
        ApiError::BadRequest(format!("unknown scope {:?}: use read, publish or admin", wanted.scope))
    })?;
    let now = app.store.now();
    if wanted.expires_at.is_some_and(|at| at <= now) {
        return Err(ApiError::BadRequest("the token would expire before it is created".to_owned()));
    }
    let (token, id) = auth::create_token(&app.store, scope, &wanted.label, now, wanted.expires_at)?;
    tracing::info!(target: crate::audit::TARGET, id, label = wanted.label, scope = %scope, "token created");
    Ok(body::json(StatusCode::CREATED, &TokenCreated { token, id }))
}

/// `DELETE /v1/admin/tokens/<id or label>`
pub fn revoke(app: &App, caller: &Caller, which: &str) -> Result<Response<Body>, ApiError> {
    caller.require(Scope::Admin)?;
    let revoked = auth::revoke_tokens(&app.store, which)?;
    if revoked == 0 {
        return Err(ApiError::NotFound(format!("no token has id or label {which:?}")));
    }
    tracing::info!(target: crate::audit::TARGET, which, revoked, "tokens revoked");
    Ok(body::json(StatusCode::OK, &TokensRevoked { revoked: revoked as u64 }))
}

/// `POST /v1/admin/checkpoint`: a checkpoint of the current log valid for the time asked (at most
/// what the root allows), for `airlock export --valid-for`. Not stored: online checkpoints stay
/// short-lived.
pub async fn checkpoint(
    app: &Arc<App>,
    caller: &Caller,
    mut request: Incoming,
) -> Result<Response<Body>, ApiError> {
    caller.require(Scope::Admin)?;
    let crate::registry::Registry::Primary(_) = &app.registry else {
        return Err(ApiError::Forbidden(
            "this server is a mirror; only the primary signs checkpoints".to_owned(),
        ));
    };
    let bytes =
        body::read_capped(&mut request, MAX_TOKEN_REQUEST, app.config.limits.body_idle_timeout).await?;
    let wanted: CheckpointRequest = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::BadRequest(format!("not a checkpoint request: {e}")))?;
    let signer = Arc::clone(app);
    let note = tokio::task::spawn_blocking(move || match &signer.registry {
        crate::registry::Registry::Primary(primary) => primary.checkpoint_valid_for(wanted.valid_for),
        crate::registry::Registry::Mirror(_) => unreachable!("checked above"),
    })
    .await??;
    tracing::info!(target: crate::audit::TARGET, valid_for = wanted.valid_for, "long-lived checkpoint signed");
    Ok(body::note(note))
}

/// An admin request's JSON body: the caller must hold an admin token; the body is read under the
/// small-request cap and must decode as `T` (`what` names it in the 400).
async fn admin_json<T: serde::de::DeserializeOwned>(
    app: &App,
    caller: &Caller,
    request: &mut Incoming,
    what: &str,
) -> Result<T, ApiError> {
    caller.require(Scope::Admin)?;
    let bytes = body::read_capped(request, MAX_TOKEN_REQUEST, app.config.limits.body_idle_timeout).await?;
    serde_json::from_slice(&bytes).map_err(|e| ApiError::BadRequest(format!("not a {what} request: {e}")))
}

/// Whether this server may remove blobs: on a bucket shared by several front ends only the
/// collector may, and only once it has synced, so that no other front end is ahead of it (none
/// can be ahead of the upstream they all follow).
async fn may_remove(app: &Arc<App>) -> Result<(), ApiError> {
    match (app.store.sharing(), &app.follower) {
        (Sharing::Member, _) => Err(ApiError::Conflict(crate::gc::NOT_THE_COLLECTOR.to_owned())),
        (Sharing::Collector, Some(follower)) => follower.sync_once().await.map(|_| ()).map_err(|e| {
            ApiError::Unavailable(format!(
                "nothing removed: this front end could not sync first, so another may be ahead of it: {e:#}"
            ))
        }),
        _ => Ok(()),
    }
}

/// `POST /v1/admin/gc`: collects garbage (or, with `dry_run`, lists it) while the server runs;
/// each removal waits until no statement is being logged.
pub async fn gc(app: &Arc<App>, caller: &Caller, mut request: Incoming) -> Result<Response<Body>, ApiError> {
    let wanted: GcRequest = admin_json(app, caller, &mut request, "gc").await?;
    may_remove(app).await?;
    let grace = wanted.grace_secs.map_or(app.config.gc_grace, std::time::Duration::from_secs);
    let options = crate::gc::GcOptions { dry_run: wanted.dry_run, grace };
    let collector = Arc::clone(app);
    let report = tokio::task::spawn_blocking(move || {
        let carry = collector.registry.mirror().map(|mirror| mirror.carry()).filter(|c| !c.is_everything());
        crate::gc::collect(&collector.store, Some(&collector.registry), carry.as_deref(), options)
    })
    .await??;
    app.metrics.collected(&report);
    Ok(body::json(StatusCode::OK, &report))
}

/// `POST /v1/admin/purge`: removes the blobs of a revoked release (409 for one not revoked).
pub async fn purge(
    app: &Arc<App>,
    caller: &Caller,
    mut request: Incoming,
) -> Result<Response<Body>, ApiError> {
    let wanted: PurgeRequest = admin_json(app, caller, &mut request, "purge").await?;
    may_remove(app).await?;
    let purger = Arc::clone(app);
    let report =
        tokio::task::spawn_blocking(move || crate::purge::purge(&purger.store, &purger.registry, &wanted))
            .await??;
    Ok(body::json(StatusCode::OK, &report))
}

/// `POST /v1/admin/scrub`: checks every blob and the log; with `repair`, a mirror fetches damaged
/// blobs again from its upstream.
pub async fn scrub(
    app: &Arc<App>,
    caller: &Caller,
    mut request: Incoming,
) -> Result<Response<Body>, ApiError> {
    let wanted: ScrubRequest = admin_json(app, caller, &mut request, "scrub").await?;
    let options = crate::scrub::ScrubOptions {
        repair: wanted.repair,
        rate: wanted.rate_mib_per_s.map(|mib| mib.saturating_mul(1 << 20)),
        bundle: wanted.bundle.map(std::path::PathBuf::from),
    };
    let report = crate::scrub::scrub(app, options).await?;
    Ok(body::json(StatusCode::OK, &report))
}

/// `POST /v1/admin/reload`: reads the TLS certificate and key, the log level and a mirror's
/// carry filter again (`crate::reload`); what does not load is refused (422) and nothing changes.
pub async fn reload(app: &Arc<App>, caller: &Caller) -> Result<Response<Body>, ApiError> {
    caller.require(Scope::Admin)?;
    let report = crate::reload::reload(app)
        .await
        .map_err(|e| ApiError::Unprocessable(format!("nothing was reloaded: {e:#}")))?;
    Ok(body::json(StatusCode::OK, &report))
}
