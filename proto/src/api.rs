//! Bodies of the native HTTP API (`/v1/`). Log data travels as CBOR so leaves and checkpoints
//! keep their exact bytes; reports for people and scripts travel as JSON.

use serde::{Deserialize, Serialize};

use crate::bytes::Hash32;

/// Most leaves one page may carry.
pub const MAX_PAGE_LEAVES: u64 = 1000;
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
    /// The signed checkpoint envelope, hex.
    pub checkpoint: String,
    /// Inclusion proof of `index` in the checkpoint's tree, hex hashes.
    pub inclusion_proof: Vec<String>,
    /// True when the identical statement was already logged.
    pub existing: bool,
}

/// `PUT /v1/blobs/blake3/<hex>` answer (JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobStored {
    pub digest: String,
    pub size: u64,
    pub sha256: String,
}

/// Error body of every failed request (JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
    pub code: String,
}

/// A client's or mirror's verified view of a log as saved on disk (CBOR): the leaves it has
/// verified, the newest checkpoint, and the newest issued-at it has seen. Loading re-verifies it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedLog {
    pub leaves: Vec<serde_bytes::ByteBuf>,
    pub checkpoint: Option<serde_bytes::ByteBuf>,
    pub newest_issued_at: u64,
}

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
    pub root_hash: String,
}
