//! The log endpoints: checkpoint, leaves, proofs, the current root, and statement submission.

use std::sync::Arc;

use airlock_proto::api::{routes, HexBytes, LeavesPage, Proof, Submitted, MAX_PAGE_LEAVES};
use airlock_proto::merkle::{self, Hash};
use airlock_proto::{codec, Hash32};
use http::{Response, StatusCode};
use hyper::body::Incoming;

use crate::app::App;
use crate::auth::{Caller, Scope};
use crate::error::ApiError;
use crate::http::body::{self, Body};
use crate::store::Store;
use airlock_proto::api::query::Query;

/// `GET /v1/log/checkpoint` (and `/checkpoint`). A primary may re-sign, and then ask its
/// witnesses to cosign, so its work runs on a blocking thread; a mirror's is a read.
pub async fn checkpoint(app: &Arc<App>) -> Result<Response<Body>, ApiError> {
    let (bytes, extension) = if app.registry.primary().is_some() {
        let worker = Arc::clone(app);
        tokio::task::spawn_blocking(move || worker.registry.checkpoint()).await??
    } else {
        app.registry.checkpoint()?
    };
    let mut response = body::note(bytes);
    if let Some(until) = extension {
        response.headers_mut().insert(routes::EXTENSION_UNTIL_HEADER, http::HeaderValue::from(until));
    }
    Ok(response)
}

/// `GET /v1/log/leaves?start=&end=`: a page of leaves, capped in count and bytes.
pub fn leaves(app: &App, query: &Query) -> Result<Response<Body>, ApiError> {
    let size = app.store.log_size()?;
    let start = query.u64("start")?;
    let end = query.optional_u64("end")?.unwrap_or(size).min(size);
    if start >= end {
        return Err(ApiError::BadRequest(format!("need start < end <= log size {size}")));
    }
    let limit = app.config.limits.max_page_leaves.min(MAX_PAGE_LEAVES);
    let end = end.min(start.saturating_add(limit));
    let leaves = app.store.leaves(start, end, app.config.limits.max_page_bytes)?;
    let page = LeavesPage { start, leaves: leaves.into_iter().map(serde_bytes::ByteBuf::from).collect() };
    Ok(body::cbor(codec::encode("leaves page", &page).map_err(anyhow::Error::from)?))
}

fn proof_response(hashes: Vec<Hash>) -> Result<Response<Body>, ApiError> {
    let proof = Proof { hashes: hashes.into_iter().map(Hash32).collect() };
    Ok(body::cbor(codec::encode("proof", &proof).map_err(anyhow::Error::from)?))
}

/// Inclusion proof of leaf `index` in the tree of `size` leaves.
fn inclusion_proof(store: &Store, index: u64, size: u64) -> Result<Vec<Hash>, ApiError> {
    let log_size = store.log_size()?;
    if size > log_size || index >= size {
        return Err(ApiError::BadRequest(format!("need index < size <= {log_size}")));
    }
    Ok(merkle::inclusion_proof(store, index, size)?)
}

/// `GET /v1/log/proof/inclusion?index=&size=`
pub fn inclusion(app: &App, query: &Query) -> Result<Response<Body>, ApiError> {
    proof_response(inclusion_proof(&app.store, query.u64("index")?, query.u64("size")?)?)
}

/// `GET /v1/log/proof/consistency?old=&new=`
pub fn consistency(app: &App, query: &Query) -> Result<Response<Body>, ApiError> {
    let (old, new) = (query.u64("old")?, query.u64("new")?);
    let log_size = app.store.log_size()?;
    if old == 0 || old > new || new > log_size {
        return Err(ApiError::BadRequest(format!("need 0 < old <= new <= {log_size}")));
    }
    proof_response(merkle::consistency_proof(app.store.as_ref(), old, new)?)
}

/// `GET /v1/roots`: every logged root, oldest first.
pub fn roots(app: &App) -> Result<Response<Body>, ApiError> {
    let chain = airlock_proto::api::RootChain {
        roots: app.registry.root_chain().into_iter().map(serde_bytes::ByteBuf::from).collect(),
    };
    let bytes =
        airlock_proto::codec::encode("root chain", &chain).map_err(|e| ApiError::Internal(e.into()))?;
    Ok(body::cbor(bytes))
}

/// `GET /v1/roots/current`
pub fn current_root(app: &App) -> Response<Body> {
    body::cbor(app.registry.current_root())
}

/// `POST /v1/statements`: a signed statement (CBOR envelope) to verify and append.
pub async fn submit(
    app: &Arc<App>,
    caller: &Caller,
    mut request: Incoming,
) -> Result<Response<Body>, ApiError> {
    caller.require(Scope::Publish)?;
    if app.registry.primary().is_none() {
        return Err(ApiError::Forbidden(format!(
            "this server mirrors {}; publish upstream",
            app.config.upstream.as_deref().unwrap_or("another registry")
        )));
    }
    let limits = &app.config.limits;
    let leaf = body::read_capped(&mut request, limits.max_statement_bytes, limits.body_idle_timeout).await?;
    let worker = Arc::clone(app);
    let appended = tokio::task::spawn_blocking(move || match worker.registry.primary() {
        Some(primary) => primary.submit(leaf).map_err(ApiError::from),
        None => Err(ApiError::Forbidden("this server is a mirror".to_owned())),
    })
    .await??;
    let proof = inclusion_proof(&app.store, appended.index, appended.size)?;
    let status = if appended.existing { StatusCode::OK } else { StatusCode::CREATED };
    if !appended.existing {
        tracing::info!(index = appended.index, "statement logged");
    }
    Ok(body::json(
        status,
        &Submitted {
            index: appended.index,
            size: appended.size,
            checkpoint: HexBytes(appended.checkpoint),
            inclusion_proof: proof.into_iter().map(Hash32).collect(),
            existing: appended.existing,
            logged_leaf: if appended.existing { app.store.leaf(appended.index)?.map(HexBytes) } else { None },
        },
    ))
}
