//! The Comfy Registry read API and ComfyUI-Manager's channel files over HTTP (paths in
//! `crate::comfy`): JSON answers computed from the registry state, briefly cacheable so a yank
//! or revocation reaches clients within a minute. Writes are refused with 403: packs reach this
//! server through signed statements only.

use http::{header, HeaderMap, Method, Response, StatusCode};

use airlock_proto::ChannelName;

use crate::app::App;
use crate::comfy::catalog::{self, Context, Refusal};
use crate::comfy::{channel_files, ComfyPath, Request, MAX_PAGE_SIZE};
use crate::error::ApiError;
use crate::http::body::{self, Body};
use crate::http::simple::percent_decode_query;
use airlock_proto::api::query::Query;

/// Serves a Comfy path (`read` access already checked).
pub fn serve(
    app: &App,
    method: &Method,
    headers: &HeaderMap,
    path: ComfyPath<'_>,
    raw_path: &str,
    query: Option<&str>,
) -> Result<Response<Body>, ApiError> {
    if *method != Method::GET && *method != Method::HEAD {
        return Err(ApiError::Forbidden(format!(
            "{method} {raw_path}: this registry takes packs through signed statements only (airlock publish)"
        )));
    }
    let channel = path
        .channel
        .map(|c| ChannelName::new(c).map_err(|e| ApiError::NotFound(format!("no channel {c:?}: {e}"))))
        .transpose()?;
    let base_url = base_url(app, headers);
    let context = Context { base_url: &base_url, channel: channel.as_ref() };
    let params = Params::parse(query)?;
    let bytes = app.registry.with_state(|state| -> Result<Vec<u8>, ApiError> {
        match path.request {
            Request::Nodes => {
                let (page, limit) = params.paging("limit", 10)?;
                json(&catalog::nodes_page(state, &context, page, limit))
            }
            Request::Node(id) => json(
                &catalog::node(state, &context, id)
                    .ok_or_else(|| ApiError::NotFound(format!("no node {id} is offered here")))?,
            ),
            Request::Install(id) => {
                let version = params.one("version");
                match catalog::install(state, &context, id, version) {
                    Ok(found) => json(&found),
                    Err(Refusal::NotFound(why)) => Err(ApiError::NotFound(why)),
                    Err(Refusal::BadVersion(why)) => Err(ApiError::BadRequest(why)),
                }
            }
            Request::Versions(id) => json(
                &catalog::versions(state, &context, id, &params.all("statuses"))
                    .ok_or_else(|| ApiError::NotFound(format!("no node {id} is offered here")))?,
            ),
            Request::Version(id, version) => {
                json(&catalog::version(state, &context, id, version).ok_or_else(|| {
                    ApiError::NotFound(format!("no version {version} of node {id} is offered here"))
                })?)
            }
            Request::AllVersions => {
                let (page, size) = params.paging("pageSize", 10)?;
                json(&catalog::all_versions(
                    state,
                    &context,
                    params.one("nodeId"),
                    &params.all("statuses"),
                    page,
                    size,
                ))
            }
            Request::ChannelFile(name) => {
                channel_files::render(state, &context, name).map_err(|e| ApiError::Internal(e.into()))
            }
            Request::Unknown => Err(ApiError::NotFound(format!("no such registry endpoint: {raw_path}"))),
        }
    })?;
    let cache = match app.config.read_access {
        crate::config::ReadAccess::TokenRequired => "private, max-age=60",
        crate::config::ReadAccess::Open => "public, max-age=60",
    };
    let len = bytes.len();
    let body = if method == Method::HEAD { body::empty() } else { body::full(bytes) };
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CONTENT_LENGTH, len)
        .header(header::CACHE_CONTROL, cache)
        .body(body)
        .map_err(|e| ApiError::Internal(e.into()))
}

fn json<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, ApiError> {
    serde_json::to_vec(value).map_err(|e| ApiError::Internal(e.into()))
}

/// The base URL download links use: the configured public URL, else the request's `Host` with
/// this server's scheme.
fn base_url(app: &App, headers: &HeaderMap) -> String {
    if let Some(url) = &app.config.public_url {
        return url.clone();
    }
    let scheme = if app.config.tls.is_some() { "https" } else { "http" };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .filter(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b)))
        .unwrap_or("localhost");
    format!("{scheme}://{host}")
}

/// Query parameters, decoded (repeated names kept in order).
struct Params(Vec<(String, String)>);

impl Params {
    /// The query string, capped as every query is (`Query::parse`), each name and value
    /// percent-decoded (`statuses%5B%5D` is `statuses[]`).
    fn parse(query: Option<&str>) -> Result<Self, ApiError> {
        let decode = |text: &str| {
            percent_decode_query(&text.replace('+', " "))
                .ok_or_else(|| ApiError::BadRequest(format!("query parameter {text:?} is not well encoded")))
        };
        let pairs = Query::parse(query)?
            .pairs()
            .iter()
            .map(|(name, value)| Ok((decode(name)?, decode(value)?)))
            .collect::<Result<_, ApiError>>()?;
        Ok(Self(pairs))
    }

    fn one(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(n, _)| n == name || *n == format!("{name}[]"))
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// `page` (from 1) and the page size under `size_name` (1 to 100).
    fn paging(&self, size_name: &str, default: usize) -> Result<(usize, usize), ApiError> {
        let number = |name: &str, default: usize| -> Result<usize, ApiError> {
            match self.one(name) {
                None | Some("") => Ok(default),
                Some(text) => text.parse::<usize>().ok().filter(|n| *n >= 1).ok_or_else(|| {
                    ApiError::BadRequest(format!("{name} must be a whole number from 1, not {text:?}"))
                }),
            }
        };
        let page = number("page", 1)?;
        let size = number(size_name, default)?;
        if size > MAX_PAGE_SIZE {
            return Err(ApiError::BadRequest(format!("{size_name} is at most {MAX_PAGE_SIZE}")));
        }
        Ok((page, size))
    }
}
