//! A saved fold resumes to the same trusted state the leaves fold to, keeps refusing what that
//! state refuses, and is itself refused when what it claims cannot be so.

#![allow(clippy::unwrap_used)]

mod common;

use airlock_keys::log::ExpiredCheckpoint;
use airlock_keys::{ApplyError, LogError, RegistryState, SnapshotError, TrustedHead, TrustedLog};
use airlock_proto::api::LogSnapshot;
use airlock_proto::StatusAction;
use common::*;

/// A log with a rotation, releases, a yank and a channel, and a client synced to it.
fn history() -> (Fixture, TrustedLog) {
    let mut fx = Fixture::new();
    let release = fx.release("demo-pkg", "1.0.0");
    fx.push(release);
    fx.rotate(KeySet::single(), NOW + YEAR);
    for version in ["1.1.0", "2.0.0"] {
        let release = fx.release("demo-pkg", version);
        fx.push(release);
    }
    let publisher = fx.keys.publisher.quorum();
    let yank = leaf(&status("demo-pkg", "1.1.0", StatusAction::Yank, None), &publisher);
    let stable = leaf(&channel("stable", "demo-pkg", "2.0.0", None), &publisher);
    fx.push(yank);
    fx.push(stable);
    let log = fx.synced_log();
    (fx, log)
}

/// Through the bytes, as a store keeps it.
fn round_trip(snapshot: &LogSnapshot) -> LogSnapshot {
    LogSnapshot::from_bytes(&snapshot.to_bytes().unwrap()).unwrap()
}

fn resume_error(fx: &Fixture, snapshot: LogSnapshot) -> SnapshotError {
    match TrustedLog::resume(fx.pinned(), snapshot) {
        Ok(log) => panic!("a bad snapshot resumed at size {}", log.size()),
        Err(e) => e,
    }
}

#[test]
fn a_resumed_snapshot_is_the_state_the_leaves_fold_to_and_keeps_refusing_replays() {
    let (mut fx, log) = history();
    let resumed = TrustedLog::resume(fx.pinned(), round_trip(&log.snapshot())).unwrap().into_inner();
    assert_eq!(resumed.size(), log.size());
    assert_eq!(resumed.root_hash(), log.root_hash());
    assert_eq!(resumed.checkpoint(), log.checkpoint());
    assert_eq!(resumed.registry().snapshot(), log.registry().snapshot());
    // The digest index is rebuilt, not saved: every file answers as in the folded state.
    let mut files = 0;
    for record in log.registry().releases() {
        for file in &record.release.files {
            let by =
                |state: &TrustedLog| state.registry().release_by_digest(&file.blake3).map(|r| r.leaf_index);
            assert_eq!(by(&resumed), by(&log), "{}", file.blake3);
            assert!(by(&resumed).is_some());
            files += 1;
        }
    }
    assert!(files >= 3, "{files}");
    assert_eq!(resumed.registry().root().root().version, 2);
    let stable = airlock_proto::ChannelName::new("stable").unwrap();
    assert_eq!(resumed.registry().channel_releases(&stable).count(), 1);

    // The next update lands on the resumed state exactly as on the folded one.
    let next = fx.release("demo-pkg", "3.0.0");
    fx.push(next.clone());
    let from_resumed = accepted(&resumed, &fx.checkpoint(), std::slice::from_ref(&next), LATER);
    let from_folded = accepted(&log, &fx.checkpoint(), &[next], LATER);
    assert_eq!(from_resumed.registry().snapshot(), from_folded.registry().snapshot());

    // A replayed statement is still refused as a duplicate: the payload index came along.
    let replay = fx.leaves[5].clone();
    fx.push(replay.clone());
    match refused(&from_resumed, &fx.checkpoint(), &[replay], LATER) {
        LogError::Conflict { source: ApplyError::Duplicate { existing: 5, .. }, .. } => {}
        other => panic!("expected a duplicate of leaf 5, got {other}"),
    }
}

