//! A downstream connection's timeouts, on one timer a connection.
//!
//! - **Idle** (Envoy's HTTP connection manager `idle_timeout`, 1 h by
//!   default): no request in flight and nothing read or written for the
//!   whole timeout; on HTTP/2, no stream, whatever other frames come (as
//!   Envoy's: a client's keep-alive pings would otherwise hold an unused
//!   connection forever). A client that opens connections and leaves them,
//!   or never sends a byte, would otherwise hold the proxy's sockets and
//!   memory until it drains.
//! - **Request head** (nginx's `client_header_timeout`, 60 s by default;
//!   Envoy's `request_headers_timeout`, off there): an HTTP/1.1 request's
//!   head has been arriving for this long without ending. A client that
//!   sends a byte every few seconds (slowloris) is never idle, so only
//!   this closes it.
//!
//! The timer is not reset per request: it ticks (an eighth of the idle
//! timeout, a quarter of the head timeout if shorter), and each tick
//! compares the connection's counters with the last tick's. A request
//! costs a counter increment, a read that brings bytes another. A timeout
//! fires after between 1 and 1⅛ (head: 1¼) of itself.

use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::{Instant, Sleep};

/// What a connection has done, for its timeouts. Written
/// and read on the connection's own task only (hyper calls the service
/// there for both protocols), so a bump is a plain load and store.
#[derive(Default)]
pub struct Activity {
    /// Reads that brought bytes, on HTTP/1.1 (HTTP/2 has frames that are
    /// not requests: pings, window updates).
    pub reads: AtomicU32,
    /// Requests started.
    pub requests: AtomicU32,
}

impl Activity {
    pub fn bump(counter: &AtomicU32) {
        counter.store(counter.load(Ordering::Relaxed).wrapping_add(1), Ordering::Relaxed);
    }
}

/// Which timeout ran out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expired {
    Idle,
    RequestHead,
}

/// A connection's timeouts; `None` turns one off.
#[derive(Clone, Copy)]
pub struct Timeouts {
    pub idle: Option<Duration>,
    pub head: Option<Duration>,
}

impl Timeouts {
    /// The idle timeout alone (HTTP/2, TCP: no request heads to time).
    pub fn idle_only(self) -> Self {
        Timeouts { head: None, ..self }
    }

    /// The period of the ticks, for the `Sleep` that `Idle::new` takes;
    /// `None` when there is no timeout to watch.
    pub fn tick(&self) -> Option<Duration> {
        let idle = self.idle.map(|t| t / 8);
        let head = self.head.map(|t| t / 4);
        let p = match (idle, head) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => a.or(b)?,
        };
        Some(p.max(Duration::from_millis(1)))
    }
}

/// Ticks that make up `limit` (at least), or never.
fn ticks(limit: Option<Duration>, period: Duration) -> u32 {
    limit.map_or(u32::MAX, |l| l.as_nanos().div_ceil(period.as_nanos()).clamp(1, u32::MAX as u128 - 1) as u32)
}

pub struct Idle<'a> {
    /// Fires once a tick; `tokio::time::sleep(timeouts.tick())`, pinned in
    /// the connection's future (no allocation).
    tick: Pin<&'a mut Sleep>,
    timeouts: Timeouts,
    period: Duration,
    /// Ticks each timeout takes.
    idle_ticks: u32,
    head_ticks: u32,
    /// Consecutive ticks that found the connection quiet.
    quiet_ticks: u32,
    /// Ticks since bytes came in with no request starting since.
    pending_ticks: u32,
    /// The last tick saw a request.
    grace: bool,
    /// Only requests count as activity, not the connection's other polls
    /// (HTTP/2: pings, window updates, settings).
    requests_only: bool,
    /// Polls of the connection, and the counters at the last tick.
    polls: u32,
    polls_at_tick: u32,
    reads_at_tick: u32,
    requests_at_tick: u32,
    /// The timer holds this task's waker: until it fires, a poll need not
    /// poll it again (tokio's wakers are the task's own, whoever wakes it).
    armed: bool,
}

