//! Log verification rate: a fresh client verifying LEAVES release leaves (each signed by one
//! publisher key) against a checkpoint, as `airlock` does on its first pull and a mirror on its
//! first sync, in pages of `MAX_PAGE_LEAVES`. Prints leaves/s for the whole update (decode, signature, fold, tree), the
//! same for the leaves handed over in one push (as a bundle's import does) and, for comparison, the rate of the ed25519 signature checks alone on one core.
//!
//! Run (optional argument: leaves, default 20000):
//!
//! ```text
//! cargo bench -p airlock-keys --bench verify
//! cargo bench -p airlock-keys --bench verify -- 100000
//! ```

#[allow(clippy::unwrap_used)]
#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Instant;

use airlock_keys::ExpiredCheckpoint;
use airlock_proto::Envelope;
use common::{Fixture, LATER};

#[allow(clippy::unwrap_used, clippy::expect_used)]
fn main() {
    let leaves: usize = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .map_or(20_000, |a| a.parse().expect("leaves: a whole number"));
    let mut fixture = Fixture::new();
    for i in 0..leaves {
        let leaf = fixture.release(&format!("bench-{i:07}"), "1.0");
        fixture.push(leaf);
    }
    let checkpoint = fixture.checkpoint();
    let log = fixture.empty_log();

    // In pages of the largest size a registry serves, as a client and a mirror receive them.
    let started = Instant::now();
    let mut pending = log.begin_update(&checkpoint).expect("the checkpoint decodes");
    for page in fixture.leaves.chunks(airlock_proto::api::MAX_PAGE_LEAVES as usize) {
        pending.push(page).expect("the page verifies");
    }
    let updated = pending.finish_at(LATER, ExpiredCheckpoint::Refuse).expect("the update verifies");
    let whole = started.elapsed();
    assert_eq!(updated.size(), fixture.leaves.len() as u64);

    // All at once, as a bundle's import or `TrustedLog::update` hands the verifier its leaves.
    let started = Instant::now();
    let updated = log.update(&checkpoint, &fixture.leaves, LATER).expect("the update verifies");
    let at_once = started.elapsed();
    assert_eq!(updated.size(), fixture.leaves.len() as u64);

    let publisher = fixture.keys.publisher.keys[0].public();
    let envelopes: Vec<Envelope> =
        fixture.leaves[1..].iter().map(|l| Envelope::from_bytes(l).unwrap()).collect();
    let started = Instant::now();
    for envelope in &envelopes {
        publisher.verify_strict(&envelope.signed_bytes(), &envelope.signatures[0].sig.0).unwrap();
    }
    let signatures = started.elapsed();

    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    println!("airlock log verification benchmark: {leaves} release leaves, {cores} cores");
    println!(
        "fresh client update: {:.2} s, {:.0} leaves/s",
        whole.as_secs_f64(),
        leaves as f64 / whole.as_secs_f64()
    );
    println!(
        "the same leaves in one push (a bundle's import): {:.2} s, {:.0} leaves/s",
        at_once.as_secs_f64(),
        leaves as f64 / at_once.as_secs_f64()
    );
    println!(
        "ed25519 verify_strict alone, one core: {:.0} signatures/s",
        leaves as f64 / signatures.as_secs_f64()
    );
}
