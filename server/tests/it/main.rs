//! End-to-end tests: `airlockd` in-process on 127.0.0.1:0, driven by the real `airlock` CLI.
#![allow(clippy::unwrap_used)]

mod architecture;
mod attacks;
mod bundle;
mod clock;
mod comfy;
mod comfy_install;
mod crash;
mod freshness;
mod gc;
mod hardening;
mod harness;
mod interleave;
mod keepalive;
mod lifecycle;
mod logs;
mod memory;
mod metrics;
mod mirror;
mod packs;
mod proof;
mod proxy;
mod publish_pull;
mod python;
mod pytools;
mod reload;
mod review;
mod rotation;
mod scan;
mod scrub;
mod service;
mod snapshot;
mod tiles;
mod tokens;
mod transport;
mod witness;
