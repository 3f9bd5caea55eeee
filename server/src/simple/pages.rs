//! The index pages, computed from the registry state (never from the filesystem): the wheel
//! projects, each project's non-revoked releases and their wheels, optionally within a channel.
//! A project is found through the state's ordered release map, not by a scan of every release.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use airlock_keys::{RegistryState, ReleaseRecord, ReleaseStatus};
use airlock_proto::{ChannelName, Digest, FileEntry, Kind, PackageName};

use super::{
    rfc3339, FileLink, HashesOr, Meta, ProjectList, ProjectName, ProjectPage, ProjectStatus, Yanked,
    API_VERSION,
};

/// The file URL of a logged file: its BLAKE3 and its exact name (pip takes the name from the
/// URL). A `.metadata` file is served at its wheel's URL plus `.metadata`.
pub fn file_url(file: &FileEntry) -> String {
    format!("/files/blake3/{}/{}", file.blake3.to_hex(), file.filename)
}

/// The names of the wheel projects with at least one release offered (in `channel`, if given).
pub fn project_names(state: &RegistryState, channel: Option<&ChannelName>) -> Vec<String> {
    let names: BTreeSet<&str> = match channel {
        Some(channel) => state
            .channel_releases(channel)
            .filter(|r| r.release.kind == Kind::Wheel && state.offers(r, Some(channel)))
            .map(|r| r.release.name.as_str())
            .collect(),
        None => state
            .releases()
            .filter(|r| r.release.kind == Kind::Wheel && state.offers(r, None))
            .map(|r| r.release.name.as_str())
            .collect(),
    };
    names.into_iter().map(str::to_owned).collect()
}

/// A project page; `None` when the log holds no wheel release of that name (a 404).
pub fn project(
    state: &RegistryState,
    channel: Option<&ChannelName>,
    name: &PackageName,
) -> Option<ProjectPage> {
    let mut records: Vec<&ReleaseRecord> = state.releases_of(Kind::Wheel, name).collect();
    if records.is_empty() {
        return None;
    }
    let any_offered_anywhere = records.iter().any(|r| !matches!(r.status, ReleaseStatus::Revoked { .. }));
    records.retain(|r| state.offers(r, channel));
    records.sort_by(|a, b| {
        airlock_client::versions::compare(Kind::Wheel, &a.release.version, &b.release.version)
    });
    let mut files = Vec::new();
    for record in &records {
        let release = &record.release;
        let by_name: BTreeMap<&str, &FileEntry> =
            release.files.iter().map(|f| (f.filename.as_str(), f)).collect();
        let yanked = match &record.status {
            ReleaseStatus::Yanked { reason } => {
                Yanked::Reason(if reason.is_empty() { "yanked".to_owned() } else { reason.clone() })
            }
            _ => Yanked::No(false),
        };
        for file in airlock_client::wheel::wheels_of(release) {
            let metadata = by_name
                .get(format!("{}.metadata", file.filename).as_str())
                .map_or(HashesOr::Absent(false), |m| HashesOr::Hashes(sha256_of(m)));
            files.push(FileLink {
                filename: file.filename.to_string(),
                url: file_url(file),
                hashes: sha256_of(file),
                requires_python: release.metadata.requires_python.clone(),
                core_metadata: metadata.clone(),
                dist_info_metadata: metadata,
                yanked: yanked.clone(),
                size: file.size,
                upload_time: rfc3339(release.published_at),
                blake3: file.blake3.to_hex(),
            });
        }
    }
    let project_status = if any_offered_anywhere {
        ProjectStatus { status: "active".to_owned(), reason: None }
    } else {
        ProjectStatus {
            status: "quarantined".to_owned(),
            reason: Some("every release of this project is revoked".to_owned()),
        }
    };
    Some(ProjectPage {
        meta: Meta { api_version: API_VERSION.to_owned() },
        name: name.to_string(),
        project_status,
        versions: records.iter().map(|r| r.release.version.to_string()).collect(),
        files,
    })
}

fn sha256_of(file: &FileEntry) -> BTreeMap<String, String> {
    BTreeMap::from([("sha256".to_owned(), file.sha256.to_hex())])
}

