//! What a request path names, parsed once per request: the metrics' route label and the
//! dispatch both read it. The paths other specifications fix (tlog-tiles, the Python index, the
//! Comfy Registry API) are tried before airlock's own API.

use airlock_proto::api::Route;

use crate::comfy::ComfyPath;
use crate::simple::SimplePath;

/// A parsed request path.
#[derive(Debug)]
pub enum Target<'a> {
    /// `GET /metrics`.
    Metrics,
    /// A tlog-tiles path: `/checkpoint` (`None`) or `/tile/<rest>`.
    Tiles(Option<&'a str>),
    /// The Python index (PEP 503 and 691).
    Simple(SimplePath<'a>),
    /// The Comfy Registry API and ComfyUI-Manager's channel files.
    Comfy(ComfyPath<'a>),
    /// airlock's native API.
    Native(Route<'a>),
    /// Nothing this server answers.
    Unknown,
}

impl<'a> Target<'a> {
    /// Parses a request path (already checked for length).
    pub fn parse(path: &'a str, comfy_at_root: bool) -> Self {
        if path == "/metrics" {
            return Self::Metrics;
        }
        if path == "/checkpoint" {
            return Self::Tiles(None);
        }
        if let Some(rest) = path.strip_prefix("/tile/") {
            return Self::Tiles(Some(rest));
        }
        if let Some(index) = SimplePath::parse(path) {
            return Self::Simple(index);
        }
        if let Some(comfy) = ComfyPath::parse(path, comfy_at_root) {
            return Self::Comfy(comfy);
        }
        Route::parse(path).map_or(Self::Unknown, Self::Native)
    }

    /// The route label of the request metrics: the native route's name, or the family.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Metrics => "metrics",
            Self::Tiles(_) => "tiles",
            Self::Simple(_) => "simple",
            Self::Comfy(_) => "comfy",
            Self::Native(route) => route.name(),
            Self::Unknown => "unknown",
        }
    }
}
