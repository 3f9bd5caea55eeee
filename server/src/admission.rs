//! Which connections the server keeps: at most `max` open at once, and each must send a complete
//! request head within the header-read time of being accepted (TLS handshake and protocol
//! detection included). When the cap is reached, a new connection takes the place of the oldest
//! one that has never sent a request, or else of the one idle longest (no request in progress,
//! its last response fully sent), so connections that send nothing, or that send one request and
//! then sit idle, cannot keep others out. If every open connection has a request in progress, the
//! new one is closed.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::{Body, Frame, SizeHint};
use tokio::sync::Notify;

use crate::registry::locked;

/// Eviction order: connections that never sent a request first, then idle ones; oldest first.
type Slot = (u8, u64);
const SILENT: u8 = 0;
const IDLE: u8 = 1;

/// The admission state of one server.
#[derive(Debug)]
pub struct Admission {
    max: usize,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    open: usize,
    next_seq: u64,
    /// Connections that may be closed to make room, in eviction order.
    evictable: BTreeMap<Slot, Weak<Ticket>>,
}

/// One admitted connection. It leaves the count when the last reference is dropped.
#[derive(Debug)]
pub struct Ticket {
    admission: Arc<Admission>,
    started: AtomicBool,
    in_flight: AtomicUsize,
    /// Where this connection sits in the eviction order, if it is evictable now.
    slot: Mutex<Option<Slot>>,
    evict: Notify,
}

impl Admission {
    /// Admission for at most `max` connections.
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(Self { max: max.max(1), state: Mutex::new(State::default()) })
    }

    /// Admits a new connection, evicting the first evictable one when the cap is reached;
    /// `None` when every open connection has a request in progress (the new one is to be closed).
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
            let (_, oldest) = state.evictable.pop_first()?;
            *evicted = oldest.upgrade();
            if let Some(ticket) = evicted.as_ref() {
                *locked(&ticket.slot) = None;
                ticket.evict.notify_one();
            }
        }
        state.open += 1;
        let slot = (SILENT, state.next_seq);
        state.next_seq += 1;
        let ticket = Arc::new(Ticket {
            admission: Arc::clone(self),
            started: AtomicBool::new(false),
            in_flight: AtomicUsize::new(0),
            slot: Mutex::new(Some(slot)),
            evict: Notify::new(),
        });
        state.evictable.insert(slot, Arc::downgrade(&ticket));
        Some(ticket)
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        locked(&self.state).open
    }
}

impl Ticket {
    /// A request head arrived: the connection is busy (not evictable) until the returned guard,
    /// held by the response body, is dropped once the response is fully sent or abandoned.
    pub fn request(self: &Arc<Self>) -> RequestGuard {
        self.started.store(true, Ordering::Release);
        if self.in_flight.fetch_add(1, Ordering::AcqRel) == 0 {
            let mut state = locked(&self.admission.state);
            if let Some(slot) = locked(&self.slot).take() {
                state.evictable.remove(&slot);
            }
        }
        RequestGuard(Arc::clone(self))
    }

    /// Completes when the connection must be closed with no request in progress: it was evicted
    /// to make room, or `deadline` passed without a first request head.
    pub async fn closed_early(&self, deadline: Duration) -> &'static str {
        let first_request = async {
            tokio::time::sleep(deadline).await;
            if self.started.load(Ordering::Acquire) {
                std::future::pending::<()>().await;
            }
        };
        let evicted = async {
            loop {
                self.evict.notified().await;
                // A request that began as the eviction was decided keeps the connection.
                if self.in_flight.load(Ordering::Acquire) == 0 {
                    return;
                }
            }
        };
        tokio::select! {
            () = evicted => "closed to make room: it had no request in progress",
            () = first_request => "closed: no request head within the header-read time",
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut state = locked(&self.admission.state);
        state.open = state.open.saturating_sub(1);
        if let Some(slot) = locked(&self.slot).take() {
            state.evictable.remove(&slot);
        }
    }
}

/// Marks a request in progress on its connection; dropping it makes the connection idle again
/// (and evictable, newest idle last) when it was the last one in progress.
#[derive(Debug)]
pub struct RequestGuard(Arc<Ticket>);

impl Drop for RequestGuard {
    fn drop(&mut self) {
        let ticket = &self.0;
        if ticket.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            let mut state = locked(&ticket.admission.state);
            let slot = (IDLE, state.next_seq);
            state.next_seq += 1;
            state.evictable.insert(slot, Arc::downgrade(ticket));
            *locked(&ticket.slot) = Some(slot);
        }
    }
}

/// A response body that holds its request's guard until it is fully sent or dropped.
pub struct Tracked<B> {
    body: B,
    _guard: RequestGuard,
}

impl<B> std::fmt::Debug for Tracked<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tracked").finish_non_exhaustive()
    }
}

impl<B> Tracked<B> {
    pub fn new(body: B, guard: RequestGuard) -> Self {
        Self { body, _guard: guard }
    }
}

impl<B: Body + Unpin> Body for Tracked<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notified(ticket: &Ticket) -> bool {
        let waker = std::task::Waker::noop();
        let mut context = Context::from_waker(waker);
        let future = std::pin::pin!(ticket.evict.notified());
        future.poll(&mut context).is_ready()
    }

    use std::future::Future as _;

    #[test]
    fn a_full_server_evicts_silent_then_idle_connections_and_refuses_when_all_are_busy() {
        let admission = Admission::new(2);
        let first = admission.admit().unwrap();
        let second = admission.admit().unwrap();
        let busy = second.request();
        // Full: the third takes the place of the first (silent), not of the second (busy).
        let third = admission.admit().unwrap();
        assert!(notified(&first));
        drop(first);
        assert_eq!(admission.open(), 2);
        let third_busy = third.request();
        // Both open connections are busy: a fourth is refused.
        assert!(admission.admit().is_none());
        // Once the second's response is sent it is idle, and the next newcomer takes its place.
        drop(busy);
        let fourth = admission.admit().unwrap();
        assert!(notified(&second));
        assert!(!notified(&third));
        drop((third_busy, fourth));
    }
}
