//! Tests across the whole module: everything is checked against a straight transcription of
//! the RFC 6962 definitions, through [`MemoryTree`] and node sources that count their reads.

use std::cell::Cell;

use super::memory::infallible;
use super::verify::{consistency_proof_len, inclusion_proof_len};
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
            return Err(format!("node ({level}, {index}) is not complete in a tree of size {}", self.size));
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
    assert_eq!(empty_root(), <[u8; 32]>::from(<sha2::Sha256 as sha2::Digest>::digest(b"")));
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
    assert_eq!(big.consistency_proof(5, 11), Err(ProofError::SizeUnavailable { size: 11, available: 10 }));

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

    assert_eq!(hex::encode(empty_leaf), "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d");
    assert_eq!(hex::encode(airlock_leaf), "4108e661db4f88f580aa1409f2946e03227e8b2fa3a056df0d6237a7101f63f3");
    assert_eq!(hex::encode(node), "0ceba9ae7d2786cbd047dc0449fdbcd916a6433036617e5cb7a7d5fcec81d33c");
    assert_eq!(hex::encode(root5), "b6748f6ed7a99de7da84fd97e1a3bac6fab8999f4a43695cab9528a2de431147");
    assert_eq!(hex::encode(empty_root()), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}
