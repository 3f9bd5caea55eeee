//! The attacks of `reference/attacks.md` that the verifier in `airlock-keys` must defeat:
//! A 1-9 (thresholds, key ids, role confusion, malleable signatures, weak keys, payload-type
//! confusion, tampering, malformed CBOR), B 11-16 (the root chain and key rotation), C 17-23
//! (rollback, replay, fork, inconsistent leaves, stale checkpoints, a clock behind, leaves pieced
//! from two forks) and D 29 (one name@version logged twice). Every fixture is built here from
//! fresh keys (see `common`); each test's name states the attack. Every refused update is checked
//! to leave the trusted state as it was, and accepted states are checked to restore identically.

#![allow(clippy::unwrap_used)]

mod common;

use airlock_keys::log::{ExpiredCheckpoint, CLOCK_SKEW};
use airlock_keys::{
    sign_envelope, ApplyError, KeyError, LogError, RoleName, SecretKey, ThresholdError, TrustError,
    TrustedLog, TrustedRoot,
};
use airlock_proto::{
    CodecError, Digest, Envelope, KeyId, PayloadType, PublicKeyBytes, Signature, SignatureBytes, Statement,
    StatementError, StatusAction,
};
use common::*;

// ---------------------------------------------------------------------------------------------
// Helpers that take errors apart
// ---------------------------------------------------------------------------------------------

/// The threshold failure of a leaf (a release, status or channel statement).
fn leaf_threshold(err: &LogError) -> &ThresholdError {
    match err {
        LogError::Leaf(ApplyError::Signatures { source, .. }) => source,
        other => panic!("expected a leaf signature error, got: {other}"),
    }
}

/// The threshold failure of a checkpoint.
fn checkpoint_threshold(err: &LogError) -> &ThresholdError {
    match err {
        LogError::CheckpointSignature(source) => source,
        other => panic!("expected a checkpoint signature error, got: {other}"),
    }
}

/// Why a root leaf was refused.
fn root_leaf_error(err: &LogError) -> &TrustError {
    match err {
        LogError::Leaf(ApplyError::Root { source, .. }) => source,
        other => panic!("expected a root leaf error, got: {other}"),
    }
}

fn assert_threshold(t: &ThresholdError, role: &str, needed: u32, valid: usize) {
    assert_eq!((t.role, t.needed, t.valid), (role, needed, valid), "{t}");
    assert!(t.to_string().contains(&format!("{role} threshold not met")), "{t}");
}

fn assert_security(err: &LogError, name: &str) {
    assert!(err.is_security(), "expected a security error, got: {err}");
    let text = err.to_string();
    assert!(text.starts_with("SECURITY ERROR") && text.contains(name), "{text}");
}

/// S + l: the same scalar mod l, so a lax verifier accepts a second signature.
fn malleate(sig: &mut [u8; 64]) {
    const L: [u8; 32] = [
        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
    ];
    let mut carry = 0u16;
    for (s, l) in sig[32..].iter_mut().zip(L) {
        let sum = u16::from(*s) + u16::from(l) + carry;
        *s = sum as u8;
        carry = sum >> 8;
    }
    assert_eq!(carry, 0);
}

/// A signature entry naming `key_id`, made by `signer` over the envelope's PAE.
fn signature_by(envelope: &Envelope, key_id: KeyId, signer: &SecretKey) -> Signature {
    Signature { key_id, sig: SignatureBytes(signer.sign(&envelope.signed_bytes())) }
}

/// Restoring a client from the accepted leaves and checkpoint gives the same state.
fn assert_restores(fx: &Fixture, log: &TrustedLog) {
    let leaves = &fx.leaves[..log.size() as usize];
    let restored =
        TrustedLog::restore(fx.pinned(), leaves, log.checkpoint(), log.newest_issued_at()).unwrap();
    assert_eq!((restored.size(), restored.root_hash()), (log.size(), log.root_hash()));
    assert_eq!(restored.checkpoint(), log.checkpoint());
    assert_eq!(restored.registry().releases().count(), log.registry().releases().count());
    assert_eq!(restored.registry().root().root(), log.registry().root().root());
}

// ---------------------------------------------------------------------------------------------
// A. Signatures and encoding
// ---------------------------------------------------------------------------------------------

/// A1.
#[test]
fn statement_signed_by_unlisted_key_rejected() {
    let mut fx = Fixture::new();
    let log = fx.synced_log();
    let stranger = SecretKey::generate();
    let rogue = leaf(&release("demo-pkg", "1.0.0", b"x"), &[&stranger]);
    fx.push(rogue.clone());
    let err = refused(&log, &fx.checkpoint(), &[rogue], LATER);
    let t = leaf_threshold(&err);
    assert_threshold(t, "publisher", 1, 0);
    assert!(t.problems[0].contains("is not a publisher key"), "{t}");
}

/// A1, for checkpoints.
#[test]
fn checkpoint_signed_by_unlisted_key_rejected() {
    let fx = Fixture::new();
    let stranger = SecretKey::generate();
    let forged = checkpoint(&fx.leaves, NOW, NOW + DAY, &[&stranger]);
    let err = refused(&fx.empty_log(), &forged, &fx.leaves, LATER);
    assert_threshold(checkpoint_threshold(&err), "log", 1, 0);
}

/// A2, publisher role: release, status and channel statements.
#[test]
fn duplicate_signature_counts_once_for_publisher() {
    let mut fx = Fixture::with_keys(KeySet::new((1, 1), (3, 2), (1, 1)));
    fx.push(fx.release("demo-pkg", "1.0.0"));
    let log = fx.synced_log();
    let alice = &fx.keys.publisher.keys[0];
    let bob = &fx.keys.publisher.keys[1];
    let statements = [
        release("demo-pkg", "2.0.0", b"two"),
        status("demo-pkg", "1.0.0", StatusAction::Yank, None),
        channel("prod", "demo-pkg", "1.0.0", None),
    ];
    for statement in &statements {
        let mut doubled = envelope(statement, &[alice]);
        doubled.signatures.push(doubled.signatures[0].clone());
        let t = log.registry().root().check_role(&doubled, RoleName::Publisher).unwrap_err();
        assert_threshold(&t, "publisher", 2, 1);
        assert!(t.problems.iter().any(|p| p.contains("more than once")), "{t}");
        // Control: two distinct publishers meet the threshold.
        log.registry().root().check_role(&envelope(statement, &[alice, bob]), RoleName::Publisher).unwrap();
    }

    let mut doubled = envelope(&statements[0], &[alice]);
    doubled.signatures.push(doubled.signatures[0].clone());
    let doubled = doubled.to_bytes().unwrap();
    fx.push(doubled.clone());
    let err = refused(&log, &fx.checkpoint(), &[doubled], LATER);
    assert_threshold(leaf_threshold(&err), "publisher", 2, 1);
}

/// A2, root role: the pinned root, and root v2 both through `TrustedRoot::next` and as a leaf.
#[test]
fn duplicate_signature_counts_once_for_root() {
    let fx = Fixture::with_keys(KeySet::new((3, 2), (1, 1), (1, 1)));
    let [r0, r1, _] = [&fx.keys.root.keys[0], &fx.keys.root.keys[1], &fx.keys.root.keys[2]];

    // A root v1 that only one root key signed, twice.
    let mut v1 = envelope(&Statement::Root(fx.keys.root(1, NOW + YEAR)), &[r0]);
    v1.signatures.push(v1.signatures[0].clone());
    let err = TrustedRoot::pin(&v1.to_bytes().unwrap()).unwrap_err();
    let TrustError::Signatures { source, .. } = &err else { panic!("{err}") };
    assert_threshold(source, "root", 2, 1);

    // Root v2 with the same keys: r0 twice is one signature of two needed, old and new alike.
    let mut v2 = envelope(&Statement::Root(fx.chain(fx.keys.root(2, NOW + YEAR))), &[r0]);
    v2.signatures.push(v2.signatures[0].clone());
    let v2 = v2.to_bytes().unwrap();
    let err = fx.pinned().next(&v2).unwrap_err();
    let TrustError::Signatures { version: 2, source, .. } = &err else { panic!("{err}") };
    assert_threshold(source, "root", 2, 1);

    let log = fx.synced_log();
    let mut history = fx.leaves.clone();
    history.push(v2.clone());
    let err = refused(&log, &fx.checkpoint_of(&history), &[v2], LATER);
    assert!(matches!(root_leaf_error(&err), TrustError::Signatures { version: 2, .. }), "{err}");

    // Control: two distinct root keys.
    let good = root_leaf(fx.chain(fx.keys.root(2, NOW + YEAR)), &[r0, r1]);
    fx.pinned().next(&good).unwrap();
}

