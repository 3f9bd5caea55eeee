//! ComfyUI-Manager's channel files, generated from the node packs a channel offers: each pack is
//! one `custom-node-list.json` entry whose `files[0]` is the node's `repository`, so Manager
//! merges it with the registry API's node of the same repository and installs it from there;
//! its `pip` list is the pack's reviewed requirements. Models and alternatives are not carried:
//! those files are valid and empty.

use serde_json::{json, Map, Value};

use airlock_keys::{RegistryState, ReleaseRecord};

use super::catalog::{self, Context};

/// The bytes of channel file `name` (one of `CHANNEL_FILES`).
pub fn render(state: &RegistryState, context: &Context, name: &str) -> Value {
    let nodes = catalog::all_nodes(state, context);
    match name {
        "custom-node-list.json" => {
            let entries: Vec<Value> =
                nodes.iter().filter_map(|(id, versions)| entry(state, context, id, versions)).collect();
            json!({ "custom_nodes": entries })
        }
        "extension-node-map.json" => {
            let mut map = Map::new();
            for (id, versions) in &nodes {
                if let Some(node) = catalog::node_from(state, context, versions) {
                    map.insert(node.repository, json!([[], { "title_aux": id, "author": node.author }]));
                }
            }
            Value::Object(map)
        }
        "github-stats.json" => {
            let mut map = Map::new();
            for (_, versions) in &nodes {
                if let Some(node) = catalog::node_from(state, context, versions) {
                    let published = versions.first().map_or(0, |r| r.release.published_at);
                    map.insert(
                        node.repository,
                        json!({ "stars": 0, "last_update": last_update(published), "author_account_age_days": 0 }),
                    );
                }
            }
            Value::Object(map)
        }
        "model-list.json" => json!({ "models": [] }),
        "alter-list.json" => json!({ "items": [] }),
        _ => json!({ "favorites": [] }),
    }
}

fn entry(state: &RegistryState, context: &Context, id: &str, versions: &[&ReleaseRecord]) -> Option<Value> {
    let node = catalog::node_from(state, context, versions)?;
    let latest = &node.latest_version;
    Some(json!({
        "id": id,
        "title": node.name,
        "author": node.author,
        "reference": node.repository,
        "files": [node.repository],
        "install_type": "git-clone",
        "description": node.description,
        "license": node.license,
        "version": latest.version,
        "pip": latest.dependencies,
        "_blake3": latest.blake3,
        "_download_url": latest.download_url,
    }))
}

/// `YYYY-MM-DD HH:MM:SS`, UTC.
fn last_update(at: u64) -> String {
    airlock_proto::clock::rfc3339(at).trim_end_matches('Z').replacen('T', " ", 1)
}
