//! airlock-server: the registry server (`airlockd`) as a library.
//!
//! `run(listener, config, shutdown)` opens a data directory and serves it; tests call it
//! in-process on `127.0.0.1:0`. The binary is a thin CLI over `cli::main`.

pub mod admission;
pub mod app;
pub mod audit;
pub mod auth;
pub mod cli;
pub mod comfy;
pub mod config;
pub mod error;
pub mod freshness;
pub mod gc;
pub mod http;
pub mod log_keys;
pub mod logging;
pub mod metrics;
pub mod migrate;
pub mod mirror;
pub mod notify;
pub mod primary;
pub mod purge;
pub mod registry;
pub mod reload;
pub mod scan_policy;
pub mod scrub;
pub mod server;
pub mod simple;
pub mod snapshot;
pub mod store;
pub mod traffic;
pub mod verify_store;
pub mod witness;
pub mod zero_copy;

pub use app::App;
pub use config::{Config, ReadAccess};
pub use server::{run, serve};
