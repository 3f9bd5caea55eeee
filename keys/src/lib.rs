//! airlock-keys: the only place that says a signature is valid.
//!
//! Key files (PKCS#8 PEM, 0600, zeroized), signing over PAE, strict verification, the one
//! threshold function (it counts distinct keys), `Verified<T>` (only this crate can make one),
//! the registry state that folds verified statements, and the log verifier that turns a trusted
//! state plus a new checkpoint and leaves into a new trusted state or the reason it refused.
//! No I/O except reading and writing key files.

pub mod cosignature;
pub mod inclusion;
pub mod keyfile;
pub mod log;
pub mod note;
pub mod policy;
pub mod preverify;
pub mod registry;
pub mod snapshot;
pub mod threshold;
pub mod trust;
mod verified;

pub use cosignature::{
    cosign, cosigned_at, parse_witness_verifier_key, witness_key_id, witness_verifier_key, WitnessError,
};
pub use inclusion::{verify_included, Freshness, Included, InclusionClaim};
pub use keyfile::{
    read_public_key, read_secret_key, write_public_key, write_secret_key, KeyError, PublicKey, SecretKey,
};
pub use log::{verify_evidence, ExpiredCheckpoint, LogError, Proven, TrustedLog};
pub use note::{check_note_threshold, note_key_id, parse_verifier_key, sign_note, verifier_key};
pub use policy::{format_policy, parse_policy, PolicyError, PolicyFile};
pub use registry::{preferred_holder, ApplyError, Prepared, RegistryState, ReleaseRecord, ReleaseStatus};
pub use snapshot::{SnapshotError, TrustedHead};
pub use threshold::{check_threshold, sign_envelope, ThresholdError};
pub use trust::{RoleName, TrustError, TrustedRoot, UnverifiedRoot};
pub use verified::Verified;
