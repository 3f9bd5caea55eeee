//! Server settings: the TOML config file and the resolved configuration. Command-line flags
//! override the file; the file overrides the defaults.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use serde::Deserialize;

/// Who may read (download blobs, read the log).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum ReadAccess {
    /// Anyone who can reach the server may read what is logged.
    #[default]
    Open,
    /// Reads need a bearer token with scope `read` or higher.
    TokenRequired,
}

/// TLS certificate chain and key, PEM files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Which releases a partial mirror carries the blobs of. Every field that is not empty must
/// match; an empty filter carries everything. The mirror always holds every leaf.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CarryFilter {
    pub kinds: Vec<airlock_proto::Kind>,
    /// Name patterns; `*` matches any run of characters.
    pub names: Vec<String>,
    pub channels: Vec<airlock_proto::ChannelName>,
}

impl CarryFilter {
    /// Whether every release is carried (no filter set).
    pub fn is_everything(&self) -> bool {
        self.kinds.is_empty() && self.names.is_empty() && self.channels.is_empty()
    }

    /// Whether a release (given the registry state, for channel membership) is carried.
    pub fn carries(&self, release: &airlock_proto::Release, state: &airlock_keys::RegistryState) -> bool {
        (self.kinds.is_empty() || self.kinds.contains(&release.kind))
            && (self.names.is_empty() || self.names.iter().any(|p| glob_match(p, release.name.as_str())))
            && (self.channels.is_empty()
                || self
                    .channels
                    .iter()
                    .any(|c| state.channel_holds(c, release.kind, &release.name, &release.version)))
    }
}

/// `*`-only glob matching.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first)
        || !text[first.len()..].ends_with(last)
        || text.len() < first.len() + last.len()
    {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(at) => rest = &rest[at + middle.len()..],
            None => return false,
        }
    }
    true
}

/// Caps and timeouts.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_blob_bytes: u64,
    pub max_statement_bytes: usize,
    pub max_page_leaves: u64,
    pub max_page_bytes: usize,
    pub header_read_timeout: Duration,
    pub body_idle_timeout: Duration,
    pub max_header_bytes: usize,
    /// Most connections open at once; past it, a new connection takes the place of the oldest
    /// one that has sent no request yet.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_blob_bytes: 8 << 30,
            max_statement_bytes: airlock_proto::envelope::MAX_ENVELOPE_BYTES,
            max_page_leaves: 4096,
            max_page_bytes: 8 << 20,
            header_read_timeout: Duration::from_secs(10),
            body_idle_timeout: Duration::from_secs(30),
            max_header_bytes: 64 * 1024,
            max_connections: 1024,
        }
    }
}

/// The resolved configuration `run` needs.
#[derive(Debug, Clone)]
pub struct Config {
    pub data: PathBuf,
    pub root: Option<PathBuf>,
    pub tls: Option<TlsFiles>,
    pub read_access: ReadAccess,
    pub checkpoint_validity: Duration,
    pub limits: Limits,
    /// Mirror mode: serve another registry's log (fed by `upstream` or by bundles), never sign.
    pub mirror: bool,
    /// The upstream registry a mirror follows over the network (its URL); implies `mirror`.
    pub upstream: Option<String>,
    /// Which releases a mirror carries the blobs of.
    pub carry: CarryFilter,
    /// How slow the upstream may be before a mirror abandons a transfer.
    pub upstream_limits: airlock_client::remote::TransferLimits,
    /// The bearer token a mirror presents to its upstream (for an upstream that requires a read
    /// token). Never printed: its `Debug` is redacted.
    pub upstream_token: Option<UpstreamToken>,
    /// An extra CA certificate (PEM) a mirror trusts for an `https://` upstream with a private CA.
    pub upstream_ca_cert: Option<PathBuf>,
    /// Break-glass for a mirror whose upstream is unreachable: keep serving the newest upstream
    /// checkpoint for this long after it expires, declaring the extension to clients. Unsafe:
    /// freeze protection is off for clients that accept it. Logged loudly.
    pub unsafe_serve_expired_checkpoint_for: Option<Duration>,
    /// How often a mirror syncs on its own (`None`: only on demand, `POST /v1/mirror/sync`).
    pub sync_interval: Option<Duration>,
    /// Where the time comes from (the system clock; tests set it).
    pub clock: airlock_proto::Clock,
    /// Witnesses (their base URLs) a primary sends each new checkpoint to for a cosignature.
    pub witnesses: Vec<String>,
    /// A mirror acting as its site's witness: the witness name and secret key file with which it
    /// cosigns each checkpoint it verified.
    pub mirror_witness: Option<(String, PathBuf)>,
    /// Warn (`/healthz`, `/v1/mirror/status`, the log) when a checkpoint that must be renewed by
    /// a delivery expires within this time.
    pub freshness_margin: Duration,
    /// What a primary does with the scan findings of node releases.
    pub scan: crate::scan_policy::ScanPolicy,
    /// The URL clients reach this server at (`https://mirror.example.internal`), for the
    /// absolute download URLs the Comfy Registry API answers with; without it, the request's
    /// `Host` header and the server's scheme.
    pub public_url: Option<String>,
    /// Also answer the Comfy Registry API at the root (`/nodes`, `/versions`), for a site that
    /// maps the registry's host name to this server.
    pub comfy_at_root: bool,
    /// RocksDB's memory: its block cache, which its memtables are also charged to.
    pub db_memory_mib: u64,
    /// Garbage collection keeps unreferenced uploads younger than this (`crate::gc`).
    pub gc_grace: Duration,
    /// Log one line a request (`crate::logging::ACCESS`).
    pub access_log: bool,
    /// Run each request in a `request{id}` span, so every line logged while answering it
    /// carries the id (with JSON logs or the access log).
    pub log_request_ids: bool,
    /// Scrub every blob and the log this often (`crate::scrub`; a mirror with an upstream also
    /// repairs what it finds).
    pub scrub_interval: Option<Duration>,
    /// How fast a scheduled scrub reads blobs, MiB a second (`None`: unthrottled).
    pub scrub_rate_mib_per_s: Option<u64>,
    /// Answer blob GETs with a redirect to a URL of the object store signed for this long
    /// (`--blob-redirect`), when the blobs are in a bucket.
    pub blob_redirect: Option<Duration>,
    /// Send large blob bodies on plain HTTP/1 by sendfile (`--zero-copy`, `crate::zero_copy`).
    pub zero_copy: bool,
    /// The config file the server was started with: `airlockd reload` reads it again.
    pub config_file: Option<PathBuf>,
    /// The carry filter came from the command line, so a reload keeps it.
    pub carry_from_flags: bool,
}