/// A2, log role: a checkpoint with threshold 2 signed by one log key twice.
#[test]
fn duplicate_signature_counts_once_for_log() {
    let fx = Fixture::with_keys(KeySet::new((1, 1), (1, 1), (2, 2)));
    let first_log_key = &fx.keys.log.keys[0];
    let once = String::from_utf8(
        checkpoint_note(1, tree_root(&fx.leaves), NOW, NOW + DAY, &[first_log_key]).to_bytes(),
    )
    .unwrap();
    let line = once.lines().last().unwrap();
    let doubled = format!("{once}{line}\n");
    assert_eq!(airlock_proto::Note::parse(doubled.as_bytes()).unwrap().signatures().len(), 2);
    let err = refused(&fx.empty_log(), doubled.as_bytes(), &fx.leaves, LATER);
    assert_threshold(checkpoint_threshold(&err), "log", 2, 1);
    // Control: both log keys.
    let log = fx.synced_log();
    assert_eq!(log.size(), 1);
}

/// A3: a root that lists one public key twice (so one key could fill two slots) is refused at
/// load, and so is a role that names one key id twice.
#[test]
fn same_public_key_listed_twice_in_root_rejected_at_load() {
    let keys = KeySet::single();
    let mut twice = keys.root(1, NOW + YEAR);
    twice.keys.push(twice.keys[0]);
    let bytes = root_leaf(twice.clone(), &keys.root.quorum());
    let err = TrustedRoot::pin(&bytes).unwrap_err();
    assert!(matches!(err, TrustError::Statement(StatementError::Invalid { .. })), "{err:?}");
    assert!(err.to_string().contains("listed twice"), "{err}");
    assert!(airlock_keys::UnverifiedRoot::parse(&bytes).is_err());

    let mut role_twice = keys.root(1, NOW + YEAR);
    let publisher = role_twice.roles.publisher.keys[0];
    role_twice.roles.publisher.keys.push(publisher);
    role_twice.roles.publisher.threshold = 2;
    let err = TrustedRoot::pin(&root_leaf(role_twice, &keys.root.quorum())).unwrap_err();
    assert!(err.to_string().contains("twice"), "{err}");

    // The same refusal when such a root arrives as v2 in the log.
    let fx = Fixture::with_keys(keys);
    let mut v2 = fx.chain(twice);
    v2.version = 2;
    let v2 = root_leaf(v2, &fx.keys.root.quorum());
    let mut history = fx.leaves.clone();
    history.push(v2.clone());
    let err = refused(&fx.synced_log(), &fx.checkpoint_of(&history), &[v2], LATER);
    assert!(matches!(err, LogError::Leaf(ApplyError::Payload { index: 1, .. })), "{err}");
    assert!(err.to_string().contains("listed twice"), "{err}");
}

/// A3: key ids are BLAKE3 of the key, computed by the verifier. A valid signature filed under
/// any other id counts for nothing.
#[test]
fn envelope_key_id_not_blake3_of_a_key_does_not_count() {
    let fx = Fixture::with_keys(KeySet::new((1, 1), (2, 2), (1, 1)));
    let root = fx.pinned();
    let [alice, bob] = [&fx.keys.publisher.keys[0], &fx.keys.publisher.keys[1]];
    let base = envelope(&release("demo-pkg", "1.0.0", b"x"), &[alice]);
    let real = bob.public().id();
    let mut flipped = real;
    flipped.0[0] ^= 1;
    let bogus_ids = [
        KeyId(bob.public().to_bytes()),          // the raw public key
        KeyId(*blake3::hash(b"bob").as_bytes()), // some other hash
        flipped,                                 // almost the right id
        alice.public().id(),                     // another publisher's id
    ];
    for id in bogus_ids {
        let mut e = base.clone();
        e.signatures.push(signature_by(&e, id, bob));
        let t = root.check_role(&e, RoleName::Publisher).unwrap_err();
        assert_threshold(&t, "publisher", 2, 1);
    }
    // A root cannot make such an id a role key: role ids must be ids of listed keys.
    let mut bad_root = fx.keys.root(1, NOW + YEAR);
    bad_root.roles.publisher.keys[1] = KeyId(bob.public().to_bytes());
    let err = TrustedRoot::pin(&root_leaf(bad_root, &fx.keys.root.quorum())).unwrap_err();
    assert!(err.to_string().contains("does not list"), "{err}");
    // Control: under its computed id the same signature counts.
    let mut e = base.clone();
    e.signatures.push(signature_by(&e, real, bob));
    root.check_role(&e, RoleName::Publisher).unwrap();
}

/// A4: the envelope names key A, the signature was made by key B.
#[test]
fn signature_claiming_key_a_made_by_key_b_rejected() {
    let mut fx = Fixture::new();
    let log = fx.synced_log();
    let publisher = fx.keys.publisher.keys[0].public().id();
    let mallory = SecretKey::generate();
    for signer in [&mallory, &fx.keys.log.keys[0], &fx.keys.root.keys[0]] {
        let mut e = envelope(&release("demo-pkg", "1.0.0", b"x"), &[]);
        e.signatures.push(signature_by(&e, publisher, signer));
        let t = log.registry().root().check_role(&e, RoleName::Publisher).unwrap_err();
        assert_threshold(&t, "publisher", 1, 0);
        assert!(t.problems[0].contains("does not verify"), "{t}");
    }
    let mut e = envelope(&release("demo-pkg", "1.0.0", b"x"), &[]);
    e.signatures.push(signature_by(&e, publisher, &mallory));
    let forged = e.to_bytes().unwrap();
    fx.push(forged.clone());
    let err = refused(&log, &fx.checkpoint(), &[forged], LATER);
    assert_threshold(leaf_threshold(&err), "publisher", 1, 0);

    // The same for a checkpoint that names the log key.
    let fx = Fixture::new();
    let mut cp = checkpoint_note(1, tree_root(&fx.leaves), NOW, NOW + DAY, &[]);
    let named = airlock_keys::note_key_id(ORIGIN, &fx.keys.log.keys[0].public());
    let by_mallory = mallory.sign(cp.text().as_bytes()).to_vec();
    cp.add_signature(airlock_proto::NoteSignature {
        name: ORIGIN.to_owned(),
        key_id: named,
        signature: by_mallory,
    })
    .unwrap();
    let err = refused(&fx.empty_log(), &cp.to_bytes(), &fx.leaves, LATER);
    assert_threshold(checkpoint_threshold(&err), "log", 1, 0);
}

/// A5: the log key (or a root key) signs a release.
#[test]
fn log_key_signing_release_rejected() {
    let mut fx = Fixture::new();
    let log = fx.synced_log();
    for wrong_role in [&fx.keys.log.keys[0], &fx.keys.root.keys[0]] {
        let e = envelope(&release("demo-pkg", "1.0.0", b"x"), &[wrong_role]);
        let t = log.registry().root().check_role(&e, RoleName::Publisher).unwrap_err();
        assert!(t.problems[0].contains("is not a publisher key"), "{t}");
    }
    let by_log_key = leaf(&release("demo-pkg", "1.0.0", b"x"), &[&fx.keys.log.keys[0]]);
    fx.push(by_log_key.clone());
    let err = refused(&log, &fx.checkpoint(), &[by_log_key], LATER);
    assert_threshold(leaf_threshold(&err), "publisher", 1, 0);
}

/// A5: a publisher (or root) key signs a checkpoint.
#[test]
fn publisher_key_signing_checkpoint_rejected() {
    let fx = Fixture::new();
    for wrong_role in [&fx.keys.publisher.keys[0], &fx.keys.root.keys[0]] {
        let cp = checkpoint(&fx.leaves, NOW, NOW + DAY, &[wrong_role]);
        let err = refused(&fx.empty_log(), &cp, &fx.leaves, LATER);
        let t = checkpoint_threshold(&err);
        assert_threshold(t, "log", 1, 0);
        assert!(t.problems.iter().any(|p| p.contains("is not a log key")), "{t}");
    }
}

/// A6: S + l verifies under a lax ed25519 verifier; `verify_strict` must refuse it.
#[test]
fn malleable_signature_rejected() {
    let mut fx = Fixture::new();
    let log = fx.synced_log();
    let mut e = envelope(&release("demo-pkg", "1.0.0", b"x"), &fx.keys.publisher.quorum());
    log.registry().root().check_role(&e, RoleName::Publisher).unwrap();
    let mut sig = e.signatures[0].sig.0;
    malleate(&mut sig);
    e.signatures[0].sig = SignatureBytes(sig);
    let t = log.registry().root().check_role(&e, RoleName::Publisher).unwrap_err();
    assert!(t.problems[0].contains("does not verify"), "{t}");

    let malleated = e.to_bytes().unwrap();
    fx.push(malleated.clone());
    let err = refused(&log, &fx.checkpoint(), &[malleated], LATER);
    assert_threshold(leaf_threshold(&err), "publisher", 1, 0);

    // The same on a checkpoint.
    let fx = Fixture::new();
    let cp = checkpoint_note(1, tree_root(&fx.leaves), NOW, NOW + DAY, &fx.keys.log.quorum());
    let mut line = cp.signatures()[0].clone();
    let mut sig: [u8; 64] = line.signature.as_slice().try_into().unwrap();
    malleate(&mut sig);
    line.signature = sig.to_vec();
    let mut malleated = checkpoint_note(1, tree_root(&fx.leaves), NOW, NOW + DAY, &[]);
    malleated.add_signature(line).unwrap();
    let err = refused(&fx.empty_log(), &malleated.to_bytes(), &fx.leaves, LATER);
    assert_threshold(checkpoint_threshold(&err), "log", 1, 0);
}