#[test]
fn a_snapshot_whose_checkpoint_is_not_for_its_frontier_is_refused() {
    let (fx, log) = history();
    let mut snapshot = log.snapshot();
    // A checkpoint the log key really signed, over another history of the same size.
    let mut other = fx.leaves.clone();
    other[1] = fx.release("other-pkg", "1.0.0");
    snapshot.checkpoint = Some(serde_bytes::ByteBuf::from(fx.checkpoint_of(&other)));
    let err = resume_error(&fx, snapshot);
    assert!(err.to_string().contains("the frontier for size 7"), "{err}");
}

#[test]
fn a_snapshot_with_a_forged_root_or_a_leaf_past_its_end_is_refused() {
    let (fx, log) = history();
    let mut forged = log.snapshot();
    let mut envelope = forged.fold.roots[1].envelope.to_vec();
    let last = envelope.len() - 1;
    envelope[last] ^= 1;
    forged.fold.roots[1].envelope = serde_bytes::ByteBuf::from(envelope);
    assert!(matches!(resume_error(&fx, forged), SnapshotError::Roots(_)));

    let mut past = log.snapshot();
    past.fold.releases[0].leaf = 99;
    let err = resume_error(&fx, past);
    assert!(err.to_string().contains("names leaf 99 of a log of 7"), "{err}");

    let mut short = log.snapshot();
    let cut = short.fold.payloads.len() - 40;
    short.fold.payloads.truncate(cut);
    let err = resume_error(&fx, short);
    assert!(err.to_string().contains("payload bytes for a log of 7"), "{err}");

    let mut unsigned = log.snapshot();
    unsigned.checkpoint = None;
    assert!(resume_error(&fx, unsigned).to_string().contains("no checkpoint"));

    let mut newer = log.snapshot();
    newer.format += 1;
    assert!(matches!(resume_error(&fx, newer), SnapshotError::Format { .. }));
}

#[test]
fn a_fold_resumes_on_its_own_for_a_primary() {
    let (fx, log) = history();
    let fold = log.registry().snapshot();
    let resumed = RegistryState::resume(fx.pinned(), fold.clone()).unwrap();
    assert_eq!(resumed.snapshot(), fold);
    assert_eq!(resumed.size(), 7);
}

#[test]
fn a_head_confirms_only_a_checkpoint_of_its_own_tree_and_leaves_larger_ones_to_the_fold() {
    let (mut fx, log) = history();
    let (roots, frontier) = log.head_parts();
    let head = TrustedHead::resume(
        fx.pinned(),
        roots.clone(),
        frontier.clone(),
        log.checkpoint().unwrap().to_vec(),
        log.newest_issued_at(),
    )
    .unwrap();
    assert_eq!((head.size(), head.root().root().version), (7, 2));
    let again = head.confirm(&fx.checkpoint(), LATER, ExpiredCheckpoint::Refuse).unwrap();
    assert_eq!(again.unwrap().size(), 7);

    // Another history of the same size, signed by the log key: a fork.
    let mut other = fx.leaves.clone();
    other[6] = fx.release("other-pkg", "1.0.0");
    match head.confirm(&fx.checkpoint_of(&other), LATER, ExpiredCheckpoint::Refuse) {
        Err(LogError::Fork { .. }) => {}
        other => panic!("expected a fork, got {other:?}"),
    }
    // Expired: the same freshness rules as the fold's.
    match head.confirm(&fx.checkpoint(), NOW + 2 * DAY, ExpiredCheckpoint::Refuse) {
        Err(LogError::Stale { .. }) => {}
        other => panic!("expected a stale checkpoint, got {other:?}"),
    }
    // A larger log is the fold's to judge.
    let next = fx.release("demo-pkg", "3.0.0");
    fx.push(next);
    assert!(head.confirm(&fx.checkpoint(), LATER, ExpiredCheckpoint::Refuse).unwrap().is_none());

    // A head whose checkpoint is not for its frontier, or whose roots are not the chain, is refused.
    let foreign = fx.checkpoint();
    assert!(TrustedHead::resume(fx.pinned(), roots.clone(), frontier.clone(), foreign, 0).is_err());
    let mut forged = roots;
    forged.swap(0, 1);
    let checkpoint = log.checkpoint().unwrap().to_vec();
    assert!(TrustedHead::resume(fx.pinned(), forged, frontier, checkpoint, 0).is_err());
}
