//! airlock-client: the remote registry API and the client workflows (follow the log, pull,
//! publish), with the `airlock` CLI as a thin layer on top (`cli`).
//!
//! A mirror is a client of its upstream, so the server may use this library; this library never
//! depends on the server.

pub mod bundle;
pub mod cli;
pub mod follow;
pub mod fsutil;
pub mod progress;
pub mod publish;
pub mod pull;
pub mod remote;
pub mod state;

pub use remote::{Remote, RemoteError, TlsOptions};
