//! Where a data directory's blobs live. A data directory with a `blob-store.toml` keeps its
//! blobs in the S3-compatible bucket that file names; one without keeps them in `blobs/` beside
//! the database. Every command that opens the directory (the server, `gc --data`,
//! `verify-store --data`, `purge --data`) reads the same file, so none can mistake a bucket's
//! blobs for missing ones. `airlockd init --s3-*` and `airlockd migrate-store` write it.
//!
//! Credentials come from the file (`access_key_id`, `secret_access_key`; the file is written
//! mode 0600) or else from `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY`. They are never
//! printed: `Debug` shows whether they are set, not what they are.

use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};

/// The file in a data directory that puts its blobs in a bucket.
pub const BLOB_STORE_FILE: &str = "blob-store.toml";
/// The largest `blob-store.toml` read.
const MAX_FILE_BYTES: u64 = 16 * 1024;

/// `blob-store.toml`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlobStoreFile {
    pub s3: S3Settings,
}

/// An S3-compatible bucket.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Settings {
    /// The store's URL, such as `http://127.0.0.1:8333` or `https://s3.example.internal`.
    pub endpoint: String,
    pub bucket: String,
    #[serde(default = "default_region")]
    pub region: String,
    /// Path-style addressing (`endpoint/bucket/key`), which most stores run on premises want;
    /// `false` for virtual-hosted style (`bucket.endpoint/key`).
    #[serde(default = "path_style")]
    pub path_style: bool,
    /// Keys start with this (empty, or ending in `/`), so that several registries can share a
    /// bucket without sharing blobs.
    #[serde(default)]
    pub prefix: String,
    /// Several front ends (mirrors of one upstream) keep their blobs under this same prefix:
    /// a sync takes in place what another stored, and only the `collector` collects garbage.
    #[serde(default)]
    pub shared: bool,
    /// On a shared bucket, this front end is the one that collects garbage.
    #[serde(default)]
    pub collector: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_key_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_access_key: Option<String>,
}

fn default_region() -> String {
    "us-east-1".to_owned()
}

fn path_style() -> bool {
    true
}

impl std::fmt::Debug for S3Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Settings")
            .field("endpoint", &self.endpoint)
            .field("bucket", &self.bucket)
            .field("region", &self.region)
            .field("path_style", &self.path_style)
            .field("prefix", &self.prefix)
            .field("shared", &self.shared)
            .field("collector", &self.collector)
            .field("access_key_id", &self.access_key_id.as_ref().map(|_| "(set)"))
            .field("secret_access_key", &self.secret_access_key.as_ref().map(|_| "(set)"))
            .finish()
    }
}

impl S3Settings {
    /// A bucket at an endpoint, with the defaults (no credentials: the environment's).
    pub fn new(endpoint: impl Into<String>, bucket: impl Into<String>) -> Self {
        Self {
            endpoint: endpoint.into(),
            bucket: bucket.into(),
            region: default_region(),
            path_style: true,
            prefix: String::new(),
            shared: false,
            collector: false,
            access_key_id: None,
            secret_access_key: None,
        }
    }

    /// Checks the settings before any request is made.
    pub fn check(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.endpoint.starts_with("http://") || self.endpoint.starts_with("https://"),
            "the S3 endpoint {:?} must start with http:// or https://",
            self.endpoint
        );
        anyhow::ensure!(!self.bucket.is_empty(), "the S3 bucket name is empty");
        anyhow::ensure!(
            self.prefix.is_empty() || (self.prefix.ends_with('/') && !self.prefix.starts_with('/')),
            "the S3 key prefix {:?} must end with / and not start with one",
            self.prefix
        );
        anyhow::ensure!(
            !self.collector || self.shared,
            "collector = true is for a shared bucket (shared = true)"
        );
        anyhow::ensure!(
            self.access_key_id.is_some() == self.secret_access_key.is_some(),
            "set both access_key_id and secret_access_key, or neither (then the environment's AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)"
        );
        Ok(())
    }

    /// How the bucket is shared.
    pub fn sharing(&self) -> Sharing {
        match (self.shared, self.collector) {
            (false, _) => Sharing::Own,
            (true, false) => Sharing::Member,
            (true, true) => Sharing::Collector,
        }
    }

    /// The key pair: the file's, else the environment's, else none (an anonymous bucket).
    pub fn credentials(&self) -> Option<(String, String)> {
        match (&self.access_key_id, &self.secret_access_key) {
            (Some(id), Some(secret)) => Some((id.clone(), secret.clone())),
            _ => match (std::env::var("AWS_ACCESS_KEY_ID"), std::env::var("AWS_SECRET_ACCESS_KEY")) {
                (Ok(id), Ok(secret)) => Some((id, secret)),
                _ => None,
            },
        }
    }
}

