//! The root's witness policy: a client, mirror or bundle import accepts a checkpoint only with
//! valid cosignatures (c2sp.org/tlog-cosignature) of the root's quorum of distinct witnesses, and
//! the refusal names the witnesses that are missing.

#![allow(clippy::unwrap_used)]

mod common;

use airlock_keys::{
    cosign, verify_included, Freshness, InclusionClaim, LogError, SecretKey, SnapshotError, TrustedHead,
    TrustedLog,
};
use airlock_proto::merkle::{leaf_hash, MemoryTree};
use airlock_proto::{Hash32, Note, PublicKeyBytes, WitnessGroup, WitnessKey};
use common::*;

struct Witnessed {
    fx: Fixture,
    witnesses: Vec<(String, SecretKey)>,
}

/// A log whose root names `count` witnesses with `quorum`, and holds one release.
fn witnessed(count: usize, quorum: u32) -> Witnessed {
    if quorum == 0 {
        return witnessed_with(count, Vec::new(), None);
    }
    let members = (1..=count).map(|i| format!("w{i}.example")).collect();
    witnessed_with(
        count,
        vec![WitnessGroup { name: "witnesses".into(), threshold: quorum, members }],
        Some("witnesses"),
    )
}

/// A log whose root names `count` witnesses `w1.example`.. with the given groups and quorum.
fn witnessed_with(count: usize, groups: Vec<WitnessGroup>, quorum: Option<&str>) -> Witnessed {
    let keys = KeySet::single();
    let witnesses: Vec<(String, SecretKey)> =
        (1..=count).map(|i| (format!("w{i}.example"), SecretKey::generate())).collect();
    let mut root = keys.root(1, NOW + YEAR);
    root.witnesses = witnesses
        .iter()
        .map(|(name, key)| WitnessKey { name: name.clone(), key: PublicKeyBytes(key.public().to_bytes()) })
        .collect();
    root.witness_groups = groups;
    root.witness_quorum = quorum.map(str::to_owned);
    let v1 = root_leaf(root, &keys.root.quorum());
    let mut fx = Fixture { keys, version: 1, leaves: vec![v1] };
    let release = fx.release("demo-pkg", "1.0.0");
    fx.push(release);
    Witnessed { fx, witnesses }
}

impl Witnessed {
    /// The log's checkpoint with cosignatures by the witnesses at `by` (indexes).
    fn checkpoint(&self, by: &[usize]) -> Vec<u8> {
        let mut note = Note::parse(&self.fx.checkpoint()).unwrap();
        for &i in by {
            let (name, key) = &self.witnesses[i];
            cosign(&mut note, name, key, NOW).unwrap();
        }
        note.to_bytes()
    }
}

#[test]
fn a_checkpoint_without_the_quorum_is_refused_naming_the_missing_witnesses() {
    let w = witnessed(3, 2);
    let err = refused(&w.fx.empty_log(), &w.checkpoint(&[]), &w.fx.leaves, LATER);
    let LogError::Witnesses(missing) = &err else { panic!("expected a witness error, got {err}") };
    assert_eq!(missing.valid, Vec::<String>::new());
    assert_eq!(missing.missing, ["w1.example", "w2.example", "w3.example"]);
    let err = refused(&w.fx.empty_log(), &w.checkpoint(&[1]), &w.fx.leaves, LATER);
    assert!(
        err.to_string().contains(
            "witness quorum [witnesses = 2 of w1.example, w2.example, w3.example]: valid cosignatures from \
             w2.example; missing: w1.example, w3.example"
        ),
        "{err}"
    );
    let log = accepted(&w.fx.empty_log(), &w.checkpoint(&[0, 2]), &w.fx.leaves, LATER);
    assert_eq!(log.size(), 2);
}

/// A saved fold or head is a cache that anyone who can write the state directory can re-seal:
/// its checkpoint must carry the witness quorum as any checkpoint does.
#[test]
fn a_saved_fold_or_head_whose_checkpoint_lacks_the_quorum_is_refused() {
    let w = witnessed(3, 2);
    let log = accepted(&w.fx.empty_log(), &w.checkpoint(&[0, 1]), &w.fx.leaves, LATER);
    assert!(TrustedLog::resume(w.fx.pinned(), log.snapshot()).is_ok());
    let (roots, frontier) = log.head_parts();
    let head = |checkpoint: Vec<u8>| {
        TrustedHead::resume(
            w.fx.pinned(),
            roots.clone(),
            frontier.clone(),
            checkpoint,
            log.newest_issued_at(),
        )
    };
    assert!(head(w.checkpoint(&[0, 1])).is_ok());

    // The same checkpoint, log-signed, with one cosignature of the two the quorum needs.
    let mut snapshot = log.snapshot();
    snapshot.checkpoint = Some(serde_bytes::ByteBuf::from(w.checkpoint(&[2])));
    match TrustedLog::resume(w.fx.pinned(), snapshot) {
        Err(SnapshotError::Checkpoint(LogError::Witnesses(missing))) => {
            assert_eq!(missing.missing, ["w1.example", "w2.example"]);
        }
        other => panic!("expected the missing witnesses, got {other:?}"),
    }
    assert!(matches!(head(w.checkpoint(&[])), Err(SnapshotError::Checkpoint(LogError::Witnesses(_)))));
}

