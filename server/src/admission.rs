//! Which connections the server keeps: at most `max` open at once, and each must send a complete
//! request head within the header-read time of being accepted (TLS handshake and protocol
//! detection included). When the cap is reached, a new connection takes the place of the oldest
//! one that has not yet sent a request, so connections that send nothing cannot keep others
//! out; if every open connection is busy with requests, the new one is closed.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::sync::Notify;

use crate::registry::locked;

/// The admission state of one server.
#[derive(Debug)]
pub struct Admission {
    max: usize,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    open: usize,
    next_id: u64,
    /// Connections that have not sent a request yet, oldest first.
    waiting: BTreeMap<u64, Weak<Ticket>>,
}

/// One admitted connection. It leaves the count when the last reference is dropped.
#[derive(Debug)]
pub struct Ticket {
    id: u64,
    admission: Arc<Admission>,
    started: AtomicBool,
    evict: Notify,
}

impl Admission {
    /// Admission for at most `max` connections.
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(Self { max: max.max(1), state: Mutex::new(State::default()) })
    }

    /// Admits a new connection, evicting the oldest silent one when the cap is reached; `None`
    /// when every open connection has sent a request (the new one is to be closed).
    pub fn admit(self: &Arc<Self>) -> Option<Arc<Ticket>> {
        let mut evicted = None;
        let ticket = self.admit_evicting(&mut evicted);
        // Dropped here, with the lock released: it may be the last reference, whose drop locks.
        drop(evicted);
        ticket
    }

    fn admit_evicting(self: &Arc<Self>, evicted: &mut Option<Arc<Ticket>>) -> Option<Arc<Ticket>> {
        let mut state = locked(&self.state);
        if state.open >= self.max {
            let oldest = state.waiting.pop_first()?;
            *evicted = oldest.1.upgrade();
            if let Some(ticket) = evicted.as_ref() {
                ticket.evict.notify_one();
            }
        }
        state.open += 1;
        let id = state.next_id;
        state.next_id += 1;
        let ticket = Arc::new(Ticket {
            id,
            admission: Arc::clone(self),
            started: AtomicBool::new(false),
            evict: Notify::new(),
        });
        state.waiting.insert(id, Arc::downgrade(&ticket));
        Some(ticket)
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        locked(&self.state).open
    }
}

impl Ticket {
    /// Marks that the connection sent a complete request head: it is no longer evictable and no
    /// longer under the first-request deadline.
    pub fn started(&self) {
        if !self.started.swap(true, Ordering::AcqRel) {
            locked(&self.admission.state).waiting.remove(&self.id);
        }
    }

    /// Completes when the connection must be closed before its first request: it was evicted
    /// to make room, or `deadline` passed without a request head. Never completes once a
    /// request was seen.
    pub async fn closed_early(&self, deadline: Duration) -> &'static str {
        tokio::select! {
            () = self.evict.notified() => "closed to make room: it had sent no request",
            () = async {
                tokio::time::sleep(deadline).await;
                if self.started.load(Ordering::Acquire) {
                    std::future::pending::<()>().await;
                }
            } => "closed: no request head within the header-read time",
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut state = locked(&self.admission.state);
        state.open = state.open.saturating_sub(1);
        state.waiting.remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_server_evicts_the_oldest_silent_connection_and_refuses_when_all_are_busy() {
        let admission = Admission::new(2);
        let first = admission.admit().unwrap();
        let second = admission.admit().unwrap();
        second.started();
        // Full: the third takes the place of the first (silent), not of the second (busy).
        let third = admission.admit().unwrap();
        assert!(first.evict.notified().now_or_never_ready());
        drop(first);
        assert_eq!(admission.open(), 2);
        third.started();
        // Both open connections are busy: a fourth is refused.
        assert!(admission.admit().is_none());
        drop(second);
        assert!(admission.admit().is_some());
    }

    trait NowOrNever {
        fn now_or_never_ready(self) -> bool;
    }

    impl<F: std::future::Future> NowOrNever for F {
        fn now_or_never_ready(self) -> bool {
            let waker = std::task::Waker::noop();
            let mut context = std::task::Context::from_waker(waker);
            let mut future = std::pin::pin!(self);
            future.as_mut().poll(&mut context).is_ready()
        }
    }
}
