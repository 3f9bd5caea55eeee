//! The Python Simple Repository API as pip and uv use it (PEP 503 HTML, PEP 691 JSON, with PEP
//! 592 yanking, PEP 658/714 core metadata, PEP 700 versions and sizes, PEP 792 project status):
//! its paths, its content negotiation and its JSON bodies (a format defined by others, so it
//! lives beside the code that serves it). `pages` builds the pages from the registry state.

pub mod pages;

use serde::{Deserialize, Serialize};

/// `Content-Type` of a PEP 691 JSON page.
pub const JSON_V1: &str = "application/vnd.pypi.simple.v1+json";
/// `Content-Type` of a PEP 691 HTML page.
pub const HTML_V1: &str = "application/vnd.pypi.simple.v1+html";
/// `Content-Type` of a PEP 503 HTML page.
pub const TEXT_HTML: &str = "text/html";
/// The API version the pages claim (PEP 792 project status is 1.4; its other additions since
/// 1.1 are optional).
pub const API_VERSION: &str = "1.4";

/// A path of the index, parsed. `channel` is set under `/channels/<name>/simple/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimplePath<'a> {
    /// `/simple/`: the project list.
    Index { channel: Option<&'a str> },
    /// `/simple/<name>/`; `slash` is false for `/simple/<name>` (redirected).
    Project { channel: Option<&'a str>, name: &'a str, slash: bool },
    /// `/files/blake3/<hex>/<filename>`: a logged file by the BLAKE3 of the file, or of the
    /// wheel a `<wheel>.metadata` file belongs to.
    File { hex: &'a str, filename: &'a str },
}

impl<'a> SimplePath<'a> {
    /// The index path of a request path, or `None` when it is not one.
    pub fn parse(path: &'a str) -> Option<Self> {
        if path.len() > airlock_proto::api::routes::MAX_PATH_LEN {
            return None;
        }
        let (channel, rest) = match path.strip_prefix("/channels/") {
            Some(rest) => {
                let (channel, rest) = rest.split_once('/')?;
                (Some(channel), rest)
            }
            None => (None, path.strip_prefix('/')?),
        };
        let segments: Vec<&str> = rest.split('/').collect();
        let plain = |s: &&str| !s.is_empty() && *s != "." && *s != "..";
        if channel.is_some_and(|c| !plain(&c)) {
            return None;
        }
        match segments.as_slice() {
            ["simple", ""] => Some(Self::Index { channel }),
            ["simple", name, ""] if plain(name) => Some(Self::Project { channel, name, slash: true }),
            ["simple", name] if plain(name) => Some(Self::Project { channel, name, slash: false }),
            ["files", "blake3", hex, filename] if channel.is_none() && plain(hex) && plain(filename) => {
                Some(Self::File { hex, filename })
            }
            _ => None,
        }
    }
}

/// The representation a page is served in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Html,
    /// PEP 503 HTML, served as `text/html`.
    TextHtml,
}

impl Format {
    /// The exact `Content-Type`.
    pub const fn content_type(self) -> &'static str {
        match self {
            Self::Json => JSON_V1,
            Self::Html => HTML_V1,
            Self::TextHtml => TEXT_HTML,
        }
    }

    fn of_media_type(media: &str) -> Option<Self> {
        match media {
            "application/vnd.pypi.simple.v1+json" | "application/vnd.pypi.simple.latest+json" => {
                Some(Self::Json)
            }
            "application/vnd.pypi.simple.v1+html" | "application/vnd.pypi.simple.latest+html" => {
                Some(Self::Html)
            }
            "text/html" | "text/*" | "*/*" => Some(Self::TextHtml),
            "application/*" => Some(Self::Json),
            _ => None,
        }
    }
}

/// Chooses the representation for an `Accept` header (absent: `*/*`, served as `text/html`) or a
/// `?format=` override: the highest quality the server supports, JSON first on a tie. `None`:
/// nothing acceptable (406).
pub fn negotiate(accept: Option<&str>, format: Option<&str>) -> Option<Format> {
    if let Some(format) = format {
        return Format::of_media_type(format.trim());
    }
    let accept = accept.unwrap_or("*/*");
    let mut best: Option<(u32, u8, Format)> = None;
    for item in accept.split(',') {
        let mut parts = item.split(';');
        let media = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
        let mut quality = Some(1000u32);
        for param in parts {
            if let Some(q) = param.trim().strip_prefix("q=") {
                quality = parse_quality(q);
            }
        }
        // A malformed quality spoils its own item only.
        let Some(quality) = quality else { continue };
        let Some(format) = Format::of_media_type(&media) else { continue };
        if quality == 0 {
            continue;
        }
        // Prefer higher quality, then JSON over HTML over text/html.
        let rank = match format {
            Format::Json => 2,
            Format::Html => 1,
            Format::TextHtml => 0,
        };
        if best.is_none_or(|(q, r, _)| (quality, rank) > (q, r)) {
            best = Some((quality, rank, format));
        }
    }
    best.map(|(_, _, format)| format)
}

