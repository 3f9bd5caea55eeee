//! Expiry, staleness and clock skew with set clocks: the server runs on a manual clock, the
//! client library is handed one, and nothing sleeps.

use airlock_client::follow::{self, FollowError};
use airlock_client::progress::Quiet;
use airlock_client::state::StateStore;
use airlock_client::{Remote, TlsOptions};
use airlock_keys::LogError;
use airlock_proto::{Checkpoint, Clock};

use crate::harness::{http_get, Server, World};

const HOUR: u64 = 3_600;
const DAY: u64 = 24 * HOUR;

/// A world whose server runs on a manual clock standing at the real time.
fn world_on_a_set_clock() -> (World, airlock_proto::ManualClock) {
    let mut world = World::prepared(1, 1);
    let mut config = world.config();
    let (clock, hand) = Clock::manual(airlock_proto::clock::system_now());
    config.clock = clock;
    world.server = Some(Server::start(config));
    (world, hand)
}

fn served_checkpoint(world: &World) -> Checkpoint {
    let (status, bytes) = http_get(&world.url(), "/v1/log/checkpoint");
    assert_eq!(status, 200);
    Checkpoint::from_note_unverified(&bytes).unwrap()
}

/// Runs the library's `follow::update` for `world` at `clock`'s time, from a saved state.
fn follow_at(world: &World, clock: &Clock) -> Result<(), FollowError> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let store = StateStore::open(&world.path("lib-state"), &world.path("root.cbor")).unwrap();
    let state = store.load().unwrap();
    let remote = Remote::new(&world.url(), None, &TlsOptions::default()).unwrap();
    let next = runtime.block_on(follow::update(&remote, &state, clock, &Quiet))?;
    store.save(&next).unwrap();
    Ok(())
}

fn log_error(result: Result<(), FollowError>) -> LogError {
    match result {
        Err(FollowError::Log(e)) => e,
        other => panic!("expected a log verification error, got {other:?}"),
    }
}

#[test]
fn the_primary_re_signs_its_checkpoint_once_half_its_validity_has_passed() {
    let (world, time) = world_on_a_set_clock();
    let first = served_checkpoint(&world);
    assert_eq!(first.expires_at - first.issued_at, DAY, "default validity");
    time.advance(DAY / 2 - 1);
    assert_eq!(served_checkpoint(&world), first, "re-signed before half its validity passed");
    time.advance(1);
    let fresh = served_checkpoint(&world);
    assert_eq!((fresh.size, fresh.root_hash), (first.size, first.root_hash));
    assert_eq!(fresh.issued_at, first.issued_at + DAY / 2);
    assert_eq!(fresh.expires_at, fresh.issued_at + DAY);
}

#[test]
fn a_client_refuses_an_expired_checkpoint_and_accepts_it_while_fresh() {
    let (world, time) = world_on_a_set_clock();
    let issued = served_checkpoint(&world).issued_at;
    let (client, client_time) = Clock::manual(issued + DAY - 1);
    follow_at(&world, &client).unwrap();
    // The server's clock stops (it serves the same checkpoint); the client's moves past expiry.
    time.set(issued);
    client_time.set(issued + DAY);
    let stale = log_error(follow_at(&world, &client));
    assert!(
        matches!(stale, LogError::Stale { expires_at, now } if expires_at == issued + DAY && now == issued + DAY),
        "{stale}"
    );
}

#[test]
fn a_client_whose_clock_runs_behind_or_a_server_ahead_is_told_which() {
    let (world, time) = world_on_a_set_clock();
    let issued = served_checkpoint(&world).issued_at;
    let (client, client_time) = Clock::manual(issued);
    follow_at(&world, &client).unwrap();
    // Within the allowed skew of five minutes a checkpoint from the future is accepted...
    time.set(issued + DAY / 2 + 299);
    client_time.set(issued + DAY / 2);
    follow_at(&world, &client).unwrap();
    // ...beyond it, refused as such.
    time.set(issued + DAY + HOUR);
    let ahead = log_error(follow_at(&world, &client));
    assert!(matches!(ahead, LogError::FromTheFuture { .. }), "{ahead}");
    // A client clock set back behind the newest checkpoint it verified is named as the cause.
    client_time.set(issued);
    let behind = log_error(follow_at(&world, &client));
    assert!(matches!(behind, LogError::ClockBehind { .. }), "{behind}");
    assert!(behind.to_string().contains("check the system clock"), "{behind}");
}