impl<'a> Idle<'a> {
    /// `tick`: a `tokio::time::sleep(timeouts.tick())`, not yet polled.
    /// `None` when there is no timeout to watch.
    pub fn new(tick: Pin<&'a mut Sleep>, timeouts: Timeouts) -> Option<Self> {
        let period = timeouts.tick()?;
        Some(Idle {
            tick,
            timeouts,
            period,
            idle_ticks: ticks(timeouts.idle, period),
            // One more: the first tick that sees the bytes may come just after them.
            head_ticks: ticks(timeouts.head, period).saturating_add(1),
            quiet_ticks: 0,
            pending_ticks: 0,
            grace: false,
            requests_only: false,
            polls: 0,
            polls_at_tick: 0,
            reads_at_tick: 0,
            requests_at_tick: 0,
            armed: false,
        })
    }

    /// For HTTP/2: the idle timeout alone, and only streams make the
    /// connection busy. Its pings, window updates and settings are bytes
    /// that start no request, so they neither count as a request's head
    /// nor keep the connection from being idle. `None` when that leaves
    /// nothing to watch.
    pub fn for_http2(self) -> Option<Self> {
        let mut idle = Idle::new(self.tick, self.timeouts.idle_only())?;
        idle.requests_only = true;
        Some(idle)
    }

    /// Before the connection's protocol is known: which timeout has run
    /// out, once one has. `started`: some of its first bytes have come (a
    /// client that trickles them, an HTTP/2 preface included, is a head
    /// that has not ended). Cancel-safe (the ticks counted are kept), so
    /// it can race each read.
    pub async fn expired(&mut self, started: bool) -> Expired {
        std::future::poll_fn(|cx| {
            loop {
                std::task::ready!(self.tick.as_mut().poll(cx));
                self.quiet_ticks += 1;
                if started {
                    self.pending_ticks += 1;
                    if self.pending_ticks >= self.head_ticks {
                        return Poll::Ready(Expired::RequestHead);
                    }
                }
                if self.quiet_ticks >= self.idle_ticks {
                    return Poll::Ready(Expired::Idle);
                }
                self.tick.as_mut().reset(Instant::now() + self.period);
            }
        })
        .await
    }

