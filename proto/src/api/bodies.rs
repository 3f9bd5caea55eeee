//! Bodies of the native HTTP API (`/v1/`), bundles and state files. Log data travels as CBOR so
//! leaves and checkpoints keep their exact bytes; reports for people and scripts travel as JSON.
//! The server writes these types and the client reads them: neither builds a body by hand.

use serde::{Deserialize, Serialize};

use crate::bytes::{Hash32, Sha256};
use crate::{ChannelName, Digest, FileEntry, Kind, Metadata, PackageName, Timestamp, Version};

/// Most leaves one page may carry.
pub const MAX_PAGE_LEAVES: u64 = 4096;
/// Largest encoded leaves page a client accepts.
pub const MAX_PAGE_BYTES: usize = 16 << 20;
/// Largest encoded proof a client accepts.
pub const MAX_PROOF_BYTES: usize = 8 * 1024;

/// `GET /v1/log/leaves?start=&end=` (CBOR): leaves `start..start + leaves.len()`, exact bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeavesPage {
    pub start: u64,
    pub leaves: Vec<serde_bytes::ByteBuf>,
}

/// `GET /v1/roots` (CBOR): the envelope of every logged root, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootChain {
    pub roots: Vec<serde_bytes::ByteBuf>,
}

/// Largest root chain a client accepts.
pub const MAX_ROOT_CHAIN_BYTES: usize = 8 << 20;

/// `GET /v1/log/proof/...` (CBOR): the proof hashes, in RFC 6962 order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proof {
    pub hashes: Vec<Hash32>,
}

/// `POST /v1/statements` answer (JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Submitted {
    /// Leaf index of the statement.
    pub index: u64,
    /// Tree size of the checkpoint below.
    pub size: u64,
    /// The signed checkpoint envelope (hex in JSON).
    pub checkpoint: HexBytes,
    /// Inclusion proof of `index` in the checkpoint's tree, in RFC 6962 order.
    pub inclusion_proof: Vec<Hash32>,
    /// True when the statement's payload was already logged.
    pub existing: bool,
    /// When `existing`: the leaf as it was logged, whose signatures may differ from the ones
    /// submitted (the inclusion proof is for these bytes). Absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logged_leaf: Option<HexBytes>,
}

/// Bytes written as lowercase hex in JSON (and as a byte string in CBOR).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HexBytes(pub Vec<u8>);

impl Serialize for HexBytes {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.serialize_str(&hex::encode(&self.0))
        } else {
            serializer.serialize_bytes(&self.0)
        }
    }
}

impl<'de> Deserialize<'de> for HexBytes {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if deserializer.is_human_readable() {
            let text = String::deserialize(deserializer)?;
            hex::decode(&text).map(Self).map_err(serde::de::Error::custom)
        } else {
            serde_bytes::ByteBuf::deserialize(deserializer).map(|b| Self(b.into_vec()))
        }
    }
}

/// `PUT /v1/blobs/blake3/<hex>` answer (JSON): what the server stored, as it computed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobStored {
    pub digest: Digest,
    pub size: u64,
    pub sha256: Sha256,
}

/// The machine-readable code of an error answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    Conflict,
    TooLarge,
    RangeNotSatisfiable,
    Rejected,
    Timeout,
    Stale,
    Unavailable,
    InsufficientStorage,
    Internal,
    /// A code this client does not know (a newer server).
    #[serde(other)]
    Unknown,
}

/// Error body of every failed request (JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
    pub code: ErrorCode,
}

/// `GET /healthz` (JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// `ok` while the server serves.
    pub status: String,
    /// `primary` or `mirror`.
    pub role: String,
    /// Leaves in the log this server serves.
    pub log_size: u64,
    /// How long the checkpoint served and the root in force stay valid.
    pub freshness: Option<Freshness>,
}

