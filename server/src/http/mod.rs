//! The HTTP surface: a request path is parsed into a proto `Route` first, then dispatched to the
//! handler of its resource. Handlers return `ApiError`, which `error.rs` maps to a status.

pub mod admin;
pub mod blobs;
pub mod body;
pub mod comfy;
pub mod log;
pub mod mirror;
pub mod recent_reads;
pub mod releases;
pub mod simple;
pub mod small_blobs;
pub mod target;
pub mod tiles;

use std::convert::Infallible;
use std::sync::Arc;

use airlock_proto::api::{Health, Route};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;

use crate::app::App;
use crate::auth;
use crate::config::ReadAccess;
use crate::error::ApiError;
use airlock_proto::api::query::Query;
use body::Body;
use target::Target;

/// Handles one request; never fails (errors become responses).
/// Each request gets an id, answered in the `X-Request-Id` header and, with JSON logs or the
/// access log, in the `request` span around everything logged while answering it.
pub async fn handle(app: Arc<App>, request: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    use tracing::Instrument;
    let started = std::time::Instant::now();
    let (parts, request_body) = request.into_parts();
    let path = parts.uri.path();
    let target = (path.len() <= airlock_proto::api::routes::MAX_PATH_LEN)
        .then(|| Target::parse(path, app.config.comfy_at_root));
    let route = target.as_ref().map_or("unknown", Target::label);
    let method = parts.method.clone();
    let path = app.config.access_log.then(|| path.to_owned());
    let id = crate::logging::request_id();
    // A span costs more than the rest of a small blob GET's bookkeeping: only where the id is
    // logged (JSON logs, the access log).
    let span = if app.config.log_request_ids {
        tracing::info_span!("request", id = %id)
    } else {
        tracing::Span::none()
    };
    let mut response = match dispatch(&app, &parts, target, request_body).instrument(span.clone()).await {
        Ok(response) => response,
        Err(error) => span.in_scope(|| body::error_response(&error)),
    };
    let status = response.status().as_u16();
    app.metrics.request(route, &method, status, started.elapsed());
    if let Some(path) = path {
        let micros = started.elapsed().as_micros() as u64;
        span.in_scope(
            || tracing::info!(target: crate::logging::ACCESS, %method, path, status, micros, "request"),
        );
    }
    if let Ok(value) = http::HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    Ok(response)
}

/// The answer header that carries the request's id.
pub const REQUEST_ID: http::HeaderName = http::HeaderName::from_static("x-request-id");

async fn dispatch(
    app: &Arc<App>,
    parts: &http::request::Parts,
    target: Option<Target<'_>>,
    request_body: Incoming,
) -> Result<Response<Body>, ApiError> {
    let path = parts.uri.path();
    let Some(target) = target else {
        return Err(ApiError::BadRequest("request path is too long".to_owned()));
    };
    // Who is asking, looked up once per request. Credentials that are sent must be valid, on
    // every route (a 401 otherwise).
    let caller = auth::caller(&app.store, &parts.headers);
    let is_write = matches!(parts.method, Method::PUT | Method::POST | Method::DELETE | Method::PATCH);
    if !is_write {
        return route(app, parts, target, caller?, request_body).await;
    }
    let who = auth::who(&caller);
    let what = format!("{} {path}", parts.method);
    let outcome = match caller {
        Ok(caller) => route(app, parts, target, caller, request_body).await,
        Err(e) => Err(e),
    };
    crate::audit::record(&who, &what, &outcome);
    outcome
}