/// A5, at scale: a page of 2,500 releases, where one past the first pipeline chunk carries a
/// signature that fails (one bit of S flipped), is checked in batches across the cores while the
/// chunk before it is folded; the batch holding it fails and the fold names exactly that leaf.
/// The same page without it is accepted.
#[test]
fn one_bad_signature_in_a_batch_is_refused_and_named() {
    let mut fx = Fixture::new();
    let log = fx.synced_log();
    let bad_at = 1500;
    let mut page = Vec::new();
    for i in 0..2500 {
        let mut leaf = fx.release("batch-pkg", &format!("1.0.{i}"));
        if i == bad_at {
            let mut e = Envelope::from_bytes(&leaf).unwrap();
            e.signatures[0].sig.0[40] ^= 1;
            leaf = e.to_bytes().unwrap();
        }
        page.push(leaf);
    }
    let logged = fx.leaves.clone();
    for leaf in &page {
        fx.push(leaf.clone());
    }
    let err = refused(&log, &fx.checkpoint(), &page, LATER);
    match &err {
        LogError::Leaf(ApplyError::Signatures { index, source }) => {
            assert_eq!(*index, 1 + bad_at as u64, "{err}");
            assert_threshold(source, "publisher", 1, 0);
        }
        other => panic!("expected the bad leaf named, got: {other}"),
    }
    assert!(err.to_string().contains(&format!("leaf {}", 1 + bad_at)), "{err}");

    page.remove(bad_at);
    let checkpoint = fx.checkpoint_of(&[logged, page.clone()].concat());
    let accepted = accepted(&log, &checkpoint, &page, LATER);
    assert_eq!(accepted.registry().releases().count(), 2499);
}

/// Long pages pushed one by one are folded a page late, while the next page's signatures are
/// checked: a bad signature in a long page fails the next push (naming its leaf), and nothing
/// after that; in the last long page it fails `finish`. The same pages whole are accepted.
#[test]
fn a_bad_signature_in_a_long_page_fails_the_next_push_or_finish() {
    let mut fx = Fixture::new();
    let log = fx.synced_log();
    let pages: Vec<Vec<Vec<u8>>> = (0..3)
        .map(|p| (0..1100).map(|i| fx.release(&format!("page-{p}"), &format!("1.0.{i}"))).collect())
        .collect();
    let tail = vec![fx.release("tail", "1.0.0")];
    let good: Vec<Vec<u8>> = pages.concat().into_iter().chain(tail.clone()).collect();
    for leaf in &good {
        fx.push(leaf.clone());
    }
    let checkpoint = fx.checkpoint();
    let bad = |page: usize, at: usize| {
        let mut pages = pages.clone();
        let mut envelope = Envelope::from_bytes(&pages[page][at]).unwrap();
        envelope.signatures[0].sig.0[7] ^= 1;
        pages[page][at] = envelope.to_bytes().unwrap();
        pages
    };
    let named = |err: LogError, leaf: u64| match err {
        LogError::Leaf(ApplyError::Signatures { index, .. }) => assert_eq!(index, leaf),
        other => panic!("expected leaf {leaf} named, got: {other}"),
    };

    let pages_bad = bad(0, 700);
    let mut pending = log.begin_update(&checkpoint).unwrap();
    pending.push(&pages_bad[0]).unwrap();
    named(pending.push(&pages_bad[1]).unwrap_err(), 1 + 700);
    assert!(matches!(pending.push(&pages_bad[2]).unwrap_err(), LogError::Abandoned));

    let pages_bad = bad(2, 5);
    let mut pending = log.begin_update(&checkpoint).unwrap();
    for page in &pages_bad {
        pending.push(page).unwrap();
    }
    named(pending.finish_at(LATER, ExpiredCheckpoint::Refuse).unwrap_err(), 1 + 2 * 1100 + 5);

    let mut pending = log.begin_update(&checkpoint).unwrap();
    for page in &pages {
        pending.push(page).unwrap();
    }
    assert_eq!(pending.pushed(), 1 + 3 * 1100);
    pending.push(&tail).unwrap();
    let log = pending.finish_at(LATER, ExpiredCheckpoint::Refuse).unwrap();
    assert_eq!(log.size(), 1 + 3 * 1100 + 1);
    assert_eq!(log.registry().releases().count(), 3 * 1100 + 1);
}

/// A6: small-order public keys (the identity, the point of order 2, a point of order 4) in a
/// root, even as a publisher key, make the root unloadable: as the pinned root and as v2.
#[test]
fn weak_public_key_in_root_rejected_at_load() {
    let mut order_two = [0xffu8; 32];
    order_two[0] = 0xec;
    order_two[31] = 0x7f;
    let mut identity = [0u8; 32];
    identity[0] = 1;
    let order_four = [0u8; 32];
    for weak in [identity, order_two, order_four] {
        let with_weak = |keys: &KeySet, version| {
            let mut root = keys.root(version, NOW + YEAR);
            root.keys.push(PublicKeyBytes(weak));
            root.roles.publisher.keys.push(KeyId::of(&PublicKeyBytes(weak)));
            root
        };
        let keys = KeySet::single();
        let err = TrustedRoot::pin(&root_leaf(with_weak(&keys, 1), &keys.root.quorum())).unwrap_err();
        assert!(matches!(err, TrustError::BadKey { source: KeyError::WeakKey, .. }), "{err:?}");

        let fx = Fixture::with_keys(keys);
        let v2 = root_leaf(fx.chain(with_weak(&fx.keys, 2)), &fx.keys.root.quorum());
        assert!(matches!(fx.pinned().next(&v2), Err(TrustError::BadKey { .. })));
        let mut history = fx.leaves.clone();
        history.push(v2.clone());
        let err = refused(&fx.synced_log(), &fx.checkpoint_of(&history), &[v2], LATER);
        assert!(matches!(root_leaf_error(&err), TrustError::BadKey { .. }), "{err}");
    }
}

/// A7: a status payload in an envelope typed as a release, validly signed over
/// PAE("airlock.release.v2", payload), is refused because the payload says what it is.
#[test]
fn payload_type_confusion_status_as_release_rejected() {
    let mut fx = Fixture::new();
    fx.push(fx.release("demo-pkg", "1.0.0"));
    let log = fx.synced_log();
    let (payload_type, payload) = status("demo-pkg", "1.0.0", StatusAction::Revoke, None).encode().unwrap();
    assert_eq!(payload_type, PayloadType::Status);
    let publisher = fx.keys.publisher.quorum();

    let relabelled = signed(Envelope::unsigned(PayloadType::Release.as_str(), payload.clone()), &publisher);
    log.registry().root().check_role(&relabelled, RoleName::Publisher).unwrap();
    // Signed as a status, then relabelled: the signature no longer covers it either.
    let mut swapped = signed(Envelope::unsigned(PayloadType::Status.as_str(), payload), &publisher);
    swapped.payload_type = PayloadType::Release.as_str().to_owned();
    assert!(log.registry().root().check_role(&swapped, RoleName::Publisher).is_err());

    for confused in [relabelled, swapped] {
        let confused = confused.to_bytes().unwrap();
        let mut history = fx.leaves.clone();
        history.push(confused.clone());
        let err = refused(&log, &fx.checkpoint_of(&history), &[confused], LATER);
        assert!(matches!(err, LogError::Leaf(ApplyError::Payload { index: 2, .. })), "{err}");
    }
    // Nothing was revoked.
    assert!(log.registry().releases().all(|r| r.status == airlock_keys::ReleaseStatus::Active));
}

/// A7: a checkpoint is not a statement, and a statement is not a checkpoint.
#[test]
fn payload_type_confusion_checkpoint_and_statement_rejected() {
    let fx = Fixture::new();
    let log = fx.synced_log();
    let cp_as_leaf = fx.checkpoint();
    let mut history = fx.leaves.clone();
    history.push(cp_as_leaf.clone());
    let err = refused(&log, &fx.checkpoint_of(&history), &[cp_as_leaf], LATER);
    // A checkpoint note is not even an envelope.
    assert!(matches!(err, LogError::Leaf(ApplyError::Envelope { .. })), "{err}");

    let release_as_cp = leaf(&release("demo-pkg", "1.0.0", b"x"), &fx.keys.log.quorum());
    let err = refused(&log, &release_as_cp, &[], LATER);
    // A signed statement is not a note.
    assert!(matches!(err, LogError::CheckpointEncoding(_)), "{err}");
}

