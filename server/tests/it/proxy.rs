//! A man-in-the-middle proxy for attack tests: forwards every request to a real server and lets
//! the test rewrite response bodies (or replace them) by path.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};

/// Rewrites (path and query, upstream body) into the body to send.
pub type Rewrite = Box<dyn Fn(&str, Vec<u8>) -> Vec<u8> + Send + Sync>;

/// A running proxy; stops with the test.
pub struct Proxy {
    pub url: String,
    rewrite: Arc<Mutex<Rewrite>>,
    _runtime: tokio::runtime::Runtime,
}

impl Proxy {
    /// Starts a proxy in front of `upstream` that passes everything through unchanged.
    pub fn start(upstream: &str) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let rewrite: Arc<Mutex<Rewrite>> = Arc::new(Mutex::new(Box::new(|_, body| body)));
        let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).expect("bind proxy");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let upstream = upstream.to_owned();
        let shared = Arc::clone(&rewrite);
        runtime.spawn(async move {
            let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let client = client.clone();
                let upstream = upstream.clone();
                let shared = Arc::clone(&shared);
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                        let client = client.clone();
                        let upstream = upstream.clone();
                        let shared = Arc::clone(&shared);
                        async move { Ok::<_, Infallible>(forward(client, &upstream, request, shared).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self { url, rewrite, _runtime: runtime }
    }

    /// Replaces the rewrite rule.
    pub fn set(&self, rewrite: impl Fn(&str, Vec<u8>) -> Vec<u8> + Send + Sync + 'static) {
        *self.rewrite.lock().expect("lock") = Box::new(rewrite);
    }
}

async fn forward(
    client: Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
    upstream: &str,
    request: Request<Incoming>,
    rewrite: Arc<Mutex<Rewrite>>,
) -> Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    let path = parts.uri.path_and_query().map_or("/".to_owned(), |p| p.as_str().to_owned());
    let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let mut outgoing = Request::builder().method(parts.method).uri(format!("{upstream}{path}"));
    for (name, value) in &parts.headers {
        if name != http::header::HOST {
            outgoing = outgoing.header(name, value);
        }
    }
    let Ok(outgoing) = outgoing.body(Full::new(body)) else { return Response::new(Full::new(Bytes::new())) };
    let Ok(response) = client.request(outgoing).await else {
        return Response::builder().status(502).body(Full::new(Bytes::new())).expect("response");
    };
    let (mut parts, body) = response.into_parts();
    let bytes = body.collect().await.map(|b| b.to_bytes().to_vec()).unwrap_or_default();
    let rewritten = (rewrite.lock().expect("lock"))(&path, bytes);
    parts.headers.remove(http::header::CONTENT_LENGTH);
    parts.headers.remove(http::header::TRANSFER_ENCODING);
    Response::from_parts(parts, Full::new(Bytes::from(rewritten)))
}
