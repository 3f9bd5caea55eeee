//! The Comfy Registry API's answers, computed from the registry state: the node releases offered
//! (not revoked, and in the channel when one is given), their newest active version as a node's
//! `latest_version`, yanked versions marked deprecated, download URLs into this server's store.

use std::collections::BTreeMap;

use airlock_keys::{RegistryState, ReleaseRecord, ReleaseStatus};
use airlock_proto::{ChannelName, FileEntry, Kind, PackageName};

use super::{Node, NodePage, NodeVersion, Publisher, VersionPage, NODE_ACTIVE, STATUS_ACTIVE};

/// Where answers point: the server's base URL (no trailing `/`), and the channel they are
/// scoped to.
#[derive(Debug, Clone)]
pub struct Context<'a> {
    pub base_url: &'a str,
    pub channel: Option<&'a ChannelName>,
}

/// Why an install request has no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No such node or version is offered (unknown, revoked, or not in the channel).
    NotFound(String),
    /// The version is not x.y.z.
    BadVersion(String),
}

fn offered(record: &ReleaseRecord, context: &Context, state: &RegistryState) -> bool {
    record.release.kind == Kind::Node && state.offers(record, context.channel)
}

/// The offered versions of a node, newest first; the id is matched case-insensitively.
pub fn versions_of<'s>(state: &'s RegistryState, context: &Context, id: &str) -> Vec<&'s ReleaseRecord> {
    let Ok(name) = PackageName::normalize(Kind::Node, id) else { return Vec::new() };
    let mut records: Vec<&ReleaseRecord> =
        state.releases_of(Kind::Node, &name).filter(|r| offered(r, context, state)).collect();
    records.sort_by(|a, b| {
        airlock_client::versions::compare(Kind::Node, &b.release.version, &a.release.version)
    });
    records
}

/// The version a node's `latest_version` names: the newest that is not yanked, else the newest.
fn latest<'s>(versions: &[&'s ReleaseRecord]) -> Option<&'s ReleaseRecord> {
    versions.iter().find(|r| r.status == ReleaseStatus::Active).or_else(|| versions.first()).copied()
}

/// A UUID-shaped id from a pack's BLAKE3: stable wherever the pack is served.
fn version_id(file: Option<&FileEntry>) -> String {
    let hex = file.map_or_else(|| "0".repeat(32), |f| f.blake3.to_hex());
    format!("{}-{}-{}-{}-{}", &hex[0..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32])
}

/// The `NodeVersion` of a release.
pub fn node_version(record: &ReleaseRecord, context: &Context) -> NodeVersion {
    let release = &record.release;
    let file = airlock_client::pack::pack_file(release);
    let (deprecated, status_reason) = match &record.status {
        ReleaseStatus::Yanked { reason } => {
            (true, if reason.is_empty() { "yanked".to_owned() } else { format!("yanked: {reason}") })
        }
        _ => (false, String::new()),
    };
    NodeVersion {
        id: version_id(file),
        version: release.version.to_string(),
        created_at: airlock_proto::clock::rfc3339(release.published_at),
        changelog: String::new(),
        dependencies: release.metadata.dependencies.clone(),
        download_url: file.map_or_else(String::new, |f| {
            format!("{}{}", context.base_url, crate::simple::pages::file_url(f))
        }),
        deprecated,
        status: STATUS_ACTIVE.to_owned(),
        status_reason,
        node_id: release.name.to_string(),
        supported_os: Vec::new(),
        supported_accelerators: Vec::new(),
        tags: Vec::new(),
        blake3: file.map(|f| f.blake3.to_hex()).unwrap_or_default(),
        sha256: file.map(|f| f.sha256.to_hex()).unwrap_or_default(),
        size: file.map_or(0, |f| f.size),
        leaf_index: record.leaf_index,
    }
}

/// The `Node` of a node's offered versions (newest first, at least one).
pub fn node_from(state: &RegistryState, context: &Context, versions: &[&ReleaseRecord]) -> Option<Node> {
    node_of(versions, context, &publisher(state))
}

/// The URL a node without a declared repository is known by: its API path here (so Manager,
/// which keys channel entries by the last segment of that URL, keys it by its id).
fn own_repository(context: &Context, id: &PackageName) -> String {
    match context.channel {
        Some(channel) => format!("{}/channels/{channel}/comfy/nodes/{id}", context.base_url),
        None => format!("{}/comfy/nodes/{id}", context.base_url),
    }
}

fn node_of(versions: &[&ReleaseRecord], context: &Context, publisher: &Publisher) -> Option<Node> {
    let latest = latest(versions)?;
    let release = &latest.release;
    let metadata = &release.metadata;
    Some(Node {
        id: release.name.to_string(),
        name: release.name.to_string(),
        description: metadata.summary.clone().unwrap_or_default(),
        author: publisher.name.clone(),
        license: metadata.license.clone().unwrap_or_default(),
        icon: String::new(),
        repository: metadata.source_url.clone().unwrap_or_else(|| own_repository(context, &release.name)),
        tags: Vec::new(),
        publisher: publisher.clone(),
        latest_version: node_version(latest, context),
        status: NODE_ACTIVE.to_owned(),
        downloads: 0,
        rating: 0.0,
        supported_os: Vec::new(),
        supported_accelerators: Vec::new(),
    })
}

/// The publisher every node shows: the log, by its origin.
fn publisher(state: &RegistryState) -> Publisher {
    let origin = state.root().origin().to_owned();
    Publisher { id: origin.clone(), name: origin }
}

