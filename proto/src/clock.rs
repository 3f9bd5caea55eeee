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

/// A duration for people: `30d`, `6d 23h`, `5h 2m`, `40s`.
pub fn format_duration(secs: u64) -> String {
    let (days, hours, minutes) = (secs / 86_400, secs % 86_400 / 3_600, secs % 3_600 / 60);
    match (days, hours, minutes) {
        (0, 0, 0) => format!("{secs}s"),
        (0, 0, m) => format!("{m}m"),
        (0, h, 0) => format!("{h}h"),
        (0, h, m) => format!("{h}h {m}m"),
        (d, 0, _) => format!("{d}d"),
        (d, h, _) => format!("{d}d {h}h"),
    }
}

/// Parses a duration as people write it: a whole number with a unit, `s`, `m`, `h` or `d`
/// (`30d`, `12h`); a bare number is seconds.
pub fn parse_duration(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let (number, unit) = match text.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((at, _)) => text.split_at(at),
        None => (text, "s"),
    };
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => return Err(format!("{text:?}: the unit must be s, m, h or d (as in 30d)")),
    };
    let number: u64 =
        number.parse().map_err(|_| format!("{text:?} is not a whole number with a unit (as in 30d)"))?;
    number.checked_mul(scale).ok_or_else(|| format!("{text:?} is too long"))
}

/// `at` (seconds since the epoch) as RFC 3339 in UTC, `YYYY-MM-DDTHH:MM:SSZ` (also a TOML
/// offset date-time).
pub fn rfc3339(at: Timestamp) -> String {
    let days = (at / 86_400) as i64;
    let secs = at % 86_400;
    // The civil date of a day count since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", secs / 3_600, secs % 3_600 / 60, secs % 60)
}

#[cfg(test)]
mod tests {
    #[test]
    fn times_are_rfc3339_utc() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(super::rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }

    use super::*;

    #[test]
    fn durations_format_and_parse() {
        assert_eq!(format_duration(30 * 86_400), "30d");
        assert_eq!(format_duration(7 * 86_400 - 3_600), "6d 23h");
        assert_eq!(format_duration(5 * 3_600 + 120), "5h 2m");
        assert_eq!(format_duration(40), "40s");
        assert_eq!(parse_duration("30d"), Ok(30 * 86_400));
        assert_eq!(parse_duration("12h"), Ok(12 * 3_600));
        assert_eq!(parse_duration("90"), Ok(90));
        for bad in ["", "d", "30w", "-1d", "1.5d", "99999999999999999999d"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }

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
