//! airlock-client: the client library of airlock: the remote registry API and the client
//! workflows (follow the log, pull, export bundles, build statements). The `airlock` CLI is a
//! thin layer on top of it, in its own crate (`client/cli`).
//!
//! The library shows nothing and reads no clock of its own: progress goes through the
//! [`progress`] traits and every call that compares times takes an [`airlock_proto::Clock`].
//!
//! A mirror is a client of its upstream, so the server may use this library; this library never
//! depends on the server.

pub mod bundle;
pub mod bundle_reader;
pub mod comfy;
pub mod direct;
pub mod follow;
pub mod fsutil;
pub mod index;
pub mod lock;
pub mod pack;
pub mod progress;
pub mod proof;
pub mod publish;
pub mod pull;
pub mod remote;
pub mod scan;
pub mod sha256_thread;
pub mod state;
pub mod statements;
pub mod target;
pub mod versions;
pub mod wheel;

pub use progress::{NoProgress, Progress, Quiet, Reporter};
pub use remote::{Remote, RemoteError, TlsOptions};
