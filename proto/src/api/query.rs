//! The request parsers of the native API that take untrusted text: the query string (with a size
//! cap) and the `Range` header of a blob GET. They live here, beside the routes, so that they
//! can be fuzzed without the server.

/// Longest query string accepted.
pub const MAX_QUERY_LEN: usize = 2048;

/// Why a query string or range was refused; the message names what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("{0}")]
    Invalid(String),
    #[error("range not satisfiable for a blob of {size} bytes")]
    Unsatisfiable { size: u64 },
}

/// Parsed `key=value` pairs (no percent-decoding: airlock's parameters are plain numbers and
/// names).
#[derive(Debug, Default)]
pub struct Query(Vec<(String, String)>);

impl Query {
    /// Parses a raw query string.
    pub fn parse(raw: Option<&str>) -> Result<Self, RequestError> {
        let raw = raw.unwrap_or("");
        if raw.len() > MAX_QUERY_LEN {
            return Err(RequestError::Invalid(format!("query string is over {MAX_QUERY_LEN} bytes")));
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

    /// Every pair, in order, as sent (not percent-decoded).
    pub fn pairs(&self) -> &[(String, String)] {
        &self.0
    }

    /// The first value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// A required unsigned integer.
    pub fn u64(&self, key: &str) -> Result<u64, RequestError> {
        self.optional_u64(key)?.ok_or_else(|| RequestError::Invalid(format!("missing query parameter {key}")))
    }

    /// An optional unsigned integer.
    pub fn optional_u64(&self, key: &str) -> Result<Option<u64>, RequestError> {
        self.get(key)
            .map(|v| {
                v.parse::<u64>().map_err(|_| {
                    RequestError::Invalid(format!("query parameter {key} must be an unsigned integer"))
                })
            })
            .transpose()
    }
}

/// Parses a single `bytes=` range against `size`: the first and last byte, inclusive. `Ok(None)`
/// means "serve the whole blob" (a form not supported, such as several ranges); a range outside
/// the blob is `Unsatisfiable` (a 416).
pub fn parse_range(value: &str, size: u64) -> Result<Option<(u64, u64)>, RequestError> {
    let Some(spec) = value.strip_prefix("bytes=") else { return Ok(None) };
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((first, last)) = spec.trim().split_once('-') else { return Ok(None) };
    let unsatisfiable = RequestError::Unsatisfiable { size };
    let parse =
        |s: &str| s.parse::<u64>().map_err(|_| RequestError::Invalid(format!("invalid range {value:?}")));
    let (start, end) = if first.is_empty() {
        let suffix = parse(last)?;
        if suffix == 0 || size == 0 {
            return Err(unsatisfiable);
        }
        (size.saturating_sub(suffix), size - 1)
    } else {
        let start = parse(first)?;
        let end =
            if last.is_empty() { size.saturating_sub(1) } else { parse(last)?.min(size.saturating_sub(1)) };
        (start, end)
    };
    if start >= size || start > end {
        return Err(unsatisfiable);
    }
    Ok(Some((start, end)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100).ok().flatten(), Some((0, 9)));
        assert_eq!(parse_range("bytes=90-", 100).ok().flatten(), Some((90, 99)));
        assert_eq!(parse_range("bytes=-10", 100).ok().flatten(), Some((90, 99)));
        assert_eq!(parse_range("bytes=0-1000", 100).ok().flatten(), Some((0, 99)));
        assert_eq!(parse_range("bytes=100-", 100), Err(RequestError::Unsatisfiable { size: 100 }));
        assert!(parse_range("bytes=5-2", 100).is_err());
        assert_eq!(parse_range("bytes=0-1,5-6", 100).ok().flatten(), None);
        assert!(matches!(parse_range("bytes=x-1", 100), Err(RequestError::Invalid(_))));
        assert!(parse_range("bytes=-1", 0).is_err());
    }

    #[test]
    fn queries_are_capped_and_typed() {
        let query = Query::parse(Some("start=5&end=&x&start=9")).unwrap();
        assert_eq!(query.u64("start").unwrap(), 5);
        assert!(query.u64("end").is_err());
        assert_eq!(query.get("x"), Some(""));
        assert!(query.u64("missing").unwrap_err().to_string().contains("missing query parameter missing"));
        assert!(Query::parse(Some(&"a".repeat(MAX_QUERY_LEN + 1))).is_err());
    }
}
