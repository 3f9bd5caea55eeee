//! The Python index over HTTP: `/simple/` and `/simple/<name>/` (also under
//! `/channels/<name>/`), negotiated between PEP 691 JSON and PEP 503 HTML with exact
//! `Content-Type`s, and `/files/blake3/<hex>/<filename>` (the logged wheel or its `.metadata`,
//! with Range and immutable caching). Primaries and mirrors alike, from the registry state.

use http::{header, HeaderMap, Method, Response, StatusCode};

use airlock_proto::{ChannelName, Digest, Kind, PackageName};

use crate::app::App;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::http::blobs;
use crate::http::body::{self, Body};
use crate::simple::pages::{self, FileRefusal};
use crate::simple::{negotiate, Format, SimplePath};
use crate::zero_copy::Sends;

/// How long pip and uv may cache an index page: briefly, so a yank or revocation reaches them
/// within a minute.
const PAGE_CACHE: &str = "public, max-age=60";
/// The same, when reads need a token: no shared cache may keep the page.
const PRIVATE_PAGE_CACHE: &str = "private, max-age=60";

/// Serves an index path.
pub async fn serve(
    app: &App,
    method: &Method,
    headers: &HeaderMap,
    caller: &Caller,
    path: SimplePath<'_>,
    query: Option<&str>,
    sends: Option<&Sends>,
) -> Result<Response<Body>, ApiError> {
    match path {
        SimplePath::File { hex, filename } => file(app, method, headers, caller, hex, filename, sends).await,
        SimplePath::Index { channel } => {
            let channel = parse_channel(channel)?;
            let format = choose(headers, query)?;
            let names = app.registry.with_state(|state| pages::project_names(state, channel.as_ref()));
            let body = match format {
                Format::Json => {
                    serde_json::to_vec(&pages::index_json(names)).map_err(|e| ApiError::Internal(e.into()))?
                }
                Format::Html | Format::TextHtml => {
                    pages::index_html(&names, &base(channel.as_ref())).into_bytes()
                }
            };
            page(app, method, format, body)
        }
        SimplePath::Project { channel, name, slash } => {
            let channel_name = parse_channel(channel)?;
            let normalized = PackageName::normalize(Kind::Wheel, name)
                .map_err(|e| ApiError::NotFound(format!("no project {name:?}: {e}")))?;
            if !slash || normalized.as_str() != name {
                let query = query.map(|q| format!("?{q}")).unwrap_or_default();
                return redirect(&format!("{}{normalized}/{query}", base(channel_name.as_ref())));
            }
            let format = choose(headers, query)?;
            let project = app
                .registry
                .with_state(|state| pages::project(state, channel_name.as_ref(), &normalized))
                .ok_or_else(|| ApiError::NotFound(format!("no wheel project {normalized} is logged")))?;
            let body = match format {
                Format::Json => serde_json::to_vec(&project).map_err(|e| ApiError::Internal(e.into()))?,
                Format::Html | Format::TextHtml => pages::project_html(&project).into_bytes(),
            };
            page(app, method, format, body)
        }
    }
}

/// The index base path: `/simple/` or `/channels/<name>/simple/`.
fn base(channel: Option<&ChannelName>) -> String {
    channel.map_or_else(|| "/simple/".to_owned(), |c| format!("/channels/{c}/simple/"))
}

fn parse_channel(channel: Option<&str>) -> Result<Option<ChannelName>, ApiError> {
    channel
        .map(|c| ChannelName::new(c).map_err(|e| ApiError::NotFound(format!("no channel {c:?}: {e}"))))
        .transpose()
}

/// The representation asked for by `Accept` or `?format=`; 406 when none is served.
fn choose(headers: &HeaderMap, query: Option<&str>) -> Result<Format, ApiError> {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let format = query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .find_map(|pair| pair.strip_prefix("format="))
        .map(|f| percent_decode_query(f).unwrap_or_default());
    negotiate(accept, format.as_deref()).ok_or_else(|| {
        ApiError::NotAcceptable(format!(
            "this index serves {}, {} and {}",
            crate::simple::JSON_V1,
            crate::simple::HTML_V1,
            crate::simple::TEXT_HTML
        ))
    })
}