impl Config {
    /// Defaults for a data directory.
    pub fn new(data: impl Into<PathBuf>) -> Self {
        Self {
            data: data.into(),
            root: None,
            tls: None,
            read_access: ReadAccess::Open,
            checkpoint_validity: Duration::from_secs(24 * 3600),
            limits: Limits::default(),
            mirror: false,
            unsafe_serve_expired_checkpoint_for: None,
            upstream_limits: airlock_client::remote::TransferLimits::default(),
            upstream_token: None,
            upstream_ca_cert: None,
            carry: CarryFilter::default(),
            upstream: None,
            sync_interval: Some(Duration::from_secs(60)),
            db_memory_mib: crate::store::DEFAULT_DB_MEMORY_MIB,
            clock: airlock_proto::Clock::system(),
            witnesses: Vec::new(),
            mirror_witness: None,
            freshness_margin: Duration::from_secs(7 * 86_400),
            scan: crate::scan_policy::ScanPolicy::default(),
            public_url: None,
            comfy_at_root: false,
            gc_grace: crate::gc::DEFAULT_GRACE,
            access_log: false,
            log_request_ids: false,
            scrub_interval: None,
            scrub_rate_mib_per_s: None,
            blob_redirect: None,
            zero_copy: false,
            config_file: None,
            carry_from_flags: false,
        }
    }

    /// Whether this server mirrors another registry (and refuses writes of its own).
    pub fn is_mirror(&self) -> bool {
        self.mirror || self.upstream.is_some()
    }
}

/// A token kept out of logs and debug output.
#[derive(Clone, PartialEq, Eq)]
pub struct UpstreamToken(pub String);

impl std::fmt::Debug for UpstreamToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UpstreamToken(<redacted>)")
    }
}

