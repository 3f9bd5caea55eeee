//! The accept loop: TCP (with `TCP_NODELAY`), optional TLS, HTTP/1.1 and h2, timeouts, and
//! graceful shutdown.

use std::convert::Infallible;
use std::future::Future;
use std::path::Path;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use ::http::{Request, Response};
use anyhow::Context;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::app::App;
use crate::config::{Config, Limits, TlsFiles};
use crate::http;
use crate::http::body::Body;
use crate::mirror::follow::Follower;
use crate::traffic::{Counted, Traffic};
use crate::zero_copy::{Sends, ZeroCopyIo};

/// How long in-flight requests get to finish after shutdown is requested.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// How often an idle h2 connection is pinged, and how long the answer may take.
const H2_KEEP_ALIVE: Duration = Duration::from_secs(30);
/// How long a TLS handshake may take.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Opens the registry in `config.data` and serves it on `listener` until `shutdown` completes.
/// Opening is blocking work (it replays the log); it runs before the first accept.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let app = Arc::new(tokio::task::spawn_blocking(move || App::open(config)).await??);
    let tls = app.tls.clone();
    let periodic = match (&app.follower, app.config.sync_interval) {
        (Some(follower), Some(interval)) => {
            Some(tokio::spawn(Arc::clone(follower).run_periodically(interval)))
        }
        _ => None,
    };
    let on_signal = app.follower.as_ref().map(|follower| tokio::spawn(sync_on_sighup(Arc::clone(follower))));
    let freshness = Some(tokio::spawn(warn_of_expiry(Arc::clone(&app))));
    let snapshots = Some(tokio::spawn(save_snapshots(Arc::clone(&app))));
    let scrubs = app.config.scrub_interval.map(|interval| {
        let rate = app.config.scrub_rate_mib_per_s.map(|mib| mib << 20);
        tokio::spawn(crate::scrub::run_periodically(Arc::clone(&app), interval, rate))
    });
    crate::notify::notify("READY=1");
    let result = serve(listener, Arc::clone(&app), tls, shutdown).await;
    for task in [periodic, on_signal, freshness, snapshots, scrubs].into_iter().flatten() {
        task.abort();
    }
    tokio::task::spawn_blocking(move || app.save_snapshot()).await?;
    result
}

/// Saves the fold snapshot every interval while the log grows.
async fn save_snapshots(app: Arc<App>) {
    let mut tick = tokio::time::interval(crate::snapshot::SNAPSHOT_INTERVAL);
    tick.tick().await;
    loop {
        tick.tick().await;
        let app = Arc::clone(&app);
        let _ = tokio::task::spawn_blocking(move || app.save_snapshot()).await;
    }
}

/// Logs what is close to expiring (the checkpoint a delivery must renew, the root in force) at
/// start and every hour.
async fn warn_of_expiry(app: Arc<App>) {
    let mut tick = tokio::time::interval(Duration::from_secs(3_600));
    loop {
        tick.tick().await;
        crate::freshness::log_warnings(&app);
    }
}

