//! Query-string parsing with a size cap.

use crate::error::ApiError;

/// Longest query string accepted.
pub const MAX_QUERY_LEN: usize = 2048;

/// Parsed `key=value` pairs (no percent-decoding: airlock's parameters are plain numbers and
/// names).
#[derive(Debug, Default)]
pub struct Query(Vec<(String, String)>);

impl Query {
    /// Parses a raw query string.
    pub fn parse(raw: Option<&str>) -> Result<Self, ApiError> {
        let raw = raw.unwrap_or("");
        if raw.len() > MAX_QUERY_LEN {
            return Err(ApiError::BadRequest(format!("query string is over {MAX_QUERY_LEN} bytes")));
        }
        let pairs = raw
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (k.to_owned(), v.to_owned())
            })
            .collect();
        Ok(Self(pairs))
    }

    /// The first value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// A required unsigned integer.
    pub fn u64(&self, key: &str) -> Result<u64, ApiError> {
        self.optional_u64(key)?.ok_or_else(|| ApiError::BadRequest(format!("missing query parameter {key}")))
    }

    /// An optional unsigned integer.
    pub fn optional_u64(&self, key: &str) -> Result<Option<u64>, ApiError> {
        self.get(key)
            .map(|v| {
                v.parse::<u64>().map_err(|_| {
                    ApiError::BadRequest(format!("query parameter {key} must be an unsigned integer"))
                })
            })
            .transpose()
    }
}