/// A8: flipping any single bit of a signed payload is refused (here, a bit of the file digest
/// still decodes to a well-formed release, so only the signature can catch it).
#[test]
fn one_bit_flipped_in_payload_rejected() {
    let mut fx = Fixture::new();
    let log = fx.synced_log();
    let content = b"the reviewed wheel";
    let original = envelope(&release("demo-pkg", "1.0.0", content), &fx.keys.publisher.quorum());
    let at = original.payload.windows(32).position(|w| w == Digest::of(content).as_bytes()).unwrap();

    let mut tampered = original.clone();
    tampered.payload[at] ^= 1;
    assert!(Statement::decode(&tampered.payload_type, &tampered.payload).is_ok());
    let tampered = tampered.to_bytes().unwrap();
    fx.push(tampered.clone());
    let err = refused(&log, &fx.checkpoint(), &[tampered], LATER);
    assert_threshold(leaf_threshold(&err), "publisher", 1, 0);

    // Every other bit of the payload too.
    for byte in 0..original.payload.len() {
        for bit in 0..8 {
            let mut e = original.clone();
            e.payload[byte] ^= 1 << bit;
            let leaf = e.to_bytes().unwrap();
            assert!(
                log.registry().prepare(&leaf).is_err(),
                "flipped bit {bit} of payload byte {byte} accepted"
            );
        }
    }
}

/// A8: bytes outside the signed payload (an extra signature nobody can check, an unlisted
/// key's valid signature) change nothing: the statement and the checkpoint still verify.
#[test]
fn junk_signature_outside_payload_is_ignored() {
    let mut fx = Fixture::new();
    let stranger = SecretKey::generate();
    let junk = Signature { key_id: KeyId([0xab; 32]), sig: SignatureBytes([0x5a; 64]) };
    let mut e = envelope(&release("demo-pkg", "1.0.0", b"x"), &fx.keys.publisher.quorum());
    e.signatures.push(junk.clone());
    sign_envelope(&mut e, &stranger);
    fx.push(e.to_bytes().unwrap());

    let mut cp = checkpoint_note(2, tree_root(&fx.leaves), NOW, NOW + DAY, &[]);
    cp.add_signature(airlock_proto::NoteSignature {
        name: "junk.example".into(),
        key_id: [0xab; 4],
        signature: vec![0x5a; 64],
    })
    .unwrap();
    for signer in fx.keys.log.quorum() {
        airlock_keys::sign_note(&mut cp, ORIGIN, signer).unwrap();
    }
    let log = accepted(&fx.empty_log(), &cp.to_bytes(), &fx.leaves, LATER);
    assert_eq!(log.size(), 2);
    assert_eq!(log.registry().releases().count(), 1);
    assert_restores(&fx, &log);
}

/// A9: a leaf with bytes after its CBOR value is refused, even inside a signed checkpoint.
#[test]
fn leaf_with_trailing_bytes_rejected() {
    let mut fx = Fixture::new();
    let log = fx.synced_log();
    let mut trailing = fx.release("demo-pkg", "1.0.0");
    trailing.push(0);
    fx.push(trailing.clone());
    let err = refused(&log, &fx.checkpoint(), &[trailing], LATER);
    assert!(
        matches!(
            err,
            LogError::Leaf(ApplyError::Envelope { index: 1, source: CodecError::TrailingBytes { .. } })
        ),
        "{err}"
    );
}

/// A9: the same leaf re-encoded as an indefinite-length map is not the signed byte form.
#[test]
fn leaf_with_indefinite_length_encoding_rejected() {
    let mut fx = Fixture::new();
    let log = fx.synced_log();
    let canonical = fx.release("demo-pkg", "1.0.0");
    assert_eq!(canonical[0], 0xa3, "an envelope is a map of three fields");
    let mut indefinite = vec![0xbf];
    indefinite.extend_from_slice(&canonical[1..]);
    indefinite.push(0xff);
    fx.push(indefinite.clone());
    let err = refused(&log, &fx.checkpoint(), &[indefinite], LATER);
    assert!(matches!(err, LogError::Leaf(ApplyError::Envelope { index: 1, .. })), "{err}");
}

/// A9: checkpoints with trailing bytes, a body not in canonical form, or over the size cap, are
/// refused before any signature is checked.
#[test]
fn malformed_checkpoint_rejected() {
    let fx = Fixture::new();
    let mut trailing = fx.checkpoint();
    trailing.push(b'x');
    let err = refused(&fx.empty_log(), &trailing, &fx.leaves, LATER);
    assert!(matches!(err, LogError::CheckpointEncoding(airlock_proto::NoteError::NoSignatures)), "{err}");
    let padded = String::from_utf8(fx.checkpoint()).unwrap().replacen("\n1\n", "\n01\n", 1);
    let err = refused(&fx.empty_log(), padded.as_bytes(), &fx.leaves, LATER);
    assert!(matches!(err, LogError::CheckpointPayload(_)), "{err}");
    let huge = vec![b'a'; 16 * 1024 + 1];
    let err = refused(&fx.empty_log(), &huge, &fx.leaves, LATER);
    assert!(matches!(err, LogError::CheckpointEncoding(airlock_proto::NoteError::TooLarge { .. })), "{err}");
}

/// Leaf 0 must be the pinned root byte for byte: the same root with one more (valid) signature
/// is another leaf.
#[test]
fn first_leaf_not_the_pinned_root_bytes_rejected() {
    let fx = Fixture::with_keys(KeySet::new((2, 1), (1, 1), (1, 1)));
    let resigned = root_leaf(fx.keys.root(1, NOW + YEAR), &fx.keys.root.keys.iter().collect::<Vec<_>>());
    TrustedRoot::pin(&resigned).unwrap();
    let history = vec![resigned];
    let err = refused(&fx.empty_log(), &fx.checkpoint_of(&history), &history, LATER);
    assert!(matches!(err, LogError::Leaf(ApplyError::FirstLeafNotPinnedRoot)), "{err}");
}

/// A checkpoint that names another log's origin.
#[test]
fn checkpoint_for_another_origin_rejected() {
    let fx = Fixture::new();
    let cp = checkpoint_note_of(
        "evil.example/log",
        1,
        tree_root(&fx.leaves),
        NOW,
        NOW + DAY,
        &fx.keys.log.quorum(),
    )
    .to_bytes();
    let err = refused(&fx.empty_log(), &cp, &fx.leaves, LATER);
    assert!(matches!(err, LogError::WrongOrigin { .. }), "{err}");
}

// ---------------------------------------------------------------------------------------------
// B. Root chain and key rotation
// ---------------------------------------------------------------------------------------------

/// B11: pinned on v1, the registry at v5; every step signed by the previous root quorum and
/// its own, all keys rotated each time.
#[test]
fn root_chain_v1_to_v5_walked() {
    let mut fx = Fixture::with_keys(KeySet::new((3, 2), (2, 1), (1, 1)));
    let log = fx.synced_log();
    let mut walked = fx.pinned().into_inner();
    for version in 2..=5 {
        fx.rotate(KeySet::new((3, 2), (2, 1), (1, 1)), NOW + YEAR);
        walked = walked.next(fx.leaves.last().unwrap()).unwrap().into_inner();
        assert_eq!(walked.root().version, version);
    }
    fx.push(fx.release("demo-pkg", "1.0.0"));
    let next = accepted(&log, &fx.checkpoint(), &fx.leaves[1..], LATER);
    assert_eq!(next.registry().root().root().version, 5);
    assert_eq!(next.registry().root().envelope_bytes(), &fx.leaves[4][..]);
    assert_restores(&fx, &next);
    // A client starting from scratch walks the same chain.
    let fresh = accepted(&fx.empty_log(), &fx.checkpoint(), &fx.leaves, LATER);
    assert_eq!(fresh.root_hash(), next.root_hash());
}

/// B12: v2 signed only by its own (new) root keys.
#[test]
fn root_signed_only_by_new_keys_rejected() {
    let fx = Fixture::new();
    let new = KeySet::single();
    let v2 = root_leaf(fx.chain(new.root(2, NOW + YEAR)), &new.root.quorum());
    let err = fx.pinned().next(&v2).unwrap_err();
    assert!(matches!(err, TrustError::Signatures { version: 2, which: "the previous root", .. }), "{err}");

    let mut history = fx.leaves.clone();
    history.push(v2.clone());
    let err =
        refused(&fx.synced_log(), &checkpoint(&history, NOW, NOW + DAY, &new.log.quorum()), &[v2], LATER);
    assert!(
        matches!(root_leaf_error(&err), TrustError::Signatures { which: "the previous root", .. }),
        "{err}"
    );
}

/// B12: v2 signed only by the old root keys.
#[test]
fn root_signed_only_by_old_keys_rejected() {
    let fx = Fixture::new();
    let new = KeySet::single();
    let v2 = root_leaf(fx.chain(new.root(2, NOW + YEAR)), &fx.keys.root.quorum());
    let err = fx.pinned().next(&v2).unwrap_err();
    assert!(matches!(err, TrustError::Signatures { version: 2, which: "its own root", .. }), "{err}");

    let mut history = fx.leaves.clone();
    history.push(v2.clone());
    let err =
        refused(&fx.synced_log(), &checkpoint(&history, NOW, NOW + DAY, &new.log.quorum()), &[v2], LATER);
    assert!(matches!(root_leaf_error(&err), TrustError::Signatures { which: "its own root", .. }), "{err}");
}

