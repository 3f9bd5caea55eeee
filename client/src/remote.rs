//! The remote registry API: checkpoints, leaves, proofs and blobs over HTTP(S), with a byte cap
//! on every response and timeouts on every step.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use airlock_proto::api::{
    BlobStored, ErrorBody, LeavesPage, Proof, Submitted, MAX_PAGE_BYTES, MAX_PROOF_BYTES,
};
use airlock_proto::{codec, Checkpoint, Digest};
use bytes::Bytes;
use futures_util::TryStreamExt;
use http::{header, Method, Request, StatusCode, Uri};
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use tokio::io::AsyncReadExt;

use crate::progress::Progress;

/// How long to wait for a connection and response headers.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a response body may go without sending a byte.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// How slow a response body may be before it is abandoned: no byte for `idle`, or an average
/// below `min_rate` bytes per second once `grace` has passed (a slow-retrieval attack).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransferLimits {
    pub idle: Duration,
    pub min_rate: u64,
    pub grace: Duration,
}

impl Default for TransferLimits {
    fn default() -> Self {
        Self { idle: IDLE_TIMEOUT, min_rate: 16 * 1024, grace: Duration::from_secs(10) }
    }
}

/// Header by which a mirror declares it serves an expired checkpoint under an unsafe extension.
pub const EXTENSION_HEADER: &str = "x-airlock-unsafe-extension-until";
/// Cap on small JSON answers.
const MAX_JSON_BYTES: usize = 4 << 20;
/// Read size for uploads.
const UPLOAD_CHUNK: usize = 1 << 20;

type RequestBody = BoxBody<Bytes, std::io::Error>;

/// Why a remote call failed. Each names the URL.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error("invalid server URL {0:?}: use http://host:port or https://host:port")]
    BadUrl(String),
    #[error("{url}: {detail}")]
    Transport { url: String, detail: String },
    #[error("{url}: timed out")]
    Timeout { url: String },
    #[error("{url}: server answered {status}: {message}")]
    Status { url: String, status: StatusCode, message: String },
    #[error("{url}: response is over the {cap}-byte cap")]
    TooLarge { url: String, cap: u64 },
    #[error("{url}: invalid response: {detail}")]
    Invalid { url: String, detail: String },
    #[error("{path}: {source}")]
    File { path: String, source: std::io::Error },
}

impl RemoteError {
    /// The HTTP status, if the server answered with an error status.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Self::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// TLS trust for HTTPS servers: the system's roots plus an optional extra CA certificate.
#[derive(Debug, Clone, Default)]
pub struct TlsOptions {
    pub ca_cert: Option<std::path::PathBuf>,
}

/// A registry server.
#[derive(Clone)]
pub struct Remote {
    base: String,
    token: Option<String>,
    limits: TransferLimits,
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, RequestBody>,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remote")
            .field("base", &self.base)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

fn tls_config(options: &TlsOptions) -> anyhow::Result<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    if let Some(path) = &options.ca_cert {
        let pem = std::fs::read(path)
            .map_err(|e| anyhow::anyhow!("cannot read CA certificate {}: {e}", path.display()))?;
        for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
            roots.add(cert?)?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

impl Remote {
    /// A client for the server at `base` (`http://` or `https://`), with an optional bearer token.
    pub fn new(base: &str, token: Option<String>, tls: &TlsOptions) -> anyhow::Result<Self> {
        let base = base.trim_end_matches('/').to_owned();
        let uri: Uri = base.parse().map_err(|_| RemoteError::BadUrl(base.clone()))?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
            return Err(RemoteError::BadUrl(base).into());
        }
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        http.enforce_http(false);
        http.set_connect_timeout(Some(RESPONSE_TIMEOUT));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls_config(tls)?)
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new()).build(https);
        Ok(Self { base, token, limits: TransferLimits::default(), client })
    }

    /// Uses other transfer limits (the defaults suit most links).
    #[must_use]
    pub fn with_limits(mut self, limits: TransferLimits) -> Self {
        self.limits = limits;
        self
    }

