//! The witness's HTTP surface: `POST /add-checkpoint`, plus `/healthz`.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

use super::{AddError, Witness, MAX_REQUEST_BYTES};
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
            match body::read_capped(&mut request_body, MAX_REQUEST_BYTES, Duration::from_secs(30)).await {
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

/// Serves the witness on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    witness: Arc<Witness>,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(Duration::from_secs(10));
    let builder = Arc::new(builder);
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    tracing::info!(addr = %listener.local_addr()?, "witness serving");
    loop {
        let (stream, _) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let witness = Arc::clone(&witness);
        let service = service_fn(move |request| handle(Arc::clone(&witness), request));
        let connection = builder.serve_connection(TokioIo::new(stream), service).into_owned();
        let watched = graceful.watch(connection);
        tokio::spawn(async move {
            let _ = watched.await;
        });
    }
    let _ = tokio::time::timeout(Duration::from_secs(10), graceful.shutdown()).await;
    Ok(())
}
