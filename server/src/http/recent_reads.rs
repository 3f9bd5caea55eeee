//! Which blob GETs may read the cold parts of a blob file directly from the device, past the
//! page cache (`airlock_client::direct::RangeRead`): a blob's first read in a while. A blob read
//! once (an export, a mirror's sync) then costs no page-cache copy and does not push out what is
//! read often; a blob read again (a wheel every site installs) goes through the page cache from
//! its second read, so it is served from memory after that. Parts the cache already holds are
//! read from it either way.

use std::collections::{HashSet, VecDeque};
use std::sync::{Mutex, PoisonError};

use airlock_proto::Digest;

/// Distinct blobs remembered (32 bytes each, twice); the oldest is forgotten first.
const REMEMBERED: usize = 4096;

/// The blobs read lately, oldest first.
#[derive(Debug, Default)]
pub struct RecentReads(Mutex<Seen>);

#[derive(Debug, Default)]
struct Seen {
    digests: HashSet<Digest>,
    order: VecDeque<Digest>,
}

impl RecentReads {
    /// Notes a read of `digest`'s file; true when none of the last `REMEMBERED` blobs read was it.
    pub fn first_read(&self, digest: &Digest) -> bool {
        let mut seen = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if seen.digests.contains(digest) {
            return false;
        }
        if seen.order.len() == REMEMBERED {
            if let Some(oldest) = seen.order.pop_front() {
                seen.digests.remove(&oldest);
            }
        }
        seen.digests.insert(*digest);
        seen.order.push_back(*digest);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(n: u32) -> Digest {
        Digest::of(&n.to_le_bytes())
    }

    /// A blob's first read may go directly, its second not; one forgotten after `REMEMBERED`
    /// other blobs is a first read again.
    #[test]
    fn only_a_first_read_in_a_while_is_first() {
        let reads = RecentReads::default();
        assert!(reads.first_read(&digest(0)));
        assert!(!reads.first_read(&digest(0)));
        for n in 1..REMEMBERED as u32 {
            assert!(reads.first_read(&digest(n)));
        }
        assert!(!reads.first_read(&digest(0)), "still remembered");
        assert!(reads.first_read(&digest(REMEMBERED as u32)));
        assert!(reads.first_read(&digest(0)), "the oldest was forgotten");
        assert_eq!(reads.0.lock().unwrap().digests.len(), REMEMBERED);
    }
}
