//! Checking inclusion and consistency proofs, with the amount of work bounded up front.

use super::{empty_root, node_hash, Hash, ProofError, MAX_PROOF_LEN};

/// Number of hashes in the inclusion proof of leaf `index` in a tree of `size` leaves
/// (`index < size`): the levels where the leaf's path leaves the tree's right edge, plus one for
/// each left subtree the path joins above that.
pub(super) fn inclusion_proof_len(index: u64, size: u64) -> usize {
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
pub(super) fn consistency_proof_len(old_size: u64, new_size: u64) -> usize {
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

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
}