/// The project list as JSON.
pub fn index_json(names: Vec<String>) -> ProjectList {
    ProjectList {
        meta: Meta { api_version: API_VERSION.to_owned() },
        projects: names.into_iter().map(|name| ProjectName { name }).collect(),
    }
}

/// Escapes text for HTML content and attribute values.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            c => out.push(c),
        }
    }
    out
}

fn html_head(title: &str, status: Option<&str>) -> String {
    let mut out = String::from("<!DOCTYPE html>\n<html>\n<head>\n");
    let _ = writeln!(out, "<meta name=\"pypi:repository-version\" content=\"{API_VERSION}\">");
    if let Some(status) = status {
        let _ = writeln!(out, "<meta name=\"pypi:project-status\" content=\"{}\">", escape(status));
    }
    let _ = write!(out, "<title>{}</title>\n</head>\n<body>\n<h1>{}</h1>\n", escape(title), escape(title));
    out
}

/// The project list as HTML (PEP 503).
pub fn index_html(names: &[String], base: &str) -> String {
    let mut out = html_head("Simple index", None);
    for name in names {
        let _ = writeln!(out, "<a href=\"{base}{}/\">{}</a><br>", escape(name), escape(name));
    }
    out.push_str("</body>\n</html>\n");
    out
}

/// A project page as HTML (PEP 503, 592, 658/714, 792).
pub fn project_html(page: &ProjectPage) -> String {
    let mut out = html_head(&format!("Links for {}", page.name), Some(&page.project_status.status));
    for file in &page.files {
        let sha = file.hashes.get("sha256").map(String::as_str).unwrap_or_default();
        let _ = write!(out, "<a href=\"{}#sha256={sha}\"", escape(&file.url));
        if let Some(requires) = &file.requires_python {
            let _ = write!(out, " data-requires-python=\"{}\"", escape(requires));
        }
        if let HashesOr::Hashes(hashes) = &file.core_metadata {
            if let Some(meta) = hashes.get("sha256") {
                let _ = write!(
                    out,
                    " data-core-metadata=\"sha256={meta}\" data-dist-info-metadata=\"sha256={meta}\""
                );
            }
        }
        if let Yanked::Reason(reason) = &file.yanked {
            let _ = write!(out, " data-yanked=\"{}\"", escape(reason));
        }
        let _ = writeln!(out, ">{}</a><br>", escape(&file.filename));
    }
    out.push_str("</body>\n</html>\n");
    out
}

/// Why a file URL is not served.
#[derive(Debug, PartialEq, Eq)]
pub enum FileRefusal {
    /// No logged wheel release holds a file of that digest and name.
    NotFound,
    /// Its release is revoked.
    Revoked(String),
}

/// The blob to serve for `/files/blake3/<hex>/<filename>`: the file of that digest and exact
/// name in a logged, not revoked wheel release, or the `.metadata` file beside the wheel of that
/// digest.
pub fn resolve_file(state: &RegistryState, digest: &Digest, filename: &str) -> Result<Digest, FileRefusal> {
    let record = state.release_by_digest(digest).ok_or(FileRefusal::NotFound)?;
    if record.release.kind == Kind::Node {
        // A node pack, as the Comfy Registry API's download URLs name it.
        let file = record
            .release
            .files
            .iter()
            .find(|f| f.blake3 == *digest && f.filename.as_str() == filename)
            .ok_or(FileRefusal::NotFound)?;
        if let ReleaseStatus::Revoked { reason } = &record.status {
            return Err(FileRefusal::Revoked(reason.clone()));
        }
        return Ok(file.blake3);
    }
    let holds = |name: &str| record.release.files.iter().find(|f| f.filename.as_str() == name);
    let wheel = airlock_client::wheel::wheels_of(&record.release)
        .find(|f| f.blake3 == *digest)
        .ok_or(FileRefusal::NotFound)?;
    let file = if wheel.filename.as_str() == filename {
        wheel
    } else if filename == format!("{}.metadata", wheel.filename) {
        holds(filename).ok_or(FileRefusal::NotFound)?
    } else {
        return Err(FileRefusal::NotFound);
    };
    if let ReleaseStatus::Revoked { reason } = &record.status {
        return Err(FileRefusal::Revoked(reason.clone()));
    }
    Ok(file.blake3)
}