/// `GET /nodes/{id}`.
pub fn node(state: &RegistryState, context: &Context, id: &str) -> Option<Node> {
    node_of(&versions_of(state, context, id), context, &publisher(state))
}

/// Every offered node release, grouped by node (ordered by id).
fn offered_nodes<'s>(
    state: &'s RegistryState,
    context: &Context,
) -> BTreeMap<&'s PackageName, Vec<&'s ReleaseRecord>> {
    let records: Box<dyn Iterator<Item = &ReleaseRecord>> = match context.channel {
        Some(channel) => Box::new(state.channel_releases(channel)),
        None => Box::new(state.releases()),
    };
    let mut nodes: BTreeMap<&PackageName, Vec<&ReleaseRecord>> = BTreeMap::new();
    for record in records.filter(|r| offered(r, context, state)) {
        nodes.entry(&record.release.name).or_default().push(record);
    }
    for versions in nodes.values_mut() {
        versions.sort_by(|a, b| {
            airlock_client::versions::compare(Kind::Node, &b.release.version, &a.release.version)
        });
    }
    nodes
}

/// The ids and newest-first versions of every offered node (for the channel files).
pub fn all_nodes<'s>(state: &'s RegistryState, context: &Context) -> Vec<(String, Vec<&'s ReleaseRecord>)> {
    offered_nodes(state, context).into_iter().map(|(name, versions)| (name.to_string(), versions)).collect()
}

/// Page arithmetic: (start, end, total pages) of page `page` (from 1) of `size` over `total`.
fn window(total: usize, page: usize, size: usize) -> (usize, usize, usize) {
    let pages = total.div_ceil(size);
    let start = (page - 1).saturating_mul(size).min(total);
    (start, (start + size).min(total), pages)
}

/// `GET /nodes?page=&limit=`.
pub fn nodes_page(state: &RegistryState, context: &Context, page: usize, limit: usize) -> NodePage {
    let nodes = offered_nodes(state, context);
    let total = nodes.len();
    let (start, end, total_pages) = window(total, page, limit);
    let publisher = publisher(state);
    let nodes = nodes
        .values()
        .skip(start)
        .take(end - start)
        .filter_map(|versions| node_of(versions, context, &publisher))
        .collect();
    NodePage { total, nodes, page, limit, total_pages }
}

/// `GET /nodes/{id}/install[?version=]`: the version asked for, or the latest.
pub fn install(
    state: &RegistryState,
    context: &Context,
    id: &str,
    version: Option<&str>,
) -> Result<NodeVersion, Refusal> {
    let versions = versions_of(state, context, id);
    let record =
        match version {
            None => {
                latest(&versions).ok_or_else(|| Refusal::NotFound(format!("no node {id} is offered here")))?
            }
            Some(text) => {
                // The registry's own rule: x.y.z (semantic versions, as packs are logged).
                let wanted = airlock_client::pack::normalize_version(text)
                    .ok()
                    .filter(|v| v.as_str() == text)
                    .ok_or_else(|| Refusal::BadVersion(format!("version {text:?} is not x.y.z")))?;
                versions.iter().find(|r| r.release.version == wanted).copied().ok_or_else(|| {
                    Refusal::NotFound(format!("no version {text} of node {id} is offered here"))
                })?
            }
        };
    Ok(node_version(record, context))
}

/// `GET /nodes/{id}/versions[?statuses=...]`: newest first; `None` for an unknown node. Only
/// active versions exist here, so a status filter without the active status leaves none.
pub fn versions(
    state: &RegistryState,
    context: &Context,
    id: &str,
    statuses: &[String],
) -> Option<Vec<NodeVersion>> {
    let versions = versions_of(state, context, id);
    if versions.is_empty() {
        return None;
    }
    if !statuses.is_empty() && !statuses.iter().any(|s| s == STATUS_ACTIVE) {
        return Some(Vec::new());
    }
    Some(versions.iter().map(|r| node_version(r, context)).collect())
}

/// `GET /nodes/{id}/versions/{version}`.
pub fn version(state: &RegistryState, context: &Context, id: &str, version: &str) -> Option<NodeVersion> {
    versions_of(state, context, id)
        .into_iter()
        .find(|r| r.release.version.as_str() == version)
        .map(|r| node_version(r, context))
}

/// `GET /versions?nodeId=&statuses=&page=&pageSize=`.
pub fn all_versions(
    state: &RegistryState,
    context: &Context,
    node_id: Option<&str>,
    statuses: &[String],
    page: usize,
    page_size: usize,
) -> VersionPage {
    let wanted = node_id.and_then(|id| PackageName::normalize(Kind::Node, id).ok());
    let mut all: Vec<&ReleaseRecord> = Vec::new();
    if statuses.is_empty() || statuses.iter().any(|s| s == STATUS_ACTIVE) {
        for (name, versions) in offered_nodes(state, context) {
            if node_id.is_none() || wanted.as_ref() == Some(name) {
                all.extend(versions);
            }
        }
    }
    let total = all.len();
    let (start, end, total_pages) = window(total, page, page_size);
    let versions = all[start..end].iter().map(|r| node_version(r, context)).collect();
    VersionPage { total, versions, page, page_size, total_pages }
}

#[cfg(test)]
mod tests {
    #[test]
    fn windows_cover_every_item_once() {
        assert_eq!(super::window(0, 1, 30), (0, 0, 0));
        assert_eq!(super::window(31, 1, 30), (0, 30, 2));
        assert_eq!(super::window(31, 2, 30), (30, 31, 2));
        assert_eq!(super::window(31, 3, 30), (31, 31, 2));
        assert_eq!(super::window(5, usize::MAX, 30), (5, 5, 1));
    }
}