    /// Called on every poll of the serving connection, after it returned
    /// pending: which timeout has run out, if one has. `busy` (asked at a
    /// tick, and until the timer is armed): a request of the connection is
    /// being handled.
    pub fn poll(&mut self, cx: &mut Context<'_>, activity: &Activity, busy: impl Fn() -> bool) -> Option<Expired> {
        self.polls = self.polls.wrapping_add(1);
        if !self.armed {
            // Neither timeout runs while a request is in flight, so the timer
            // waits for a poll without one: a connection that serves one
            // request and closes never registers it.
            if busy() {
                return None;
            }
            self.armed = true;
            if self.tick.as_mut().poll(cx).is_pending() {
                return None;
            }
        } else if !self.tick.is_elapsed() {
            return None;
        }
        let busy = busy();
        let (reads, requests) = (activity.reads.load(Ordering::Relaxed), activity.requests.load(Ordering::Relaxed));
        let quiet = !busy
            && if self.requests_only {
                requests == self.requests_at_tick
            } else {
                // The tick's own wake-up is the one poll since the last tick
                // of a quiet connection.
                self.polls.wrapping_sub(self.polls_at_tick) <= 1
            };
        self.quiet_ticks = if quiet { self.quiet_ticks + 1 } else { 0 };
        // A head is pending from the first bytes after the last request
        // started, until the next one starts. Bytes read in the tick after
        // one with a request are that request's (the end of its body).
        if busy || requests != self.requests_at_tick {
            self.pending_ticks = 0;
            self.grace = true;
        } else {
            if self.pending_ticks > 0 || (reads != self.reads_at_tick && !self.grace) {
                self.pending_ticks += 1;
            }
            self.grace = false;
        }
        (self.polls_at_tick, self.reads_at_tick, self.requests_at_tick) = (self.polls, reads, requests);
        if self.pending_ticks >= self.head_ticks {
            return Some(Expired::RequestHead);
        }
        if self.quiet_ticks >= self.idle_ticks {
            return Some(Expired::Idle);
        }
        self.tick.as_mut().reset(Instant::now() + self.period);
        // Leaves the waker with the timer again.
        let _ = self.tick.as_mut().poll(cx);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_the_shorter_timeouts_share() {
        let s = Duration::from_secs;
        assert_eq!(Timeouts { idle: Some(s(3600)), head: Some(s(60)) }.tick(), Some(s(15)));
        assert_eq!(Timeouts { idle: Some(s(8)), head: Some(s(60)) }.tick(), Some(s(1)));
        assert_eq!(Timeouts { idle: Some(s(8)), head: None }.tick(), Some(s(1)));
        assert_eq!(Timeouts { idle: None, head: None }.tick(), None);
        assert_eq!(ticks(Some(s(3600)), s(15)), 240);
        assert_eq!(ticks(None, s(15)), u32::MAX);
    }

    #[tokio::test]
    async fn http2_ticks_for_the_idle_timeout_alone_and_counts_requests_only() {
        let s = Duration::from_secs;
        let both = Timeouts { idle: Some(s(3600)), head: Some(s(60)) };
        let sleep = std::pin::pin!(tokio::time::sleep(s(15)));
        let idle = Idle::new(sleep, both).unwrap().for_http2().unwrap();
        assert_eq!((idle.period, idle.idle_ticks, idle.head_ticks), (s(450), 8, u32::MAX));
        assert!(idle.requests_only);
        let head_only = Timeouts { idle: None, head: Some(s(60)) };
        let sleep = std::pin::pin!(tokio::time::sleep(s(15)));
        assert!(Idle::new(sleep, head_only).unwrap().for_http2().is_none(), "nothing left to watch");
    }

    /// Polls a connection's `Idle` every half-second for 20 s, as a client
    /// that pings does (bumping `requests` instead at every `request_every`
    /// polls); what ran out, if anything.
    async fn poll_for_20s(idle: &mut Idle<'_>, request_every: Option<u32>) -> Option<Expired> {
        let activity = Activity::default();
        let mut cx = Context::from_waker(std::task::Waker::noop());
        for i in 1..=40 {
            tokio::time::advance(Duration::from_millis(500)).await;
            if request_every.is_some_and(|n| i % n == 0) {
                Activity::bump(&activity.requests);
            }
            if let Some(e) = idle.poll(&mut cx, &activity, || false) {
                return Some(e);
            }
        }
        None
    }

    #[tokio::test(start_paused = true)]
    async fn pings_keep_no_http2_connection_from_idling_but_requests_do() {
        let timeouts = Timeouts { idle: Some(Duration::from_secs(8)), head: None };
        let period = timeouts.tick().unwrap();
        let (a, b, c) = (tokio::time::sleep(period), tokio::time::sleep(period), tokio::time::sleep(period));
        let (a, b, c) = (std::pin::pin!(a), std::pin::pin!(b), std::pin::pin!(c));
        let mut h1 = Idle::new(a, timeouts).unwrap();
        assert_eq!(poll_for_20s(&mut h1, None).await, None, "HTTP/1.1: polls are bytes, so not idle");
        let mut h2 = Idle::new(b, timeouts).unwrap().for_http2().unwrap();
        assert_eq!(poll_for_20s(&mut h2, None).await, Some(Expired::Idle), "HTTP/2: pings alone leave it idle");
        let mut h2 = Idle::new(c, timeouts).unwrap().for_http2().unwrap();
        assert_eq!(poll_for_20s(&mut h2, Some(8)).await, None, "HTTP/2: a request every 4 s keeps it");
    }
}
