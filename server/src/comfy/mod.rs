//! The Comfy Registry read API as ComfyUI-Manager and comfy-cli call it (`/nodes`,
//! `/nodes/{id}`, `/nodes/{id}/install`, `/nodes/{id}/versions[/{v}]`, `/versions`) and the
//! channel files ComfyUI-Manager fetches (`custom-node-list.json` and the rest): their paths and
//! JSON shapes (formats defined by others, so they live beside the code that serves them).
//! `catalog` answers them from the registry state; `channel_files` builds Manager's files.

pub mod catalog;
pub mod channel_files;

use serde::Serialize;

/// The files ComfyUI-Manager fetches from a channel URL.
pub const CHANNEL_FILES: [&str; 6] = [
    "custom-node-list.json",
    "extension-node-map.json",
    "model-list.json",
    "alter-list.json",
    "github-stats.json",
    "extras.json",
];

/// Largest page a paged listing answers (the Comfy Registry's own cap).
pub const MAX_PAGE_SIZE: usize = 100;

/// One request of the Comfy Registry API or of a Manager channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request<'a> {
    /// `/nodes`: the nodes, paged.
    Nodes,
    /// `/nodes/{id}` (the id case-insensitive).
    Node(&'a str),
    /// `/nodes/{id}/install[?version=]`: the version to install (the latest without one).
    Install(&'a str),
    /// `/nodes/{id}/versions`: every version, newest first.
    Versions(&'a str),
    /// `/nodes/{id}/versions/{version}`.
    Version(&'a str, &'a str),
    /// `/versions`: every version of every node, paged.
    AllVersions,
    /// A Manager channel file (one of `CHANNEL_FILES`).
    ChannelFile(&'static str),
    /// Any other path under the API's prefix: a 404 that names the path.
    Unknown,
}

/// A parsed path: the channel it is scoped to (`/channels/<name>/...`) and the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ComfyPath<'a> {
    pub channel: Option<&'a str>,
    pub request: Request<'a>,
}

impl<'a> ComfyPath<'a> {
    /// The API path of a request path: under `/comfy/` or `/channels/<name>/comfy/`, Manager's
    /// channel files at `/channels/<name>/<file>` (and `/comfy/<file>` for the whole registry),
    /// and with `at_root` the API paths at the root too. `None`: not one of ours.
    pub fn parse(path: &'a str, at_root: bool) -> Option<Self> {
        if path.len() > airlock_proto::api::routes::MAX_PATH_LEN {
            return None;
        }
        let plain = |s: &str| !s.is_empty() && s != "." && s != "..";
        if let Some(rest) = path.strip_prefix("/channels/") {
            let (channel, rest) = rest.split_once('/')?;
            if !plain(channel) {
                return None;
            }
            if let Some(file) = CHANNEL_FILES.iter().find(|f| **f == rest) {
                return Some(Self { channel: Some(channel), request: Request::ChannelFile(file) });
            }
            let api = rest.strip_prefix("comfy/").or_else(|| (rest == "comfy").then_some(""))?;
            return Some(Self { channel: Some(channel), request: Self::api(api) });
        }
        if let Some(api) = path.strip_prefix("/comfy/").or_else(|| (path == "/comfy").then_some("")) {
            if let Some(file) = CHANNEL_FILES.iter().find(|f| **f == api) {
                return Some(Self { channel: None, request: Request::ChannelFile(file) });
            }
            return Some(Self { channel: None, request: Self::api(api) });
        }
        if at_root {
            let rest = path.strip_prefix('/')?;
            if rest == "nodes" || rest.starts_with("nodes/") || rest == "versions" {
                return Some(Self { channel: None, request: Self::api(rest) });
            }
        }
        None
    }

    fn api(rest: &'a str) -> Request<'a> {
        let plain = |s: &str| !s.is_empty() && s != "." && s != "..";
        let segments: Vec<&str> = rest.split('/').collect();
        match segments.as_slice() {
            ["nodes"] => Request::Nodes,
            ["nodes", id] if plain(id) => Request::Node(id),
            ["nodes", id, "install"] if plain(id) => Request::Install(id),
            ["nodes", id, "versions"] if plain(id) => Request::Versions(id),
            ["nodes", id, "versions", version] if plain(id) && plain(version) => {
                Request::Version(id, version)
            }
            ["versions"] => Request::AllVersions,
            _ => Request::Unknown,
        }
    }
}

/// `Publisher` (the fields clients read).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Publisher {
    pub id: String,
    pub name: String,
}

/// `NodeVersion`, with airlock's digests as extra `_`-keys (clients read fields with defaults and
/// ignore the rest).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeVersion {
    /// A UUID-shaped id derived from the pack's BLAKE3 (stable across mirrors).
    pub id: String,
    pub version: String,
    #[serde(rename = "createdAt")]
    pub created_at: String,
    pub changelog: String,
    /// The pack's requirements (pip requirement lines).
    pub dependencies: Vec<String>,
    /// The pack in this server's store.
    #[serde(rename = "downloadUrl")]
    pub download_url: String,
    /// True for a yanked version.
    pub deprecated: bool,
    pub status: String,
    pub status_reason: String,
    pub node_id: String,
    pub supported_os: Vec<String>,
    pub supported_accelerators: Vec<String>,
    pub tags: Vec<String>,
    #[serde(rename = "_blake3")]
    pub blake3: String,
    #[serde(rename = "_sha256")]
    pub sha256: String,
    #[serde(rename = "_size")]
    pub size: u64,
    /// The log leaf of the release statement.
    #[serde(rename = "_leaf_index")]
    pub leaf_index: u64,
}

/// `Node` (the fields ComfyUI-Manager, comfy-cli and the frontend read).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Node {
    pub id: String,
    pub name: String,
    pub description: String,
    pub author: String,
    pub license: String,
    pub icon: String,
    pub repository: String,
    pub tags: Vec<String>,
    pub publisher: Publisher,
    pub latest_version: NodeVersion,
    pub status: String,
    pub downloads: u64,
    pub rating: f64,
    pub supported_os: Vec<String>,
    pub supported_accelerators: Vec<String>,
}

