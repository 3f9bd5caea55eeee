//! Merkle log math: the append-only tree behind the airlock transparency log.
//!
//! The tree is RFC 6962 / RFC 9162 (Certificate Transparency) with SHA-256, the form the C2SP
//! transparency-log specifications fix, so that standard witnesses, monitors and proof tools can
//! check airlock's log (BLAKE3 stays the address of blobs):
//!
//! * leaf hash  = SHA-256(0x00 ‖ data)
//! * node hash  = SHA-256(0x01 ‖ left ‖ right)
//! * empty tree = SHA-256 of the empty input
//!
//! The distinct prefixes keep a leaf from ever being mistaken for an interior node (second
//! preimage resistance). A tree of `n` leaves splits at the largest power of two below `n`, so
//! the left part is always a perfect subtree.
//!
//! This module has three kinds of users:
//!
//! * the server stores every complete subtree ([`nodes_completed_by_append`]) and answers
//!   questions about any past tree size through the [`NodeSource`] seam ([`root_from_source`],
//!   [`inclusion_proof`], [`consistency_proof`]);
//! * clients check what the server says ([`verify_inclusion`], [`verify_consistency`]) and keep
//!   the right edge of the tree ([`Frontier`]) to compute roots themselves;
//! * tests and small callers use [`MemoryTree`], which keeps every node in memory.
//!
//! Proof verification does a bounded amount of work: a proof longer than [`MAX_PROOF_LEN`] or of
//! the wrong length for the claimed sizes is rejected before any hashing.
//!
//! # Test vectors
//!
//! The 5-leaf tree has the leaves `leaf_hash(b"0")` to `leaf_hash(b"4")`.
//!
//! ```text
//! leaf_hash(b"")          = 6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d
//! leaf_hash(b"airlock")   = 4108e661db4f88f580aa1409f2946e03227e8b2fa3a056df0d6237a7101f63f3
//! node_hash(those two)    = 0ceba9ae7d2786cbd047dc0449fdbcd916a6433036617e5cb7a7d5fcec81d33c
//! root(b"0", .., b"4")    = b6748f6ed7a99de7da84fd97e1a3bac6fab8999f4a43695cab9528a2de431147
//! empty_root()            = e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
//! ```

use sha2::{Digest as _, Sha256};

mod build;
mod frontier;
mod memory;
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
mod verify;

pub use build::{consistency_proof, inclusion_proof, nodes_completed_by_append, root_from_source};
pub use frontier::Frontier;
pub use memory::MemoryTree;
pub use verify::{verify_consistency, verify_inclusion};

/// A SHA-256 digest: a leaf hash, a node hash or a tree root.
pub type Hash = [u8; 32];

/// The longest proof any verifier here accepts. A proof longer than this is rejected before any
/// hashing. 64 hashes cover an inclusion proof in any tree of up to 2^64 - 1 leaves, and a
/// consistency proof between any two trees of up to 2^63 leaves.
pub const MAX_PROOF_LEN: usize = 64;

/// Domain separation prefix of a leaf hash.
const LEAF_PREFIX: u8 = 0x00;
/// Domain separation prefix of an interior node hash.
const NODE_PREFIX: u8 = 0x01;

/// Hash of one log entry: SHA-256(0x00 ‖ data).
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([LEAF_PREFIX]);
    hasher.update(data);
    hasher.finalize().into()
}

/// Hash of an interior node: SHA-256(0x01 ‖ left ‖ right).
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([NODE_PREFIX]);
    hasher.update(left);
    hasher.update(right);
    hasher.finalize().into()
}

/// Root of the tree with no leaves: SHA-256 of the empty input.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// Why a proof (or a frontier) was rejected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProofError {
    /// The leaf index is not inside the tree.
    #[error("leaf index {index} is out of range for a tree of size {size}")]
    IndexOutOfRange { index: u64, size: u64 },
    /// The proof is longer than [`MAX_PROOF_LEN`]; it was not looked at.
    #[error("proof has {len} hashes, more than the maximum of {max}")]
    TooLong { len: usize, max: usize },
    /// The proof does not have the number of hashes the claimed sizes call for.
    #[error("proof has {got} hashes, but these tree sizes call for {expected}")]
    WrongLength { expected: usize, got: usize },
    /// The inclusion proof does not lead from the leaf to the expected root.
    #[error("inclusion proof does not lead to the expected root")]
    RootMismatch,
    /// The consistency proof does not lead to the old root (or the old tree is empty and the old
    /// root is not the empty root).
    #[error("consistency proof does not lead to the old root")]
    OldRootMismatch,
    /// The consistency proof does not lead to the new root (or two trees of the same size have
    /// different roots).
    #[error("consistency proof does not lead to the new root")]
    NewRootMismatch,
    /// The old tree is larger than the new one.
    #[error("old tree size {old} is larger than new tree size {new}")]
    SizeOrder { old: u64, new: u64 },
    /// A frontier needs exactly one hash per set bit of its size.
    #[error("a frontier of size {size} needs {expected} hashes, got {got}")]
    FrontierLength { size: u64, expected: usize, got: usize },
    /// A tree size beyond the leaves actually held was asked for.
    #[error("tree size {size} is larger than the {available} leaves held")]
    SizeUnavailable { size: u64, available: u64 },
}

/// Storage seam used by the server.
///
/// `node(level, index)` returns the hash of the complete, aligned subtree at `level` (0 = leaves)
/// and `index`, which covers leaves `[index << level, (index + 1) << level)`. The functions in
/// this module only ever ask for subtrees that are complete in the tree of the size being
/// queried, so a store that keeps every node returned by [`nodes_completed_by_append`] can
/// answer every request.
pub trait NodeSource {
    /// What reading a node can fail with (for example a database error).
    type Error;

    /// Hash of the complete subtree at `level` and `index`.
    fn node(&self, level: u32, index: u64) -> Result<Hash, Self::Error>;
}

impl<S: NodeSource + ?Sized> NodeSource for &S {
    type Error = S::Error;

    fn node(&self, level: u32, index: u64) -> Result<Hash, Self::Error> {
        (**self).node(level, index)
    }
}
