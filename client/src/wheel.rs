//! Reading a wheel before it is published: the file name (PEP 427/491), the `.dist-info`
//! METADATA (name, version, Requires-Python, Requires-Dist, Summary) and RECORD, whose every
//! hash must match its file. Nothing in the archive is trusted: every read is capped, every
//! mismatch is refused naming the file and the reason.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::Path;
use std::str::FromStr;

use airlock_proto::{Kind, PackageName, Version};
use base64::Engine;
use sha2::{Digest as _, Sha256};

/// Largest METADATA file read.
pub const MAX_METADATA_BYTES: u64 = 1 << 20;
/// Largest RECORD file read.
pub const MAX_RECORD_BYTES: u64 = 16 << 20;
/// Most members a wheel may hold.
pub const MAX_MEMBERS: usize = 200_000;
/// Most bytes a wheel may hold uncompressed, all members together.
pub const MAX_UNCOMPRESSED_BYTES: u64 = 16 << 30;

/// Why a file is not a wheel airlock publishes.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {reason}")]
pub struct WheelError {
    pub file: String,
    pub reason: String,
}

/// The parts of a wheel file name: `{name}-{version}(-{build})?-{python}-{abi}-{platform}.whl`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WheelName {
    /// The project name, normalised (PEP 503).
    pub name: PackageName,
    /// The version, normalised (PEP 440).
    pub version: Version,
    pub build: Option<String>,
    /// The compressed tag sets, such as `py3`, `none`, `any`.
    pub python: String,
    pub abi: String,
    pub platform: String,
}

impl WheelName {
    /// Parses a wheel file name.
    pub fn parse(filename: &str) -> Result<Self, String> {
        let stem = filename.strip_suffix(".whl").ok_or("the file name does not end in .whl")?;
        let parts: Vec<&str> = stem.split('-').collect();
        let (name, version, build, tags) = match parts.as_slice() {
            [n, v, p, a, pl] => (*n, *v, None, [*p, *a, *pl]),
            [n, v, b, p, a, pl] => (*n, *v, Some(*b), [*p, *a, *pl]),
            _ => return Err(format!("{filename:?} is not name-version[-build]-python-abi-platform.whl")),
        };
        if let Some(build) = build {
            if !build.starts_with(|c: char| c.is_ascii_digit()) {
                return Err(format!("build tag {build:?} must start with a digit"));
            }
        }
        if tags
            .iter()
            .any(|t| t.is_empty() || !t.bytes().all(|b| b.is_ascii_alphanumeric() || b"._".contains(&b)))
        {
            return Err(format!("{filename:?} has a malformed tag"));
        }
        let name = PackageName::normalize(Kind::Wheel, name).map_err(|e| format!("project name: {e}"))?;
        let version = normalize_version(version)?;
        Ok(Self {
            name,
            version,
            build: build.map(str::to_owned),
            python: tags[0].to_owned(),
            abi: tags[1].to_owned(),
            platform: tags[2].to_owned(),
        })
    }
}

/// The wheels of a release that pip and uv would take for it: `.whl` files whose name parses and
/// names the release's own project and version. (A release could list a file named after another
/// project; installers go by the file name, so such a file is never offered.)
pub fn wheels_of(release: &airlock_proto::Release) -> impl Iterator<Item = &airlock_proto::FileEntry> {
    release.files.iter().filter(move |file| {
        WheelName::parse(file.filename.as_str())
            .is_ok_and(|wheel| wheel.name == release.name && wheel.version == release.version)
    })
}

/// A PEP 440 version in its normal form (`1.0.0-RC1` → `1.0.0rc1`).
pub fn normalize_version(text: &str) -> Result<Version, String> {
    let parsed = pep440_rs::Version::from_str(text).map_err(|e| format!("version {text:?}: {e}"))?;
    Version::new(&parsed.to_string()).map_err(|e| format!("version {text:?}: {e}"))
}

/// What publishing takes from a wheel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WheelInfo {
    pub filename: String,
    pub name: WheelName,
    /// The exact bytes of `*.dist-info/METADATA`: served as the PEP 658 `.metadata` file.
    pub metadata_bytes: Vec<u8>,
    pub summary: Option<String>,
    pub requires_python: Option<String>,
    /// `Requires-Dist` lines, in file order.
    pub requires_dist: Vec<String>,
}

/// Reads and checks the wheel at `path`.
pub fn read_wheel(path: &Path) -> Result<WheelInfo, WheelError> {
    let filename = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
    let fail = |reason: String| WheelError { file: filename.clone(), reason };
    let name = WheelName::parse(&filename).map_err(fail)?;
    let file = std::fs::File::open(path).map_err(|e| fail(format!("cannot open: {e}")))?;
    let mut archive = zip::ZipArchive::new(std::io::BufReader::new(file))
        .map_err(|e| fail(format!("not a zip archive: {e}")))?;
    check(&mut archive, &filename, name).map_err(fail)
}