/// B13: the successor of v1 must say version 2: not 3, not 1.
#[test]
fn root_version_not_exactly_next_rejected() {
    let fx = Fixture::new();
    let log = fx.synced_log();
    let new = KeySet::single();
    for found in [3, 1] {
        let mut signers = fx.keys.root.quorum();
        signers.extend(new.root.quorum());
        let bad = new.root(found, NOW + YEAR);
        let bad = root_leaf(if found > 1 { fx.chain(bad) } else { bad }, &signers);
        let err = fx.pinned().next(&bad).unwrap_err();
        assert!(matches!(err, TrustError::WrongVersion { current: 1, found: f } if f == found), "{err}");
        assert!(err.to_string().contains("must be exactly 2"), "{err}");

        let mut history = fx.leaves.clone();
        history.push(bad.clone());
        let err = refused(&log, &checkpoint(&history, NOW, NOW + DAY, &new.log.quorum()), &[bad], LATER);
        assert!(matches!(root_leaf_error(&err), TrustError::WrongVersion { .. }), "{err}");
    }
    // Control: version 2 with the same signers.
    fx.pinned().next(&fx.next_root(&new, NOW + YEAR)).unwrap();
}

/// Defect 9: absurd signed versions do not overflow: after version u64::MAX no root follows
/// (computing `MAX + 1` panicked in a debug build and wrapped in a release build).
#[test]
fn the_last_root_version_has_no_successor_and_does_not_overflow() {
    let keys = KeySet::single();
    let first = root_leaf(keys.root(1, NOW + YEAR), &keys.root.quorum());
    let last = root_leaf(chained(keys.root(u64::MAX, NOW + YEAR), &first), &keys.root.quorum());
    let pinned = TrustedRoot::pin(&last).unwrap();
    let err = pinned.next(&first).unwrap_err();
    assert!(matches!(err, TrustError::WrongVersion { current: u64::MAX, found: 1 }), "{err}");
    assert!(err.to_string().contains("none can follow the last version"), "{err}");
}

/// B14: the root in force after the new leaves has expired.
#[test]
fn latest_root_expired_rejected() {
    let mut fx = Fixture::new();
    fx.rotate(KeySet::single(), NOW - 1);
    let err = refused(&fx.empty_log(), &fx.checkpoint(), &fx.leaves, LATER);
    assert!(matches!(err, LogError::RootExpired { version: 2, expires } if expires == NOW - 1), "{err}");

    // A pinned root that has expired, with no successor, too.
    let fx = Fixture::with_root_expiry(KeySet::single(), NOW);
    let err = refused(&fx.empty_log(), &fx.checkpoint(), &fx.leaves, LATER);
    assert!(matches!(err, LogError::RootExpired { version: 1, .. }), "{err}");
}

/// B14: expired roots on the way to a current one are fine, the pinned one included.
#[test]
fn expired_intermediate_roots_accepted() {
    let mut fx = Fixture::with_root_expiry(KeySet::single(), NOW - YEAR);
    fx.rotate(KeySet::single(), NOW - DAY);
    fx.rotate(KeySet::single(), NOW + YEAR);
    fx.push(fx.release("demo-pkg", "1.0.0"));
    let log = accepted(&fx.empty_log(), &fx.checkpoint(), &fx.leaves, LATER);
    assert_eq!(log.registry().root().root().version, 3);
    assert_restores(&fx, &log);
}

/// B15: a publisher key rotated out signs a release after the rotation leaf.
#[test]
fn key_rotated_out_signs_after_rotation_rejected() {
    let mut fx = Fixture::new();
    fx.push(fx.release("early-pkg", "1.0.0"));
    let old = fx.rotate(KeySet::single(), NOW + YEAR);
    let log = fx.synced_log();
    assert_eq!(log.registry().releases().count(), 1, "signed before the rotation: still valid");

    let late = leaf(&release("late-pkg", "1.0.0", b"x"), &old.publisher.quorum());
    let mut history = fx.leaves.clone();
    history.push(late.clone());
    let err = refused(&log, &fx.checkpoint_of(&history), &[late], LATER);
    let t = leaf_threshold(&err);
    assert_threshold(t, "publisher", 1, 0);
    assert!(t.problems[0].contains("is not a publisher key"), "{t}");

    // The old root key cannot sign the next root either.
    let v3 = root_leaf(fx.chain(KeySet::single().root(3, NOW + YEAR)), &old.root.quorum());
    assert!(log.registry().root().next(&v3).is_err());
    // Control: the new publisher key.
    fx.push(fx.release("late-pkg", "1.0.0"));
    accepted(&log, &fx.checkpoint(), &fx.leaves[3..], LATER);
}

/// B16: after a root leaf rotates the log key, checkpoints signed by the old one are refused,
/// whether the rotation leaf is new to the client or already verified.
#[test]
fn checkpoint_signed_by_rotated_out_log_key_rejected() {
    let mut fx = Fixture::new();
    let before = fx.synced_log();
    let old = fx.rotate(KeySet::single(), NOW + YEAR);
    let by_old_key = checkpoint(&fx.leaves, NOW, NOW + DAY, &old.log.quorum());

    let err = refused(&before, &by_old_key, &fx.leaves[1..], LATER);
    assert_threshold(checkpoint_threshold(&err), "log", 1, 0);
    let err = refused(&fx.empty_log(), &by_old_key, &fx.leaves, LATER);
    assert_threshold(checkpoint_threshold(&err), "log", 1, 0);

    let after = accepted(&before, &fx.checkpoint(), &fx.leaves[1..], LATER);
    fx.push(fx.release("demo-pkg", "1.0.0"));
    let by_old_key = checkpoint(&fx.leaves, NOW, NOW + DAY, &old.log.quorum());
    let err = refused(&after, &by_old_key, &fx.leaves[2..], LATER);
    assert_threshold(checkpoint_threshold(&err), "log", 1, 0);
    accepted(&after, &fx.checkpoint(), &fx.leaves[2..], LATER);
}

// ---------------------------------------------------------------------------------------------
// C. Freshness, rollback, freeze, fork
// ---------------------------------------------------------------------------------------------

/// C17: an older (smaller) checkpoint replayed.
#[test]
fn rollback_checkpoint_rejected() {
    let mut fx = Fixture::new();
    let old_cp = fx.checkpoint();
    let at_one = accepted(&fx.empty_log(), &old_cp, &fx.leaves, LATER);
    fx.push(fx.release("demo-pkg", "1.0.0"));
    let new_cp = fx.checkpoint();
    let at_two = accepted(&at_one, &new_cp, &fx.leaves[1..], LATER);

    let err = refused(&at_two, &old_cp, &[], LATER);
    assert_security(&err, "rollback");
    let LogError::Rollback { trusted, offered } = &err else { panic!("{err}") };
    assert_eq!((trusted.size, offered.size), (2, 1));
    assert_eq!(trusted.note.as_bytes(), new_cp.as_slice());
    assert_eq!(offered.note.as_bytes(), old_cp.as_slice());
    assert_restores(&fx, &at_two);
}

/// Defect 6: an honest mirror that lags serves an older checkpoint whose root is the verified
/// log's root at that size: that is "behind", not a rollback. Only a different root at the
/// smaller size (or an unsigned checkpoint) stays a refusal, and only the former is security.
#[test]
fn an_honest_lagging_mirror_is_behind_not_a_rollback() {
    let mut fx = Fixture::new();
    let old_cp = fx.checkpoint();
    fx.push(fx.release("demo-pkg", "1.0.0"));
    let at_two = accepted(&fx.empty_log(), &fx.checkpoint(), &fx.leaves, LATER);
    let verified_prefix = common::tree_root(&fx.leaves[..1]);
    let judged = at_two.judge_older(&old_cp, LATER, |size| (size == 1).then_some(verified_prefix));
    assert!(matches!(judged, LogError::Behind { offered: 1, trusted: 2 }), "{judged}");
    assert!(!judged.is_security());
    // Another history at size 1, signed by the log key: a rollback to a fork.
    let forked = fx.checkpoint_of(&[fx.release("other", "1.0")]);
    let judged = at_two.judge_older(&forked, LATER, |size| (size == 1).then_some(verified_prefix));
    assert_security(&judged, "rollback");
    // An older checkpoint the log key did not sign proves nothing either way.
    let stranger = SecretKey::generate();
    let unsigned = checkpoint(&fx.leaves[..1], NOW, NOW + DAY, &[&stranger]);
    let judged = at_two.judge_older(&unsigned, LATER, |_| Some(verified_prefix));
    assert!(matches!(judged, LogError::CheckpointSignature(_)), "{judged}");
    // Expired, it is stale whatever it is (an old replay is not a lagging mirror's answer).
    let judged = at_two.judge_older(&old_cp, NOW + DAY, |_| Some(verified_prefix));
    assert!(matches!(judged, LogError::Stale { .. }), "{judged}");
    // A checkpoint that is not older is not judged here.
    let judged = at_two.judge_older(&fx.checkpoint(), LATER, |_| None);
    assert!(matches!(judged, LogError::NotOlder { offered: 2, trusted: 2 }), "{judged}");
}

