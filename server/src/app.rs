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
}

impl App {
    /// Opens the data directory in `config`. Blocking (it replays the log).
    pub fn open(config: Config) -> anyhow::Result<Self> {
        let store = Store::open(&config.data, config.clock.clone())?;
        let registry = Registry::open(&config, Arc::clone(&store))?;
        let follower = match (&config.upstream, registry.mirror()) {
            (Some(url), Some(mirror)) => Some(Arc::new(Follower::new(Arc::clone(mirror), url, &config)?)),
            _ => None,
        };
        Ok(Self { config, store, registry, follower })
    }
}