/// The config file (`airlockd serve --config FILE`). Every field is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub data: Option<PathBuf>,
    pub listen: Option<String>,
    pub root: Option<PathBuf>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub read_access: Option<ReadAccess>,
    pub checkpoint_validity_secs: Option<u64>,
    pub db_memory_mib: Option<u64>,
    pub max_blob_bytes: Option<u64>,
    pub mirror: Option<bool>,
    pub upstream: Option<String>,
    pub upstream_token_file: Option<PathBuf>,
    pub upstream_ca_cert: Option<PathBuf>,
    pub sync_interval_secs: Option<u64>,
    pub carry_kinds: Option<Vec<airlock_proto::Kind>>,
    pub carry_names: Option<Vec<String>>,
    pub carry_channels: Option<Vec<airlock_proto::ChannelName>>,
    pub witnesses: Option<Vec<String>>,
    pub witness_name: Option<String>,
    pub witness_key: Option<PathBuf>,
    pub freshness_margin_secs: Option<u64>,
    /// Garbage collection keeps unreferenced uploads younger than this (default 7 days).
    pub gc_grace_secs: Option<u64>,
    /// Scan findings at this severity or above are refused at publish (`low`, `medium`,
    /// `high`, or `none`; default `none`).
    pub scan_reject: Option<String>,
    /// Scan findings at this severity or above need the release statement's acknowledgement
    /// (default `high`; `none` for never).
    pub scan_acknowledge: Option<String>,
    /// Requirements no pack may admit (requirement lines; default: the shipped blocklist).
    pub scan_blocklist: Option<Vec<String>>,
    /// The URL clients reach this server at, for absolute download URLs.
    pub public_url: Option<String>,
    /// Also answer the Comfy Registry API at the root.
    pub comfy_at_root: Option<bool>,
    /// Log one line a request (target `airlock::access`).
    pub access_log: Option<bool>,
    /// Scrub every blob and the log this often (seconds; default never).
    pub scrub_interval_secs: Option<u64>,
    /// How fast a scheduled scrub reads blobs, MiB a second (default unthrottled).
    pub scrub_rate_mib_per_s: Option<u64>,
    /// The main log's level, in `RUST_LOG`'s syntax (`info`, `warn,airlock::access=info`);
    /// over `RUST_LOG` when set, and read again by `airlockd reload`.
    pub log_level: Option<String>,
    /// Answer blob GETs with a redirect to the object store, signed for this many seconds.
    pub blob_redirect_secs: Option<u64>,
    /// Send large blob bodies on plain HTTP/1 by sendfile.
    pub zero_copy: Option<bool>,
}

impl FileConfig {
    /// The partial mirror's carry filter the file sets (everything when it sets none).
    pub fn carry(&self) -> CarryFilter {
        CarryFilter {
            kinds: self.carry_kinds.clone().unwrap_or_default(),
            names: self.carry_names.clone().unwrap_or_default(),
            channels: self.carry_channels.clone().unwrap_or_default(),
        }
    }

    /// The scan policy the file sets, over the defaults.
    pub fn scan_policy(&self) -> anyhow::Result<crate::scan_policy::ScanPolicy> {
        let mut policy = crate::scan_policy::ScanPolicy::default();
        let severity = |text: &str| -> anyhow::Result<Option<airlock_client::scan::Severity>> {
            if text == "none" {
                return Ok(None);
            }
            text.parse().map(Some).map_err(anyhow::Error::msg)
        };
        if let Some(text) = &self.scan_reject {
            policy.reject = severity(text).context("scan_reject")?;
        }
        if let Some(text) = &self.scan_acknowledge {
            policy.acknowledge = severity(text).context("scan_acknowledge")?;
        }
        if let Some(lines) = &self.scan_blocklist {
            policy.blocklist = airlock_client::scan::Blocklist::parse(lines).map_err(anyhow::Error::msg)?;
        }
        Ok(policy)
    }
}

impl FileConfig {
    /// Reads and parses a config file (at most 64 KiB).
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config {}", path.display()))?;
        anyhow::ensure!(text.len() <= 64 * 1024, "config {} is over 64 KiB", path.display());
        toml::from_str(&text).with_context(|| format!("invalid config {}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_patterns() {
        for (pattern, text, want) in [
            ("comfyui-*", "comfyui-impact-pack", true),
            ("comfyui-*", "torch", false),
            ("*-pack", "impact-pack", true),
            ("a*b*c", "axxbyyc", true),
            ("a*b*c", "axxc", false),
            ("exact", "exact", true),
            ("exact", "exactly", false),
            ("ab*ba", "aba", false),
        ] {
            assert_eq!(glob_match(pattern, text), want, "{pattern} {text}");
        }
    }

    #[test]
    fn scan_policy_settings() {
        let file: FileConfig = toml::from_str("scan_reject = 'high'\nscan_acknowledge = 'none'").unwrap();
        let policy = file.scan_policy().unwrap();
        assert_eq!(policy.reject, Some(airlock_client::scan::Severity::High));
        assert_eq!(policy.acknowledge, None);
        assert_eq!(policy.blocklist.lines, ["ultralytics==8.3.41", "ultralytics==8.3.42"]);
        let bad: FileConfig = toml::from_str("scan_reject = 'severe'").unwrap();
        assert!(format!("{:#}", bad.scan_policy().unwrap_err()).contains("is not a severity"));
        let bad: FileConfig = toml::from_str("scan_blocklist = ['git+https://x/y']").unwrap();
        assert!(bad.scan_policy().is_err());
    }

    #[test]
    fn unknown_config_keys_rejected() {
        assert!(toml::from_str::<FileConfig>("datta = '/x'").is_err());
        let ok: FileConfig = toml::from_str("data = '/x'\nread_access = 'token-required'").unwrap();
        assert_eq!(ok.read_access, Some(ReadAccess::TokenRequired));
    }
}
