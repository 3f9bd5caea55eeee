//! airlock-proto: the wire types of airlock and the pure functions over them.
//!
//! Everything that crosses a process boundary (HTTP bodies, log leaves, bundle members, state
//! files) is defined here: digests, validated names, the strict CBOR codec, the signed envelope
//! and its pre-authentication encoding, the statement payloads, the checkpoint, and the Merkle
//! log math. This crate does no I/O and says nothing about whether a signature is valid: that is
//! the job of `airlock-keys`.

pub mod api;
pub mod bytes;
pub mod checkpoint;
pub mod clock;
pub mod codec;
pub mod digest;
pub mod envelope;
pub mod merkle;
pub mod names;
pub mod note;
pub mod parallel;
pub mod proof;
pub mod statement;
pub mod witness_policy;

pub use bytes::{Hash32, KeyId, PublicKeyBytes, Sha256, SignatureBytes};
pub use checkpoint::Checkpoint;
pub use clock::{Clock, ManualClock};
pub use codec::{decode, encode, CodecError};
pub use digest::{Digest, DigestParseError};
pub use envelope::{pae, Envelope, Signature};
pub use names::{ChannelName, FileName, Kind, NameError, PackageName, Version};
pub use note::{Note, NoteError, NoteSignature};
pub use statement::{
    ChannelAction, ChannelStatement, FileEntry, FindingRef, KeyName, Metadata, PayloadType, Release, Role,
    Roles, Root, Statement, StatementError, Status, StatusAction,
};
pub use witness_policy::{WitnessGroup, WitnessKey, WitnessPolicy};

/// Seconds since the Unix epoch. Time in airlock is always an integer number of seconds.
pub type Timestamp = u64;