/// Whether other front ends keep their blobs in the same place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sharing {
    /// The blobs are this data directory's alone (the filesystem, or a bucket prefix of its own).
    Own,
    /// A bucket shared with other front ends; another one collects garbage.
    Member,
    /// A bucket shared with other front ends; this one collects garbage, after a sync, and
    /// never an object younger than the grace period that it has no record of.
    Collector,
}

/// The bucket a data directory keeps its blobs in, or `None` for its own `blobs/`.
pub fn read(data: &Path) -> anyhow::Result<Option<S3Settings>> {
    let path = data.join(BLOB_STORE_FILE);
    if !path.try_exists().with_context(|| format!("cannot read {}", path.display()))? {
        return Ok(None);
    }
    let bytes = airlock_client::fsutil::read_capped(&path, MAX_FILE_BYTES)?;
    let text = String::from_utf8(bytes).with_context(|| format!("{} is not UTF-8", path.display()))?;
    let file: BlobStoreFile = toml::from_str(&text).with_context(|| format!("invalid {}", path.display()))?;
    file.s3.check().with_context(|| format!("invalid {}", path.display()))?;
    Ok(Some(file.s3))
}

/// Puts a data directory's blobs in a bucket from now on (atomically, mode 0600: it may hold a
/// secret).
pub fn write(data: &Path, settings: &S3Settings) -> anyhow::Result<()> {
    settings.check()?;
    let text = toml::to_string(&BlobStoreFile { s3: settings.clone() })?;
    airlock_client::fsutil::write_atomic(&data.join(BLOB_STORE_FILE), text.as_bytes(), 0o600)
        .with_context(|| format!("cannot write {}", data.join(BLOB_STORE_FILE).display()))
}

/// The bucket a test run provides (`scripts/seaweedfs.sh`, which `test.sh` runs), under a key
/// prefix of its own so that tests sharing the bucket do not meet; `None`, with a message, when
/// the run has none. With `AIRLOCK_TEST_S3_REQUIRED` set, a missing bucket fails the test.
#[doc(hidden)]
pub fn test_bucket(test: &str) -> Option<S3Settings> {
    test_bucket_of("S3", test)
}

/// `test_bucket` for the store the variables `AIRLOCK_TEST_<STORE>_*` name (`S3`: the run's
/// SeaweedFS; `GARAGE`: a Garage where one is installed).
#[doc(hidden)]
pub fn test_bucket_of(store: &str, test: &str) -> Option<S3Settings> {
    let var = |name: &str| std::env::var(format!("AIRLOCK_TEST_{store}_{name}")).ok();
    let Some(endpoint) = var("ENDPOINT") else {
        assert!(
            var("REQUIRED").is_none(),
            "{test}: AIRLOCK_TEST_{store}_ENDPOINT is not set (scripts/seaweedfs.sh start DIR, then . DIR/env)"
        );
        eprintln!(
            "skipped {test}: no {store} store for this run (AIRLOCK_TEST_{store}_ENDPOINT, _BUCKET, _ACCESS_KEY_ID and _SECRET_ACCESS_KEY unset)"
        );
        return None;
    };
    let mut settings = S3Settings::new(endpoint, var("BUCKET").unwrap_or_else(|| "airlock-test".to_owned()));
    settings.access_key_id = var("ACCESS_KEY_ID");
    settings.secret_access_key = var("SECRET_ACCESS_KEY");
    settings.prefix = format!("{test}-{}/", hex::encode(rand::random::<[u8; 6]>()));
    Some(settings)
}
