//! Everything a request handler can reach: the configuration, the store, the registry (primary
//! or mirror) and, for a mirror with an upstream, the follower the server owns.

use std::sync::Arc;

use crate::config::Config;
use crate::mirror::follow::Follower;
use crate::registry::Registry;
use crate::store::Store;

/// An opened registry, ready to serve.
#[derive(Debug)]
pub struct App {
    pub config: Config,
    pub store: Arc<Store>,
    pub registry: Registry,
    pub follower: Option<Arc<Follower>>,
    /// Saves the fold at shutdown and while the log grows.
    pub snapshots: crate::snapshot::Saver,
    /// What `GET /metrics` reports.
    pub metrics: crate::metrics::Metrics,
    /// The TLS acceptor, when the server speaks TLS (`POST /v1/admin/reload` swaps it).
    pub tls: Option<crate::server::SharedTls>,
    /// Small logged blobs held in memory for serving.
    pub small_blobs: crate::http::small_blobs::SmallBlobs,
    /// The aligned buffers uploads are received into and blob files are read into for GETs,
    /// reused from one request to the next.
    pub buffers: airlock_client::direct::AlignedPool,
    /// The blobs GETs read lately: a first read may read a cold file directly.
    pub recent_reads: crate::http::recent_reads::RecentReads,
}

impl App {
    /// Opens the data directory in `config`. Blocking (it replays the log).
    pub fn open(config: Config) -> anyhow::Result<Self> {
        let store = Store::open_with_memory(&config.data, config.clock.clone(), config.db_memory_mib)?;
        let registry = Registry::open(&config, Arc::clone(&store))?;
        let follower = match (&config.upstream, registry.mirror()) {
            (Some(url), Some(mirror)) => Some(Arc::new(Follower::new(Arc::clone(mirror), url, &config)?)),
            _ => None,
        };
        let snapshots = crate::snapshot::Saver::new(registry.size());
        let metrics = crate::metrics::Metrics::default();
        let tls = config.tls.as_ref().map(crate::server::SharedTls::load).transpose()?;
        Ok(Self {
            config,
            store,
            registry,
            follower,
            snapshots,
            metrics,
            tls,
            small_blobs: Default::default(),
            buffers: Default::default(),
            recent_reads: Default::default(),
        })
    }
}

impl App {
    /// Saves the fold snapshot if the log grew since the last save (blocking work).
    pub fn save_snapshot(&self) {
        if let Err(e) = self.snapshots.save_if_grown(&self.config.data, &self.registry) {
            tracing::warn!(
                error = format!("{e:#}"),
                "the fold snapshot was not saved; the next start replays more"
            );
        }
    }
}