#[test]
fn a_cosignature_counts_only_for_its_own_witness_and_text() {
    let w = witnessed(2, 1);
    // A stranger cosigning under a listed witness's name counts for nothing.
    let mut note = Note::parse(&w.fx.checkpoint()).unwrap();
    cosign(&mut note, "w1.example", &SecretKey::generate(), NOW).unwrap();
    assert!(matches!(
        refused(&w.fx.empty_log(), &note.to_bytes(), &w.fx.leaves, LATER),
        LogError::Witnesses(_)
    ));
    // One witness cosigning twice is one cosignature.
    let w3 = witnessed(2, 2);
    let mut note = Note::parse(&w3.fx.checkpoint()).unwrap();
    cosign(&mut note, "w1.example", &w3.witnesses[0].1, NOW).unwrap();
    cosign(&mut note, "w1.example", &w3.witnesses[0].1, NOW + 1).unwrap();
    assert!(matches!(
        refused(&w3.fx.empty_log(), &note.to_bytes(), &w3.fx.leaves, LATER),
        LogError::Witnesses(_)
    ));
    // A cosignature moved onto another checkpoint text does not verify there.
    let cosigned = String::from_utf8(w.checkpoint(&[0])).unwrap();
    let line = cosigned.lines().last().unwrap().to_owned();
    let other = checkpoint_note(2, Hash32([4; 32]), NOW, NOW + DAY, &w.fx.keys.log.quorum());
    let moved = format!("{}{line}\n", String::from_utf8(other.to_bytes()).unwrap());
    let err = refused(&w.fx.empty_log(), moved.as_bytes(), &w.fx.leaves, LATER);
    assert!(!matches!(err, LogError::Witnesses(ref e) if !e.valid.is_empty()), "{err}");
}

#[test]
fn nested_witness_groups_decide_which_cosignatures_suffice() {
    // tlog-policy's two-level form: 2 of the security team's three witnesses, and any one of the
    // two site witnesses.
    let group = |name: &str, threshold, members: &[&str]| WitnessGroup {
        name: name.into(),
        threshold,
        members: members.iter().map(|m| (*m).into()).collect(),
    };
    let w = witnessed_with(
        5,
        vec![
            group("team", 2, &["w1.example", "w2.example", "w3.example"]),
            group("sites", 1, &["w4.example", "w5.example"]),
            group("team-and-a-site", 2, &["team", "sites"]),
        ],
        Some("team-and-a-site"),
    );
    accepted(&w.fx.empty_log(), &w.checkpoint(&[0, 2, 4]), &w.fx.leaves, LATER);
    accepted(&w.fx.empty_log(), &w.checkpoint(&[1, 2, 3]), &w.fx.leaves, LATER);
    // Four cosignatures, but only one of the team: refused, and the message states the rule.
    let err = refused(&w.fx.empty_log(), &w.checkpoint(&[0, 3, 4]), &w.fx.leaves, LATER);
    let LogError::Witnesses(why) = &err else { panic!("expected a witness error, got {err}") };
    assert_eq!(why.valid, ["w1.example", "w4.example", "w5.example"]);
    assert_eq!(why.missing, ["w2.example", "w3.example"]);
    assert!(
        err.to_string().contains(
            "[team-and-a-site = all of team, sites; team = 2 of w1.example, w2.example, w3.example; \
             sites = any of w4.example, w5.example]"
        ),
        "{err}"
    );
    // The whole team without a site: refused.
    refused(&w.fx.empty_log(), &w.checkpoint(&[0, 1, 2]), &w.fx.leaves, LATER);
}

#[test]
fn a_quorum_of_zero_needs_no_cosignature() {
    let w = witnessed(2, 0);
    accepted(&w.fx.empty_log(), &w.checkpoint(&[]), &w.fx.leaves, LATER);
}

#[test]
fn an_inclusion_answer_needs_the_quorum_too() {
    let w = witnessed(1, 1);
    let mut tree = MemoryTree::new();
    for leaf in &w.fx.leaves {
        tree.push(leaf_hash(leaf));
    }
    let proof: Vec<Hash32> = tree.inclusion_proof(1, 2).unwrap().into_iter().map(Hash32).collect();
    let pinned = w.fx.pinned();
    for (checkpoint, ok) in [(w.checkpoint(&[]), false), (w.checkpoint(&[0]), true)] {
        let claim = InclusionClaim {
            leaf: &w.fx.leaves[1],
            index: 1,
            size: 2,
            checkpoint: &checkpoint,
            proof: &proof,
        };
        assert_eq!(verify_included(&pinned, claim, Freshness::At(LATER)).is_ok(), ok);
    }
}