/// An HTTP quality value in thousandths (`0.01` → 10); `None` when malformed.
fn parse_quality(text: &str) -> Option<u32> {
    let text = text.trim();
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if fraction.len() > 3 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let whole: u32 = match whole {
        "0" => 0,
        "1" => 1,
        _ => return None,
    };
    let fraction: u32 = format!("{fraction:0<3}").parse().ok()?;
    let value = whole * 1000 + fraction;
    (value <= 1000).then_some(value)
}

/// `meta` of every JSON page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    #[serde(rename = "api-version")]
    pub api_version: String,
}

/// The project list (`/simple/`, JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectList {
    pub meta: Meta,
    pub projects: Vec<ProjectName>,
}

/// One entry of the project list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectName {
    pub name: String,
}

/// A project page (`/simple/<name>/`, JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectPage {
    pub meta: Meta,
    pub name: String,
    #[serde(rename = "project-status")]
    pub project_status: ProjectStatus,
    pub versions: Vec<String>,
    pub files: Vec<FileLink>,
}

/// PEP 792: `active`, or `quarantined` (nothing offered) when every release is revoked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectStatus {
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// One file of a project page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileLink {
    pub filename: String,
    pub url: String,
    /// `{"sha256": hex}`: the only hash pip and uv can check.
    pub hashes: std::collections::BTreeMap<String, String>,
    #[serde(rename = "requires-python", default, skip_serializing_if = "Option::is_none")]
    pub requires_python: Option<String>,
    /// `{"sha256": hex}` of the `.metadata` file (PEP 714), or `false`.
    #[serde(rename = "core-metadata")]
    pub core_metadata: HashesOr,
    /// The same, under its older PEP 658 name, for older pip.
    #[serde(rename = "dist-info-metadata")]
    pub dist_info_metadata: HashesOr,
    /// `false`, or the yank reason (PEP 592).
    pub yanked: Yanked,
    pub size: u64,
    /// RFC 3339, UTC (`...Z`): when the release was published.
    #[serde(rename = "upload-time")]
    pub upload_time: String,
    /// The BLAKE3 of the file, airlock's address for it (an index-private key).
    #[serde(rename = "_blake3")]
    pub blake3: String,
}

/// Hashes, or `false` when there is no such file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum HashesOr {
    Hashes(std::collections::BTreeMap<String, String>),
    Absent(bool),
}

/// `false`, or the reason a file is yanked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Yanked {
    Reason(String),
    No(bool),
}

pub use airlock_proto::clock::rfc3339;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_parse() {
        assert_eq!(SimplePath::parse("/simple/"), Some(SimplePath::Index { channel: None }));
        assert_eq!(
            SimplePath::parse("/simple/Foo_Bar/"),
            Some(SimplePath::Project { channel: None, name: "Foo_Bar", slash: true })
        );
        assert_eq!(
            SimplePath::parse("/simple/foo"),
            Some(SimplePath::Project { channel: None, name: "foo", slash: false })
        );
        assert_eq!(
            SimplePath::parse("/channels/prod/simple/foo/"),
            Some(SimplePath::Project { channel: Some("prod"), name: "foo", slash: true })
        );
        assert_eq!(
            SimplePath::parse("/channels/prod/simple/"),
            Some(SimplePath::Index { channel: Some("prod") })
        );
        assert_eq!(
            SimplePath::parse("/files/blake3/ab/x-1.0-py3-none-any.whl"),
            Some(SimplePath::File { hex: "ab", filename: "x-1.0-py3-none-any.whl" })
        );
        for other in [
            "/simple",
            "/simple/a/b/",
            "/simple/../",
            "/files/blake3/ab/..",
            "/channels/../simple/",
            "/healthz",
            "/channels/prod/files/blake3/a/b",
        ] {
            assert_eq!(SimplePath::parse(other), None, "{other}");
        }
    }

    #[test]
    fn negotiation_follows_quality_and_prefers_json() {
        let pip = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01";
        assert_eq!(negotiate(Some(pip), None), Some(Format::Json));
        let uv = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01";
        assert_eq!(negotiate(Some(uv), None), Some(Format::Json));
        assert_eq!(negotiate(Some("text/html"), None), Some(Format::TextHtml));
        assert_eq!(negotiate(None, None), Some(Format::TextHtml));
        assert_eq!(negotiate(Some("application/vnd.pypi.simple.latest+html"), None), Some(Format::Html));
        assert_eq!(negotiate(Some("application/json"), None), None);
        assert_eq!(
            negotiate(Some("text/html;q=0, application/vnd.pypi.simple.v1+html;q=0.5"), None),
            Some(Format::Html)
        );
        assert_eq!(
            negotiate(Some("text/html"), Some("application/vnd.pypi.simple.v1+json")),
            Some(Format::Json)
        );
        assert_eq!(negotiate(Some("text/html;q=2"), None), None);
        assert_eq!(
            negotiate(Some("text/html;q=2, application/vnd.pypi.simple.v1+json"), None),
            Some(Format::Json)
        );
    }
}
