//! A man-in-the-middle proxy for attack tests: forwards every request to a real server and lets
//! the test rewrite response bodies by path, or trickle them out slowly.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};

/// Rewrites (path and query, upstream body) into the body to send.
pub type Rewrite = Box<dyn Fn(&str, Vec<u8>) -> Vec<u8> + Send + Sync>;

type ProxyBody = BoxBody<Bytes, Infallible>;

#[derive(Clone)]
struct Rules {
    rewrite: Arc<Mutex<Rewrite>>,
    /// Responses to paths with this prefix go out one byte every 100 ms.
    slow: Arc<Mutex<Option<String>>>,
}

/// A running proxy; stops with the test.
pub struct Proxy {
    pub url: String,
    rules: Rules,
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
        let rules = Rules {
            rewrite: Arc::new(Mutex::new(Box::new(|_, body| body))),
            slow: Arc::new(Mutex::new(None)),
        };
        let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).expect("bind proxy");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let upstream = upstream.to_owned();
        let shared = rules.clone();
        runtime.spawn(async move {
            let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let client = client.clone();
                let upstream = upstream.clone();
                let shared = shared.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                        let client = client.clone();
                        let upstream = upstream.clone();
                        let shared = shared.clone();
                        async move { Ok::<_, Infallible>(forward(client, &upstream, request, shared).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self { url, rules, _runtime: runtime }
    }

    /// Replaces the rewrite rule.
    pub fn set(&self, rewrite: impl Fn(&str, Vec<u8>) -> Vec<u8> + Send + Sync + 'static) {
        *self.rules.rewrite.lock().expect("lock") = Box::new(rewrite);
    }

    /// Trickles responses to paths starting with `prefix` (one byte every 100 ms).
    pub fn slow(&self, prefix: Option<&str>) {
        *self.rules.slow.lock().expect("lock") = prefix.map(str::to_owned);
    }
}

fn full(bytes: Vec<u8>) -> ProxyBody {
    Full::new(Bytes::from(bytes)).boxed()
}

async fn forward(
    client: Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
    upstream: &str,
    request: Request<Incoming>,
    rules: Rules,
) -> Response<ProxyBody> {
    let (parts, body) = request.into_parts();
    let path = parts.uri.path_and_query().map_or("/".to_owned(), |p| p.as_str().to_owned());
    let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let mut outgoing = Request::builder().method(parts.method).uri(format!("{upstream}{path}"));
    for (name, value) in &parts.headers {
        if name != http::header::HOST {
            outgoing = outgoing.header(name, value);
        }
    }
    let Ok(outgoing) = outgoing.body(Full::new(body)) else { return Response::new(full(Vec::new())) };
    let Ok(response) = client.request(outgoing).await else {
        return Response::builder().status(502).body(full(Vec::new())).expect("response");
    };
    let (mut parts, body) = response.into_parts();
    let bytes = body.collect().await.map(|b| b.to_bytes().to_vec()).unwrap_or_default();
    let rewritten = (rules.rewrite.lock().expect("lock"))(&path, bytes);
    parts.headers.remove(http::header::CONTENT_LENGTH);
    parts.headers.remove(http::header::TRANSFER_ENCODING);
    let slow =
        rules.slow.lock().expect("lock").as_ref().is_some_and(|prefix| path.starts_with(prefix.as_str()));
    if slow {
        let stream = futures_util::stream::unfold(rewritten.into_iter(), |mut bytes| async move {
            let byte = bytes.next()?;
            tokio::time::sleep(Duration::from_millis(100)).await;
            Some((Ok::<_, Infallible>(Frame::data(Bytes::from(vec![byte]))), bytes))
        });
        return Response::from_parts(parts, StreamBody::new(stream).boxed());
    }
    Response::from_parts(parts, full(rewritten))
}
