//! [`MemoryTree`]: a whole tree in memory, for tests and small callers.

use std::convert::Infallible;

use super::{consistency_proof, inclusion_proof, nodes_completed_by_append, root_from_source};
use super::{Frontier, Hash, NodeSource, ProofError};

/// A Merkle tree kept entirely in memory, every level of it: `levels[0]` are the leaf hashes,
/// `levels[l][i]` the complete subtree at level `l` and index `i`. Handy for tests and small
/// callers; it can answer questions about any earlier size too.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemoryTree {
    levels: Vec<Vec<Hash>>,
}

/// Unwraps a result that cannot fail.
pub(super) fn infallible<T>(result: Result<T, Infallible>) -> T {
    match result {
        Ok(value) => value,
        Err(never) => match never {},
    }
}

impl MemoryTree {
    /// The empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.levels.first().map_or(0, |leaves| leaves.len() as u64)
    }

    /// Appends one leaf, given its [`leaf_hash`](super::leaf_hash), storing every node it completes.
    pub fn push(&mut self, leaf_hash: Hash) {
        let index = self.size();
        for (level, _, hash) in infallible(nodes_completed_by_append(self, index, leaf_hash)) {
            let level = level as usize;
            while self.levels.len() <= level {
                self.levels.push(Vec::new());
            }
            self.levels[level].push(hash);
        }
    }

    /// Root of the whole tree.
    pub fn root(&self) -> Hash {
        infallible(root_from_source(self, self.size()))
    }

    /// Root of the tree of the first `size` leaves.
    pub fn root_at(&self, size: u64) -> Result<Hash, ProofError> {
        self.check_size(size)?;
        Ok(infallible(root_from_source(self, size)))
    }

    /// The frontier of the first `size` leaves.
    pub fn frontier_at(&self, size: u64) -> Result<Frontier, ProofError> {
        self.check_size(size)?;
        Ok(infallible(Frontier::from_source(self, size)))
    }

    /// Inclusion proof of leaf `index` in the tree of the first `size` leaves, with the
    /// arguments checked.
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, ProofError> {
        self.check_size(size)?;
        if index >= size {
            return Err(ProofError::IndexOutOfRange { index, size });
        }
        Ok(infallible(inclusion_proof(self, index, size)))
    }

    /// Consistency proof between the trees of the first `old_size` and `new_size` leaves, with
    /// the arguments checked (`old_size == 0` gives an empty proof).
    pub fn consistency_proof(&self, old_size: u64, new_size: u64) -> Result<Vec<Hash>, ProofError> {
        if old_size > new_size {
            return Err(ProofError::SizeOrder { old: old_size, new: new_size });
        }
        self.check_size(new_size)?;
        Ok(infallible(consistency_proof(self, old_size, new_size)))
    }

    fn check_size(&self, size: u64) -> Result<(), ProofError> {
        let available = self.size();
        if size > available {
            return Err(ProofError::SizeUnavailable { size, available });
        }
        Ok(())
    }
}

impl NodeSource for MemoryTree {
    type Error = Infallible;

    /// # Panics
    ///
    /// If the node is not complete in the tree held, which the functions of this module never
    /// ask for when given a size no larger than [`MemoryTree::size`].
    fn node(&self, level: u32, index: u64) -> Result<Hash, Infallible> {
        let found =
            usize::try_from(index).ok().and_then(|i| self.levels.get(level as usize)?.get(i).copied());
        match found {
            Some(hash) => Ok(hash),
            None => panic!("MemoryTree has no complete node at level {level}, index {index}"),
        }
    }
}