/// How long what a server serves stays valid: its checkpoint (a bundle-fed mirror serves the
/// bundle's until the next delivery) and the root in force, with a warning for each that is
/// within its margin of expiring.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Freshness {
    pub checkpoint_expires_at: Timestamp,
    /// Seconds until the checkpoint expires (0 once expired).
    pub checkpoint_seconds_left: u64,
    /// False when the server signs or fetches a new checkpoint by itself (a primary, or a
    /// mirror whose last sync succeeded): then a short time left is normal, and not warned of.
    pub checkpoint_needs_delivery: bool,
    pub root_version: u64,
    pub root_expires_at: Timestamp,
    pub root_seconds_left: u64,
    /// What is close to expiring, for people; empty when nothing is.
    pub warnings: Vec<String>,
}

/// `POST /v1/admin/checkpoint` (JSON): the validity wanted for a bundle's checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointRequest {
    /// Seconds from now until the checkpoint expires; at most the root's
    /// `max_checkpoint_validity`.
    pub valid_for: u64,
}

/// The lifecycle state of a release, as listings show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ReleaseState {
    Active,
    Yanked { reason: String },
    Revoked { reason: String },
}

/// One logged release (JSON): `GET /v1/releases/<kind>/<name>/<version>` and
/// `GET /v1/releases/by-digest/<digest>`, and each entry of a [`ReleaseList`]. For people and
/// scripts: clients that install verify through the log, never through this answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseInfo {
    pub kind: Kind,
    pub name: PackageName,
    pub version: Version,
    pub leaf_index: u64,
    pub status: ReleaseState,
    pub published_at: Timestamp,
    pub files: Vec<FileEntry>,
    pub metadata: Metadata,
    /// The channels that hold this release.
    pub channels: Vec<ChannelName>,
}

/// `POST /v1/admin/tokens` (JSON): a token to create on a running server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenCreate {
    /// `read`, `publish` or `admin`.
    pub scope: String,
    pub label: String,
    /// When it stops being accepted; `None`: never.
    pub expires_at: Option<Timestamp>,
}

/// The answer to `POST /v1/admin/tokens` (JSON): the token, shown once, and its id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenCreated {
    pub token: String,
    pub id: String,
}

/// A token grant as listed (never the token): its id is the first 16 hex digits of the token's
/// BLAKE3 hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenInfo {
    pub id: String,
    pub scope: String,
    pub label: String,
    pub created_at: Timestamp,
    pub expires_at: Option<Timestamp>,
}

/// The answer to `DELETE /v1/admin/tokens/<id or label>` (JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokensRevoked {
    pub revoked: u64,
}

/// `GET /v1/admin/tokens` (JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenList {
    pub tokens: Vec<TokenInfo>,
}

/// `POST /v1/admin/gc` (JSON): a garbage collection on a running server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GcRequest {
    /// List what would be removed, remove nothing.
    pub dry_run: bool,
    /// Unreferenced uploads younger than this many seconds are kept; `None`: the server's
    /// configured grace period.
    pub grace_secs: Option<u64>,
}

/// What a garbage collection removed (or, in a dry run, would remove).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GcReport {
    pub dry_run: bool,
    /// The grace period applied, in seconds.
    pub grace_secs: u64,
    /// Every blob removed, in digest order.
    pub removed: Vec<GcRemoved>,
    /// The bytes they held.
    pub bytes_freed: u64,
    /// Unreferenced uploads kept because they are younger than the grace period.
    pub kept_in_grace: u64,
    /// Temporary objects of uploads a crash cut short, older than the grace period (an object
    /// store's; the filesystem clears its own when the server starts).
    #[serde(default)]
    pub stages: Vec<GcStage>,
}

/// What `airlockd migrate-store` did: of `blobs` recorded, `copied` sent to the bucket (the
/// others were there from an earlier run), and `verified` read back and checked.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MigrateReport {
    pub blobs: u64,
    pub copied: u64,
    pub bytes_copied: u64,
    pub verified: u64,
}

