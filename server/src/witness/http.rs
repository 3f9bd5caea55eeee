//! The witness's HTTP surface: `POST /add-checkpoint`, plus `/healthz`.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;

use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use tokio::net::TcpListener;

use super::{AddError, Witness, MAX_REQUEST_BYTES};
use crate::config::Limits;
use crate::http::body::{self, Body};

fn text(status: StatusCode, content_type: &'static str, bytes: Vec<u8>) -> Response<Body> {
    let mut response = Response::new(body::full(bytes));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

async fn handle(witness: Arc<Witness>, request: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let (parts, mut request_body) = request.into_parts();
    let response = match (parts.method.clone(), parts.uri.path()) {
        (Method::GET, "/healthz") => text(StatusCode::OK, "text/plain; charset=utf-8", b"ok\n".to_vec()),
        (Method::POST, "/add-checkpoint") => {
            match body::read_capped(&mut request_body, MAX_REQUEST_BYTES, Limits::default().body_idle_timeout)
                .await
            {
                Err(e) => body::error_response(&e),
                Ok(bytes) => {
                    let outcome = tokio::task::spawn_blocking(move || witness.add_checkpoint(&bytes)).await;
                    match outcome {
                        Ok(Ok(line)) => text(StatusCode::OK, "text/plain; charset=utf-8", line),
                        Ok(Err(AddError::Conflict { held, .. })) => {
                            text(StatusCode::CONFLICT, "text/x.tlog.size", format!("{held}\n").into_bytes())
                        }
                        Ok(Err(e)) => {
                            let status = match &e {
                                AddError::Malformed(_) => StatusCode::BAD_REQUEST,
                                AddError::UnknownLog(_) => StatusCode::NOT_FOUND,
                                AddError::BadSignature => StatusCode::FORBIDDEN,
                                AddError::Inconsistent(_) => StatusCode::UNPROCESSABLE_ENTITY,
                                AddError::Conflict { .. } | AddError::Internal(_) => {
                                    StatusCode::INTERNAL_SERVER_ERROR
                                }
                            };
                            if let AddError::Internal(inner) = &e {
                                tracing::error!(error = format!("{inner:#}"), "witness internal error");
                            }
                            let message = if status.is_server_error() {
                                "internal error".to_owned()
                            } else {
                                e.to_string()
                            };
                            text(status, "text/plain; charset=utf-8", format!("{message}\n").into_bytes())
                        }
                        Err(_) => text(
                            StatusCode::INTERNAL_SERVER_ERROR,
                            "text/plain; charset=utf-8",
                            b"internal error\n".to_vec(),
                        ),
                    }
                }
            }
        }
        _ => text(StatusCode::NOT_FOUND, "text/plain; charset=utf-8", b"not found\n".to_vec()),
    };
    Ok(response)
}

/// Serves the witness on `listener` until `shutdown` completes, with the registry's accept loop
/// and default limits.
pub async fn serve(
    listener: TcpListener,
    witness: Arc<Witness>,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let handler = move |request| handle(Arc::clone(&witness), request);
    let traffic = crate::traffic::Traffic::default();
    crate::server::serve_with(listener, &Limits::default(), None, false, handler, shutdown, traffic).await
}
