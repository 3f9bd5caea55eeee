//! The remote registry API: checkpoints, leaves, proofs and blobs over HTTP(S), with a byte cap
//! on every response and timeouts on every step.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use airlock_proto::api::routes::{self, Route};
use airlock_proto::api::{
    BlobStored, ErrorBody, ErrorCode, ImportReport, LeavesPage, MirrorStatus, Proof, RootChain, Submitted,
    SyncReport, MAX_PAGE_BYTES, MAX_PROOF_BYTES, MAX_ROOT_CHAIN_BYTES,
};
use airlock_proto::{codec, Digest};
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
/// How long an idle connection stays pooled (below airlockd's default header-read timeout).
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(5);

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
    Status { url: String, status: StatusCode, code: Option<ErrorCode>, message: String },
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

    /// The machine-readable code of the server's error answer, if it sent one.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            Self::Status { code, .. } => *code,
            _ => None,
        }
    }
}

/// A witness's answer to `add-checkpoint`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WitnessAnswer {
    /// The cosignature line(s) to append to the checkpoint note.
    Cosigned(Vec<u8>),
    /// The witness holds this size of the log, not the `old` one the request named.
    Holds(u64),
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
        // A pooled connection idle longer than a server waits for the next request (airlockd's
        // header-read timeout, 10 s by default) would be closed under the next request sent on
        // it: connections idle this long are dropped first.
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(hyper_util::rt::TokioTimer::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .build(https);
        Ok(Self { base, token, limits: TransferLimits::default(), client })
    }

    /// Uses other transfer limits (the defaults suit most links).
    #[must_use]
    pub fn with_limits(mut self, limits: TransferLimits) -> Self {
        self.limits = limits;
        self
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
        let response = self.execute(method, &url, body, content_type, true).await?;
        self.successful(url, response).await
    }

    /// Sends one request to `url`, with this client's token when `with_token`.
    async fn execute(
        &self,
        method: Method,
        url: &str,
        body: RequestBody,
        content_type: Option<&str>,
        with_token: bool,
    ) -> Result<http::Response<Incoming>, RemoteError> {
        let mut builder = Request::builder()
            .method(method)
            .uri(url)
            .header(header::USER_AGENT, concat!("airlock/", env!("CARGO_PKG_VERSION")));
        if let (Some(token), true) = (&self.token, with_token) {
            builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        if let Some(ct) = content_type {
            builder = builder.header(header::CONTENT_TYPE, ct);
        }
        let request = builder
            .body(body)
            .map_err(|e| RemoteError::Transport { url: url.to_owned(), detail: e.to_string() })?;
        match tokio::time::timeout(RESPONSE_TIMEOUT, self.client.request(request)).await {
            Err(_) => Err(RemoteError::Timeout { url: url.to_owned() }),
            Ok(Err(e)) => Err(RemoteError::Transport { url: url.to_owned(), detail: error_chain(&e) }),
            Ok(Ok(response)) => Ok(response),
        }
    }

    /// The response, or the error its status and body name.
    async fn successful(
        &self,
        url: String,
        response: http::Response<Incoming>,
    ) -> Result<(String, http::Response<Incoming>), RemoteError> {
        if !response.status().is_success() {
            let status = response.status();
            let body =
                read_capped(&url, response.into_body(), 64 * 1024, self.limits).await.unwrap_or_default();
            let (code, message) = match serde_json::from_slice::<ErrorBody>(&body) {
                Ok(answer) => (Some(answer.code), answer.error),
                Err(_) => (None, String::from_utf8_lossy(&body).chars().take(200).collect()),
            };
            return Err(RemoteError::Status { url, status, code, message });
        }
        Ok((url, response))
    }

    async fn get_bytes(&self, path: &str, cap: usize) -> Result<Vec<u8>, RemoteError> {
        let (url, response) = self.send(Method::GET, path, empty(), None).await?;
        read_capped(&url, response.into_body(), cap, self.limits).await
    }

    /// `GET` a JSON body of type `T`.
    async fn get_json<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T, RemoteError> {
        let bytes = self.get_bytes(path, MAX_JSON_BYTES).await?;
        serde_json::from_slice(&bytes)
            .map_err(|e| RemoteError::Invalid { url: self.url(path), detail: e.to_string() })
    }

    /// Sends `body` and reads a JSON answer of type `T`.
    async fn call_json<T: serde::de::DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: RequestBody,
        content_type: Option<&str>,
    ) -> Result<T, RemoteError> {
        let (url, response) = self.send(method, path, body, content_type).await?;
        json_answer(url, response, self.limits).await
    }

    /// `POST /add-checkpoint` to a witness (c2sp.org/tlog-witness): its cosignature line, or the
    /// size it holds when that is not the `old` size the request named.
    pub async fn add_checkpoint(&self, body: Vec<u8>) -> Result<WitnessAnswer, RemoteError> {
        match self.send(Method::POST, "/add-checkpoint", full(body), Some("text/plain")).await {
            Ok((url, response)) => {
                let line = read_capped(&url, response.into_body(), 4096, self.limits).await?;
                Ok(WitnessAnswer::Cosigned(line))
            }
            Err(RemoteError::Status { status: StatusCode::CONFLICT, message, url, .. }) => {
                message.trim().parse().map(WitnessAnswer::Holds).map_err(|_| RemoteError::Invalid {
                    url,
                    detail: format!("409 without a size: {message:?}"),
                })
            }
            Err(e) => Err(e),
        }
    }

    /// `GET /v1/log/checkpoint`: the signed checkpoint note bytes.
    pub async fn checkpoint(&self) -> Result<Vec<u8>, RemoteError> {
        Ok(self.checkpoint_with_extension().await?.0)
    }

    /// The checkpoint, and the time until which the server says it serves an expired checkpoint
    /// under an operator's unsafe extension (header [`routes::EXTENSION_UNTIL_HEADER`]), if it does.
    pub async fn checkpoint_with_extension(&self) -> Result<(Vec<u8>, Option<u64>), RemoteError> {
        let (url, response) = self.send(Method::GET, &Route::Checkpoint.path(), empty(), None).await?;
        let extension = response
            .headers()
            .get(routes::EXTENSION_UNTIL_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let bytes =
            read_capped(&url, response.into_body(), airlock_proto::note::MAX_NOTE_BYTES, self.limits).await?;
        Ok((bytes, extension))
    }

    /// Leaves `[start, end)`, fetched in pages. Every page must continue exactly where the
    /// previous one ended.
    pub async fn leaves(
        &self,
        start: u64,
        end: u64,
        progress: &dyn Progress,
    ) -> Result<Vec<Vec<u8>>, RemoteError> {
        let mut out = Vec::new();
        self.leaves_each(start, end, usize::MAX, progress, |page| {
            out.extend(page);
            Ok::<(), RemoteError>(())
        })
        .await?;
        Ok(out)
    }

    /// Leaves `[start, end)`, handed to `on_page` page by page as they arrive, so that a caller
    /// can verify each before the next is fetched. Every page must continue exactly where the
    /// previous one ended; more than `max_total_bytes` of leaves in all is refused.
    pub async fn leaves_each<E: From<RemoteError>>(
        &self,
        start: u64,
        end: u64,
        max_total_bytes: usize,
        progress: &dyn Progress,
        mut on_page: impl FnMut(Vec<Vec<u8>>) -> Result<(), E>,
    ) -> Result<(), E> {
        // One page is fetched ahead: while `on_page` verifies a page, the runtime's worker
        // fetches the next one. Dropping the guard (an error) stops that fetch.
        let fetch = |from: u64| {
            let remote = self.clone();
            AbortOnDrop(tokio::spawn(async move { remote.leaves_page(from, end).await }))
        };
        let mut next = start;
        let mut total = 0usize;
        let mut ahead = (next < end).then(|| fetch(next));
        while let Some(mut fetching) = ahead.take() {
            let (url, page) = (&mut fetching.0).await.map_err(|e| RemoteError::Invalid {
                url: self.url(&routes::leaves_path(next, end)),
                detail: format!("the page fetch stopped: {e}"),
            })??;
            if page.start != next || page.leaves.is_empty() || page.leaves.len() as u64 > end - next {
                return Err(RemoteError::Invalid {
                    url,
                    detail: format!("page does not continue the log at leaf {next}"),
                }
                .into());
            }
            total = total.saturating_add(page.leaves.iter().map(|l| l.len()).sum::<usize>());
            if total > max_total_bytes {
                return Err(RemoteError::Invalid {
                    url,
                    detail: format!("the new leaves are over the {max_total_bytes}-byte cap"),
                }
                .into());
            }
            next += page.leaves.len() as u64;
            ahead = (next < end).then(|| fetch(next));
            progress.inc(page.leaves.len() as u64);
            on_page(page.leaves.into_iter().map(serde_bytes::ByteBuf::into_vec).collect())?;
        }
        Ok(())
    }

    /// `GET /v1/log/leaves` from `start` towards `end`: one page, decoded, and its URL.
    async fn leaves_page(&self, start: u64, end: u64) -> Result<(String, LeavesPage), RemoteError> {
        let path = routes::leaves_path(start, end);
        let bytes = self.get_bytes(&path, MAX_PAGE_BYTES).await?;
        let url = self.url(&path);
        let page = codec::decode("leaves page", &bytes, MAX_PAGE_BYTES)
            .map_err(|e| RemoteError::Invalid { url: url.clone(), detail: e.to_string() })?;
        Ok((url, page))
    }

    /// `GET /v1/roots`: every logged root's envelope, oldest first (unverified: the caller walks
    /// them with the root chain rules).
    pub async fn roots(&self) -> Result<Vec<Vec<u8>>, RemoteError> {
        let path = routes::Route::Roots.path();
        let bytes = self.get_bytes(&path, MAX_ROOT_CHAIN_BYTES).await?;
        let chain: RootChain = codec::decode("root chain", &bytes, MAX_ROOT_CHAIN_BYTES)
            .map_err(|e| RemoteError::Invalid { url: self.url(&path), detail: e.to_string() })?;
        Ok(chain.roots.into_iter().map(serde_bytes::ByteBuf::into_vec).collect())
    }

    /// `GET /v1/log/proof/inclusion`
    pub async fn inclusion_proof(&self, index: u64, size: u64) -> Result<Proof, RemoteError> {
        let path = routes::inclusion_path(index, size);
        let bytes = self.get_bytes(&path, MAX_PROOF_BYTES).await?;
        codec::decode("proof", &bytes, MAX_PROOF_BYTES)
            .map_err(|e| RemoteError::Invalid { url: self.url(&path), detail: e.to_string() })
    }

    /// `POST /v1/statements`: submits a signed statement envelope. The answer is unverified:
    /// check it with `airlock_keys::verify_included` before trusting it.
    pub async fn submit(&self, envelope: Vec<u8>) -> Result<Submitted, RemoteError> {
        self.call_json(Method::POST, &Route::Statements.path(), full(envelope), Some(routes::CBOR)).await
    }

    /// `PUT /v1/blobs/blake3/<hex>`: streams the file at `path` (which must hash to `digest`).
    pub async fn upload_blob(
        &self,
        path: &Path,
        digest: &Digest,
        progress: &dyn Progress,
    ) -> Result<BlobStored, RemoteError> {
        self.send_file(Method::PUT, &routes::blob_path(digest), path, progress).await
    }

    /// `GET /v1/admin/tokens` (admin): the token grants of a running server (never a token).
    pub async fn list_tokens(&self) -> Result<airlock_proto::api::TokenList, RemoteError> {
        self.get_json(&Route::AdminTokens.path()).await
    }

    /// `POST /v1/admin/tokens` (admin): creates a token on a running server.
    pub async fn create_token(
        &self,
        wanted: &airlock_proto::api::TokenCreate,
    ) -> Result<airlock_proto::api::TokenCreated, RemoteError> {
        self.post_json(&Route::AdminTokens.path(), wanted).await
    }

    /// `POST /v1/admin/checkpoint` (admin, a primary): a checkpoint of the current log valid for
    /// `valid_for` seconds, for a bundle. Unverified: the caller verifies it like any other.
    pub async fn checkpoint_valid_for(&self, valid_for: u64) -> Result<Vec<u8>, RemoteError> {
        let path = Route::AdminCheckpoint.path();
        let body = serde_json::to_vec(&airlock_proto::api::CheckpointRequest { valid_for })
            .map_err(|e| RemoteError::Invalid { url: self.url(&path), detail: e.to_string() })?;
        let (url, response) = self.send(Method::POST, &path, full(body), Some("application/json")).await?;
        read_capped(&url, response.into_body(), airlock_proto::note::MAX_NOTE_BYTES, self.limits).await
    }

    /// `DELETE /v1/admin/tokens/<id or label>` (admin): revokes tokens on a running server.
    pub async fn revoke_token(&self, which: &str) -> Result<airlock_proto::api::TokensRevoked, RemoteError> {
        self.call_json(Method::DELETE, &Route::AdminToken(which).path(), empty(), None).await
    }

    /// `POST /v1/admin/gc` (admin): garbage collection on a running server.
    pub async fn gc(
        &self,
        wanted: &airlock_proto::api::GcRequest,
    ) -> Result<airlock_proto::api::GcReport, RemoteError> {
        self.post_json(&Route::AdminGc.path(), wanted).await
    }

    /// `POST` a JSON body to `path` and read a JSON answer.
    async fn post_json<B: serde::Serialize, T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        wanted: &B,
    ) -> Result<T, RemoteError> {
        let body = serde_json::to_vec(wanted)
            .map_err(|e| RemoteError::Invalid { url: self.url(path), detail: e.to_string() })?;
        self.call_json(Method::POST, path, full(body), Some("application/json")).await
    }

    /// `POST /v1/admin/reload` (admin): the TLS certificate read again.
    pub async fn reload(&self) -> Result<airlock_proto::api::ReloadReport, RemoteError> {
        self.call_json(Method::POST, &Route::AdminReload.path(), empty(), None).await
    }

    /// `POST /v1/admin/scrub` (admin): checks every blob and the log, repairing on request.
    pub async fn scrub(
        &self,
        wanted: &airlock_proto::api::ScrubRequest,
    ) -> Result<airlock_proto::api::ScrubReport, RemoteError> {
        self.post_json(&Route::AdminScrub.path(), wanted).await
    }

    /// `POST /v1/admin/purge` (admin): removes the blobs of a revoked release.
    pub async fn purge(
        &self,
        wanted: &airlock_proto::api::PurgeRequest,
    ) -> Result<airlock_proto::api::PurgeReport, RemoteError> {
        self.post_json(&Route::AdminPurge.path(), wanted).await
    }

    /// `POST /v1/mirror/sync` (admin): makes a mirror sync from its upstream now.
    pub async fn mirror_sync(&self) -> Result<SyncReport, RemoteError> {
        self.call_json(Method::POST, &Route::MirrorSync.path(), empty(), None).await
    }

    /// `GET /v1/scan/policy`: how the registry wants node packs scanned.
    pub async fn scan_policy(&self) -> Result<airlock_proto::api::ScanPolicy, RemoteError> {
        self.get_json(&Route::ScanPolicy.path()).await
    }

    /// `GET /v1/releases/<kind>/<name>`: every logged release of a name (`None`: none is).
    pub async fn releases_of(
        &self,
        kind: airlock_proto::Kind,
        name: &str,
    ) -> Result<Option<airlock_proto::api::ReleaseList>, RemoteError> {
        match self.get_json(&Route::ReleasesOf { kind: kind.as_str(), name }.path()).await {
            Ok(list) => Ok(Some(list)),
            Err(RemoteError::Status { status: StatusCode::NOT_FOUND, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `GET /v1/mirror/status`: how far behind its upstream a mirror is.
    pub async fn mirror_status(&self) -> Result<MirrorStatus, RemoteError> {
        self.get_json(&Route::MirrorStatus.path()).await
    }

    /// `POST /v1/mirror/import` (admin): streams the bundle at `path` into a running mirror.
    pub async fn import_bundle(
        &self,
        path: &Path,
        progress: &dyn Progress,
    ) -> Result<ImportReport, RemoteError> {
        self.send_file(Method::POST, &Route::MirrorImport.path(), path, progress).await
    }

    /// Streams the file at `path` as a request body and reads a JSON answer. The body is sent
    /// from the connection's task, so it reports the bytes it sent over a channel and they are
    /// passed to `progress` here while the request runs.
    async fn send_file<T: serde::de::DeserializeOwned>(
        &self,
        method: Method,
        url_path: &str,
        path: &Path,
        progress: &dyn Progress,
    ) -> Result<T, RemoteError> {
        let file_err = |source| RemoteError::File { path: path.display().to_string(), source };
        let file = tokio::fs::File::open(path).await.map_err(file_err)?;
        let len = file.metadata().await.map_err(file_err)?.len();
        progress.set_length(len);
        let (sent, mut sent_rx) = tokio::sync::mpsc::unbounded_channel::<u64>();
        let stream = tokio_util::io::ReaderStream::with_capacity(file.take(len), UPLOAD_CHUNK)
            .inspect_ok(move |chunk| {
                // The receiver is gone only once the request is over; nothing to report then.
                let _ = sent.send(chunk.len() as u64);
            })
            .map_ok(Frame::data);
        let body = StreamBody::new(stream).boxed();
        let request = self.send(method, url_path, body, Some(routes::OCTET_STREAM));
        tokio::pin!(request);
        let mut reporting = true;
        let (url, response) = loop {
            tokio::select! {
                result = &mut request => break result?,
                n = sent_rx.recv(), if reporting => match n {
                    Some(n) => progress.inc(n),
                    None => reporting = false,
                },
            }
        };
        while let Ok(n) = sent_rx.try_recv() {
            progress.inc(n);
        }
        json_answer(url, response, self.limits).await
    }

    /// `GET /v1/blobs/blake3/<hex>`: streams the blob into `sink`, refusing more than
    /// `max_bytes` (the caller passes the logged size, so a longer answer is cut at size + 1).
    pub async fn download_blob(
        &self,
        digest: &Digest,
        max_bytes: u64,
        progress: &dyn Progress,
        mut sink: impl FnMut(&Bytes) -> std::io::Result<()>,
    ) -> Result<u64, RemoteError> {
        let url = self.url(&routes::blob_path(digest));
        let mut response = self.execute(Method::GET, &url, empty(), None, true).await?;
        let mut url = url;
        if response.status() == StatusCode::TEMPORARY_REDIRECT || response.status() == StatusCode::FOUND {
            // A registry whose blobs are in an object store may send the client there, with a
            // signed URL. One hop, to http(s) only, and without the token: a credential never
            // goes to another origin. The bytes are checked by digest as always.
            let location = response
                .headers()
                .get(header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .filter(|l| l.starts_with("http://") || l.starts_with("https://"))
                .map(str::to_owned)
                .ok_or_else(|| RemoteError::Invalid {
                    url: url.clone(),
                    detail: "a redirect without an absolute http(s) Location".to_owned(),
                })?;
            // The signature is a credential for a while: messages name the place without it.
            url = location.split('?').next().unwrap_or_default().to_owned();
            response = self.execute(Method::GET, &location, empty(), None, false).await.map_err(|e| {
                let detail = match e {
                    RemoteError::Transport { detail, .. } => detail,
                    RemoteError::Timeout { .. } => "no answer in time".to_owned(),
                    other => other.to_string().replace(&location, &url),
                };
                RemoteError::Transport {
                    url: url.clone(),
                    detail: format!("following the redirect: {detail}"),
                }
            })?;
        }
        let (url, response) = self.successful(url, response).await?;
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

/// Reads a JSON answer of type `T`, capped.
async fn json_answer<T: serde::de::DeserializeOwned>(
    url: String,
    response: http::Response<Incoming>,
    limits: TransferLimits,
) -> Result<T, RemoteError> {
    let bytes = read_capped(&url, response.into_body(), MAX_JSON_BYTES, limits).await?;
    serde_json::from_slice(&bytes).map_err(|e| RemoteError::Invalid { url, detail: e.to_string() })
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

/// A spawned task that is stopped when its handle is dropped.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::sync::atomic::{AtomicU64, Ordering};

    use airlock_proto::api::ImportedState;
    use airlock_proto::{Hash32, Sha256};
    use hyper::service::service_fn;
    use hyper_util::rt::TokioIo;

    use super::*;

    /// Answers the routes the typed methods use, as the server would, from proto types.
    async fn answer(request: Request<Incoming>) -> Result<http::Response<Full<Bytes>>, Infallible> {
        let method = request.method().clone();
        let path = request.uri().path().to_owned();
        let content_type = request.headers().get(header::CONTENT_TYPE).cloned();
        let body = request.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
        let json = |value: serde_json::Result<Vec<u8>>| {
            http::Response::builder()
                .header(header::CONTENT_TYPE, routes::JSON)
                .body(Full::new(Bytes::from(value.unwrap())))
                .unwrap()
        };
        let response = match (method, Route::parse(&path)) {
            (Method::PUT, Some(Route::Blob(hex))) => {
                assert_eq!(content_type.unwrap(), routes::OCTET_STREAM);
                json(serde_json::to_vec(&BlobStored {
                    digest: format!("blake3:{hex}").parse().unwrap(),
                    size: body.len() as u64,
                    sha256: Sha256([1; 32]),
                }))
            }
            (Method::POST, Some(Route::MirrorImport)) => json(serde_json::to_vec(&ImportReport {
                from_size: 0,
                to_size: 3,
                blobs_stored: body.len() as u64,
                state: ImportedState { origin: "o".into(), size: 3, root_hash: Hash32([2; 32]) },
            })),
            (Method::POST, Some(Route::MirrorSync)) => json(serde_json::to_vec(&SyncReport {
                upstream: "http://up".into(),
                to_size: 9,
                ..SyncReport::default()
            })),
            (Method::GET, Some(Route::MirrorStatus)) => json(serde_json::to_vec(&MirrorStatus {
                upstream: "http://up".into(),
                last_error: Some("down".into()),
                ..MirrorStatus::default()
            })),
            (Method::GET, Some(Route::Checkpoint)) => http::Response::builder()
                .header(routes::EXTENSION_UNTIL_HEADER, "77")
                .body(Full::new(Bytes::from_static(b"checkpoint")))
                .unwrap(),
            _ => http::Response::builder()
                .status(StatusCode::NOT_FOUND)
                .body(Full::new(Bytes::from(
                    serde_json::to_vec(&ErrorBody {
                        error: "no such route".into(),
                        code: ErrorCode::NotFound,
                    })
                    .unwrap(),
                )))
                .unwrap(),
        };
        Ok(response)
    }

    async fn server() -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service_fn(answer)),
                );
            }
        });
        format!("http://{addr}")
    }

    #[derive(Debug, Default)]
    struct Counted {
        length: AtomicU64,
        done: AtomicU64,
    }

    impl Progress for Counted {
        fn set_length(&self, len: u64) {
            self.length.store(len, Ordering::SeqCst);
        }

        fn inc(&self, n: u64) {
            self.done.fetch_add(n, Ordering::SeqCst);
        }
    }

    #[tokio::test]
    async fn typed_methods_use_the_proto_routes_and_bodies() {
        let remote = Remote::new(&server().await, None, &TlsOptions::default()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("blob");
        let bytes = vec![7u8; 3 * UPLOAD_CHUNK + 5];
        std::fs::write(&file, &bytes).unwrap();
        let digest = Digest::of(&bytes);

        let progress = Counted::default();
        let stored = remote.upload_blob(&file, &digest, &progress).await.unwrap();
        assert_eq!((stored.digest, stored.size), (digest, bytes.len() as u64));
        assert_eq!(progress.length.load(Ordering::SeqCst), bytes.len() as u64);
        assert_eq!(progress.done.load(Ordering::SeqCst), bytes.len() as u64, "every sent byte reported");

        let report = remote.import_bundle(&file, &crate::progress::NoProgress).await.unwrap();
        assert_eq!((report.to_size, report.blobs_stored), (3, bytes.len() as u64));
        assert_eq!(report.state.root_hash, Hash32([2; 32]));
        assert_eq!(remote.mirror_sync().await.unwrap().to_size, 9);
        assert_eq!(remote.mirror_status().await.unwrap().last_error.as_deref(), Some("down"));
        assert_eq!(remote.checkpoint_with_extension().await.unwrap(), (b"checkpoint".to_vec(), Some(77)));

        let error = remote.inclusion_proof(0, 1).await.unwrap_err();
        assert_eq!((error.status(), error.code()), (Some(StatusCode::NOT_FOUND), Some(ErrorCode::NotFound)));
        assert!(error.to_string().contains("no such route"), "{error}");
    }
}
