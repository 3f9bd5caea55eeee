//! The audit log: every write the server is asked for (an upload, a statement, a mirror sync or
//! bundle import), accepted or refused, as one line under the `airlock::audit` target with who
//! asked (a token's label and scope, never the token), what (the method and path) and, when
//! refused, the status and why. Operators route it with `RUST_LOG=...,airlock::audit=info`.

use http::Response;

use crate::error::ApiError;
use crate::http::body::Body;

/// The tracing target of the audit log.
pub const TARGET: &str = "airlock::audit";

/// Records the outcome of the write `what` asked for by `who`.
pub fn record(who: &str, what: &str, outcome: &Result<Response<Body>, ApiError>) {
    match outcome {
        Ok(response) => {
            tracing::info!(target: TARGET, who, what, status = response.status().as_u16(), "write accepted");
        }
        Err(error) => {
            let why = error.to_string();
            tracing::warn!(target: TARGET, who, what, status = error.status().as_u16(), why, "write refused");
        }
    }
}