async fn route(
    app: &Arc<App>,
    parts: &http::request::Parts,
    target: Target<'_>,
    caller: auth::Caller,
    request_body: Incoming,
) -> Result<Response<Body>, ApiError> {
    let path = parts.uri.path();
    let method = &parts.method;
    let headers = &parts.headers;
    let caller = &caller;
    let read = || -> Result<(), ApiError> {
        if app.config.read_access == ReadAccess::TokenRequired {
            caller.require(auth::Scope::Read)?;
        }
        Ok(())
    };
    let is_get = *method == Method::GET || *method == Method::HEAD;
    let route = match target {
        Target::Metrics => {
            if !is_get {
                return Err(ApiError::MethodNotAllowed);
            }
            read()?;
            return metrics(app).await;
        }
        // The tlog-tiles paths, defined by that specification rather than by airlock's own API.
        Target::Tiles(tile) => {
            if !is_get {
                return Err(ApiError::MethodNotAllowed);
            }
            read()?;
            return match tile {
                Some(rest) => tiles::get(app, rest),
                None => log::checkpoint(app).await,
            };
        }
        // The Python index, whose paths PEP 503 and 691 define.
        Target::Simple(index_path) => {
            if !is_get {
                return Err(ApiError::MethodNotAllowed);
            }
            if !matches!(index_path, crate::simple::SimplePath::File { .. }) {
                read()?;
            }
            return simple::serve(
                app,
                method,
                headers,
                caller,
                index_path,
                parts.uri.query(),
                zero_copy(parts),
            )
            .await;
        }
        // The Comfy Registry API and ComfyUI-Manager's channel files, whose paths those clients
        // fix.
        Target::Comfy(comfy_path) => {
            if is_get {
                read()?;
            }
            return comfy::serve(app, method, headers, comfy_path, path, parts.uri.query());
        }
        Target::Unknown => return Err(ApiError::NotFound(format!("no such endpoint: {path}"))),
        Target::Native(route) => route,
    };
    let query = Query::parse(parts.uri.query())?;
    match route {
        Route::Health if is_get => Ok(health(app)),
        Route::Blob(hex) if is_get => {
            blobs::get(app, method, headers, caller, blobs::parse_digest(hex)?, zero_copy(parts)).await
        }
        Route::Blob(hex) if *method == Method::PUT => {
            blobs::put(app, headers, caller, blobs::parse_digest(hex)?, request_body).await
        }
        Route::Statements if *method == Method::POST => log::submit(app, caller, request_body).await,
        Route::Checkpoint if is_get => {
            read()?;
            log::checkpoint(app).await
        }
        Route::Leaves if is_get => read().and_then(|()| log::leaves(app, &query)),
        Route::InclusionProof if is_get => read().and_then(|()| log::inclusion(app, &query)),
        Route::ConsistencyProof if is_get => read().and_then(|()| log::consistency(app, &query)),
        Route::CurrentRoot if is_get => read().map(|()| log::current_root(app)),
        Route::Roots if is_get => read().and_then(|()| log::roots(app)),
        Route::Channel(name) if is_get => read().and_then(|()| releases::channel(app, name)),
        Route::AdminTokens if *method == Method::GET || *method == Method::POST => {
            admin::tokens(app, method, caller, request_body).await
        }
        Route::AdminToken(which) if *method == Method::DELETE => admin::revoke(app, caller, which),
        Route::AdminGc if *method == Method::POST => admin::gc(app, caller, request_body).await,
        Route::AdminPurge if *method == Method::POST => admin::purge(app, caller, request_body).await,
        Route::AdminScrub if *method == Method::POST => admin::scrub(app, caller, request_body).await,
        Route::AdminReload if *method == Method::POST => admin::reload(app, caller).await,
        Route::AdminCheckpoint if *method == Method::POST => {
            admin::checkpoint(app, caller, request_body).await
        }
        Route::ReleasesOf { kind, name } if is_get => read().and_then(|()| releases::list(app, kind, name)),
        Route::Release { kind, name, version } if is_get => {
            read().and_then(|()| releases::one(app, kind, name, version))
        }
        Route::ReleaseByDigest(digest) if is_get => read().and_then(|()| releases::by_digest(app, digest)),
        Route::MirrorSync if *method == Method::POST => mirror::sync(app, caller).await,
        Route::MirrorStatus if is_get => read().and_then(|()| mirror::status(app)),
        Route::MirrorImport if *method == Method::POST => mirror::import(app, caller, request_body).await,
        Route::ScanPolicy if is_get => read().and_then(|()| scan_policy(app)),
        _ => Err(ApiError::MethodNotAllowed),
    }
}

/// The connection's zero-copy queue, where a blob body may use it: the accept loop gives plain
/// connections one with `--zero-copy`; only on HTTP/1 (h2 copies every byte into its frames).
fn zero_copy(parts: &http::request::Parts) -> Option<&crate::zero_copy::Sends> {
    if parts.version > http::Version::HTTP_11 || !crate::zero_copy::available() {
        return None;
    }
    parts.extensions.get::<crate::zero_copy::Sends>()
}

/// `GET /v1/scan/policy`: a primary's scan policy (a mirror takes no publishes).
fn scan_policy(app: &App) -> Result<Response<Body>, ApiError> {
    let primary = app
        .registry
        .primary()
        .ok_or_else(|| ApiError::NotFound("a mirror takes no publishes and has no scan policy".to_owned()))?;
    Ok(body::json(StatusCode::OK, &primary.scan_policy().describe()))
}

/// `GET /healthz`
/// `GET /metrics`: the Prometheus metrics (`crate::metrics`), read under the same access rule as
/// the log.
async fn metrics(app: &Arc<App>) -> Result<Response<Body>, ApiError> {
    let reader = Arc::clone(app);
    let text = tokio::task::spawn_blocking(move || reader.metrics.render(&reader)).await??;
    let mut response = Response::new(body::full(text));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::header::HeaderValue::from_static(crate::metrics::CONTENT_TYPE),
    );
    Ok(response)
}

fn health(app: &App) -> Response<Body> {
    let role = if app.registry.mirror().is_some() { "mirror" } else { "primary" };
    let health = Health {
        status: "ok".to_owned(),
        role: role.to_owned(),
        log_size: app.registry.size(),
        freshness: crate::freshness::report(app),
    };
    body::json(StatusCode::OK, &health)
}