fn page(app: &App, method: &Method, format: Format, bytes: Vec<u8>) -> Result<Response<Body>, ApiError> {
    let cache = match app.config.read_access {
        crate::config::ReadAccess::TokenRequired => PRIVATE_PAGE_CACHE,
        crate::config::ReadAccess::Open => PAGE_CACHE,
    };
    let len = bytes.len();
    let body = if method == Method::HEAD { body::empty() } else { body::full(bytes) };
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, format.content_type())
        .header(header::CONTENT_LENGTH, len)
        .header(header::CACHE_CONTROL, cache)
        .header(header::VARY, "Accept")
        .body(body)
        .map_err(|e| ApiError::Internal(e.into()))
}

fn redirect(location: &str) -> Result<Response<Body>, ApiError> {
    Response::builder()
        .status(StatusCode::MOVED_PERMANENTLY)
        .header(header::LOCATION, location)
        .body(body::empty())
        .map_err(|e| ApiError::Internal(e.into()))
}

async fn file(
    app: &App,
    method: &Method,
    headers: &HeaderMap,
    caller: &Caller,
    hex: &str,
    filename: &str,
    sends: Option<&Sends>,
) -> Result<Response<Body>, ApiError> {
    // Read access first: without it, an outsider could probe which files the site holds.
    if app.config.read_access == crate::config::ReadAccess::TokenRequired {
        caller.require(crate::auth::Scope::Read)?;
    }
    let digest =
        Digest::from_hex(hex).map_err(|_| ApiError::NotFound(format!("no file {hex}/{filename}")))?;
    // pip percent-encodes the file name it took from the page (`+` becomes `%2B`).
    let decoded =
        percent_decode(filename).ok_or_else(|| ApiError::NotFound(format!("no file {hex}/{filename}")))?;
    let filename = decoded.as_str();
    let blob = app.registry.with_state(|state| pages::resolve_file(state, &digest, filename)).map_err(
        |e| match e {
            FileRefusal::NotFound => {
                ApiError::NotFound(format!("no logged file {filename} with BLAKE3 {hex}"))
            }
            FileRefusal::Revoked(reason) => ApiError::Gone(format!("{filename} is revoked: {reason}")),
        },
    )?;
    blobs::get(app, method, headers, caller, blob, sends).await
}

/// Decodes a path segment's `%XX` escapes; `None` for a malformed escape, or one that yields
/// `/`, NUL or something that is not UTF-8.
pub(crate) fn percent_decode(text: &str) -> Option<String> {
    decode(text, true)
}

/// Decodes a query value's `%XX` escapes (`/` allowed: media types hold one).
pub(crate) fn percent_decode_query(text: &str) -> Option<String> {
    decode(text, false)
}

fn decode(text: &str, segment: bool) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            let byte = u8::from_str_radix(hex, 16).ok()?;
            if byte == 0 || segment && byte == b'/' {
                return None;
            }
            out.push(byte);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn file_names_are_percent_decoded_and_slashes_refused() {
        assert_eq!(
            super::percent_decode("torch-2.5.1%2Bcu121-cp312-cp312-linux_x86_64.whl").as_deref(),
            Some("torch-2.5.1+cu121-cp312-cp312-linux_x86_64.whl")
        );
        assert_eq!(super::percent_decode("plain.whl").as_deref(), Some("plain.whl"));
        for bad in ["a%2Fb", "a%00", "a%2", "a%zz"] {
            assert_eq!(super::percent_decode(bad), None, "{bad}");
        }
        assert_eq!(
            super::percent_decode_query("application%2Fvnd.pypi.simple.v1%2Bjson").as_deref(),
            Some("application/vnd.pypi.simple.v1+json")
        );
    }
}