/// A temporary object a garbage collection removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GcStage {
    pub name: String,
    pub bytes: u64,
}

/// One blob a garbage collection removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GcRemoved {
    pub digest: Digest,
    pub bytes: u64,
    /// Why it could go: `unreferenced` (an upload no logged release names, older than the grace
    /// period), `unrecorded` (bytes without a record: a commit cut short by a crash), `purged`,
    /// or `uncarried` (a partial mirror's, outside its carry filter).
    pub reason: GcReason,
}

/// Why a blob could be removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GcReason {
    Unreferenced,
    Unrecorded,
    /// Its every release is revoked and an operator purged one (`POST /v1/admin/purge`).
    Purged,
    /// A partial mirror's: no release that holds it passes the mirror's carry filter (changed
    /// since the blob was fetched).
    Uncarried,
}

/// `POST /v1/admin/purge` (JSON): remove the blobs of a revoked release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurgeRequest {
    /// Needed only when a wheel and a node pack share the name and version.
    pub kind: Option<Kind>,
    /// As given: each kind's name rules apply when it is looked up.
    pub name: String,
    pub version: Version,
}

/// What a purge removed, and the files it kept because a release that is not revoked holds
/// them too.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurgeReport {
    pub kind: Kind,
    pub name: PackageName,
    pub version: Version,
    pub removed: Vec<GcRemoved>,
    pub kept_shared: Vec<Digest>,
}

/// `GET /v1/channels/<name>` (JSON): the releases a channel holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelList {
    pub channel: ChannelName,
    pub releases: Vec<ReleaseInfo>,
}

/// `GET /v1/releases/<kind>/<name>` (JSON): every logged release of a name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseList {
    pub kind: Kind,
    pub name: PackageName,
    pub releases: Vec<ReleaseInfo>,
}

/// `GET /v1/scan/policy` (JSON): how a node release's scan report must be made (scanner version
/// and blocklist, so that the server re-makes the same bytes), and what the server does with
/// findings: refuse them at `reject` severity and above, admit them at `acknowledge` and above
/// only when the release statement acknowledges each (`None`: never).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanPolicy {
    pub scanner: String,
    pub blocklist: Vec<String>,
    pub reject: Option<String>,
    pub acknowledge: Option<String>,
}

/// `POST /v1/mirror/sync` answer (JSON): what one sync did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncReport {
    pub upstream: String,
    pub from_size: u64,
    pub to_size: u64,
    pub blobs_fetched: u64,
    pub bytes_fetched: u64,
    /// Blobs the mirror's bucket already held (stored by another front end sharing it): checked
    /// there and recorded, not fetched.
    #[serde(default)]
    pub blobs_adopted: u64,
}

/// `GET /v1/mirror/status` (JSON): how far behind its upstream a mirror is, as of its last sync
/// attempt.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MirrorStatus {
    pub upstream: String,
    /// Leaves this mirror serves.
    pub size: u64,
    /// The upstream's size at the last successful checkpoint fetch.
    pub upstream_size: u64,
    pub lag_leaves: u64,
    /// Seconds between the upstream checkpoint last seen and the one this mirror serves.
    pub lag_seconds: u64,
    pub last_attempt_at: Option<Timestamp>,
    pub last_success_at: Option<Timestamp>,
    pub last_error: Option<String>,
    /// How long the checkpoint served and the root in force stay valid.
    #[serde(default)]
    pub freshness: Option<Freshness>,
}

/// `POST /v1/mirror/import` answer and `airlockd import` output (JSON): what an import did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportReport {
    pub from_size: u64,
    pub to_size: u64,
    pub blobs_stored: u64,
    pub state: ImportedState,
}