/// After a log-key rotation, a lagging mirror's checkpoint carries the old key's signature: it is
/// judged with the root in force at its size, so it is "behind", not a signature failure.
#[test]
fn a_lagging_mirror_behind_a_log_key_rotation_is_behind() {
    let mut fx = Fixture::new();
    fx.push(fx.release("demo-pkg", "1.0.0"));
    let old_cp = fx.checkpoint();
    let prefix = common::tree_root(&fx.leaves);
    fx.rotate(KeySet::single(), NOW + YEAR);
    fx.push(fx.release("demo-pkg", "2.0.0"));
    let synced = accepted(&fx.empty_log(), &fx.checkpoint(), &fx.leaves, LATER);
    let judged = synced.judge_older(&old_cp, LATER, |size| (size == 2).then_some(prefix));
    assert!(matches!(judged, LogError::Behind { offered: 2, trusted: 4 }), "{judged}");
}

/// Defect 3, at the verifier: `precheck` refuses a checkpoint the log key did not sign and a
/// root chain that does not verify, and accepts one signed by the log key in force at its size
/// even when the chain already lists a later rotation; an update whose leaf was refused is
/// abandoned, never finished into a false security error.
#[test]
fn precheck_and_page_by_page_updates_refuse_what_they_must() {
    let mut fx = Fixture::new();
    let empty = fx.empty_log();
    fx.push(fx.release("demo-pkg", "1.0.0"));
    let signed_by_k1 = fx.checkpoint();
    let old_keys = fx.rotate(KeySet::single(), NOW + YEAR);
    let chain = vec![fx.leaves[0].clone(), fx.leaves[2].clone()];
    assert_eq!(empty.precheck(&signed_by_k1, &chain).unwrap(), 2);
    let stranger = SecretKey::generate();
    let forged = checkpoint(&fx.leaves, NOW, NOW + DAY, &[&stranger]);
    assert!(matches!(empty.precheck(&forged, &chain).unwrap_err(), LogError::CheckpointSignature(_)));
    // A "next root" signed only by keys the root in force does not list breaks the chain.
    let intruder = KeySet::single();
    let bad_root = root_leaf(fx.chain(intruder.root(2, NOW + YEAR)), &intruder.root.quorum());
    let err = empty.precheck(&signed_by_k1, &[fx.leaves[0].clone(), bad_root]).unwrap_err();
    assert!(matches!(err, LogError::Roots(_)), "{err}");
    drop(old_keys);

    // Page by page: too many leaves, then nothing more; a short update does not finish.
    let mut pending = empty.begin_update(&signed_by_k1).unwrap();
    let err = pending.push(&fx.leaves[..3]).unwrap_err();
    assert!(matches!(err, LogError::LeafCount { expected: 2, got: 3, .. }), "{err}");
    assert!(matches!(pending.push(&fx.leaves[..2]).unwrap_err(), LogError::Abandoned));
    assert!(matches!(pending.finish_at(LATER, ExpiredCheckpoint::Refuse).unwrap_err(), LogError::Abandoned));
    let mut short = empty.begin_update(&signed_by_k1).unwrap();
    short.push(&fx.leaves[..1]).unwrap();
    assert!(matches!(
        short.finish_at(LATER, ExpiredCheckpoint::Refuse).unwrap_err(),
        LogError::LeafCount { .. }
    ));
    let mut whole = empty.begin_update(&signed_by_k1).unwrap();
    whole.push(&fx.leaves[..1]).unwrap();
    whole.push(&fx.leaves[1..2]).unwrap();
    assert_eq!(whole.finish_at(LATER, ExpiredCheckpoint::Refuse).unwrap().size(), 2);
}

/// Evidence files: what `verify_evidence` proves from two signed checkpoints and the leaves.
#[test]
fn evidence_proves_forks_rollbacks_and_contradictions_and_nothing_else() {
    use airlock_keys::{verify_evidence, Proven};
    let mut fx = Fixture::new();
    fx.push(fx.release("demo-pkg", "1.0.0"));
    let at_two = fx.checkpoint();
    fx.push(fx.release("demo-pkg", "2.0.0"));
    let at_three = fx.checkpoint();
    let other =
        checkpoint_note(3, airlock_proto::Hash32([5; 32]), NOW, NOW + DAY, &fx.keys.log.quorum()).to_bytes();
    assert_eq!(verify_evidence(fx.pinned(), Some(&at_three), &other, &fx.leaves).unwrap(), Proven::Fork);
    let rolled =
        checkpoint_note(2, airlock_proto::Hash32([6; 32]), NOW, NOW + DAY, &fx.keys.log.quorum()).to_bytes();
    assert_eq!(verify_evidence(fx.pinned(), Some(&at_three), &rolled, &fx.leaves).unwrap(), Proven::Rollback);
    // The same release logged twice with other bytes, under a signed checkpoint.
    let mut twice = fx.leaves.clone();
    twice.push(leaf(&release("demo-pkg", "1.0.0", b"other bytes"), &fx.keys.publisher.quorum()));
    let over_twice = fx.checkpoint_of(&twice);
    assert_eq!(
        verify_evidence(fx.pinned(), Some(&at_three), &over_twice, &twice).unwrap(),
        Proven::Contradiction
    );
    // An honest older checkpoint, or a consistent extension, proves nothing.
    assert!(matches!(
        verify_evidence(fx.pinned(), Some(&at_three), &at_two, &fx.leaves),
        Err(LogError::NoEvidence(_))
    ));
    assert!(matches!(
        verify_evidence(fx.pinned(), Some(&at_two), &at_three, &fx.leaves),
        Err(LogError::NoEvidence(_))
    ));
    // A checkpoint the log key did not sign proves nothing either.
    let stranger = SecretKey::generate();
    let unsigned =
        checkpoint_note(3, airlock_proto::Hash32([5; 32]), NOW, NOW + DAY, &[&stranger]).to_bytes();
    assert!(verify_evidence(fx.pinned(), Some(&at_three), &unsigned, &fx.leaves).is_err());
}

/// C18: the same checkpoint again is a no-op that succeeds.
#[test]
fn same_checkpoint_again_is_noop() {
    let mut fx = Fixture::new();
    fx.push(fx.release("demo-pkg", "1.0.0"));
    let log = fx.synced_log();
    let again = accepted(&log, &fx.checkpoint(), &[], LATER + 60);
    assert_eq!((again.size(), again.root_hash()), (log.size(), log.root_hash()));
    assert_eq!(again.checkpoint(), log.checkpoint());
    assert_eq!(again.newest_issued_at(), log.newest_issued_at());
}

/// C18: of two valid checkpoints of the same tree, the newer one is kept.
#[test]
fn older_checkpoint_of_same_tree_keeps_newer() {
    let fx = Fixture::new();
    let newer = checkpoint(&fx.leaves, NOW, NOW + DAY, &fx.keys.log.quorum());
    let older = checkpoint(&fx.leaves, NOW - 600, NOW + DAY, &fx.keys.log.quorum());
    let log = accepted(&fx.empty_log(), &newer, &fx.leaves, LATER);
    let after = accepted(&log, &older, &[], LATER);
    assert_eq!(after.checkpoint(), Some(&newer[..]));
    assert_eq!(after.newest_issued_at(), NOW);
}

/// C19: a checkpoint of the same size with another root hash, validly signed (the log signed
/// two histories).
#[test]
fn fork_same_size_different_root_rejected() {
    let mut fx = Fixture::new();
    fx.push(fx.release("demo-pkg", "1.0.0"));
    let log = fx.synced_log();
    let other = vec![fx.leaves[0].clone(), fx.release("evil-pkg", "1.0.0")];
    let fork_cp = fx.checkpoint_of(&other);

    let err = refused(&log, &fork_cp, &[], LATER);
    assert_security(&err, "fork");
    let LogError::Fork { trusted, offered } = &err else { panic!("{err}") };
    assert_eq!((trusted.size, offered.size), (2, 2));
    assert_eq!(trusted.root_hash, log.root_hash());
    assert_eq!(offered.root_hash, tree_root(&other));
}

/// C20: the server rewrote leaf 1 and appended leaf 2; the client, holding the old leaf 1, is
/// sent only leaf 2: its tree does not reach the offered root.
#[test]
fn inconsistent_leaves_rejected() {
    let mut fx = Fixture::new();
    fx.push(fx.release("demo-pkg", "1.0.0"));
    let log = fx.synced_log();
    let appended = fx.release("next-pkg", "1.0.0");
    let rewritten = vec![fx.leaves[0].clone(), fx.release("rewritten-pkg", "1.0.0"), appended.clone()];
    let err = refused(&log, &fx.checkpoint_of(&rewritten), std::slice::from_ref(&appended), LATER);
    assert_security(&err, "inconsistent");
    let LogError::Inconsistent { trusted, offered, computed } = &err else { panic!("{err}") };
    assert_eq!((trusted.size, offered.size), (2, 3));
    fx.push(appended);
    assert_eq!(*computed, tree_root(&fx.leaves));
    assert_ne!(*computed, tree_root(&rewritten));
}

