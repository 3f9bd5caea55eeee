//! Ed25519 keys and key files.
//!
//! * [`PublicKey`] is validated on construction: invalid or non-canonical
//!   point encodings and weak (small-order) keys are rejected, and
//!   [`PublicKey::verify_strict`] rejects malleable signatures.
//! * [`SecretKey`] zeroizes itself on drop and never prints its material.
//! * [`KeyId`] is the BLAKE3 hash of the raw 32-byte public key.
//! * Keys are stored as PEM: secret keys as PKCS#8 (`PRIVATE KEY`), public keys
//!   as SubjectPublicKeyInfo (`PUBLIC KEY`). Keys of any other algorithm (RSA,
//!   ECDSA, ...) are rejected with an error that names the algorithm.
//!
//! The `write_*`/`read_*` functions (in `file.rs`) are the only file I/O in the
//! keys crate. Secret key files must not be accessible by group or others,
//! key files are capped at [`MAX_KEY_FILE_BYTES`], and secret material read
//! from disk only ever lives in [`Zeroizing`](zeroize::Zeroizing) buffers.

use std::io;
use std::path::PathBuf;

mod batch;
mod file;
mod key;
mod pem;
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;

pub use batch::verify_batch;
pub use file::{read_public_key, read_secret_key, write_public_key, write_secret_key, MAX_KEY_FILE_BYTES};
pub use key::{PublicKey, SecretKey};

/// Everything that can go wrong with keys, signatures and key files.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The public key is a small-order point or has a small-order component; signatures under
    /// it prove nothing or verify differently in a batch.
    #[error("weak Ed25519 public key (small-order point or component) rejected")]
    WeakKey,
    /// A key or signature had the wrong number of bytes.
    #[error("{what}: expected {expected} bytes, got {got}")]
    BadLength { what: &'static str, expected: usize, got: usize },
    /// The signature does not verify (or is malleable / non-canonical).
    #[error("Ed25519 signature verification failed")]
    BadSignature,
    /// The bytes are not the canonical encoding of an Ed25519 curve point.
    #[error("invalid Ed25519 public key: not a canonical curve point encoding")]
    InvalidPoint,
    /// Not PEM, corrupt base64, the wrong PEM label, or malformed DER inside.
    #[error("malformed key: {what}")]
    Pem { what: String },
    /// A well-formed key of some algorithm other than Ed25519.
    #[error("unsupported key algorithm {found}; only Ed25519 (OID 1.3.101.112) keys are accepted")]
    WrongAlgorithm { found: String },
    /// The key file exceeds [`MAX_KEY_FILE_BYTES`].
    #[error("file is larger than the {limit}-byte limit for key files")]
    TooLarge { limit: usize },
    /// Reading, writing or syncing a file or directory failed.
    #[error("I/O error on {}: {error}", path.display())]
    Io { path: PathBuf, error: io::Error },
    /// A key file's contents were rejected; `error` says why.
    #[error("key file {}: {error}", path.display())]
    InFile { path: PathBuf, error: Box<KeyError> },
    /// A secret key file is readable or writable by group or others.
    #[error(
        "secret key file {} has insecure permissions {mode:04o} (accessible by group/others); \
         run `chmod 600` on it",
        path.display()
    )]
    InsecurePermissions { path: PathBuf, mode: u32 },
    /// Refused to overwrite an existing key file.
    #[error("key file {} already exists; refusing to overwrite it", path.display())]
    Exists { path: PathBuf },
}

pub use airlock_proto::KeyId;
