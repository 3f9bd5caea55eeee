//! airlock's own wire contract: the routes and header names of the native HTTP API
//! ([`routes`]) and every body it carries ([`bodies`]), plus the bundle and state-file formats.
//! Formats defined by others (the Python Simple API, the Comfy Registry's JSON, Prometheus text)
//! live beside the code that serves them.

mod bodies;
mod fold_codec;
mod index_codec;
pub mod query;
pub mod routes;
mod snapshot;

pub use bodies::*;
pub use fold_codec::FoldDecodeError;
pub use index_codec::{decode_digest_bucket, decode_name_bucket, encode_digest_bucket, encode_name_bucket};
pub use routes::Route;
pub use snapshot::*;
