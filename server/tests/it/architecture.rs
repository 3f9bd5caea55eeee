//! The architecture's checkable invariants (docs/architecture.md, "Invariants"), read from the
//! source tree and the manifests. Each assertion names the file that breaks it.

use std::path::{Path, PathBuf};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf()
}

/// Every `.rs` file under `dir`, with its text.
fn sources(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                out.push((path, text));
            }
        }
    }
    assert!(!out.is_empty(), "no sources under {}", dir.display());
    out
}

fn manifest(crate_dir: &str) -> toml::Table {
    let path = workspace().join(crate_dir).join("Cargo.toml");
    std::fs::read_to_string(&path).unwrap().parse().unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn dependencies(crate_dir: &str, section: &str) -> Vec<String> {
    manifest(crate_dir)
        .get(section)
        .and_then(|d| d.as_table())
        .map_or_else(Vec::new, |t| t.keys().cloned().collect())
}

#[test]
fn only_the_store_touches_rocksdb_or_blob_paths() {
    let store = workspace().join("server/src/store");
    for (path, text) in sources(&workspace().join("server/src")) {
        if path.starts_with(&store) {
            continue;
        }
        for forbidden in ["rocksdb", "\"blobs\"", "\"tmp\"", "BlobStage", "FsBackend"] {
            assert!(
                !text.contains(forbidden),
                "{} uses {forbidden} outside server/src/store",
                path.display()
            );
        }
    }
    assert!(
        sources(&store).iter().any(|(_, text)| text.contains("rocksdb::")),
        "the check looks for the wrong thing: the store itself does not mention rocksdb"
    );
}

#[test]
fn the_server_depends_on_the_client_library_never_on_the_cli() {
    for section in ["dependencies", "dev-dependencies", "build-dependencies"] {
        assert!(
            !dependencies("server", section).contains(&"airlock-cli".to_owned()),
            "server [{section}] names airlock-cli"
        );
        let client = dependencies("client", section);
        for cli_only in ["clap", "indicatif", "airlock-cli"] {
            assert!(
                !client.contains(&cli_only.to_owned()),
                "the client library [{section}] depends on {cli_only}"
            );
        }
    }
    assert!(dependencies("server", "dependencies").contains(&"airlock-client".to_owned()));
    assert!(dependencies("client/cli", "dependencies").contains(&"airlock-client".to_owned()));
    for (path, text) in sources(&workspace().join("client/src")) {
        assert!(
            !text.contains("clap::") && !text.contains("indicatif"),
            "{} uses a CLI crate",
            path.display()
        );
    }
}

#[test]
fn proto_does_no_io_and_depends_on_nothing_internal() {
    let allowed = ["base64", "blake3", "hex", "serde", "serde_bytes", "serde_cbor", "sha2", "thiserror"];
    for dependency in dependencies("proto", "dependencies") {
        assert!(allowed.contains(&dependency.as_str()), "proto depends on {dependency}");
    }
    for (path, text) in sources(&workspace().join("proto/src")) {
        for io in ["std::fs", "std::net", "std::process", "tokio", "std::io::stdin", "std::env"] {
            assert!(!text.contains(io), "{} uses {io}", path.display());
        }
    }
    for dependency in dependencies("keys", "dependencies") {
        assert!(
            !["airlock-client", "airlock-server", "tokio", "hyper"].contains(&dependency.as_str()),
            "keys depends on {dependency}"
        );
    }
}

#[test]
fn native_api_bodies_are_proto_types_not_ad_hoc_json() {
    for dir in ["server/src", "client/src"] {
        for (path, text) in sources(&workspace().join(dir)) {
            assert!(!text.contains("json!("), "{} builds JSON by hand", path.display());
            assert!(!text.contains("serde_json::Value"), "{} reads untyped JSON", path.display());
            assert!(
                !text.contains("\"/v1/"),
                "{} writes a native route by hand instead of proto::api::routes",
                path.display()
            );
        }
    }
}

#[test]
fn time_is_read_only_through_the_clock() {
    let clock = workspace().join("proto/src/clock.rs");
    for dir in ["proto/src", "keys/src", "client/src", "client/cli/src", "server/src"] {
        for (path, text) in sources(&workspace().join(dir)) {
            if path == clock {
                continue;
            }
            assert!(!text.contains("SystemTime::now"), "{} reads the system time directly", path.display());
        }
    }
}