/// A mirror syncs now when it receives SIGHUP.
async fn sync_on_sighup(follower: Arc<Follower>) {
    let Ok(mut hangup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else {
        return tracing::warn!("cannot listen for SIGHUP; sync on demand with `airlock mirror sync`");
    };
    while hangup.recv().await.is_some() {
        tracing::info!("SIGHUP: syncing from the upstream now");
        if let Err(e) = follower.sync_once().await {
            tracing::warn!(error = format!("{e:#}"), "mirror sync failed");
        }
    }
}

/// Serves an opened registry.
pub async fn serve(
    listener: TcpListener,
    app: Arc<App>,
    tls: Option<SharedTls>,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let limits = app.config.limits.clone();
    let traffic = app.metrics.traffic().clone();
    let zero_copy = app.config.zero_copy;
    let handler = move |request| http::handle(Arc::clone(&app), request);
    serve_with(listener, &limits, tls, zero_copy, handler, shutdown, traffic).await
}

/// The accept loop every airlock HTTP service runs (the registry and the witness): `handler`
/// answers each request; `traffic` counts the bytes each connection reads and writes and the
/// connections open. With `zero_copy`, each plain connection's requests carry its `Sends`, on
/// which blob bodies may queue file ranges (`zero_copy.rs`).
pub async fn serve_with<H, F>(
    listener: TcpListener,
    limits: &Limits,
    tls: Option<SharedTls>,
    zero_copy: bool,
    handler: H,
    shutdown: impl Future<Output = ()>,
    traffic: Traffic,
) -> anyhow::Result<()>
where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Result<Response<Body>, Infallible>> + Send + 'static,
{
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_header_bytes.max(8192))
        // Body bytes are queued, not copied, on their way to the socket: zero-copy bodies
        // (`zero_copy.rs`) depend on it. With `writev(false)` hyper would copy the placeholder
        // into its buffer and send it (`tests/it/zero_copy.rs` fails then).
        .writev(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
        // An idle h2 connection is pinged; one that stops answering is closed.
        .keep_alive_interval(Some(H2_KEEP_ALIVE))
        .keep_alive_timeout(H2_KEEP_ALIVE);
    let builder = Arc::new(builder);
    let admission = crate::admission::Admission::new(limits.max_connections);
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    tracing::info!(addr = %listener.local_addr()?, tls = tls.is_some(), "serving");
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        // Without this, Nagle's algorithm meets delayed ACK and every keep-alive request after
        // the first stalls for ~40 ms.
        if let Err(e) = stream.set_nodelay(true) {
            tracing::warn!(error = %e, "set_nodelay failed");
        }
        let Some(ticket) = admission.admit() else {
            tracing::debug!(%peer, open = admission.open(), "connection refused: every open connection is busy");
            continue;
        };
        let builder = Arc::clone(&builder);
        let handler = handler.clone();
        let connection_ticket = Arc::clone(&ticket);
        // The acceptor in force at this accept: a reload swaps it for later connections only.
        let acceptor = tls.as_ref().map(SharedTls::current);
        // Plain connections may send blob files without copying them (`zero_copy.rs`).
        let sends = (zero_copy && acceptor.is_none()).then(Sends::default);
        let request_sends = sends.clone();
        let hyper_service = service_fn(move |mut request: Request<Incoming>| {
            // Busy from the request head until the response body is sent or dropped.
            let guard = connection_ticket.request();
            if let Some(sends) = &request_sends {
                request.extensions_mut().insert(sends.clone());
            }
            let response = handler(request);
            async move {
                let response = response.await?;
                Ok::<_, Infallible>(response.map(|body| crate::admission::Tracked::new(body, guard)))
            }
        });
        let watcher = graceful.watcher();
        let deadline = limits.header_read_timeout;
        let open = traffic.connection();
        let stream = Counted::new(stream, traffic.clone());
        tokio::spawn(async move {
            let _open = open;
            let serve =
                async move {
                    match acceptor {
                        None => {
                            let stream = ZeroCopyIo::new(stream, sends.unwrap_or_default());
                            let connection =
                                builder.serve_connection(TokioIo::new(stream), hyper_service).into_owned();
                            watcher.watch(connection).await.map_err(|e| e.to_string())
                        }
                        Some(acceptor) => {
                            let stream =
                                match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream))
                                    .await
                                {
                                    Ok(Ok(stream)) => stream,
                                    Ok(Err(e)) => return Err(format!("TLS handshake failed: {e}")),
                                    Err(_) => return Err("TLS handshake timed out".to_owned()),
                                };
                            let connection =
                                builder.serve_connection(TokioIo::new(stream), hyper_service).into_owned();
                            watcher.watch(connection).await.map_err(|e| e.to_string())
                        }
                    }
                };
            tokio::select! {
                result = serve => if let Err(error) = result {
                    tracing::debug!(%peer, error, "connection ended with error");
                },
                why = ticket.closed_early(deadline) => tracing::debug!(%peer, why),
            }
        });
    }
    tracing::info!("shutting down: draining connections");
    crate::notify::notify("STOPPING=1");
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown()).await.is_err() {
        tracing::warn!("some connections did not finish in time");
    }
    Ok(())
}

/// The TLS acceptor new connections use; `airlockd reload` replaces it (`reload`).
#[derive(Clone)]
pub struct SharedTls(Arc<RwLock<TlsAcceptor>>);

impl std::fmt::Debug for SharedTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedTls")
    }
}

impl SharedTls {
    /// Loads the certificate and key.
    pub fn load(files: &TlsFiles) -> anyhow::Result<Self> {
        Ok(Self(Arc::new(RwLock::new(load_tls(files)?))))
    }

    /// The acceptor in force now.
    fn current(&self) -> TlsAcceptor {
        self.0.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Reads the certificate and key again and puts them in force for new connections; open
    /// connections keep the one they were accepted with. On an error the old one stays.
    pub fn reload(&self, files: &TlsFiles) -> anyhow::Result<()> {
        self.install(load_tls(files)?);
        Ok(())
    }

    /// Puts a loaded acceptor in force for new connections.
    pub fn install(&self, acceptor: TlsAcceptor) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = acceptor;
    }
}

/// Loads a PEM certificate chain and key into a TLS acceptor (rustls, ring provider; h2 and
/// HTTP/1.1 by ALPN).
pub fn load_tls(files: &TlsFiles) -> anyhow::Result<TlsAcceptor> {
    let certs = read_pem(&files.cert, |r| rustls_pemfile::certs(r).collect::<Result<Vec<_>, _>>())?;
    anyhow::ensure!(!certs.is_empty(), "no certificate found in {}", files.cert.display());
    let key = read_pem(&files.key, |r| rustls_pemfile::private_key(r))?
        .with_context(|| format!("no private key found in {}", files.key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("TLS certificate and key do not match or are unsupported")?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

fn read_pem<T>(path: &Path, parse: impl FnOnce(&mut &[u8]) -> std::io::Result<T>) -> anyhow::Result<T> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    parse(&mut bytes.as_slice()).with_context(|| format!("invalid PEM in {}", path.display()))
}
