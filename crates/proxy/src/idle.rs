//! The downstream idle timeout: a connection with no request in flight and
//! nothing read or written for the whole timeout is closed, as Envoy's HTTP
//! connection manager does after its `idle_timeout` (1 h by default). A
//! client that opens connections and leaves them, or never sends a byte,
//! would otherwise hold the proxy's sockets and memory until it drains.
//!
//! One timer a connection, and it is not reset per request: it fires every
//! eighth of the timeout, and a tick that finds the connection quiet since
//! the one before counts towards the whole. A request costs a counter
//! increment; a connection is closed after between 1 and 1⅛ timeouts of quiet.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::{Instant, Sleep};

/// Ticks a timeout is made of.
const TICKS: u32 = 8;

pub struct Idle<'a> {
    /// Fires once a tick; `tokio::time::sleep(Idle::tick(timeout))`, pinned
    /// in the connection's future (no allocation).
    tick: Pin<&'a mut Sleep>,
    period: Duration,
    /// Consecutive ticks that found the connection quiet.
    quiet_ticks: u32,
    /// Polls of the connection, and their count at the last tick.
    polls: u32,
    polls_at_tick: u32,
    /// The timer holds this task's waker: until it fires, a poll need not
    /// poll it again (tokio's wakers are the task's own, whoever wakes it).
    armed: bool,
}

impl<'a> Idle<'a> {
    /// The period of `timeout`'s ticks, for the `Sleep` that `new` takes.
    pub fn tick(timeout: Duration) -> Duration {
        (timeout / TICKS).max(Duration::from_millis(1))
    }

    pub fn new(tick: Pin<&'a mut Sleep>, timeout: Duration) -> Self {
        Idle { tick, period: Self::tick(timeout), quiet_ticks: 0, polls: 0, polls_at_tick: 0, armed: false }
    }

    /// Before the connection's first bytes: resolves once the whole timeout
    /// has passed without them. Cancel-safe (the ticks counted are kept), so
    /// it can race each read.
    pub async fn expired(&mut self) {
        std::future::poll_fn(|cx| {
            loop {
                std::task::ready!(self.tick.as_mut().poll(cx));
                self.quiet_ticks += 1;
                if self.quiet_ticks >= TICKS {
                    return Poll::Ready(());
                }
                self.tick.as_mut().reset(Instant::now() + self.period);
            }
        })
        .await
    }

    /// Called on every poll of the serving connection, after it returned
    /// pending; true once it has been idle for the whole timeout. `busy`
    /// (asked at a tick only): a request of the connection is being handled.
    pub fn poll(&mut self, cx: &mut Context<'_>, busy: impl FnOnce() -> bool) -> bool {
        self.polls = self.polls.wrapping_add(1);
        if self.armed && !self.tick.is_elapsed() {
            return false;
        }
        self.armed = true;
        if self.tick.as_mut().poll(cx).is_pending() {
            return false;
        }
        // The tick's own wake-up is the one poll since the last tick of a
        // quiet connection.
        let quiet = self.polls.wrapping_sub(self.polls_at_tick) <= 1 && !busy();
        self.polls_at_tick = self.polls;
        self.quiet_ticks = if quiet { self.quiet_ticks + 1 } else { 0 };
        if self.quiet_ticks >= TICKS {
            return true;
        }
        self.tick.as_mut().reset(Instant::now() + self.period);
        // Leaves the waker with the timer again.
        let _ = self.tick.as_mut().poll(cx);
        false
    }
}
