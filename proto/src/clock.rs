//! Time as a parameter. Everything in airlock that compares times (checkpoint expiry, root
//! expiry, staleness, clock skew) reads a `Clock` it was given, so that a test can set the time
//! instead of sleeping. Time is integer seconds since the Unix epoch.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::Timestamp;

/// Where the time comes from: the system clock, or a time a test sets. Cheap to clone; clones
/// of a manual clock share one time.
#[derive(Debug, Clone, Default)]
pub struct Clock(Option<Arc<AtomicU64>>);

impl Clock {
    /// The system clock.
    pub const fn system() -> Self {
        Self(None)
    }

    /// A clock that stands at `at` until its [`ManualClock`] handle moves it.
    pub fn manual(at: Timestamp) -> (Self, ManualClock) {
        let time = Arc::new(AtomicU64::new(at));
        (Self(Some(Arc::clone(&time))), ManualClock(time))
    }

    /// The current time in integer seconds.
    pub fn now(&self) -> Timestamp {
        match &self.0 {
            Some(time) => time.load(Ordering::SeqCst),
            None => system_now(),
        }
    }
}

/// The handle that moves a manual clock.
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<AtomicU64>);

impl ManualClock {
    /// Sets the time.
    pub fn set(&self, at: Timestamp) {
        self.0.store(at, Ordering::SeqCst);
    }

    /// Moves the time forward by `secs`.
    pub fn advance(&self, secs: u64) {
        self.0.fetch_add(secs, Ordering::SeqCst);
    }

    /// The time the clock stands at.
    pub fn now(&self) -> Timestamp {
        self.0.load(Ordering::SeqCst)
    }
}

/// The system time in integer seconds (0 before the epoch).
pub fn system_now() -> Timestamp {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told_and_clones_share_it() {
        let (clock, hand) = Clock::manual(1_000);
        let copy = clock.clone();
        assert_eq!(clock.now(), 1_000);
        hand.advance(30);
        assert_eq!(copy.now(), 1_030);
        hand.set(5);
        assert_eq!(clock.now(), 5);
    }

    #[test]
    fn system_clock_reads_the_system_time() {
        let before = system_now();
        let read = Clock::system().now();
        assert!(read >= before && read <= system_now());
        assert!(read > 1_600_000_000, "system clock before 2020: {read}");
    }
}
