//! Computing roots, proofs and new nodes from the complete subtrees a [`NodeSource`] holds.

use super::{empty_root, node_hash, Hash, NodeSource};

/// Largest power of two strictly less than `n`. `n` must be at least 2.
fn split_point(n: u64) -> u64 {
    1 << (63 - (n - 1).leading_zeros())
}

/// Combines the maximal perfect subtrees of a tree, given left to right, into its root: the
/// rightmost two are joined first, as RFC 6962 does.
pub(super) fn fold_subtrees(hashes: &[Hash]) -> Hash {
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
pub(super) fn perfect_subtrees<S: NodeSource>(src: &S, start: u64, len: u64) -> Result<Vec<Hash>, S::Error> {
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
/// `old_size == 0`) the proof is empty, which is what [`verify_consistency`](super::verify_consistency) expects; if
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
