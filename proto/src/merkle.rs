//! Merkle log math: the append-only tree behind the airlock transparency log.
//!
//! The tree has the shape of RFC 6962 / RFC 9162 (Certificate Transparency), with BLAKE3-256 in
//! place of SHA-256:
//!
//! * leaf hash  = BLAKE3(0x00 ‖ data)
//! * node hash  = BLAKE3(0x01 ‖ left ‖ right)
//! * empty tree = BLAKE3 of the empty input
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
//! leaf_hash(b"")          = 2d3adedff11b61f14c886e35afa036736dcd87a74d27b5c1510225d0f592e213
//! leaf_hash(b"airlock")   = b959690af96f2414635e92254816f123ae14950a5ca245efac5837c906a28729
//! node_hash(those two)    = 81bc5a7888719cb2b2ee4f682fcbd4d5ed640f8e424c1a261248a0cb4eced598
//! root(b"0", .., b"4")    = 56e784598f2a9ba3033c82f03adc88042f938ae8ef33b8040f986638977c24fd
//! empty_root()            = af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262
//! ```

use std::convert::Infallible;

use serde::{Deserialize, Serialize};

/// A BLAKE3-256 digest: a leaf hash, a node hash or a tree root.
pub type Hash = [u8; 32];

/// The longest proof any verifier here accepts. A proof longer than this is rejected before any
/// hashing. 64 hashes cover an inclusion proof in any tree of up to 2^64 - 1 leaves, and a
/// consistency proof between any two trees of up to 2^63 leaves.
pub const MAX_PROOF_LEN: usize = 64;

/// Domain separation prefix of a leaf hash.
const LEAF_PREFIX: u8 = 0x00;
/// Domain separation prefix of an interior node hash.
const NODE_PREFIX: u8 = 0x01;

/// Hash of one log entry: BLAKE3(0x00 ‖ data).
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut hasher = blake3::Hasher::new();
    hasher.update(&[LEAF_PREFIX]);
    hasher.update(data);
    *hasher.finalize().as_bytes()
}

/// Hash of an interior node: BLAKE3(0x01 ‖ left ‖ right).
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut hasher = blake3::Hasher::new();
    hasher.update(&[NODE_PREFIX]);
    hasher.update(left);
    hasher.update(right);
    *hasher.finalize().as_bytes()
}

