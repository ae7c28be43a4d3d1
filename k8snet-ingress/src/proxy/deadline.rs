//! A deadline timer that a connection reuses for its requests.
//!
//! Timing each request with a fresh `tokio::time::timeout` registers a
//! timer entry and removes it again, per request. A connection's requests
//! follow one another (HTTP/1.1), and each deadline is later than the one
//! before, so one timer per connection does: it stays registered with an
//! older (earlier) deadline, and is moved forward only when it fires
//! before the current request's deadline, at most once per timeout period.

use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};

use tokio::time::{Instant, Sleep};

/// A connection's reusable timer (taken by one request at a time; a
/// concurrent request, as on HTTP/2, makes its own).
#[derive(Debug, Default)]
pub(crate) struct TimerSlot(Mutex<Option<Pin<Box<Sleep>>>>);

impl TimerSlot {
    /// The connection's timer if no other request holds it, else a new one.
    pub(crate) fn take(&self, deadline: Instant) -> LazyDeadline {
        let sleep = self
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .unwrap_or_else(|| Box::pin(tokio::time::sleep_until(deadline)));
        LazyDeadline { sleep, deadline }
    }

    /// Gives a timer back for the next request.
    pub(crate) fn put(&self, timer: LazyDeadline) {
        let mut slot = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            *slot = Some(timer.sleep);
        }
    }
}

/// Ready once `deadline` has passed.
#[derive(Debug)]
pub(crate) struct LazyDeadline {
    sleep: Pin<Box<Sleep>>,
    deadline: Instant,
}

impl LazyDeadline {
    /// A timer of its own (not taken from a slot).
    pub(crate) fn new(deadline: Instant) -> Self {
        Self {
            sleep: Box::pin(tokio::time::sleep_until(deadline)),
            deadline,
        }
    }

    /// Moves the deadline (later ones cost nothing until the timer fires).
    pub(crate) fn set(&mut self, deadline: Instant) {
        self.deadline = deadline;
    }

    pub(crate) fn poll_expired(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.sleep.deadline() > self.deadline {
            self.sleep.as_mut().reset(self.deadline);
        }
        loop {
            match self.sleep.as_mut().poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(()) if Instant::now() >= self.deadline => return Poll::Ready(()),
                // It fired for an earlier request's deadline: move it on.
                Poll::Ready(()) => self.sleep.as_mut().reset(self.deadline),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn expired(d: &mut LazyDeadline) -> bool {
        let waker = std::task::Waker::noop();
        d.poll_expired(&mut Context::from_waker(waker)).is_ready()
    }

    #[tokio::test(start_paused = true)]
    async fn a_reused_timer_fires_at_each_requests_own_deadline() {
        let slot = TimerSlot::default();
        let start = Instant::now();
        // The first request: 10 s, and it finishes after 4 s.
        let mut t = slot.take(start + Duration::from_secs(10));
        assert!(!expired(&mut t));
        tokio::time::advance(Duration::from_secs(4)).await;
        assert!(!expired(&mut t));
        slot.put(t);
        // The next one gets the same timer with a later deadline: it must
        // not fire at the first request's deadline.
        let mut t = slot.take(Instant::now() + Duration::from_secs(10));
        tokio::time::advance(Duration::from_secs(7)).await; // 11 s from the start
        assert!(!expired(&mut t), "fired at the previous request's deadline");
        tokio::time::advance(Duration::from_secs(3)).await; // 14 s: its own
        assert!(expired(&mut t));
        slot.put(t);
        // A shorter deadline than the timer holds is honoured too.
        let mut t = slot.take(Instant::now() + Duration::from_secs(20));
        assert!(!expired(&mut t));
        slot.put(t);
        let mut t = slot.take(Instant::now() + Duration::from_secs(1));
        assert!(!expired(&mut t));
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(expired(&mut t));
    }

    #[tokio::test(start_paused = true)]
    async fn a_held_timer_makes_concurrent_requests_use_their_own() {
        let slot = TimerSlot::default();
        let now = Instant::now();
        let mut a = slot.take(now + Duration::from_secs(5));
        let mut b = slot.take(now + Duration::from_secs(2));
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(expired(&mut b));
        assert!(!expired(&mut a));
        slot.put(b);
        slot.put(a);
        tokio::time::advance(Duration::from_secs(3)).await;
        let mut c = slot.take(Instant::now());
        assert!(expired(&mut c));
    }
}