fn check<R: Read + std::io::Seek>(
    archive: &mut zip::ZipArchive<R>,
    filename: &str,
    name: WheelName,
) -> Result<WheelInfo, String> {
    // The zip library merges repeated names; an extractor would write both.
    if archive.has_duplicate_names() {
        return Err("holds the same member name twice".to_owned());
    }
    if archive.len() > MAX_MEMBERS {
        return Err(format!("holds {} members, over the cap of {MAX_MEMBERS}", archive.len()));
    }
    let mut members = BTreeMap::new();
    let mut total = 0u64;
    for index in 0..archive.len() {
        let entry = archive.by_index_raw(index).map_err(|e| format!("member {index}: {e}"))?;
        let member = entry.name().map_err(|e| format!("member {index}: its name: {e}"))?.into_owned();
        if member.starts_with('/') || member.split('/').any(|part| part == "..") || member.contains('\\') {
            return Err(format!("member {member:?} is not a plain relative path"));
        }
        total = total.saturating_add(entry.size());
        if members.insert(member.clone(), index).is_some() {
            return Err(format!("member {member:?} appears twice"));
        }
    }
    if total > MAX_UNCOMPRESSED_BYTES {
        return Err(format!("holds {total} bytes uncompressed, over the cap of {MAX_UNCOMPRESSED_BYTES}"));
    }
    // The one top-level .dist-info directory, named after the project and version.
    let dist_infos: BTreeSet<&str> = members
        .keys()
        .filter_map(|m| m.split_once('/').map(|(dir, _)| dir))
        .filter(|dir| dir.ends_with(".dist-info"))
        .collect();
    let [dist_info] = dist_infos.iter().copied().collect::<Vec<_>>()[..] else {
        return Err(format!("holds {} .dist-info directories, expected one", dist_infos.len()));
    };
    let (dir_name, dir_version) = dist_info
        .strip_suffix(".dist-info")
        .and_then(|s| s.rsplit_once('-'))
        .ok_or_else(|| format!("{dist_info} is not name-version.dist-info"))?;
    check_same(&name, dir_name, dir_version, dist_info)?;

    let metadata_path = format!("{dist_info}/METADATA");
    let record_path = format!("{dist_info}/RECORD");
    let metadata_bytes = read_member(archive, &members, &metadata_path, MAX_METADATA_BYTES)?;
    let record = read_member(archive, &members, &record_path, MAX_RECORD_BYTES)?;
    let headers = parse_metadata(&metadata_bytes).map_err(|e| format!("{metadata_path}: {e}"))?;
    let header =
        |key: &str| headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v.clone());
    let meta_name = header("Name").ok_or_else(|| format!("{metadata_path} has no Name"))?;
    let meta_version = header("Version").ok_or_else(|| format!("{metadata_path} has no Version"))?;
    check_same(&name, &meta_name, &meta_version, &metadata_path)?;
    check_record(archive, &members, &record, &record_path)?;
    let requires_dist: Vec<String> = headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("Requires-Dist"))
        .map(|(_, v)| v.clone())
        .collect();
    // What a resolver will parse later is parsed now: a bad line refuses the wheel here rather
    // than break every lock that reaches it.
    for line in &requires_dist {
        pep508_rs::Requirement::<pep508_rs::VerbatimUrl>::from_str(line)
            .map_err(|e| format!("{metadata_path}: Requires-Dist {line:?}: {e}"))?;
    }
    if let Some(spec) = header("Requires-Python").filter(|s| !s.is_empty()) {
        pep440_rs::VersionSpecifiers::from_str(&spec)
            .map_err(|e| format!("{metadata_path}: Requires-Python {spec:?}: {e}"))?;
    }
    Ok(WheelInfo {
        filename: filename.to_owned(),
        name,
        metadata_bytes,
        summary: header("Summary").filter(|s| !s.is_empty() && s.len() <= 512),
        requires_python: header("Requires-Python").filter(|s| !s.is_empty()),
        requires_dist,
    })
}

/// The name and version `what` states must be the file name's (both normalised).
fn check_same(name: &WheelName, other_name: &str, other_version: &str, what: &str) -> Result<(), String> {
    let other = PackageName::normalize(Kind::Wheel, other_name).map_err(|e| format!("{what}: name: {e}"))?;
    if other != name.name {
        return Err(format!("{what} names project {other_name:?}, the file name says {}", name.name));
    }
    let other_version = normalize_version(other_version).map_err(|e| format!("{what}: {e}"))?;
    if other_version != name.version {
        return Err(format!("{what} says version {other_version}, the file name says {}", name.version));
    }
    Ok(())
}

fn read_member<R: Read + std::io::Seek>(
    archive: &mut zip::ZipArchive<R>,
    members: &BTreeMap<String, usize>,
    path: &str,
    cap: u64,
) -> Result<Vec<u8>, String> {
    let index = *members.get(path).ok_or_else(|| format!("{path} is missing"))?;
    let entry = archive.by_index(index).map_err(|e| format!("{path}: {e}"))?;
    let mut bytes = Vec::new();
    entry.take(cap + 1).read_to_end(&mut bytes).map_err(|e| format!("{path}: {e}"))?;
    if bytes.len() as u64 > cap {
        return Err(format!("{path} is over {cap} bytes"));
    }
    Ok(bytes)
}