/// `GET /nodes`.
#[derive(Debug, Clone, Serialize)]
pub struct NodePage {
    pub total: usize,
    pub nodes: Vec<Node>,
    pub page: usize,
    pub limit: usize,
    #[serde(rename = "totalPages")]
    pub total_pages: usize,
}

/// `GET /versions`.
#[derive(Debug, Clone, Serialize)]
pub struct VersionPage {
    pub total: usize,
    pub versions: Vec<NodeVersion>,
    pub page: usize,
    #[serde(rename = "pageSize")]
    pub page_size: usize,
    #[serde(rename = "totalPages")]
    pub total_pages: usize,
}

/// Node version statuses (the only ones this server answers: a yanked version stays active and
/// is marked deprecated; a revoked one is absent).
pub const STATUS_ACTIVE: &str = "NodeVersionStatusActive";
/// The status of every node listed.
pub const NODE_ACTIVE: &str = "NodeStatusActive";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_parse() {
        let at = |channel, request| Some(ComfyPath { channel, request });
        assert_eq!(ComfyPath::parse("/comfy/nodes", false), at(None, Request::Nodes));
        assert_eq!(ComfyPath::parse("/comfy/nodes/Demo", false), at(None, Request::Node("Demo")));
        assert_eq!(ComfyPath::parse("/comfy/nodes/demo/install", false), at(None, Request::Install("demo")));
        assert_eq!(
            ComfyPath::parse("/channels/prod/comfy/nodes/demo/versions/1.0.0", false),
            at(Some("prod"), Request::Version("demo", "1.0.0"))
        );
        assert_eq!(
            ComfyPath::parse("/channels/prod/custom-node-list.json", false),
            at(Some("prod"), Request::ChannelFile("custom-node-list.json"))
        );
        assert_eq!(ComfyPath::parse("/comfy/versions", false), at(None, Request::AllVersions));
        assert_eq!(ComfyPath::parse("/comfy/proxy/openai", false), at(None, Request::Unknown));
        assert_eq!(ComfyPath::parse("/nodes", false), None);
        assert_eq!(ComfyPath::parse("/nodes/demo/versions", true), at(None, Request::Versions("demo")));
        assert_eq!(ComfyPath::parse("/nodes/a/b/c/d/e", true), at(None, Request::Unknown));
        assert_eq!(ComfyPath::parse("/proxy/openai", true), None);
        assert_eq!(ComfyPath::parse("/channels/prod/simple/", false), None);
        assert_eq!(ComfyPath::parse("/channels/../custom-node-list.json", false), None);
        assert_eq!(ComfyPath::parse("/comfy/nodes/../install", false), at(None, Request::Unknown));
    }
}
