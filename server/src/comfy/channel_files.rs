//! ComfyUI-Manager's channel files, generated from the node packs a channel offers: each pack is
//! one `custom-node-list.json` entry whose `files[0]` is the node's `repository`, so Manager
//! merges it with the registry API's node of the same repository and installs it from there;
//! its `pip` list is the pack's reviewed requirements. Models and alternatives are not carried:
//! those files are valid and empty.

use std::collections::BTreeMap;

use serde::Serialize;

use airlock_keys::{RegistryState, ReleaseRecord};

use super::catalog::{self, Context};

/// `custom-node-list.json`.
#[derive(Debug, Serialize)]
struct CustomNodeList {
    custom_nodes: Vec<CustomNode>,
}

/// One entry of `custom-node-list.json` (Manager's field names).
#[derive(Debug, Serialize)]
struct CustomNode {
    id: String,
    title: String,
    author: String,
    reference: String,
    files: Vec<String>,
    install_type: &'static str,
    description: String,
    license: String,
    version: String,
    pip: Vec<String>,
    #[serde(rename = "_blake3")]
    blake3: String,
    #[serde(rename = "_download_url")]
    download_url: String,
}

/// The second element of an `extension-node-map.json` value.
#[derive(Debug, Serialize)]
struct Extension {
    title_aux: String,
    author: String,
}

/// One `github-stats.json` value.
#[derive(Debug, Serialize)]
struct Stats {
    stars: u64,
    last_update: String,
    author_account_age_days: u64,
}

#[derive(Debug, Serialize)]
struct Models {
    models: Vec<String>,
}

#[derive(Debug, Serialize)]
struct Items {
    items: Vec<String>,
}

#[derive(Debug, Serialize)]
struct Extras {
    favorites: Vec<String>,
}

/// The JSON bytes of channel file `name` (one of `CHANNEL_FILES`).
pub fn render(state: &RegistryState, context: &Context, name: &str) -> serde_json::Result<Vec<u8>> {
    let nodes = catalog::all_nodes(state, context);
    match name {
        "custom-node-list.json" => {
            let custom_nodes =
                nodes.iter().filter_map(|(id, versions)| entry(state, context, id, versions)).collect();
            serde_json::to_vec(&CustomNodeList { custom_nodes })
        }
        "extension-node-map.json" => {
            let mut map: BTreeMap<String, (Vec<String>, Extension)> = BTreeMap::new();
            for (id, versions) in &nodes {
                if let Some(node) = catalog::node_from(state, context, versions) {
                    map.insert(
                        node.repository,
                        (Vec::new(), Extension { title_aux: id.clone(), author: node.author }),
                    );
                }
            }
            serde_json::to_vec(&map)
        }
        "github-stats.json" => {
            let mut map: BTreeMap<String, Stats> = BTreeMap::new();
            for (_, versions) in &nodes {
                if let Some(node) = catalog::node_from(state, context, versions) {
                    let published = versions.first().map_or(0, |r| r.release.published_at);
                    map.insert(
                        node.repository,
                        Stats { stars: 0, last_update: last_update(published), author_account_age_days: 0 },
                    );
                }
            }
            serde_json::to_vec(&map)
        }
        "model-list.json" => serde_json::to_vec(&Models { models: Vec::new() }),
        "alter-list.json" => serde_json::to_vec(&Items { items: Vec::new() }),
        _ => serde_json::to_vec(&Extras { favorites: Vec::new() }),
    }
}

fn entry(
    state: &RegistryState,
    context: &Context,
    id: &str,
    versions: &[&ReleaseRecord],
) -> Option<CustomNode> {
    let node = catalog::node_from(state, context, versions)?;
    let latest = node.latest_version;
    Some(CustomNode {
        id: id.to_owned(),
        title: node.name,
        author: node.author,
        reference: node.repository.clone(),
        files: vec![node.repository],
        install_type: "git-clone",
        description: node.description,
        license: node.license,
        version: latest.version,
        pip: latest.dependencies,
        blake3: latest.blake3,
        download_url: latest.download_url,
    })
}

/// `YYYY-MM-DD HH:MM:SS`, UTC.
fn last_update(at: u64) -> String {
    airlock_proto::clock::rfc3339(at).trim_end_matches('Z').replacen('T', " ", 1)
}
