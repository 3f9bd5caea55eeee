//! The log endpoints: checkpoint, leaves, proofs, the current root, and statement submission.

use std::sync::Arc;

use airlock_proto::api::{LeavesPage, Proof, Submitted, MAX_PAGE_LEAVES};
use airlock_proto::merkle::Hash;
use airlock_proto::{codec, Hash32};
use http::{HeaderMap, Response, StatusCode};
use hyper::body::Incoming;

use crate::auth::{self, Scope};
use crate::error::ApiError;
use crate::http::body::{self, Body};
use crate::http::query::Query;
use crate::service::Service;

/// `GET /v1/log/checkpoint`
pub fn checkpoint(service: &Service) -> Result<Response<Body>, ApiError> {
    let (bytes, extension) = service.checkpoint()?;
    let mut response = body::cbor(bytes);
    if let Some(until) = extension {
        response
            .headers_mut()
            .insert(airlock_client::remote::EXTENSION_HEADER, http::HeaderValue::from(until));
    }
    Ok(response)
}

/// `GET /v1/log/leaves?start=&end=`: a page of leaves, capped in count and bytes.
pub fn leaves(service: &Service, query: &Query) -> Result<Response<Body>, ApiError> {
    let size = service.db().log_size()?;
    let start = query.u64("start")?;
    let end = query.optional_u64("end")?.unwrap_or(size).min(size);
    if start >= end {
        return Err(ApiError::BadRequest(format!("need start < end <= log size {size}")));
    }
    let limit = service.config().limits.max_page_leaves.min(MAX_PAGE_LEAVES);
    let end = end.min(start.saturating_add(limit));
    let leaves = service.db().leaves(start, end, service.config().limits.max_page_bytes)?;
    let page = LeavesPage { start, leaves: leaves.into_iter().map(serde_bytes::ByteBuf::from).collect() };
    Ok(body::cbor(codec::encode("leaves page", &page).map_err(anyhow::Error::from)?))
}

fn proof_response(hashes: Vec<Hash>) -> Result<Response<Body>, ApiError> {
    let proof = Proof { hashes: hashes.into_iter().map(Hash32).collect() };
    Ok(body::cbor(codec::encode("proof", &proof).map_err(anyhow::Error::from)?))
}

/// `GET /v1/log/proof/inclusion?index=&size=`
pub fn inclusion(service: &Service, query: &Query) -> Result<Response<Body>, ApiError> {
    proof_response(service.inclusion_proof(query.u64("index")?, query.u64("size")?)?)
}

/// `GET /v1/log/proof/consistency?old=&new=`
pub fn consistency(service: &Service, query: &Query) -> Result<Response<Body>, ApiError> {
    proof_response(service.consistency_proof(query.u64("old")?, query.u64("new")?)?)
}

/// `GET /v1/roots/current`
pub fn current_root(service: &Service) -> Response<Body> {
    body::cbor(service.current_root())
}

/// `POST /v1/statements`: a signed statement (CBOR envelope) to verify and append.
pub async fn submit(
    service: &Arc<Service>,
    headers: &HeaderMap,
    mut request: Incoming,
) -> Result<Response<Body>, ApiError> {
    auth::require(service, headers, Scope::Publish)?;
    let limits = &service.config().limits;
    let leaf = body::read_capped(&mut request, limits.max_statement_bytes, limits.body_idle_timeout).await?;
    let worker = Arc::clone(service);
    let appended = tokio::task::spawn_blocking(move || worker.submit(leaf))
        .await
        .map_err(|e| ApiError::Internal(e.into()))??;
    let proof = service.inclusion_proof(appended.index, appended.size)?;
    let status = if appended.existing { StatusCode::OK } else { StatusCode::CREATED };
    if !appended.existing {
        tracing::info!(index = appended.index, "statement logged");
    }
    Ok(body::json(
        status,
        &Submitted {
            index: appended.index,
            size: appended.size,
            checkpoint: hex::encode(&appended.checkpoint),
            inclusion_proof: proof.iter().map(hex::encode).collect(),
            existing: appended.existing,
        },
    ))
}
