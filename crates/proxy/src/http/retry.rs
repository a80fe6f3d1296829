//! Retries as a state machine: told what each attempt came to, it says
//! "retry after this backoff" or "done", and keeps what that needs (the
//! count, the hosts tried, the cluster's retry budget place). The
//! forwarder's loop only runs attempts (`forward`).
//!
//! Envoy's rules: a route's `retryOn` conditions and `numRetries`; a
//! backoff of a random time in [0, base·2^(n-1)], capped at 10·base (base
//! 25 ms unless set); a different host on each retry where there is one;
//! a retry takes a place under the cluster's retry limit or budget. A
//! retry wanted when none is left marks the request URX, one the budget
//! refuses UO. A request the host never saw (the keep-alive race) is sent
//! again once for free, policy or not.

use super::error::{ErrorKind, ProxyError};
use super::flags::Flags;
use crate::config::route::{RetryOn, RetryPolicy};
use crate::upstream::limits::{Limits, RetryToken};
use rand::Rng;
use std::sync::Arc;
use std::time::Duration;

/// Envoy's default base interval between retries.
const DEFAULT_BASE: Duration = Duration::from_millis(25);

/// What one attempt came to.
#[derive(Debug, Clone, Copy)]
pub enum Attempted<'a> {
    /// The host answered: its status, and its headers for a trailers-only
    /// gRPC status (read only when a retry policy asks for one).
    Response {
        status: u16,
        headers: &'a http::HeaderMap,
    },
    Failed(&'a ProxyError),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Send again, after waiting this long.
    Retry(Duration),
    /// The attempt's outcome is the request's.
    Done,
}

pub struct Retries<'a> {
    /// None when the route does not retry, or the body cannot be replayed.
    policy: Option<&'a RetryPolicy>,
    /// The request can be sent again (its body is buffered or empty).
    replayable: bool,
    limits: Option<&'a Arc<Limits>>,
    retries: u32,
    /// The place of the retry in flight under the cluster's budget.
    token: Option<RetryToken>,
    /// Hosts (indexes in the endpoint set) tried so far; on the stack
    /// unless a route retries more than thrice.
    tried: smallvec::SmallVec<[usize; 4]>,
    flags: Flags,
    /// When the attempts began, in `clock_ms` (kept here, in room the
    /// request's future has anyway).
    began_ms: u32,
}

/// Milliseconds since the first call (wrapping after 49 days: differences
/// stay right). std's clock: a reported figure, not timing logic.
#[allow(clippy::disallowed_types)]
fn clock_ms() -> u32 {
    static EPOCH: std::sync::LazyLock<std::time::Instant> = std::sync::LazyLock::new(std::time::Instant::now);
    EPOCH.elapsed().as_millis() as u32
}

impl<'a> Retries<'a> {
    pub fn new(policy: Option<&'a RetryPolicy>, replayable: bool, limits: Option<&'a Arc<Limits>>) -> Self {
        Retries {
            policy: policy.filter(|_| replayable),
            replayable,
            limits,
            retries: 0,
            token: None,
            tried: smallvec::SmallVec::new(),
            flags: Flags::NONE,
            began_ms: clock_ms(),
        }
    }

    /// Milliseconds since the attempts began: Envoy's
    /// `x-envoy-upstream-service-time` when the response's headers arrive.
    pub fn service_ms(&self) -> u32 {
        clock_ms().wrapping_sub(self.began_ms)
    }

    pub fn per_try_timeout(&self) -> Option<Duration> {
        self.policy.and_then(|p| p.per_try_timeout)
    }

    /// Notes the host an attempt goes to.
    pub fn attempt(&mut self, host: usize) {
        self.tried.push(host);
    }

    /// The hosts tried so far, which a retry's pick avoids.
    pub fn tried(&self) -> &[usize] {
        &self.tried
    }

    /// URX when retries ran out, UO when the budget refused one.
    pub fn flags(&self) -> Flags {
        self.flags
    }

    /// What to do after an attempt.
    pub fn decide(&mut self, outcome: Attempted<'_>) -> Decision {
        let wanted = match outcome {
            Attempted::Response { status, headers } => {
                self.policy.is_some_and(|p| retriable_status(p, status, headers))
            }
            Attempted::Failed(e) => {
                if e.kind() == ErrorKind::NotSent && self.replayable && self.retries == 0 {
                    // The keep-alive race's one free resend: not a retry.
                    self.retries = 1;
                    return Decision::Retry(self.backoff());
                }
                let on = self.policy.map_or(RetryOn::default(), |p| p.retry_on);
                self.policy.is_some() && e.retriable(&on)
            }
        };
        if !wanted {
            return Decision::Done;
        }
        if self.retries >= self.policy.map_or(0, |p| p.num_retries) {
            self.flags |= Flags::RETRY_LIMIT;
            return Decision::Done;
        }
        if let Some(l) = self.limits {
            self.token = l.retry();
            if self.token.is_none() {
                self.flags |= Flags::OVERFLOW;
                return Decision::Done;
            }
        }
        self.retries += 1;
        Decision::Retry(self.backoff())
    }

    fn backoff(&self) -> Duration {
        let base = self.policy.map_or(DEFAULT_BASE, |p| p.base_interval);
        backoff(base, self.retries)
    }
}

/// Retry `n` waits a random time in [0, base·2^(n-1)], capped at 10·base.
fn backoff(base: Duration, n: u32) -> Duration {
    let cap = base.saturating_mul(1 << n.saturating_sub(1).min(10)).min(base * 10);
    Duration::from_micros(rand::rng().random_range(0..=cap.as_micros() as u64))
}

fn retriable_status(p: &RetryPolicy, status: u16, headers: &http::HeaderMap) -> bool {
    let on = &p.retry_on;
    if (on.s5xx && status >= 500)
        || (on.gateway_error && matches!(status, 502..=504))
        || (on.retriable_4xx && status == 409)
        || (on.retriable_status_codes && p.statuses.contains(&status))
    {
        return true;
    }
    if on.grpc == [false; 5] {
        return false;
    }
    let grpc = super::record::grpc_code_in(headers);
    matches!(
        (grpc, on.grpc),
        (Some(1), [true, ..])
            | (Some(4), [_, true, ..])
            | (Some(8), [_, _, true, ..])
            | (Some(14), [_, _, _, true, _])
            | (Some(13), [.., true])
    )
}

#[cfg(test)]
#[path = "retry_tests.rs"]
mod tests;
