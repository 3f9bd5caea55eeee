//! Bearer tokens: creation, lookup and scopes. Only the BLAKE3 hash of a token is stored.

use std::fmt;

use crate::error::ApiError;
use crate::store::{Store, TokenRecord};

/// What a token allows. Each scope includes the ones below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    Read,
    Publish,
    Admin,
}

impl Scope {
    /// Parses `read`, `publish` or `admin`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "read" => Some(Self::Read),
            "publish" => Some(Self::Publish),
            "admin" => Some(Self::Admin),
            _ => None,
        }
    }

    /// The scope's name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Publish => "publish",
            Self::Admin => "admin",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

const TOKEN_PREFIX: &str = "alk_";

fn token_hash(token: &str) -> [u8; 32] {
    *blake3::hash(token.as_bytes()).as_bytes()
}

/// Creates a token with `scope`, stores its hash, and returns the token (shown once) and its id.
pub fn create_token(
    store: &Store,
    scope: Scope,
    label: &str,
    now: u64,
    expires_at: Option<u64>,
) -> anyhow::Result<(String, String)> {
    let token = format!("{TOKEN_PREFIX}{}", hex::encode(rand::random::<[u8; 32]>()));
    let hash = token_hash(&token);
    store.put_token(
        &hash,
        &TokenRecord {
            scope: scope.as_str().to_owned(),
            label: label.to_owned(),
            created_at: now,
            expires_at,
        },
    )?;
    Ok((token, token_id(&hash)))
}

/// A token's public id: the first 16 hex digits of its hash (it reveals nothing of the token).
pub fn token_id(hash: &[u8; 32]) -> String {
    hex::encode(&hash[..8])
}

/// Every token grant (never a token), oldest first.
pub fn list_tokens(store: &Store) -> anyhow::Result<Vec<airlock_proto::api::TokenInfo>> {
    let mut tokens: Vec<airlock_proto::api::TokenInfo> = store
        .tokens()?
        .into_iter()
        .map(|(hash, record)| airlock_proto::api::TokenInfo {
            id: token_id(&hash),
            scope: record.scope,
            label: record.label,
            created_at: record.created_at,
            expires_at: record.expires_at,
        })
        .collect();
    tokens.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
    Ok(tokens)
}

/// Revokes every token whose id or label is `which`; returns how many. Effective at once: the
/// next request with such a token is refused.
pub fn revoke_tokens(store: &Store, which: &str) -> anyhow::Result<usize> {
    let mut revoked = 0;
    for (hash, record) in store.tokens()? {
        if token_id(&hash) == which || (!record.label.is_empty() && record.label == which) {
            store.delete_token(&hash)?;
            revoked += 1;
        }
    }
    Ok(revoked)
}

/// Who sent a request, from its `Authorization` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// No `Authorization` header.
    Anonymous,
    /// A known token: its scope and the label it was created with (never the token itself).
    Token { scope: Scope, label: String },
}

/// Who sent the request. A header that is not `Bearer alk_...` or names no known token is a 401,
/// whatever the route: a client that sends credentials learns when they are not recognised.
pub fn caller(store: &Store, headers: &http::HeaderMap) -> Result<Caller, ApiError> {
    let Some(value) = headers.get(http::header::AUTHORIZATION) else {
        return Ok(Caller::Anonymous);
    };
    let token = value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .filter(|t| t.starts_with(TOKEN_PREFIX) && t.len() <= 128)
        .ok_or_else(|| {
            ApiError::Unauthorized(
                "the Authorization header is not a bearer token (`Bearer alk_...`)".to_owned(),
            )
        })?;
    let record = store
        .token(&token_hash(token))?
        .ok_or_else(|| ApiError::Unauthorized("the bearer token is not recognised".to_owned()))?;
    if let Some(expires_at) = record.expires_at.filter(|&at| at <= store.now()) {
        return Err(ApiError::Unauthorized(format!("the bearer token expired at {expires_at}")));
    }
    let scope = Scope::parse(&record.scope)
        .ok_or_else(|| ApiError::Unauthorized("the bearer token has an unknown scope".to_owned()))?;
    Ok(Caller::Token { scope, label: record.label })
}

impl Caller {
    /// The scope the caller's token grants, if it sent one.
    pub fn scope(&self) -> Option<Scope> {
        match self {
            Self::Anonymous => None,
            Self::Token { scope, .. } => Some(*scope),
        }
    }

    /// Requires a token with at least `needed`: 401 without one, 403 with too weak a one.
    pub fn require(&self, needed: Scope) -> Result<Scope, ApiError> {
        match self.scope() {
            None => Err(ApiError::Unauthorized("a bearer token is required".to_owned())),
            Some(scope) if scope >= needed => Ok(scope),
            Some(scope) => {
                Err(ApiError::Forbidden(format!("this token has scope {scope}; {needed} is required")))
            }
        }
    }
}

/// Who sent a request, for the audit log: a token's label and scope, `anonymous`, or that the
/// credentials were not recognised. Never the token.
pub fn who(caller: &Result<Caller, ApiError>) -> String {
    match caller {
        Ok(Caller::Anonymous) => "anonymous".to_owned(),
        Ok(Caller::Token { scope, label }) => format!("token {label:?} ({scope})"),
        Err(_) => "unrecognised credentials".to_owned(),
    }
}