/// The headers of a core metadata file (RFC 822 style, continuation lines folded; the body after
/// the first blank line is the description and is skipped).
fn parse_metadata(bytes: &[u8]) -> Result<Vec<(String, String)>, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "is not UTF-8".to_owned())?;
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if line.is_empty() {
            break;
        }
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = headers.last_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
            continue;
        }
        let (key, value) = line.split_once(':').ok_or_else(|| format!("line {line:?} is not a header"))?;
        headers.push((key.trim().to_owned(), value.trim().to_owned()));
    }
    Ok(headers)
}

/// Every member is listed in RECORD (except RECORD and its signatures) with a SHA-256 that
/// matches, and every listed file exists.
fn check_record<R: Read + std::io::Seek>(
    archive: &mut zip::ZipArchive<R>,
    members: &BTreeMap<String, usize>,
    record: &[u8],
    record_path: &str,
) -> Result<(), String> {
    let text = std::str::from_utf8(record).map_err(|_| format!("{record_path} is not UTF-8"))?;
    let mut listed = BTreeMap::new();
    for (number, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let fields =
            split_csv(line).ok_or_else(|| format!("{record_path} line {}: malformed", number + 1))?;
        let [path, hash, _size] = fields.as_slice() else {
            return Err(format!("{record_path} line {}: expected path,hash,size", number + 1));
        };
        listed.insert(path.clone(), hash.clone());
    }
    for member in members.keys() {
        let unsigned = member == record_path
            || member.strip_prefix(record_path).is_some_and(|ext| ext == ".jws" || ext == ".p7s");
        if member.ends_with('/') || unsigned {
            continue;
        }
        let hash = listed.get(member).ok_or_else(|| format!("{member} is not listed in {record_path}"))?;
        let expected = hash
            .strip_prefix("sha256=")
            .ok_or_else(|| format!("{record_path}: {member} has no sha256 hash ({hash:?})"))?;
        let entry = archive.by_index(members[member]).map_err(|e| format!("{member}: {e}"))?;
        let declared = entry.size();
        let mut hasher = Sha256::new();
        let read = std::io::copy(&mut entry.take(declared + 1), &mut hasher)
            .map_err(|e| format!("{member}: {e}"))?;
        if read != declared {
            return Err(format!("{member}: holds {read} bytes, its header says {declared}"));
        }
        let actual = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(hasher.finalize());
        if actual != expected {
            return Err(format!("{member}: sha256 {actual} does not match {record_path} ({expected})"));
        }
    }
    for path in listed.keys() {
        if !members.contains_key(path) && path != record_path {
            return Err(format!("{record_path} lists {path}, which the wheel does not hold"));
        }
    }
    Ok(())
}

/// One CSV line (RFC 4180 quoting), as RECORD files are written.
fn split_csv(line: &str) -> Option<Vec<String>> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            ('"', true) => quoted = false,
            ('"', false) if field.is_empty() => quoted = true,
            (',', false) => fields.push(std::mem::take(&mut field)),
            (c, _) => field.push(c),
        }
    }
    if quoted {
        return None;
    }
    fields.push(field);
    Some(fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wheel_names_parse_and_normalise() {
        let name = WheelName::parse("Typing_Extensions-4.12.0-py3-none-any.whl").unwrap();
        assert_eq!((name.name.as_str(), name.version.as_str()), ("typing-extensions", "4.12.0"));
        let build = WheelName::parse("pkg-1.0-1-cp312-cp312-manylinux_2_28_x86_64.whl").unwrap();
        assert_eq!(build.build.as_deref(), Some("1"));
        assert_eq!(build.platform, "manylinux_2_28_x86_64");
        let multi = WheelName::parse("pkg-2.0-py2.py3-none-any.whl").unwrap();
        assert_eq!(multi.python, "py2.py3");
        assert_eq!(
            WheelName::parse("pkg-1.0.0-RC1-py3-none-any.whl").map(|n| n.version.to_string()).ok(),
            None
        );
        assert_eq!(normalize_version("1.0.0-RC1").unwrap().as_str(), "1.0.0rc1");
        for bad in [
            "pkg-1.0.tar.gz",
            "pkg-1.0-py3-any.whl",
            "pkg-1.0-x-py3-none-any.whl",
            "pkg-notaversion-py3-none-any.whl",
        ] {
            assert!(WheelName::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn csv_fields_honour_quotes() {
        assert_eq!(split_csv("a,b,c").unwrap(), ["a", "b", "c"]);
        assert_eq!(split_csv("\"a,b\",sha256=x,3").unwrap(), ["a,b", "sha256=x", "3"]);
        assert_eq!(split_csv("\"a\"\"b\",,").unwrap(), ["a\"b", "", ""]);
        assert!(split_csv("\"open,").is_none());
    }

    #[test]
    fn metadata_headers_fold_and_stop_at_the_body() {
        let headers = parse_metadata(
            b"Name: x\nRequires-Dist: a\nRequires-Dist: b;\n  python_version<'3'\n\nBody: no\n",
        )
        .unwrap();
        assert_eq!(headers.len(), 3);
        assert_eq!(headers[2].1, "b; python_version<'3'");
    }
}