/// Root of the tree with no leaves: BLAKE3 of the empty input.
pub fn empty_root() -> Hash {
    *blake3::hash(&[]).as_bytes()
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

/// Largest power of two strictly less than `n`. `n` must be at least 2.
fn split_point(n: u64) -> u64 {
    1 << (63 - (n - 1).leading_zeros())
}

/// Combines the maximal perfect subtrees of a tree, given left to right, into its root: the
/// rightmost two are joined first, as RFC 6962 does.
fn fold_subtrees(hashes: &[Hash]) -> Hash {
    match hashes.split_last() {
        None => empty_root(),
        Some((last, rest)) => rest.iter().rev().fold(*last, |acc, left| node_hash(left, &acc)),
    }
}

/// Hashes of the perfect subtrees that make up leaves `[start, start + len)`, left to right: one
/// per set bit of `len`, largest first.
///
/// `start` must be a multiple of a power of two that is at least `len`; every range the RFC 6962
/// recursion visits has this shape, and it makes each piece an aligned, complete subtree.
fn perfect_subtrees<S: NodeSource>(src: &S, start: u64, len: u64) -> Result<Vec<Hash>, S::Error> {
    let mut hashes = Vec::with_capacity(len.count_ones() as usize);
    let mut offset = start;
    for level in (0..64u32).rev() {
        if (len >> level) & 1 == 1 {
            hashes.push(src.node(level, offset >> level)?);
            offset += 1 << level;
        }
    }
    Ok(hashes)
}

/// MTH of leaves `[start, start + len)` (see [`perfect_subtrees`] for what `start` must be).
/// Reads one node per set bit of `len`.
fn range_root<S: NodeSource>(src: &S, start: u64, len: u64) -> Result<Hash, S::Error> {
    Ok(fold_subtrees(&perfect_subtrees(src, start, len)?))
}

/// Root (MTH) of the first `size` leaves, read from complete subtrees only: one read per set bit
/// of `size`.
pub fn root_from_source<S: NodeSource>(src: &S, size: u64) -> Result<Hash, S::Error> {
    range_root(src, 0, size)
}

/// Inclusion proof (RFC 6962 `PATH(m, D[n])`) of leaf `index` in the tree of the first `size`
/// leaves, ordered from the leaf's sibling up to the root's child.
///
/// The caller guarantees `index < size`; otherwise the result is an empty proof, which no
/// verifier accepts for such an index.
pub fn inclusion_proof<S: NodeSource>(src: &S, index: u64, size: u64) -> Result<Vec<Hash>, S::Error> {
    let mut proof = Vec::new();
    if index >= size {
        return Ok(proof);
    }
    // Walk down from the root towards the leaf, noting the sibling at every step; the RFC lists
    // them bottom-up, so reverse at the end.
    let (mut start, mut len, mut m) = (0u64, size, index);
    while len > 1 {
        let k = split_point(len);
        if m < k {
            proof.push(range_root(src, start + k, len - k)?);
            len = k;
        } else {
            proof.push(range_root(src, start, k)?);
            start += k;
            m -= k;
            len -= k;
        }
    }
    proof.reverse();
    Ok(proof)
}

/// Consistency proof (RFC 6962 `PROOF(m, D[n])`) that the tree of the first `old_size` leaves is
/// a prefix of the tree of the first `new_size` leaves.
///
/// The caller guarantees `0 < old_size <= new_size`. If `old_size == new_size` (or
/// `old_size == 0`) the proof is empty, which is what [`verify_consistency`] expects; if
/// `old_size > new_size` it is empty too, and no verifier accepts it.
pub fn consistency_proof<S: NodeSource>(
    src: &S,
    old_size: u64,
    new_size: u64,
) -> Result<Vec<Hash>, S::Error> {
    let mut proof = Vec::new();
    if old_size == 0 || old_size >= new_size {
        return Ok(proof);
    }
    // Iterative SUBPROOF(m, D[start..start + len], whole_old_tree): walk down, noting one hash
    // per step, then reverse into the RFC's bottom-up order.
    let (mut start, mut len, mut m, mut whole_old_tree) = (0u64, new_size, old_size, true);
    loop {
        if m == len {
            // This subtree is entirely old. If it is the whole old tree the verifier already
            // has its hash (the old root), otherwise it must be sent.
            if !whole_old_tree {
                proof.push(range_root(src, start, len)?);
            }
            break;
        }
        // Here m < len, so len >= 2.
        let k = split_point(len);
        if m <= k {
            proof.push(range_root(src, start + k, len - k)?);
            len = k;
        } else {
            proof.push(range_root(src, start, k)?);
            start += k;
            m -= k;
            len -= k;
            whole_old_tree = false;
        }
    }
    proof.reverse();
    Ok(proof)
}

/// Number of hashes in the inclusion proof of leaf `index` in a tree of `size` leaves
/// (`index < size`): the levels where the leaf's path leaves the tree's right edge, plus one for
/// each left subtree the path joins above that.
fn inclusion_proof_len(index: u64, size: u64) -> usize {
    let last = size - 1;
    let inner = 64 - (index ^ last).leading_zeros();
    let border = index.checked_shr(inner).unwrap_or(0).count_ones();
    (inner + border) as usize
}

/// Number of hashes in the consistency proof between sizes `0 < old_size < new_size`.
///
/// The old tree's last perfect subtree sits at level `trailing_zeros(old_size)`; the proof is
/// the inclusion proof of that subtree in the new tree seen from that level up, plus the subtree
/// itself unless it is the whole old tree.
fn consistency_proof_len(old_size: u64, new_size: u64) -> usize {
    let shift = old_size.trailing_zeros();
    let index = (old_size - 1) >> shift;
    let size = ((new_size - 1) >> shift) + 1;
    inclusion_proof_len(index, size) + usize::from(index != 0)
}

/// Checks that `proof` shows the leaf with hash `leaf_hash` at `index` in the tree of `size`
/// leaves whose root is `root` (RFC 9162 §2.1.3.2).
///
/// A proof longer than [`MAX_PROOF_LEN`], or of any length other than the one `index` and `size`
/// call for, is rejected before any hashing.
pub fn verify_inclusion(
    leaf_hash: &Hash,
    index: u64,
    size: u64,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), ProofError> {
    if proof.len() > MAX_PROOF_LEN {
        return Err(ProofError::TooLong { len: proof.len(), max: MAX_PROOF_LEN });
    }
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let expected = inclusion_proof_len(index, size);
    if proof.len() != expected {
        return Err(ProofError::WrongLength { expected, got: proof.len() });
    }

    // `f` is the position of the running hash on its level, `s` the position of the last node
    // on that level.
    let mut f = index;
    let mut s = size - 1;
    let mut r = *leaf_hash;
    for p in proof {
        if s == 0 {
            return Err(ProofError::WrongLength { expected, got: proof.len() });
        }
        if f & 1 == 1 || f == s {
            r = node_hash(p, &r);
            // On the right edge of the tree: climb past the levels where there is no sibling.
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    if s != 0 {
        return Err(ProofError::WrongLength { expected, got: proof.len() });
    }
    if r != *root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

/// Checks that `proof` shows the tree of `old_size` leaves with root `old_root` to be a prefix of
/// the tree of `new_size` leaves with root `new_root` (RFC 9162 §2.1.4.2).
///
/// * `old_size > new_size` is rejected.
/// * `old_size == 0`: the proof must be empty and `old_root` must be [`empty_root`]; every tree
///   extends the empty tree (if `new_size` is 0 too, `new_root` must also be the empty root).
/// * `old_size == new_size`: the proof must be empty and the roots equal.
/// * Otherwise a proof longer than [`MAX_PROOF_LEN`], or of any length other than the sizes call
///   for, is rejected before any hashing.
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), ProofError> {
    if old_size > new_size {
        return Err(ProofError::SizeOrder { old: old_size, new: new_size });
    }
    if proof.len() > MAX_PROOF_LEN {
        return Err(ProofError::TooLong { len: proof.len(), max: MAX_PROOF_LEN });
    }
    if old_size == 0 || old_size == new_size {
        if !proof.is_empty() {
            return Err(ProofError::WrongLength { expected: 0, got: proof.len() });
        }
        if old_size == 0 && *old_root != empty_root() {
            return Err(ProofError::OldRootMismatch);
        }
        if old_size == new_size && old_root != new_root {
            return Err(ProofError::NewRootMismatch);
        }
        return Ok(());
    }
    let expected = consistency_proof_len(old_size, new_size);
    if proof.len() != expected {
        return Err(ProofError::WrongLength { expected, got: proof.len() });
    }

    let mut rest = proof.iter();
    // When the old tree is perfect its root is the first node of the path and is not sent.
    let seed = if old_size.is_power_of_two() {
        *old_root
    } else {
        match rest.next() {
            Some(first) => *first,
            None => return Err(ProofError::WrongLength { expected, got: proof.len() }),
        }
    };
    let mut f = old_size - 1;
    let mut s = new_size - 1;
    // Skip the levels where the old tree's last node is a right child whose left sibling is
    // already inside the seed.
    while f & 1 == 1 {
        f >>= 1;
        s >>= 1;
    }
    let mut old_r = seed;
    let mut new_r = seed;
    for c in rest {
        if s == 0 {
            return Err(ProofError::WrongLength { expected, got: proof.len() });
        }
        if f & 1 == 1 || f == s {
            old_r = node_hash(c, &old_r);
            new_r = node_hash(c, &new_r);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            new_r = node_hash(&new_r, c);
        }
        f >>= 1;
        s >>= 1;
    }
    if s != 0 {
        return Err(ProofError::WrongLength { expected, got: proof.len() });
    }
    if old_r != *old_root {
        return Err(ProofError::OldRootMismatch);
    }
    if new_r != *new_root {
        return Err(ProofError::NewRootMismatch);
    }
    Ok(())
}

/// Newly completed nodes when appending leaf number `index` (0-based) with hash `leaf`, given a
/// way to read the nodes of the tree of `index` leaves.
///
/// Returns `(level, index, hash)` for every node that becomes complete, starting with
/// `(0, index, leaf)` and going up: one more per trailing one bit of `index`. The server stores
/// all of them.
pub fn nodes_completed_by_append<S: NodeSource>(
    src: &S,
    index: u64,
    leaf: Hash,
) -> Result<Vec<(u32, u64, Hash)>, S::Error> {
    let mut nodes = Vec::with_capacity(index.trailing_ones() as usize + 1);
    nodes.push((0, index, leaf));
    let (mut level, mut i, mut hash) = (0u32, index, leaf);
    // While the new node is a right child, its left sibling is complete and so is their parent.
    while i & 1 == 1 {
        let left = src.node(level, i - 1)?;
        hash = node_hash(&left, &hash);
        level += 1;
        i >>= 1;
        nodes.push((level, i, hash));
    }
    Ok(nodes)
}

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

    /// Appends one leaf, given its [`leaf_hash`].
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

    /// Root of the tree ([`empty_root`] if it has no leaves).
    pub fn root(&self) -> Hash {
        fold_subtrees(&self.hashes)
    }
}

/// A Merkle tree kept entirely in memory, every level of it: `levels[0]` are the leaf hashes,
/// `levels[l][i]` the complete subtree at level `l` and index `i`. Handy for tests and small
/// callers; it can answer questions about any earlier size too.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemoryTree {
    levels: Vec<Vec<Hash>>,
}

/// Unwraps a result that cannot fail.
fn infallible<T>(result: Result<T, Infallible>) -> T {
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

    /// Appends one leaf, given its [`leaf_hash`], storing every node it completes.
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::cell::Cell;

    use super::*;

    /// Leaf hashes of the entries "0", "1", ... used throughout.
    fn leaves(n: usize) -> Vec<Hash> {
        (0..n).map(|i| leaf_hash(i.to_string().as_bytes())).collect()
    }

    fn tree(n: usize) -> MemoryTree {
        let mut tree = MemoryTree::new();
        for leaf in leaves(n) {
            tree.push(leaf);
        }
        tree
    }

    /// Largest power of two strictly below `n`, computed the slow way.
    fn reference_split(n: usize) -> usize {
        let mut k = 1;
        while k * 2 < n {
            k *= 2;
        }
        k
    }

    /// RFC 6962 MTH, straight from the definition.
    fn reference_root(leaves: &[Hash]) -> Hash {
        match leaves.len() {
            0 => empty_root(),
            1 => leaves[0],
            n => {
                let k = reference_split(n);
                node_hash(&reference_root(&leaves[..k]), &reference_root(&leaves[k..]))
            }
        }
    }

    /// RFC 6962 PATH(m, D[n]).
    fn reference_path(m: usize, leaves: &[Hash]) -> Vec<Hash> {
        let n = leaves.len();
        if n <= 1 {
            return Vec::new();
        }
        let k = reference_split(n);
        if m < k {
            let mut path = reference_path(m, &leaves[..k]);
            path.push(reference_root(&leaves[k..]));
            path
        } else {
            let mut path = reference_path(m - k, &leaves[k..]);
            path.push(reference_root(&leaves[..k]));
            path
        }
    }

    /// RFC 6962 SUBPROOF(m, D[n], b).
    fn reference_subproof(m: usize, leaves: &[Hash], whole: bool) -> Vec<Hash> {
        let n = leaves.len();
        if m == n {
            return if whole { Vec::new() } else { vec![reference_root(leaves)] };
        }
        let k = reference_split(n);
        if m <= k {
            let mut proof = reference_subproof(m, &leaves[..k], whole);
            proof.push(reference_root(&leaves[k..]));
            proof
        } else {
            let mut proof = reference_subproof(m - k, &leaves[k..], false);
            proof.push(reference_root(&leaves[..k]));
            proof
        }
    }

    /// A node source over a big tree that pretends to hold only `size` leaves: asking for a node
    /// that is not complete in a tree of that size is an error. Counts reads.
    struct Limited<'a> {
        tree: &'a MemoryTree,
        size: u64,
        reads: Cell<usize>,
    }

    impl<'a> Limited<'a> {
        fn new(tree: &'a MemoryTree, size: u64) -> Self {
            Self { tree, size, reads: Cell::new(0) }
        }
    }

    impl NodeSource for Limited<'_> {
        type Error = String;

        fn node(&self, level: u32, index: u64) -> Result<Hash, String> {
            self.reads.set(self.reads.get() + 1);
            if (index + 1) << level > self.size {
                return Err(format!(
                    "node ({level}, {index}) is not complete in a tree of size {}",
                    self.size
                ));
            }
            Ok(infallible(self.tree.node(level, index)))
        }
    }

    fn flip(hash: &Hash) -> Hash {
        let mut out = *hash;
        out[0] ^= 1;
        out
    }

    #[test]
    fn roots_match_reference_for_every_size_up_to_70() {
        let all = leaves(70);
        let big = tree(70);
        let mut frontier = Frontier::new();
        for n in 0..=70usize {
            let expected = reference_root(&all[..n]);
            let small = tree(n);
            assert_eq!(small.size(), n as u64);
            assert_eq!(small.root(), expected, "MemoryTree root, size {n}");
            assert_eq!(frontier.size(), n as u64);
            assert_eq!(frontier.root(), expected, "Frontier root, size {n}");
            assert_eq!(frontier.hashes().len(), n.count_ones() as usize);

            let src = Limited::new(&big, n as u64);
            assert_eq!(root_from_source(&src, n as u64).unwrap(), expected, "size {n}");
            assert_eq!(src.reads.get(), n.count_ones() as usize, "reads for size {n}");
            assert_eq!(big.root_at(n as u64).unwrap(), expected);
            assert_eq!(Frontier::from_source(&src, n as u64).unwrap(), frontier);
            assert_eq!(big.frontier_at(n as u64).unwrap(), frontier);

            if n < 70 {
                frontier.push(all[n]);
            }
        }
        assert_eq!(big.root_at(71), Err(ProofError::SizeUnavailable { size: 71, available: 70 }));
    }

    #[test]
    fn empty_tree() {
        assert_eq!(empty_root(), *blake3::hash(b"").as_bytes());
        assert_eq!(MemoryTree::new().root(), empty_root());
        assert_eq!(Frontier::new().root(), empty_root());
        assert_eq!(root_from_source(&MemoryTree::new(), 0).unwrap(), empty_root());
    }

    #[test]
    fn single_leaf_root_is_the_leaf_hash() {
        let leaf = leaf_hash(b"only");
        let mut t = MemoryTree::new();
        t.push(leaf);
        assert_eq!(t.root(), leaf);
        verify_inclusion(&leaf, 0, 1, &[], &leaf).unwrap();
    }

    #[test]
    fn appended_nodes_are_the_complete_subtrees() {
        let all = leaves(40);
        let mut t = MemoryTree::new();
        for (i, leaf) in all.iter().enumerate() {
            let i = i as u64;
            let nodes = nodes_completed_by_append(&t, i, *leaf).unwrap();
            assert_eq!(nodes.len(), i.trailing_ones() as usize + 1);
            assert_eq!(nodes[0], (0, i, *leaf));
            for &(level, index, hash) in &nodes {
                // The node covers leaves [index << level, (index + 1) << level) and ends at i.
                let start = (index << level) as usize;
                let end = ((index + 1) << level) as usize;
                assert_eq!(end as u64, i + 1);
                assert_eq!(hash, reference_root(&all[start..end]));
            }
            t.push(*leaf);
        }
    }

    #[test]
    fn every_inclusion_proof_up_to_40_verifies() {
        let all = leaves(40);
        let big = tree(40);
        for n in 1..=40usize {
            let root = reference_root(&all[..n]);
            for m in 0..n {
                let src = Limited::new(&big, n as u64);
                let proof = inclusion_proof(&src, m as u64, n as u64).unwrap();
                assert_eq!(proof, reference_path(m, &all[..n]), "PATH({m}, D[{n}])");
                assert_eq!(proof.len(), inclusion_proof_len(m as u64, n as u64));
                assert!(src.reads.get() <= 2 * 64, "reads for PATH({m}, D[{n}])");
                assert_eq!(big.inclusion_proof(m as u64, n as u64).unwrap(), proof);
                verify_inclusion(&all[m], m as u64, n as u64, &proof, &root)
                    .unwrap_or_else(|e| panic!("PATH({m}, D[{n}]): {e}"));
            }
        }
    }

    #[test]
    fn tampered_inclusion_proofs_fail() {
        let all = leaves(40);
        let big = tree(40);
        for n in 1..=40u64 {
            let root = big.root_at(n).unwrap();
            for m in 0..n {
                let leaf = &all[m as usize];
                let proof = big.inclusion_proof(m, n).unwrap();

                // Any flipped hash.
                for i in 0..proof.len() {
                    let mut bad = proof.clone();
                    bad[i] = flip(&bad[i]);
                    assert_eq!(verify_inclusion(leaf, m, n, &bad, &root), Err(ProofError::RootMismatch));
                }
                // Wrong leaf, wrong root.
                assert!(verify_inclusion(&flip(leaf), m, n, &proof, &root).is_err());
                assert!(verify_inclusion(leaf, m, n, &proof, &flip(&root)).is_err());
                // Wrong index: same length proofs must still fail on the root.
                for other in 0..n {
                    if other != m {
                        assert!(
                            verify_inclusion(leaf, other, n, &proof, &root).is_err(),
                            "leaf {m} verified at index {other} in size {n}"
                        );
                    }
                }
                assert_eq!(
                    verify_inclusion(leaf, n, n, &proof, &root),
                    Err(ProofError::IndexOutOfRange { index: n, size: n })
                );
                // Wrong size, with that size's real root: it may only pass if the proof really
                // is the proof for that size too.
                for other in (m + 1)..=40 {
                    let other_root = big.root_at(other).unwrap();
                    if other != n && verify_inclusion(leaf, m, other, &proof, &other_root).is_ok() {
                        assert_eq!(proof, big.inclusion_proof(m, other).unwrap());
                    }
                }
                // Extra hash, missing hash.
                let mut longer = proof.clone();
                longer.push(root);
                assert_eq!(
                    verify_inclusion(leaf, m, n, &longer, &root),
                    Err(ProofError::WrongLength { expected: proof.len(), got: proof.len() + 1 })
                );
                if let Some((_, shorter)) = proof.split_last() {
                    assert_eq!(
                        verify_inclusion(leaf, m, n, shorter, &root),
                        Err(ProofError::WrongLength { expected: proof.len(), got: proof.len() - 1 })
                    );
                }
                // Too long.
                let mut too_long = proof.clone();
                too_long.resize(MAX_PROOF_LEN + 1, root);
                assert_eq!(
                    verify_inclusion(leaf, m, n, &too_long, &root),
                    Err(ProofError::TooLong { len: MAX_PROOF_LEN + 1, max: MAX_PROOF_LEN })
                );
            }
        }
    }

    #[test]
    fn every_consistency_proof_up_to_40_verifies() {
        let all = leaves(40);
        let big = tree(40);
        for n in 1..=40usize {
            let new_root = reference_root(&all[..n]);
            for m in 1..=n {
                let old_root = reference_root(&all[..m]);
                let src = Limited::new(&big, n as u64);
                let proof = consistency_proof(&src, m as u64, n as u64).unwrap();
                assert_eq!(proof, reference_subproof(m, &all[..n], true), "PROOF({m}, D[{n}])");
                if m < n {
                    assert_eq!(proof.len(), consistency_proof_len(m as u64, n as u64));
                }
                assert_eq!(big.consistency_proof(m as u64, n as u64).unwrap(), proof);
                verify_consistency(m as u64, n as u64, &old_root, &new_root, &proof)
                    .unwrap_or_else(|e| panic!("PROOF({m}, D[{n}]): {e}"));
            }
        }
    }

    #[test]
    fn tampered_consistency_proofs_fail() {
        let big = tree(40);
        for n in 1..=40u64 {
            let new_root = big.root_at(n).unwrap();
            for m in 1..=n {
                let old_root = big.root_at(m).unwrap();
                let proof = big.consistency_proof(m, n).unwrap();

                for i in 0..proof.len() {
                    let mut bad = proof.clone();
                    bad[i] = flip(&bad[i]);
                    assert!(
                        verify_consistency(m, n, &old_root, &new_root, &bad).is_err(),
                        "flipped hash {i} of PROOF({m}, D[{n}]) verified"
                    );
                }
                assert!(verify_consistency(m, n, &flip(&old_root), &new_root, &proof).is_err());
                assert!(verify_consistency(m, n, &old_root, &flip(&new_root), &proof).is_err());
                if m != n {
                    // Swapped roots.
                    assert!(verify_consistency(m, n, &new_root, &old_root, &proof).is_err());
                }
                // Wrong sizes, with those sizes' real roots: the proof may only pass if it
                // really is the proof for those sizes too.
                for other in 1..=40u64 {
                    if other != m && other <= n {
                        let other_root = big.root_at(other).unwrap();
                        if verify_consistency(other, n, &other_root, &new_root, &proof).is_ok() {
                            assert_eq!(proof, big.consistency_proof(other, n).unwrap());
                        }
                    }
                    if other != n && other >= m {
                        let other_root = big.root_at(other).unwrap();
                        if verify_consistency(m, other, &old_root, &other_root, &proof).is_ok() {
                            assert_eq!(proof, big.consistency_proof(m, other).unwrap());
                        }
                    }
                }
                // Extra hash, missing hash.
                let mut longer = proof.clone();
                longer.push(new_root);
                assert!(matches!(
                    verify_consistency(m, n, &old_root, &new_root, &longer),
                    Err(ProofError::WrongLength { .. })
                ));
                if let Some((_, shorter)) = proof.split_last() {
                    assert!(matches!(
                        verify_consistency(m, n, &old_root, &new_root, shorter),
                        Err(ProofError::WrongLength { .. })
                    ));
                }
                // Reversed order.
                if proof.len() > 1 {
                    let mut reversed = proof.clone();
                    reversed.reverse();
                    if reversed != proof {
                        assert!(verify_consistency(m, n, &old_root, &new_root, &reversed).is_err());
                    }
                }
                let mut too_long = proof.clone();
                too_long.resize(MAX_PROOF_LEN + 1, new_root);
                assert_eq!(
                    verify_consistency(m, n, &old_root, &new_root, &too_long),
                    Err(ProofError::TooLong { len: MAX_PROOF_LEN + 1, max: MAX_PROOF_LEN })
                );
            }
        }
    }

    #[test]
    fn consistency_edge_cases() {
        let big = tree(10);
        let r5 = big.root_at(5).unwrap();
        let r7 = big.root_at(7).unwrap();

        // Old tree empty: any new tree extends it, with an empty proof and the empty root.
        verify_consistency(0, 7, &empty_root(), &r7, &[]).unwrap();
        verify_consistency(0, 0, &empty_root(), &empty_root(), &[]).unwrap();
        assert_eq!(verify_consistency(0, 7, &r5, &r7, &[]), Err(ProofError::OldRootMismatch));
        assert_eq!(
            verify_consistency(0, 7, &empty_root(), &r7, &[r5]),
            Err(ProofError::WrongLength { expected: 0, got: 1 })
        );
        assert_eq!(verify_consistency(0, 0, &empty_root(), &r7, &[]), Err(ProofError::NewRootMismatch));
        assert_eq!(big.consistency_proof(0, 7).unwrap(), Vec::<Hash>::new());

        // Same size: empty proof and equal roots.
        verify_consistency(5, 5, &r5, &r5, &[]).unwrap();
        assert_eq!(verify_consistency(5, 5, &r5, &r7, &[]), Err(ProofError::NewRootMismatch));
        assert_eq!(
            verify_consistency(5, 5, &r5, &r5, &[r5]),
            Err(ProofError::WrongLength { expected: 0, got: 1 })
        );

        // Sizes in the wrong order.
        assert_eq!(verify_consistency(7, 5, &r7, &r5, &[]), Err(ProofError::SizeOrder { old: 7, new: 5 }));
        assert_eq!(big.consistency_proof(7, 5), Err(ProofError::SizeOrder { old: 7, new: 5 }));
        assert_eq!(
            big.consistency_proof(5, 11),
            Err(ProofError::SizeUnavailable { size: 11, available: 10 })
        );

        // A proof between different sizes is never empty.
        assert!(matches!(verify_consistency(5, 7, &r5, &r7, &[]), Err(ProofError::WrongLength { .. })));
    }

    #[test]
    fn rfc_6962_example_proof_shapes() {
        // RFC 6962 §2.1.3: the tree of 7 leaves d0..d6.
        let all = leaves(7);
        let t = tree(7);
        let a = all[0];
        let b = all[1];
        let c = all[2];
        let d = all[3];
        let e = all[4];
        let f = all[5];
        let g = node_hash(&a, &b);
        let h = node_hash(&c, &d);
        let i = node_hash(&e, &f);
        let j = all[6];
        let k = node_hash(&g, &h);
        let l = node_hash(&i, &j);
        assert_eq!(t.root(), node_hash(&k, &l));
        assert_eq!(t.inclusion_proof(0, 7).unwrap(), vec![b, h, l]);
        assert_eq!(t.inclusion_proof(3, 7).unwrap(), vec![c, g, l]);
        assert_eq!(t.inclusion_proof(4, 7).unwrap(), vec![f, j, k]);
        assert_eq!(t.inclusion_proof(6, 7).unwrap(), vec![i, k]);
        assert_eq!(t.consistency_proof(3, 7).unwrap(), vec![c, d, g, l]);
        assert_eq!(t.consistency_proof(4, 7).unwrap(), vec![l]);
        assert_eq!(t.consistency_proof(6, 7).unwrap(), vec![i, j, k]);
    }

    #[test]
    fn proof_lengths_for_huge_trees_fit_the_limit() {
        // The deepest inclusion proof in the largest tree u64 can count.
        assert_eq!(inclusion_proof_len(0, u64::MAX), 64);
        assert_eq!(inclusion_proof_len(u64::MAX - 1, u64::MAX), 63);
        for size in [2u64, 3, 1 << 32, (1 << 63) + 1, u64::MAX] {
            for index in [0, 1, size / 2, size - 2, size - 1] {
                assert!(inclusion_proof_len(index, size) <= MAX_PROOF_LEN);
            }
        }
        for (old, new) in [(1u64, 1u64 << 63), (3, 1 << 63), ((1 << 62) + 1, 1 << 63)] {
            assert!(consistency_proof_len(old, new) <= MAX_PROOF_LEN);
        }
    }

    /// A virtual tree in which every leaf is the same, so a complete subtree's hash depends only
    /// on its level. Lets proofs run at sizes near 2^64.
    struct Uniform {
        levels: Vec<Hash>,
    }

    impl Uniform {
        fn new() -> Self {
            let mut levels = vec![leaf_hash(b"same")];
            for level in 1..64 {
                let below = levels[level - 1];
                levels.push(node_hash(&below, &below));
            }
            Self { levels }
        }
    }

    impl NodeSource for Uniform {
        type Error = String;

        fn node(&self, level: u32, index: u64) -> Result<Hash, String> {
            // The node must fit below 2^64 leaves.
            let fits = level == 0 || (level <= 63 && index < 1u64 << (64 - level));
            if !fits {
                return Err(format!("node ({level}, {index}) is outside any u64-sized tree"));
            }
            Ok(self.levels[level as usize])
        }
    }

    #[test]
    fn proofs_work_at_sizes_near_2_pow_64() {
        let u = Uniform::new();
        let leaf = u.levels[0];
        let sizes =
            [u64::MAX, u64::MAX - 1, u64::MAX - 2, 1 << 63, (1 << 63) + 1, (1 << 63) - 1, (1 << 40) + 12345];
        for &size in &sizes {
            let root = root_from_source(&u, size).unwrap();
            let frontier = Frontier::from_source(&u, size).unwrap();
            assert_eq!(frontier.root(), root);
            if size < u64::MAX {
                let mut grown = frontier.clone();
                grown.push(leaf);
                assert_eq!(grown.root(), root_from_source(&u, size + 1).unwrap());
            }
            for index in [0, 1, size / 3, size - 2, size - 1] {
                let proof = inclusion_proof(&u, index, size).unwrap();
                assert!(proof.len() <= MAX_PROOF_LEN);
                verify_inclusion(&leaf, index, size, &proof, &root).unwrap();
            }
            for &old in &sizes {
                if old > size {
                    continue;
                }
                let old_root = root_from_source(&u, old).unwrap();
                let proof = consistency_proof(&u, old, size).unwrap();
                let result = verify_consistency(old, size, &old_root, &root, &proof);
                if proof.len() <= MAX_PROOF_LEN {
                    result.unwrap();
                } else {
                    // Only possible between trees of more than 2^63 leaves.
                    assert!(size > 1 << 63);
                    assert_eq!(result, Err(ProofError::TooLong { len: proof.len(), max: MAX_PROOF_LEN }));
                }
            }
        }
        // The one case above that does not fit.
        assert_eq!(consistency_proof_len(u64::MAX - 2, u64::MAX), MAX_PROOF_LEN + 1);
    }

    #[test]
    fn second_preimage_leaf_equal_to_two_child_hashes_is_not_a_node() {
        let t = tree(4);
        let all = leaves(4);
        let parent = node_hash(&all[0], &all[1]);
        assert_eq!(infallible(t.node(1, 0)), parent);

        // A 64-byte entry whose bytes are the two children of node (1, 0).
        let mut forged = Vec::with_capacity(64);
        forged.extend_from_slice(&all[0]);
        forged.extend_from_slice(&all[1]);
        let forged_leaf = leaf_hash(&forged);
        assert_ne!(forged_leaf, parent);

        // The parent's position: index 0 of the 2-node level above the leaves, whose proof is
        // the leaf-0 proof without its first hash.
        let root = t.root();
        let leaf0_proof = t.inclusion_proof(0, 4).unwrap();
        let lifted = &leaf0_proof[1..];
        // Without domain separation the parent itself would pass as a leaf here...
        verify_inclusion(&parent, 0, 2, lifted, &root).unwrap();
        // ...but the forged entry hashes as a leaf, so it does not.
        assert_eq!(verify_inclusion(&forged_leaf, 0, 2, lifted, &root), Err(ProofError::RootMismatch));
        // Nor does it pass at leaf position 0 or 1 of the real tree.
        assert!(verify_inclusion(&forged_leaf, 0, 4, &leaf0_proof, &root).is_err());
        let leaf1_proof = t.inclusion_proof(1, 4).unwrap();
        assert!(verify_inclusion(&forged_leaf, 1, 4, &leaf1_proof, &root).is_err());
    }

    #[test]
    fn overlong_inclusion_proof_rejected_before_hashing() {
        let root = tree(5).root();
        let leaf = leaves(1)[0];
        let huge = vec![[0u8; 32]; 1_000_000];
        let over = vec![[0u8; 32]; MAX_PROOF_LEN + 1];

        for proof in [&huge, &over] {
            let too_long = Err(ProofError::TooLong { len: proof.len(), max: MAX_PROOF_LEN });
            assert_eq!(verify_inclusion(&leaf, 0, u64::MAX, proof, &root), too_long);
            // Checked before anything else, even the index.
            assert_eq!(verify_inclusion(&leaf, 9, 5, proof, &root), too_long);
            assert_eq!(verify_consistency(1, u64::MAX, &leaf, &root, proof), too_long);
            assert_eq!(verify_consistency(0, 5, &empty_root(), &root, proof), too_long);
        }
        // Exactly the limit is allowed through to the length check (and is right for this one).
        let max = vec![[0u8; 32]; MAX_PROOF_LEN];
        assert_eq!(verify_inclusion(&leaf, 0, u64::MAX, &max, &root), Err(ProofError::RootMismatch));
    }

    #[test]
    fn frontier_from_parts_and_serde() {
        let t = tree(13);
        let frontier = t.frontier_at(13).unwrap();
        assert_eq!(frontier.hashes().len(), 3);
        let rebuilt = Frontier::from_parts(13, frontier.hashes().to_vec()).unwrap();
        assert_eq!(rebuilt, frontier);
        assert_eq!(rebuilt.root(), t.root());
        assert_eq!(
            Frontier::from_parts(13, vec![[0u8; 32]; 2]),
            Err(ProofError::FrontierLength { size: 13, expected: 3, got: 2 })
        );
        assert_eq!(Frontier::from_parts(0, Vec::new()).unwrap(), Frontier::new());

        let json = serde_json::to_string(&frontier).unwrap();
        let back: Frontier = serde_json::from_str(&json).unwrap();
        assert_eq!(back, frontier);

        // Deserializing checks the invariant too.
        let zero = [0u8; 32];
        let bad = serde_json::json!({ "size": 13, "hashes": [zero] });
        assert!(serde_json::from_value::<Frontier>(bad).is_err());

        // A restored frontier keeps growing correctly.
        let mut grown = back;
        let more = leaves(20);
        let mut full = tree(13);
        for leaf in &more[13..] {
            grown.push(*leaf);
            full.push(*leaf);
            assert_eq!(grown.root(), full.root());
        }
    }

    #[test]
    fn test_vectors_print() {
        let empty_leaf = leaf_hash(b"");
        let airlock_leaf = leaf_hash(b"airlock");
        let node = node_hash(&empty_leaf, &airlock_leaf);
        let mut five = MemoryTree::new();
        for data in [b"0", b"1", b"2", b"3", b"4"] {
            five.push(leaf_hash(data));
        }
        let root5 = five.root();

        println!("leaf_hash(b\"\")        = {}", hex::encode(empty_leaf));
        println!("leaf_hash(b\"airlock\") = {}", hex::encode(airlock_leaf));
        println!("node_hash(both)       = {}", hex::encode(node));
        println!("root(b\"0\"..b\"4\")      = {}", hex::encode(root5));
        println!("empty_root()          = {}", hex::encode(empty_root()));

        assert_eq!(
            hex::encode(empty_leaf),
            "2d3adedff11b61f14c886e35afa036736dcd87a74d27b5c1510225d0f592e213"
        );
        assert_eq!(
            hex::encode(airlock_leaf),
            "b959690af96f2414635e92254816f123ae14950a5ca245efac5837c906a28729"
        );
        assert_eq!(hex::encode(node), "81bc5a7888719cb2b2ee4f682fcbd4d5ed640f8e424c1a261248a0cb4eced598");
        assert_eq!(hex::encode(root5), "56e784598f2a9ba3033c82f03adc88042f938ae8ef33b8040f986638977c24fd");
        assert_eq!(
            hex::encode(empty_root()),
            "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
        );
    }
}
