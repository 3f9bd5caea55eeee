//! airlock-server: the registry server (`airlockd`) as a library.
//!
//! `run(listener, config, shutdown)` opens a data directory and serves it; tests call it
//! in-process on `127.0.0.1:0`. The binary is a thin CLI over `cli::main`.

pub mod auth;
pub mod bundle;
pub mod cli;
pub mod config;
pub mod error;
pub mod http;
pub mod mirror;
pub mod server;
pub mod service;
pub mod store;

pub use config::{Config, ReadAccess};
pub use server::{run, serve};
pub use service::Service;