/// C21: an expired checkpoint (a frozen registry).
#[test]
fn stale_checkpoint_rejected() {
    let fx = Fixture::new();
    let cp = checkpoint(&fx.leaves, NOW, NOW + DAY, &fx.keys.log.quorum());
    for now in [NOW + DAY, NOW + 2 * DAY] {
        let err = refused(&fx.empty_log(), &cp, &fx.leaves, now);
        assert!(matches!(err, LogError::Stale { expires_at, .. } if expires_at == NOW + DAY), "{err}");
        assert!(err.to_string().contains("stale"), "{err}");
        assert!(!err.is_security());
    }
    let log = accepted(&fx.empty_log(), &cp, &fx.leaves, NOW + DAY - 1);
    // The checkpoint already trusted does not become fresh again by being replayed.
    let err = refused(&log, &cp, &[], NOW + DAY);
    assert!(matches!(err, LogError::Stale { .. }), "{err}");
}

/// Defect 9: the end of an unsafe extension comes from an unauthenticated header; the verifier
/// caps it at the signed expiry plus `MAX_UNSAFE_EXTENSION`, whatever end is declared.
#[test]
fn an_unsafe_extension_is_capped_whatever_end_the_server_declares() {
    use airlock_keys::log::{ExpiredCheckpoint, MAX_UNSAFE_EXTENSION};
    let fx = Fixture::new();
    let cp = checkpoint(&fx.leaves, NOW, NOW + DAY, &fx.keys.log.quorum());
    let declared = ExpiredCheckpoint::UnsafeAcceptUntil(u64::MAX);
    let at = |now| fx.empty_log().update_with(&cp, &fx.leaves, now, declared);
    at(NOW + DAY + MAX_UNSAFE_EXTENSION - 1).unwrap();
    let err = at(NOW + DAY + MAX_UNSAFE_EXTENSION).unwrap_err();
    assert!(matches!(err, LogError::Stale { .. }), "{err}");
    // A declared end before the cap still ends it.
    let short = ExpiredCheckpoint::UnsafeAcceptUntil(NOW + DAY + 60);
    assert!(fx.empty_log().update_with(&cp, &fx.leaves, NOW + DAY + 60, short).is_err());
}

/// C22: the local clock is earlier than the newest issued-at seen, beyond the allowed skew.
#[test]
fn clock_behind_newest_checkpoint_rejected() {
    let mut fx = Fixture::new();
    let log = fx.synced_log();
    fx.push(fx.release("demo-pkg", "1.0.0"));
    let behind = NOW - CLOCK_SKEW - 1;
    let err = refused(&log, &fx.checkpoint(), &fx.leaves[1..], behind);
    assert!(matches!(err, LogError::ClockBehind { now, newest: NOW } if now == behind), "{err}");
    assert!(!err.is_security());
    // Within the skew it is fine.
    accepted(&log, &fx.checkpoint(), &fx.leaves[1..], NOW - CLOCK_SKEW);
}

/// C23: leaves pieced together from two forks of the same log never verify.
#[test]
fn leaves_pieced_from_two_forks_rejected() {
    let fx = Fixture::new();
    let fork = |tag: &str| -> Vec<Vec<u8>> {
        let mut leaves = vec![fx.leaves[0].clone()];
        leaves.extend((1..=3).map(|i| fx.release(&format!("{tag}-pkg{i}"), "1.0.0")));
        leaves
    };
    let (a, b) = (fork("a"), fork("b"));
    let (cp_a, cp_b) = (fx.checkpoint_of(&a), fx.checkpoint_of(&b));

    // From scratch: fork A's checkpoint, leaves from both.
    let pieced = vec![a[0].clone(), a[1].clone(), b[2].clone(), b[3].clone()];
    assert_security(&refused(&fx.empty_log(), &cp_a, &pieced, LATER), "inconsistent");
    assert_security(&refused(&fx.empty_log(), &cp_b, &pieced, LATER), "inconsistent");

    // A client on fork A at size 2, offered fork B's checkpoint with fork B's (or A's) tail.
    let on_a = accepted(&fx.empty_log(), &fx.checkpoint_of(&a[..2]), &a[..2], LATER);
    assert_security(&refused(&on_a, &cp_b, &b[2..], LATER), "inconsistent");
    assert_security(&refused(&on_a, &cp_b, &a[2..], LATER), "inconsistent");
    // Control: fork A's own tail.
    accepted(&on_a, &cp_a, &a[2..], LATER);
}

// ---------------------------------------------------------------------------------------------
// D. Releases
// ---------------------------------------------------------------------------------------------

/// D29: name@version logged twice with another digest, inside leaves the client fetches, in a
/// later update and in the same batch.
#[test]
fn same_release_logged_twice_with_other_digest_is_security_error() {
    let mut fx = Fixture::new();
    let publisher = fx.keys.publisher.quorum();
    let original = leaf(&release("demo-pkg", "1.0.0", b"reviewed"), &publisher);
    let trojan = leaf(&release("demo-pkg", "1.0.0", b"trojan"), &publisher);
    fx.push(original);
    let log = fx.synced_log();

    fx.push(trojan.clone());
    let err = refused(&log, &fx.checkpoint(), &[trojan], LATER);
    assert_security(&err, "contradicts itself");
    let LogError::Conflict { source, offered } = &err else { panic!("{err}") };
    assert!(matches!(source, ApplyError::AlreadyLogged { index: 2, existing: 1, .. }), "{source}");
    assert_eq!(offered.size, 3);

    let err = refused(&fx.empty_log(), &fx.checkpoint(), &fx.leaves, LATER);
    assert!(matches!(err, LogError::Conflict { .. }), "{err}");

    // The trusted release still names the reviewed bytes.
    let record = log.registry().releases().next().unwrap();
    assert_eq!(record.release.files[0].blake3, Digest::of(b"reviewed"));
}

/// A signed yank replayed after the unyank that followed it would silently yank the release
/// again; the fold refuses any payload already logged, and in a fetched log that is a conflict.
#[test]
fn replayed_status_statement_refused() {
    let mut fx = Fixture::new();
    let publisher = fx.keys.publisher.quorum();
    let published = leaf(&release("demo-pkg", "1.0.0", b"bytes"), &publisher);
    let yank = leaf(&status("demo-pkg", "1.0.0", StatusAction::Yank, None), &publisher);
    let unyank = leaf(&status("demo-pkg", "1.0.0", StatusAction::Unyank, Some(2)), &publisher);
    fx.push(published);
    fx.push(yank.clone());
    fx.push(unyank);
    let log = fx.synced_log();
    let mut state = log.registry().clone();
    let err = state.apply(&yank).unwrap_err();
    assert!(matches!(err, ApplyError::Duplicate { existing: 2, .. }), "{err}");

    fx.push(yank.clone());
    let err = refused(&log, &fx.checkpoint(), &[yank], LATER);
    assert_security(&err, "contradicts itself");
}

/// Defect 7: a status or channel statement signed earlier but logged later moved a release's
/// status or a channel back. Each names the leaf of the latest one it supersedes, so a stale one
/// (signed before a newer one was logged) is refused, and so is one claiming to be the first.
#[test]
fn out_of_order_status_and_channel_statements_are_refused() {
    let mut fx = Fixture::new();
    let publisher = fx.keys.publisher.quorum();
    fx.leaves.push(leaf(&release("demo-pkg", "1.0.0", b"one"), &publisher));
    fx.leaves.push(leaf(&release("demo-pkg", "2.0.0", b"two"), &publisher));
    // Both signed while nothing had been said yet: they both claim to be first.
    let yank_first = leaf(&status("demo-pkg", "1.0.0", StatusAction::Yank, None), &publisher);
    let unyank_first = leaf(&status("demo-pkg", "1.0.0", StatusAction::Unyank, None), &publisher);
    let to_one = leaf(&channel("prod", "demo-pkg", "1.0.0", None), &publisher);
    let to_two_first = leaf(&channel("prod", "demo-pkg", "2.0.0", None), &publisher);
    fx.leaves.push(yank_first);
    fx.leaves.push(to_one);
    let mut state = fx.synced_log().registry().clone();
    let stale = |state: &airlock_keys::RegistryState, leaf: &[u8]| state.prepare(leaf).unwrap_err();
    let err = stale(&state, &unyank_first);
    assert!(
        matches!(err, ApplyError::Superseded { what: "status", found: None, latest: Some(3), .. }),
        "{err}"
    );
    assert!(err.to_string().contains("signed before a newer one was logged"), "{err}");
    let err = stale(&state, &to_two_first);
    assert!(
        matches!(err, ApplyError::Superseded { what: "channel", found: None, latest: Some(4), .. }),
        "{err}"
    );
    assert!(!err.is_conflict());
    // Signed against the current log, they are taken; the older ones stay stale after that.
    let unyank = leaf(&status("demo-pkg", "1.0.0", StatusAction::Unyank, Some(3)), &publisher);
    let to_two = leaf(&channel("prod", "demo-pkg", "2.0.0", Some(4)), &publisher);
    state.apply(&unyank).unwrap();
    state.apply(&to_two).unwrap();
    let prod = airlock_proto::ChannelName::new("prod").unwrap();
    let name = airlock_proto::PackageName::new(airlock_proto::Kind::Wheel, "demo-pkg").unwrap();
    let wheel = airlock_proto::Kind::Wheel;
    let v = |text| airlock_proto::Version::new(text).unwrap();
    assert!(
        state.channel_holds(&prod, wheel, &name, &v("2.0.0"))
            && state.channel_holds(&prod, wheel, &name, &v("1.0.0"))
    );
    assert_eq!(state.latest_channel_leaf(&prod, wheel, &name), Some(6));
    let remove_stale = leaf(
        &channel_move("prod", airlock_proto::ChannelAction::Remove, "demo-pkg", "1.0.0", Some(4)),
        &publisher,
    );
    assert!(matches!(stale(&state, &remove_stale), ApplyError::Superseded { latest: Some(6), .. }));
    // Another channel, or another release's status, has its own chain.
    state.apply(&leaf(&channel("beta", "demo-pkg", "1.0.0", None), &publisher)).unwrap();
    state.apply(&leaf(&status("demo-pkg", "2.0.0", StatusAction::Yank, None), &publisher)).unwrap();
}

