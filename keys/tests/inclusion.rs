//! The one check of a statement's inclusion given only a pinned root (a submit answer): the
//! checkpoint meets the same origin, signature and freshness rules as every checkpoint the log
//! verifier accepts, and the proof leads from the exact leaf bytes to its root hash.

#![allow(clippy::unwrap_used)]

mod common;

use airlock_keys::{verify_included, Freshness, InclusionClaim, LogError};
use airlock_proto::merkle::{leaf_hash, MemoryTree};
use airlock_proto::Hash32;
use common::*;

/// A log of root v1 and three releases, with the proof of leaf `index`.
fn logged(fx: &mut Fixture, index: usize) -> (Vec<u8>, Vec<Hash32>) {
    for name in ["a", "b", "c"] {
        let leaf = fx.release(name, "1.0");
        fx.push(leaf);
    }
    let mut tree = MemoryTree::new();
    for leaf in &fx.leaves {
        tree.push(leaf_hash(leaf));
    }
    let size = fx.leaves.len() as u64;
    let proof = tree.inclusion_proof(index as u64, size).unwrap().into_iter().map(Hash32).collect();
    (fx.leaves[index].clone(), proof)
}

fn claim<'a>(
    leaf: &'a [u8],
    index: u64,
    size: u64,
    checkpoint: &'a [u8],
    proof: &'a [Hash32],
) -> InclusionClaim<'a> {
    InclusionClaim { leaf, index, size, checkpoint, proof }
}

#[test]
fn a_true_answer_verifies() {
    let mut fx = Fixture::new();
    let (leaf, proof) = logged(&mut fx, 2);
    let checkpoint = fx.checkpoint();
    let included =
        verify_included(&fx.pinned(), claim(&leaf, 2, 4, &checkpoint, &proof), Freshness::At(LATER)).unwrap();
    assert_eq!((included.index, included.size, included.root_hash), (2, 4, tree_root(&fx.leaves)));
}

#[test]
fn another_leaf_or_index_or_size_is_refused_by_the_proof() {
    let mut fx = Fixture::new();
    let (leaf, proof) = logged(&mut fx, 2);
    let checkpoint = fx.checkpoint();
    let other = fx.leaves[1].clone();
    for bad in [claim(&other, 2, 4, &checkpoint, &proof), claim(&leaf, 1, 4, &checkpoint, &proof)] {
        let err = verify_included(&fx.pinned(), bad, Freshness::At(LATER)).unwrap_err();
        assert!(matches!(err, LogError::Inclusion { .. }), "{err}");
    }
    let err = verify_included(&fx.pinned(), claim(&leaf, 2, 3, &checkpoint, &proof), Freshness::At(LATER))
        .unwrap_err();
    assert!(matches!(err, LogError::SizeMismatch { claimed: 3, checkpoint: 4 }), "{err}");
}

#[test]
fn a_checkpoint_not_signed_by_the_log_role_is_refused() {
    let mut fx = Fixture::new();
    let (leaf, proof) = logged(&mut fx, 1);
    let forged = checkpoint(&fx.leaves, NOW, NOW + DAY, &fx.keys.publisher.quorum());
    let err =
        verify_included(&fx.pinned(), claim(&leaf, 1, 4, &forged, &proof), Freshness::At(LATER)).unwrap_err();
    assert!(matches!(err, LogError::CheckpointSignature(_)), "{err}");
}

#[test]
fn an_expired_or_future_checkpoint_is_refused_as_everywhere_else() {
    let mut fx = Fixture::new();
    let (leaf, proof) = logged(&mut fx, 1);
    let checkpoint = fx.checkpoint(); // issued NOW, expires NOW + DAY
    let stale =
        verify_included(&fx.pinned(), claim(&leaf, 1, 4, &checkpoint, &proof), Freshness::At(NOW + DAY))
            .unwrap_err();
    assert!(matches!(stale, LogError::Stale { .. }), "{stale}");
    let early =
        verify_included(&fx.pinned(), claim(&leaf, 1, 4, &checkpoint, &proof), Freshness::At(NOW - DAY))
            .unwrap_err();
    assert!(matches!(early, LogError::FromTheFuture { .. }), "{early}");
}

#[test]
fn a_checkpoint_of_another_origin_is_refused() {
    let mut fx = Fixture::new();
    let (leaf, proof) = logged(&mut fx, 1);
    let other_origin =
        checkpoint_note_of("another.log", 4, tree_root(&fx.leaves), NOW, NOW + DAY, &fx.keys.log.quorum())
            .to_bytes();
    let err = verify_included(&fx.pinned(), claim(&leaf, 1, 4, &other_origin, &proof), Freshness::At(LATER))
        .unwrap_err();
    assert!(matches!(err, LogError::WrongOrigin { .. }), "{err}");
}

#[test]
fn a_logged_root_rotation_is_checked_against_the_new_log_key() {
    let mut fx = Fixture::new();
    let pinned = fx.pinned();
    fx.rotate(KeySet::single(), NOW + YEAR);
    let index = fx.leaves.len() - 1;
    let mut tree = MemoryTree::new();
    for leaf in &fx.leaves {
        tree.push(leaf_hash(leaf));
    }
    let proof: Vec<Hash32> = tree.inclusion_proof(index as u64, 2).unwrap().into_iter().map(Hash32).collect();
    let checkpoint = fx.checkpoint(); // signed by the new log key only
    let leaf = fx.leaves[index].clone();
    verify_included(&pinned, claim(&leaf, 1, 2, &checkpoint, &proof), Freshness::At(LATER)).unwrap();
}

#[test]
fn an_offline_proof_stays_valid_after_its_checkpoint_expires() {
    let mut fx = Fixture::new();
    let (leaf, proof) = logged(&mut fx, 1);
    let checkpoint = fx.checkpoint();
    assert!(verify_included(
        &fx.pinned(),
        claim(&leaf, 1, 4, &checkpoint, &proof),
        Freshness::At(NOW + YEAR)
    )
    .is_err());
    verify_included(&fx.pinned(), claim(&leaf, 1, 4, &checkpoint, &proof), Freshness::Historic).unwrap();
}