    /// The base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: RequestBody,
        content_type: Option<&str>,
    ) -> Result<(String, http::Response<Incoming>), RemoteError> {
        let url = self.url(path);
        let mut builder = Request::builder()
            .method(method)
            .uri(&url)
            .header(header::USER_AGENT, concat!("airlock/", env!("CARGO_PKG_VERSION")));
        if let Some(token) = &self.token {
            builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        if let Some(ct) = content_type {
            builder = builder.header(header::CONTENT_TYPE, ct);
        }
        let request = builder
            .body(body)
            .map_err(|e| RemoteError::Transport { url: url.clone(), detail: e.to_string() })?;
        let response = match tokio::time::timeout(RESPONSE_TIMEOUT, self.client.request(request)).await {
            Err(_) => return Err(RemoteError::Timeout { url }),
            Ok(Err(e)) => return Err(RemoteError::Transport { url, detail: error_chain(&e) }),
            Ok(Ok(response)) => response,
        };
        if !response.status().is_success() {
            let status = response.status();
            let body =
                read_capped(&url, response.into_body(), 64 * 1024, self.limits).await.unwrap_or_default();
            let message = serde_json::from_slice::<ErrorBody>(&body)
                .map(|e| e.error)
                .unwrap_or_else(|_| String::from_utf8_lossy(&body).chars().take(200).collect());
            return Err(RemoteError::Status { url, status, message });
        }
        Ok((url, response))
    }

    async fn get_bytes(&self, path: &str, cap: usize) -> Result<Vec<u8>, RemoteError> {
        let (url, response) = self.send(Method::GET, path, empty(), None).await?;
        read_capped(&url, response.into_body(), cap, self.limits).await
    }

    /// `GET /v1/log/checkpoint`: the signed checkpoint envelope bytes.
    pub async fn checkpoint(&self) -> Result<Vec<u8>, RemoteError> {
        Ok(self.checkpoint_with_extension().await?.0)
    }

    /// The checkpoint, and the time until which the server says it serves an expired checkpoint
    /// under an operator's unsafe extension (header `x-airlock-unsafe-extension-until`), if it does.
    pub async fn checkpoint_with_extension(&self) -> Result<(Vec<u8>, Option<u64>), RemoteError> {
        let (url, response) = self.send(Method::GET, "/v1/log/checkpoint", empty(), None).await?;
        let extension = response
            .headers()
            .get(EXTENSION_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let bytes =
            read_capped(&url, response.into_body(), Checkpoint::MAX_ENVELOPE_BYTES, self.limits).await?;
        Ok((bytes, extension))
    }

    /// Leaves `[start, end)`, fetched in pages. Every page must continue exactly where the
    /// previous one ended.
    pub async fn leaves(
        &self,
        start: u64,
        end: u64,
        progress: &Progress,
    ) -> Result<Vec<Vec<u8>>, RemoteError> {
        let mut out = Vec::new();
        let mut next = start;
        while next < end {
            let path = format!("/v1/log/leaves?start={next}&end={end}");
            let bytes = self.get_bytes(&path, MAX_PAGE_BYTES).await?;
            let url = self.url(&path);
            let page: LeavesPage = codec::decode("leaves page", &bytes, MAX_PAGE_BYTES)
                .map_err(|e| RemoteError::Invalid { url: url.clone(), detail: e.to_string() })?;
            if page.start != next || page.leaves.is_empty() || page.leaves.len() as u64 > end - next {
                return Err(RemoteError::Invalid {
                    url,
                    detail: format!("page does not continue the log at leaf {next}"),
                });
            }
            next += page.leaves.len() as u64;
            progress.inc(page.leaves.len() as u64);
            out.extend(page.leaves.into_iter().map(serde_bytes::ByteBuf::into_vec));
        }
        Ok(out)
    }

    /// `GET /v1/log/proof/inclusion`
    pub async fn inclusion_proof(&self, index: u64, size: u64) -> Result<Proof, RemoteError> {
        let path = format!("/v1/log/proof/inclusion?index={index}&size={size}");
        let bytes = self.get_bytes(&path, MAX_PROOF_BYTES).await?;
        codec::decode("proof", &bytes, MAX_PROOF_BYTES)
            .map_err(|e| RemoteError::Invalid { url: self.url(&path), detail: e.to_string() })
    }

    /// `GET` a JSON document.
    pub async fn get_json<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T, RemoteError> {
        let bytes = self.get_bytes(path, MAX_JSON_BYTES).await?;
        serde_json::from_slice(&bytes)
            .map_err(|e| RemoteError::Invalid { url: self.url(path), detail: e.to_string() })
    }

    /// `POST` with an empty body, answered with JSON.
    pub async fn post_json<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T, RemoteError> {
        let (url, response) = self.send(Method::POST, path, empty(), None).await?;
        let bytes = read_capped(&url, response.into_body(), MAX_JSON_BYTES, self.limits).await?;
        serde_json::from_slice(&bytes).map_err(|e| RemoteError::Invalid { url, detail: e.to_string() })
    }

    /// `POST /v1/statements`
    pub async fn submit(&self, envelope: Vec<u8>) -> Result<Submitted, RemoteError> {
        let (url, response) =
            self.send(Method::POST, "/v1/statements", full(envelope), Some("application/cbor")).await?;
        let bytes = read_capped(&url, response.into_body(), MAX_JSON_BYTES, self.limits).await?;
        serde_json::from_slice(&bytes).map_err(|e| RemoteError::Invalid { url, detail: e.to_string() })
    }

    /// `PUT /v1/blobs/blake3/<hex>`: streams the file at `path` (which must hash to `digest`).
    pub async fn upload_blob(
        &self,
        path: &Path,
        digest: &Digest,
        progress: &Progress,
    ) -> Result<BlobStored, RemoteError> {
        self.send_file(Method::PUT, &format!("/v1/blobs/blake3/{}", digest.to_hex()), path, progress).await
    }

    /// Streams the file at `path` as a request body and reads a JSON answer.
    pub async fn send_file<T: serde::de::DeserializeOwned>(
        &self,
        method: Method,
        url_path: &str,
        path: &Path,
        progress: &Progress,
    ) -> Result<T, RemoteError> {
        let file_err = |source| RemoteError::File { path: path.display().to_string(), source };
        let file = tokio::fs::File::open(path).await.map_err(file_err)?;
        let len = file.metadata().await.map_err(file_err)?.len();
        progress.set_length(len);
        let reporter = progress.clone();
        let stream = tokio_util::io::ReaderStream::with_capacity(file.take(len), UPLOAD_CHUNK)
            .inspect_ok(move |chunk| reporter.inc(chunk.len() as u64))
            .map_ok(Frame::data);
        let body = StreamBody::new(stream).boxed();
        let (url, response) = self.send(method, url_path, body, Some("application/octet-stream")).await?;
        let bytes = read_capped(&url, response.into_body(), MAX_JSON_BYTES, self.limits).await?;
        serde_json::from_slice(&bytes).map_err(|e| RemoteError::Invalid { url, detail: e.to_string() })
    }

    /// `GET /v1/blobs/blake3/<hex>`: streams the blob into `sink`, refusing more than
    /// `max_bytes` (the caller passes the logged size, so a longer answer is cut at size + 1).
    pub async fn download_blob(
        &self,
        digest: &Digest,
        max_bytes: u64,
        progress: &Progress,
        mut sink: impl FnMut(&[u8]) -> std::io::Result<()>,
    ) -> Result<u64, RemoteError> {
        let (url, response) =
            self.send(Method::GET, &format!("/v1/blobs/blake3/{}", digest.to_hex()), empty(), None).await?;
        let mut reader = BodyReader::new(&url, response.into_body(), self.limits);
        let mut total = 0u64;
        while let Some(chunk) = reader.next().await? {
            total += chunk.len() as u64;
            if total > max_bytes {
                return Err(RemoteError::TooLarge { url, cap: max_bytes });
            }
            sink(&chunk).map_err(|source| RemoteError::File { path: "output".to_owned(), source })?;
            progress.inc(chunk.len() as u64);
        }
        Ok(total)
    }
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}

fn empty() -> RequestBody {
    full(Vec::new())
}

fn full(bytes: Vec<u8>) -> RequestBody {
    Full::new(Bytes::from(bytes)).map_err(|never| match never {}).boxed()
}

/// Reads a response body chunk by chunk, enforcing the transfer limits.
struct BodyReader<'a> {
    url: &'a str,
    body: Incoming,
    limits: TransferLimits,
    started: tokio::time::Instant,
    received: u64,
}