/// A channel holds a set of releases: several versions of one name may be in it; a release is
/// added once and removed once; a revoked one cannot be added but can be removed.
#[test]
fn a_channel_holds_a_set_of_releases_added_and_removed_by_logged_statements() {
    use airlock_proto::ChannelAction::{Add, Remove};
    let mut fx = Fixture::new();
    let publisher = fx.keys.publisher.quorum();
    fx.leaves.push(leaf(&release("demo-pkg", "1.0.0", b"one"), &publisher));
    fx.leaves.push(leaf(&release("demo-pkg", "2.0.0", b"two"), &publisher));
    let mut state = fx.synced_log().registry().clone();
    let prod = airlock_proto::ChannelName::new("prod").unwrap();
    let held = |state: &airlock_keys::RegistryState| -> Vec<String> {
        state.channel_releases(&prod).map(|r| r.release.version.as_str().to_owned()).collect()
    };
    state.apply(&leaf(&channel_move("prod", Add, "demo-pkg", "1.0.0", None), &publisher)).unwrap();
    state.apply(&leaf(&channel_move("prod", Add, "demo-pkg", "2.0.0", Some(3)), &publisher)).unwrap();
    assert_eq!(held(&state), ["1.0.0", "2.0.0"]);
    let twice = state
        .prepare(&leaf(&channel_move("prod", Add, "demo-pkg", "2.0.0", Some(4)), &publisher))
        .unwrap_err();
    assert!(twice.to_string().contains("already in channel prod"), "{twice}");
    state.apply(&leaf(&channel_move("prod", Remove, "demo-pkg", "1.0.0", Some(4)), &publisher)).unwrap();
    assert_eq!(held(&state), ["2.0.0"]);
    let absent = state
        .prepare(&leaf(&channel_move("prod", Remove, "demo-pkg", "1.0.0", Some(5)), &publisher))
        .unwrap_err();
    assert!(absent.to_string().contains("not in channel prod"), "{absent}");
    // Revoked: it can leave the channel but never join one.
    state.apply(&leaf(&status("demo-pkg", "2.0.0", StatusAction::Revoke, None), &publisher)).unwrap();
    let join =
        state.prepare(&leaf(&channel_move("beta", Add, "demo-pkg", "2.0.0", None), &publisher)).unwrap_err();
    assert!(matches!(join, ApplyError::Revoked { .. }), "{join}");
    state.apply(&leaf(&channel_move("prod", Remove, "demo-pkg", "2.0.0", Some(5)), &publisher)).unwrap();
    assert!(held(&state).is_empty());
    assert_eq!(state.channels().count(), 0);
}

// ---------------------------------------------------------------------------------------------
// State kept across updates
// ---------------------------------------------------------------------------------------------

/// A refused update leaves the trusted state usable: the honest update still goes through, and
/// restoring the accepted leaves reproduces the same tree; tampered stored leaves do not restore.
#[test]
fn refused_update_keeps_state_and_restore_reproduces_it() {
    let mut fx = Fixture::new();
    fx.push(fx.release("demo-pkg", "1.0.0"));
    let log = fx.synced_log();
    fx.push(fx.release("demo-pkg", "2.0.0"));
    let stranger = SecretKey::generate();
    let forged = checkpoint(&fx.leaves, NOW, NOW + DAY, &[&stranger]);
    refused(&log, &forged, &fx.leaves[2..], LATER);
    refused(&log, &fx.checkpoint(), &fx.leaves[1..], LATER); // wrong leaf count
    let next = accepted(&log, &fx.checkpoint(), &fx.leaves[2..], LATER);
    assert_eq!(next.size(), 3);
    assert_restores(&fx, &next);

    let mut tampered = fx.leaves.clone();
    tampered[1] = fx.release("other-pkg", "1.0.0");
    let err = TrustedLog::restore(fx.pinned(), &tampered, next.checkpoint(), 0).unwrap_err();
    assert!(err.is_security(), "{err}");
}

// ---------------------------------------------------------------------------------------------
// A security error is evidence that the registry lied
// ---------------------------------------------------------------------------------------------

/// A SECURITY ERROR means "the registry lied, here is the proof; refuse until an operator acts".
/// Anyone on the path (attack 41) can send a checkpoint; one that the log key did not sign
/// proves nothing and must be refused as a bad signature, never reported as a rollback, a fork,
/// an inconsistent log or a conflict.
#[test]
#[allow(clippy::type_complexity)]
fn forged_checkpoint_never_raises_security_error() {
    let mut fx = Fixture::new();
    let original = fx.release("demo-pkg", "1.0.0");
    fx.push(original);
    let log = fx.synced_log();
    let stranger = SecretKey::generate();
    let forge = |leaves: &[Vec<u8>]| checkpoint(leaves, NOW, NOW + DAY, &[&stranger]);

    let mut conflicting = fx.leaves.clone();
    let trojan = leaf(&release("demo-pkg", "1.0.0", b"trojan"), &fx.keys.publisher.quorum());
    conflicting.push(trojan.clone());
    let other = vec![fx.leaves[0].clone(), fx.release("evil-pkg", "1.0.0")];
    let appended = fx.release("next-pkg", "1.0.0");
    let mut rewritten = other.clone();
    rewritten.push(appended.clone());

    // (attack, checkpoint, new leaves)
    let cases: [(&str, Vec<u8>, Vec<Vec<u8>>); 4] = [
        ("rollback", forge(&fx.leaves[..1]), vec![]),
        ("fork", forge(&other), vec![]),
        ("inconsistent", forge(&rewritten), vec![appended]),
        ("conflict", forge(&conflicting), vec![trojan]),
    ];
    let mut wrong = Vec::new();
    for (attack, cp, leaves) in cases {
        let err = refused(&log, &cp, &leaves, LATER);
        if err.is_security() || !matches!(err, LogError::CheckpointSignature(_)) {
            wrong.push(format!("{attack}: {}", err.to_string().lines().next().unwrap_or_default()));
        }
    }
    assert!(wrong.is_empty(), "unsigned checkpoints raised security errors:\n  {}", wrong.join("\n  "));
}

/// Signatures checked ahead of the fold across cores (`preverify`) decide nothing themselves: a
/// page of hundreds of leaves with one bad or malleated signature is refused at that leaf, by
/// index, and the same page whole is accepted.
#[test]
fn a_large_page_with_one_bad_signature_is_refused_naming_the_leaf() {
    let mut fx = Fixture::new();
    for i in 0..300 {
        let leaf = fx.release(&format!("bulk-{i:03}"), "1.0.0");
        fx.push(leaf);
    }
    let good = fx.leaves.clone();
    for (at, tamper) in [(150usize, 0u8), (299, 1)] {
        let mut leaves = good.clone();
        let mut envelope = Envelope::from_bytes(&leaves[at]).unwrap();
        if tamper == 0 {
            envelope.signatures[0].sig.0[5] ^= 1;
        } else {
            malleate(&mut envelope.signatures[0].sig.0);
        }
        leaves[at] = envelope.to_bytes().unwrap();
        let err = refused(&fx.empty_log(), &fx.checkpoint_of(&leaves), &leaves, LATER);
        match &err {
            LogError::Leaf(ApplyError::Signatures { index, .. }) => assert_eq!(*index, at as u64, "{err}"),
            other => panic!("expected a leaf signature error, got: {other}"),
        }
        assert_threshold(leaf_threshold(&err), "publisher", 1, 0);
    }
    let log = accepted(&fx.empty_log(), &fx.checkpoint_of(&good), &good, LATER);
    assert_eq!(log.size(), 301);
}
