//! The routes, query parameters and header names of airlock's native HTTP API. The server parses
//! request paths with [`Route::parse`]; the client builds them with [`Route::path`] and the query
//! helpers below, so the two sides cannot drift apart.

use crate::Digest;

/// Header by which a mirror declares it serves an expired checkpoint under an operator's unsafe
/// extension; its value is the end of the extension (integer seconds).
pub const EXTENSION_UNTIL_HEADER: &str = "x-airlock-unsafe-extension-until";
/// Header carrying a blob's SHA-256 (hex) on blob downloads.
pub const SHA256_HEADER: &str = "x-airlock-sha256";
/// Media type of CBOR bodies (log data keeps its exact bytes).
pub const CBOR: &str = "application/cbor";
/// Media type of JSON bodies (answers for people and scripts).
pub const JSON: &str = "application/json";
/// Media type of signed notes (the checkpoint).
pub const NOTE: &str = "text/plain; charset=utf-8";
/// Media type of blob bytes.
pub const OCTET_STREAM: &str = "application/octet-stream";

/// Longest request path the server accepts.
pub const MAX_PATH_LEN: usize = 1024;

/// Every route of the native API. Path segments stay text here; the handler validates them, so
/// that a malformed digest or name is a 400 that says why, not a 404.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route<'a> {
    /// `GET /healthz` → [`super::Health`] (JSON).
    Health,
    /// `GET|HEAD|PUT /v1/blobs/blake3/<hex>`: blob bytes; a PUT is answered [`super::BlobStored`].
    Blob(&'a str),
    /// `GET /v1/log/checkpoint`: the checkpoint, a C2SP signed note (text).
    Checkpoint,
    /// `GET /v1/log/leaves?start=&end=` → [`super::LeavesPage`] (CBOR).
    Leaves,
    /// `GET /v1/log/proof/inclusion?index=&size=` → [`super::Proof`] (CBOR).
    InclusionProof,
    /// `GET /v1/log/proof/consistency?old=&new=` → [`super::Proof`] (CBOR).
    ConsistencyProof,
    /// `GET /v1/roots/current`: the root envelope in force (CBOR bytes).
    CurrentRoot,
    /// `GET /v1/channels/<name>` → [`super::ChannelList`] (JSON).
    Channel(&'a str),
    /// `GET /v1/admin/tokens` → [`super::TokenList`]; `POST` a [`super::TokenCreate`] →
    /// [`super::TokenCreated`] (JSON, admin).
    AdminTokens,
    /// `DELETE /v1/admin/tokens/<id or label>`: revokes the matching tokens (admin).
    AdminToken(&'a str),
    /// `POST /v1/admin/checkpoint` a [`super::CheckpointRequest`] (JSON, admin; primaries): a
    /// checkpoint of the current log signed for the validity asked (text), for a bundle.
    AdminCheckpoint,
    /// `POST /v1/admin/gc` a [`super::GcRequest`] (JSON, admin) → [`super::GcReport`] (JSON):
    /// garbage collection on a running server.
    AdminGc,
    /// `POST /v1/admin/purge` a [`super::PurgeRequest`] (JSON, admin) → [`super::PurgeReport`]
    /// (JSON): removes the blobs of a revoked release.
    AdminPurge,
    /// `POST /v1/admin/scrub` a [`super::ScrubRequest`] (JSON, admin) → [`super::ScrubReport`]
    /// (JSON): every blob and the log checked on a running server, damaged blobs repaired.
    AdminScrub,
    /// `POST /v1/admin/reload` (admin) → [`super::ReloadReport`] (JSON): the TLS certificate read
    /// again and put in force for new connections.
    AdminReload,
    /// `GET /v1/roots` → [`super::RootChain`] (CBOR): every logged root, oldest first, so that a
    /// client behind a rotation can verify a checkpoint's signature before fetching leaves.
    Roots,
    /// `POST /v1/statements` (a CBOR envelope) → [`super::Submitted`] (JSON).
    Statements,
    /// `GET /v1/releases/<kind>/<name>` → [`super::ReleaseList`] (JSON).
    ReleasesOf { kind: &'a str, name: &'a str },
    /// `GET /v1/releases/<kind>/<name>/<version>` → [`super::ReleaseInfo`] (JSON).
    Release { kind: &'a str, name: &'a str, version: &'a str },
    /// `GET /v1/releases/by-digest/blake3:<hex>` → [`super::ReleaseInfo`] (JSON).
    ReleaseByDigest(&'a str),
    /// `POST /v1/mirror/sync` (admin) → [`super::SyncReport`] (JSON).
    MirrorSync,
    /// `GET /v1/mirror/status` → [`super::MirrorStatus`] (JSON).
    MirrorStatus,
    /// `POST /v1/mirror/import` (admin; a bundle) → [`super::ImportReport`] (JSON).
    MirrorImport,
    /// `GET /v1/scan/policy` → [`super::ScanPolicy`] (JSON): what a publish's scan report must
    /// be made with, and which findings the server refuses or needs acknowledged.
    ScanPolicy,
}

impl<'a> Route<'a> {
    /// The route of a request path, or `None` (404). Empty, `.` and `..` segments never route.
    pub fn parse(path: &'a str) -> Option<Self> {
        if path.len() > MAX_PATH_LEN {
            return None;
        }
        let segments: Vec<&str> = path.strip_prefix('/')?.split('/').collect();
        if segments.iter().any(|s| s.is_empty() || *s == "." || *s == "..") {
            return None;
        }
        Some(match segments.as_slice() {
            ["healthz"] => Self::Health,
            ["v1", "blobs", "blake3", hex] => Self::Blob(hex),
            ["v1", "log", "checkpoint"] => Self::Checkpoint,
            ["v1", "log", "leaves"] => Self::Leaves,
            ["v1", "log", "proof", "inclusion"] => Self::InclusionProof,
            ["v1", "log", "proof", "consistency"] => Self::ConsistencyProof,
            ["v1", "roots", "current"] => Self::CurrentRoot,
            ["v1", "roots"] => Self::Roots,
            ["v1", "channels", name] => Self::Channel(name),
            ["v1", "admin", "tokens"] => Self::AdminTokens,
            ["v1", "admin", "checkpoint"] => Self::AdminCheckpoint,
            ["v1", "admin", "gc"] => Self::AdminGc,
            ["v1", "admin", "purge"] => Self::AdminPurge,
            ["v1", "admin", "scrub"] => Self::AdminScrub,
            ["v1", "admin", "reload"] => Self::AdminReload,
            ["v1", "admin", "tokens", which] => Self::AdminToken(which),
            ["v1", "statements"] => Self::Statements,
            ["v1", "mirror", "sync"] => Self::MirrorSync,
            ["v1", "mirror", "status"] => Self::MirrorStatus,
            ["v1", "mirror", "import"] => Self::MirrorImport,
            ["v1", "scan", "policy"] => Self::ScanPolicy,
            ["v1", "releases", "by-digest", digest] => Self::ReleaseByDigest(digest),
            ["v1", "releases", kind, name] => Self::ReleasesOf { kind, name },
            ["v1", "releases", kind, name, version] => Self::Release { kind, name, version },
            _ => return None,
        })
    }

    /// The request path of this route (without a query).
    pub fn path(&self) -> String {
        match self {
            Self::Health => "/healthz".to_owned(),
            Self::Blob(hex) => format!("/v1/blobs/blake3/{hex}"),
            Self::Checkpoint => "/v1/log/checkpoint".to_owned(),
            Self::Leaves => "/v1/log/leaves".to_owned(),
            Self::InclusionProof => "/v1/log/proof/inclusion".to_owned(),
            Self::ConsistencyProof => "/v1/log/proof/consistency".to_owned(),
            Self::CurrentRoot => "/v1/roots/current".to_owned(),
            Self::Roots => "/v1/roots".to_owned(),
            Self::Channel(name) => format!("/v1/channels/{name}"),
            Self::AdminTokens => "/v1/admin/tokens".to_owned(),
            Self::AdminCheckpoint => "/v1/admin/checkpoint".to_owned(),
            Self::AdminGc => "/v1/admin/gc".to_owned(),
            Self::AdminPurge => "/v1/admin/purge".to_owned(),
            Self::AdminScrub => "/v1/admin/scrub".to_owned(),
            Self::AdminReload => "/v1/admin/reload".to_owned(),
            Self::AdminToken(which) => format!("/v1/admin/tokens/{which}"),
            Self::Statements => "/v1/statements".to_owned(),
            Self::ReleasesOf { kind, name } => format!("/v1/releases/{kind}/{name}"),
            Self::Release { kind, name, version } => format!("/v1/releases/{kind}/{name}/{version}"),
            Self::ReleaseByDigest(digest) => format!("/v1/releases/by-digest/{digest}"),
            Self::MirrorSync => "/v1/mirror/sync".to_owned(),
            Self::MirrorStatus => "/v1/mirror/status".to_owned(),
            Self::MirrorImport => "/v1/mirror/import".to_owned(),
            Self::ScanPolicy => "/v1/scan/policy".to_owned(),
        }
    }

    /// A short name of the route without its parameters, for metrics labels.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Health => "healthz",
            Self::Blob(_) => "blob",
            Self::Checkpoint => "checkpoint",
            Self::Leaves => "leaves",
            Self::InclusionProof => "inclusion_proof",
            Self::ConsistencyProof => "consistency_proof",
            Self::CurrentRoot => "current_root",
            Self::Roots => "roots",
            Self::Channel(_) => "channel",
            Self::AdminTokens | Self::AdminToken(_) => "admin_tokens",
            Self::AdminCheckpoint => "admin_checkpoint",
            Self::AdminGc => "admin_gc",
            Self::AdminPurge => "admin_purge",
            Self::AdminScrub => "admin_scrub",
            Self::AdminReload => "admin_reload",
            Self::Statements => "statements",
            Self::ReleasesOf { .. } | Self::Release { .. } | Self::ReleaseByDigest(_) => "releases",
            Self::MirrorSync => "mirror_sync",
            Self::MirrorStatus => "mirror_status",
            Self::MirrorImport => "mirror_import",
            Self::ScanPolicy => "scan_policy",
        }
    }
}

/// The path of a blob.
pub fn blob_path(digest: &Digest) -> String {
    Route::Blob(&digest.to_hex()).path()
}

/// The path of a page of leaves `[start, end)`.
pub fn leaves_path(start: u64, end: u64) -> String {
    format!("{}?start={start}&end={end}", Route::Leaves.path())
}

/// The path of the inclusion proof of leaf `index` in the tree of `size` leaves.
pub fn inclusion_path(index: u64, size: u64) -> String {
    format!("{}?index={index}&size={size}", Route::InclusionProof.path())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_parses_back_from_its_path() {
        let routes = [
            Route::Health,
            Route::Blob("ab12"),
            Route::Checkpoint,
            Route::Leaves,
            Route::InclusionProof,
            Route::ConsistencyProof,
            Route::CurrentRoot,
            Route::Roots,
            Route::Channel("prod"),
            Route::AdminTokens,
            Route::AdminToken("0123456789abcdef"),
            Route::AdminCheckpoint,
            Route::Statements,
            Route::ReleasesOf { kind: "wheel", name: "torch" },
            Route::Release { kind: "node", name: "impact-pack", version: "1.2.3" },
            Route::ReleaseByDigest("blake3:00"),
            Route::MirrorSync,
            Route::MirrorStatus,
            Route::MirrorImport,
            Route::ScanPolicy,
        ];
        for route in routes {
            let path = route.path();
            assert_eq!(Route::parse(&path), Some(route), "{path}");
        }
    }

    #[test]
    fn traversal_in_any_segment_is_not_routed() {
        for path in [
            "/v1/blobs/blake3/../..",
            "/v1/blobs/blake3/.",
            "/v1//log/checkpoint",
            "/../etc/passwd",
            "v1",
            "",
        ] {
            assert_eq!(Route::parse(path), None, "{path}");
        }
        let long = format!("/v1/blobs/blake3/{}", "a".repeat(MAX_PATH_LEN));
        assert_eq!(Route::parse(&long), None);
    }

    #[test]
    fn query_paths_route_by_their_path_part() {
        let digest = Digest::of(b"x");
        assert_eq!(Route::parse(&blob_path(&digest)), Some(Route::Blob(&digest.to_hex())));
        assert_eq!(leaves_path(3, 9), "/v1/log/leaves?start=3&end=9");
        assert_eq!(inclusion_path(1, 2), "/v1/log/proof/inclusion?index=1&size=2");
    }
}
