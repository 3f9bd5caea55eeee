//! [`Frontier`]: the right edge of a tree, which is all a client needs to keep.

use serde::{Deserialize, Serialize};

use super::build::{fold_subtrees, perfect_subtrees};
use super::{node_hash, Hash, NodeSource, ProofError};

/// The right edge of a tree: the hashes of its maximal perfect subtrees, left to right (one per
/// set bit of the size, largest first). Enough to append leaves and compute the root without
/// storing the leaves. Clients keep one of these.
///
/// Deserializing checks the same invariant as [`Frontier::from_parts`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "FrontierParts")]
pub struct Frontier {
    size: u64,
    hashes: Vec<Hash>,
}

/// Unchecked serialized form of a [`Frontier`].
#[derive(Deserialize)]
struct FrontierParts {
    size: u64,
    hashes: Vec<Hash>,
}

impl TryFrom<FrontierParts> for Frontier {
    type Error = ProofError;

    fn try_from(parts: FrontierParts) -> Result<Self, ProofError> {
        Frontier::from_parts(parts.size, parts.hashes)
    }
}

impl Frontier {
    /// The frontier of the empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of leaves in the tree.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Hashes of the maximal perfect subtrees, left to right.
    pub fn hashes(&self) -> &[Hash] {
        &self.hashes
    }

    /// Rebuilds a frontier from its parts, checking that there is one hash per set bit of `size`.
    /// (The hashes themselves cannot be checked without the tree.)
    pub fn from_parts(size: u64, hashes: Vec<Hash>) -> Result<Self, ProofError> {
        let expected = size.count_ones() as usize;
        if hashes.len() != expected {
            return Err(ProofError::FrontierLength { size, expected, got: hashes.len() });
        }
        Ok(Self { size, hashes })
    }

    /// The frontier of the first `size` leaves of a stored tree: one read per set bit of `size`.
    pub fn from_source<S: NodeSource>(src: &S, size: u64) -> Result<Self, S::Error> {
        Ok(Self { size, hashes: perfect_subtrees(src, 0, size)? })
    }

    /// Appends one leaf, given its [`leaf_hash`](super::leaf_hash).
    ///
    /// # Panics
    ///
    /// If the tree already holds `u64::MAX` leaves.
    pub fn push(&mut self, leaf_hash: Hash) {
        assert!(self.size < u64::MAX, "Merkle frontier is full");
        // Each trailing one bit of the size is a perfect subtree as large as the one being
        // built, so the two merge.
        let merges = self.size.trailing_ones() as usize;
        let keep = self.hashes.len().saturating_sub(merges);
        let mut hash = leaf_hash;
        for left in self.hashes.drain(keep..).rev() {
            hash = node_hash(&left, &hash);
        }
        self.hashes.push(hash);
        self.size += 1;
    }

    /// Root of the tree ([`empty_root`](super::empty_root) if it has no leaves).
    pub fn root(&self) -> Hash {
        fold_subtrees(&self.hashes)
    }
}
