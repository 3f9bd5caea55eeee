//! The mirror endpoints: sync now, status, and a bundle streamed into a running mirror.

use std::sync::Arc;

use http::{Response, StatusCode};
use hyper::body::Incoming;

use crate::app::App;
use crate::auth::{Caller, Scope};
use crate::error::{self, ApiError};
use crate::http::body::{self, Body, ChannelReader};
use crate::mirror::Mirror;

fn the_mirror(app: &App) -> Result<&Arc<Mirror>, ApiError> {
    app.registry.mirror().ok_or_else(|| ApiError::NotFound("this server is not a mirror".to_owned()))
}

/// `POST /v1/mirror/sync` (admin): sync from the upstream now.
pub async fn sync(app: &Arc<App>, caller: &Caller) -> Result<Response<Body>, ApiError> {
    caller.require(Scope::Admin)?;
    let follower = app
        .follower
        .as_ref()
        .ok_or_else(|| ApiError::NotFound("this server has no upstream to sync from".to_owned()))?;
    let report = follower.sync_once().await.map_err(|e| error::sync_failed(&e))?;
    Ok(body::json(StatusCode::OK, &report))
}

/// `GET /v1/mirror/status`
pub fn status(app: &App) -> Result<Response<Body>, ApiError> {
    let mut status = the_mirror(app)?.status();
    status.freshness = crate::freshness::report(app);
    Ok(body::json(StatusCode::OK, &status))
}

/// `POST /v1/mirror/import` (admin): a bundle streamed into a running mirror.
pub async fn import(
    app: &Arc<App>,
    caller: &Caller,
    mut request_body: Incoming,
) -> Result<Response<Body>, ApiError> {
    caller.require(Scope::Admin)?;
    let mirror = Arc::clone(app.registry.mirror().ok_or_else(|| {
        ApiError::Forbidden(
            "this server is not a mirror; import bundles into a mirror (`airlockd serve --mirror`)"
                .to_owned(),
        )
    })?);
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    let task =
        tokio::task::spawn_blocking(move || crate::mirror::import::import(&mirror, ChannelReader::new(rx)));
    let idle = app.config.limits.body_idle_timeout;
    let mut read_error = None;
    let mut dropped: Option<u64> = None;
    loop {
        match body::next_frame(&mut request_body, idle).await {
            Ok(Some(chunk)) => {
                // Once the importer stopped (it refused the bundle, or the disk is full), some
                // more is read and dropped so that the client gets the answer, not a reset.
                match dropped.as_mut() {
                    None => {
                        if tx.send(chunk).await.is_err() {
                            dropped = Some(0);
                        }
                    }
                    Some(bytes) => {
                        *bytes += chunk.len() as u64;
                        if *bytes > body::MAX_DRAIN_BYTES {
                            break;
                        }
                    }
                }
            }
            Ok(None) => break,
            Err(e) => {
                read_error = Some(e);
                break;
            }
        }
    }
    drop(tx);
    let outcome = task.await.map_err(|e| ApiError::Internal(e.into()))?;
    if let Some(e) = read_error {
        return Err(e);
    }
    let report = outcome?;
    crate::freshness::log_warnings(app);
    Ok(body::json(StatusCode::OK, &report))
}