/// `airlockd verify-store` output (JSON): what a check of a data directory found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyStoreReport {
    pub log_size: u64,
    /// Root hash of the stored log (none while it is empty or does not verify).
    pub root_hash: Option<Hash32>,
    /// Blobs recorded in the store.
    pub blobs: u64,
    /// Logged blobs this store does not hold (a partial mirror's uncarried releases).
    pub not_held: u64,
    /// Every problem found, each naming what failed.
    pub problems: Vec<String>,
}

/// `POST /v1/admin/scrub` (JSON): check every blob and the log on a running server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScrubRequest {
    /// Fetch each damaged or missing blob again from the upstream, through the ingest path.
    pub repair: bool,
    /// Read at most this many MiB of blobs a second (`None`: as fast as the disk goes).
    pub rate_mib_per_s: Option<u64>,
    /// With `repair`, a bundle file on the server's host to take damaged or missing blobs from
    /// first (its bytes are checked against the store's own record); the upstream, if any,
    /// repairs what the bundle lacks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bundle: Option<String>,
}

/// What a scrub found: the store's report after repairs (`problems`: what is still wrong), and
/// the blobs it repaired.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScrubReport {
    #[serde(flatten)]
    pub store: VerifyStoreReport,
    pub repaired: Vec<RepairedBlob>,
}

/// A blob a scrub found damaged or missing and put back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepairedBlob {
    pub digest: Digest,
    /// What was wrong.
    pub problem: String,
}

/// The answer to `POST /v1/admin/reload` (JSON): what was read again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReloadReport {
    /// The TLS certificate and key were read again and are in force for new connections
    /// (`false` for a server without TLS).
    pub tls: bool,
    /// The config file read again (`None`: the server was started without one).
    pub config_file: Option<String>,
    /// The log level now in force: the file's `log_level`, or the one the server started with.
    pub log_level: String,
    /// A mirror's carry filter changed (the file's `carry_*`; flags given at start pin it).
    pub carry_changed: bool,
    /// After a changed carry filter, the sync that fetched the blobs it takes in: its report,
    /// or why it failed (the next sync tries again).
    pub sync: Option<Result<SyncReport, String>>,
}

/// A SECURITY ERROR's evidence (CBOR), written by the client under its state directory: the
/// checkpoint it trusted, the one it was offered, and the leaves it holds (its verified leaves,
/// then any new ones served with the offered checkpoint), so that `airlock evidence verify` can
/// check offline what they prove.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    pub format: u32,
    /// The error as the client reported it.
    pub what: String,
    /// `None` when the client had verified no checkpoint yet.
    pub trusted: Option<serde_bytes::ByteBuf>,
    pub offered: serde_bytes::ByteBuf,
    pub leaves: Vec<serde_bytes::ByteBuf>,
}

/// Evidence file format version.
pub const EVIDENCE_FORMAT: u32 = 1;

/// Largest saved log accepted.
pub const MAX_SAVED_LOG_BYTES: usize = 1 << 30;

/// Name of the first member of a bundle.
pub const BUNDLE_MANIFEST: &str = "manifest.cbor";
/// Prefix of blob members of a bundle: `blobs/<64 hex>`.
pub const BUNDLE_BLOB_PREFIX: &str = "blobs/";
/// Bundle format version.
pub const BUNDLE_FORMAT: u32 = 1;

/// The first member of a bundle (a tar file): a log segment `from_size..to_size` with the
/// checkpoint that covers it, and the blobs that follow it in the tar.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleManifest {
    pub format: u32,
    pub origin: String,
    pub from_size: u64,
    pub to_size: u64,
    pub checkpoint: serde_bytes::ByteBuf,
    pub leaves: Vec<serde_bytes::ByteBuf>,
    pub blobs: Vec<BundleBlob>,
}

/// A blob a bundle carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleBlob {
    pub digest: crate::Digest,
    pub size: u64,
}

/// What an import leaves behind so that the next export can start where it ended (JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportedState {
    pub origin: String,
    pub size: u64,
    pub root_hash: Hash32,
}
