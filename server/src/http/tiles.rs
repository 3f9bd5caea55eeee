//! The log as tlog-tiles (c2sp.org/tlog-tiles), beside the native API: `/checkpoint`,
//! `/tile/<L>/<N>[.p/<W>]` (the hashes of tree level 8·L, 256 to a full tile) and
//! `/tile/entries/<N>[.p/<W>]` (the leaves, each as a big-endian uint16 length and its bytes).
//! `N` is written in groups of three digits, all but the last prefixed with `x`
//! (`x001/x234/067`). Tiles are computed from the stored tree nodes; a tile's content never
//! changes, so full and partial tiles alike are served with immutable cache headers, and a plain
//! HTTP cache or file server can mirror the log.

use airlock_proto::merkle::NodeSource;
use http::{header, HeaderValue, Response};

use crate::app::App;
use crate::error::ApiError;
use crate::http::body::{self, Body};

/// Hashes (or entries) in a full tile.
pub const TILE_WIDTH: u64 = 256;
/// Highest tile level served (tree level 8·7 = 56 covers any log this server can hold).
const MAX_LEVEL: u8 = 7;

/// A tile named by a request path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TilePath {
    /// Hashes of tree level `8 * level`, nodes `index * 256 ..` (`width` of them).
    Hashes { level: u8, index: u64, width: u64 },
    /// Leaves `index * 256 ..` (`width` of them).
    Entries { index: u64, width: u64 },
}

/// Parses the part of a tile path after `/tile/`. `None` for anything malformed.
pub fn parse(path: &str) -> Option<TilePath> {
    let (kind, rest) = path.split_once('/')?;
    let (index_part, width) = match rest.split_once(".p/") {
        Some((index, text)) => {
            let width = digits(text)?;
            if width == 0 || width >= TILE_WIDTH || width.to_string() != text {
                return None;
            }
            (index, width)
        }
        None => (rest, TILE_WIDTH),
    };
    let index = tile_index(index_part)?;
    if kind == "entries" {
        return Some(TilePath::Entries { index, width });
    }
    let level: u8 = digits(kind)?.try_into().ok()?;
    if level > MAX_LEVEL || level.to_string() != kind {
        return None;
    }
    Some(TilePath::Hashes { level, index, width })
}

fn digits(text: &str) -> Option<u64> {
    if text.is_empty() || text.len() > 20 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// `x001/x234/067` → 1234067: three digits per group, `x` on all but the last.
fn tile_index(text: &str) -> Option<u64> {
    let groups: Vec<&str> = text.split('/').collect();
    let (last, leading) = groups.split_last()?;
    if leading.len() > 6 {
        return None;
    }
    let mut index: u64 = 0;
    for (i, group) in groups.iter().enumerate() {
        let group = if i < leading.len() { group.strip_prefix('x')? } else { last };
        if group.len() != 3 {
            return None;
        }
        index = index.checked_mul(1000)?.checked_add(digits(group)?)?;
    }
    Some(index)
}

/// The path of a tile index: 1234067 → `x001/x234/067`.
pub fn format_index(mut index: u64) -> String {
    let mut out = format!("{:03}", index % 1000);
    while index >= 1000 {
        index /= 1000;
        out = format!("x{:03}/{out}", index % 1000);
    }
    out
}

/// `GET /tile/...`
pub fn get(app: &App, rest: &str) -> Result<Response<Body>, ApiError> {
    let tile = parse(rest).ok_or_else(|| ApiError::NotFound(format!("no such tile: /tile/{rest}")))?;
    let size = app.store.log_size()?;
    let missing = || ApiError::NotFound(format!("tile /tile/{rest} is beyond the log's {size} leaves"));
    let bytes = match tile {
        TilePath::Hashes { level, index, width } => {
            let tree_level = 8 * u32::from(level);
            let first = index.checked_mul(TILE_WIDTH).ok_or_else(missing)?;
            // Node `i` of this level is complete once (i + 1) << tree_level leaves exist.
            let complete = size >> tree_level;
            if first.checked_add(width).ok_or_else(missing)? > complete {
                return Err(missing());
            }
            let mut out = Vec::with_capacity(usize::try_from(width).unwrap_or(0) * 32);
            for node in first..first + width {
                out.extend_from_slice(&app.store.node(tree_level, node)?);
            }
            out
        }
        TilePath::Entries { index, width } => {
            let first = index.checked_mul(TILE_WIDTH).ok_or_else(missing)?;
            if first.checked_add(width).ok_or_else(missing)? > size {
                return Err(missing());
            }
            let mut out = Vec::new();
            for leaf in app.store.leaves(first, first + width, usize::MAX)? {
                let len = u16::try_from(leaf.len())
                    .map_err(|_| anyhow::anyhow!("a stored leaf is over the 65,535-byte entry limit"))?;
                out.extend_from_slice(&len.to_be_bytes());
                out.extend_from_slice(&leaf);
            }
            out
        }
    };
    let mut response = body::bytes(bytes);
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=31536000, immutable"));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tile_paths_parse_as_the_spec_writes_them() {
        assert_eq!(parse("0/000"), Some(TilePath::Hashes { level: 0, index: 0, width: 256 }));
        assert_eq!(
            parse("1/x001/x234/067.p/8"),
            Some(TilePath::Hashes { level: 1, index: 1_234_067, width: 8 })
        );
        assert_eq!(parse("entries/x001/002"), Some(TilePath::Entries { index: 1002, width: 256 }));
        assert_eq!(parse("entries/005.p/255"), Some(TilePath::Entries { index: 5, width: 255 }));
        for bad in [
            "0/1",
            "0/0001",
            "0/x000",
            "0/1234",
            "8/000",
            "00/000",
            "0/000.p/0",
            "0/000.p/256",
            "0/000.p/08",
            "0/x1/000",
            "0/000/",
            "entries/",
            "x/000",
            "0/-01",
            "0/x001/x002/x003/x004/x005/x006/x007/008",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
        for index in [0, 7, 999, 1000, 1_234_067, u64::MAX / 256] {
            assert_eq!(tile_index(&format_index(index)), Some(index), "{index}");
        }
        assert_eq!(format_index(1_234_067), "x001/x234/067");
    }
}