impl<'a> BodyReader<'a> {
    fn new(url: &'a str, body: Incoming, limits: TransferLimits) -> Self {
        Self { url, body, limits, started: tokio::time::Instant::now(), received: 0 }
    }

    async fn next(&mut self) -> Result<Option<Bytes>, RemoteError> {
        loop {
            let frame = match tokio::time::timeout(self.limits.idle, self.body.frame()).await {
                Err(_) => return Err(RemoteError::Timeout { url: self.url.to_owned() }),
                Ok(None) => return Ok(None),
                Ok(Some(Err(e))) => {
                    return Err(RemoteError::Transport { url: self.url.to_owned(), detail: error_chain(&e) })
                }
                Ok(Some(Ok(frame))) => frame,
            };
            if let Ok(data) = frame.into_data() {
                self.received += data.len() as u64;
                let elapsed = self.started.elapsed();
                if elapsed > self.limits.grace {
                    let rate = self.received as f64 / elapsed.as_secs_f64();
                    if rate < self.limits.min_rate as f64 {
                        return Err(RemoteError::Transport {
                            url: self.url.to_owned(),
                            detail: format!(
                                "transfer too slow: {rate:.0} bytes/s, below the minimum of {} bytes/s",
                                self.limits.min_rate
                            ),
                        });
                    }
                }
                return Ok(Some(data));
            }
        }
    }
}

async fn read_capped(
    url: &str,
    body: Incoming,
    cap: usize,
    limits: TransferLimits,
) -> Result<Vec<u8>, RemoteError> {
    let mut reader = BodyReader::new(url, body, limits);
    let mut out = Vec::new();
    while let Some(chunk) = reader.next().await? {
        if out.len() + chunk.len() > cap {
            return Err(RemoteError::TooLarge { url: url.to_owned(), cap: cap as u64 });
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}
