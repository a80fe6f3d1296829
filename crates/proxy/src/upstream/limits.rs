//! Circuit breakers: admission against a cluster's thresholds (Envoy's `circuit_breakers`,
//! Istio's `connectionPool` and `retryBudget`). Over a limit, a request is
//! answered 503 with flag `UO` at once; only a bounded number of requests
//! (`max_pending_requests`) ever wait, and only for an HTTP/1.1 connection.
//!
//! - `max_requests`: requests in flight to the cluster (any protocol);
//! - `max_connections`: HTTP/1.1 connections in use at once (each carries
//!   one request; idle pooled connections do not count);
//! - `max_pending_requests`: requests waiting for one of those connections;
//! - `max_retries`: retries in flight, or with a `retry_budget` the larger
//!   of `min_retry_concurrency` and `budget_percent` of active requests.
//!
//! A cluster without thresholds (or only "unlimited" ones, as Istio writes
//! for unset fields) has no `Limits` and pays nothing per request.

use crate::config::limits::Thresholds;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

#[derive(Debug)]
pub struct Limits {
    max_requests: u32,
    max_pending: u32,
    max_retries: u32,
    /// (percent, minimum concurrency).
    budget: Option<(f64, u32)>,
    connections: Option<Arc<Semaphore>>,
    active: AtomicU32,
    pending: AtomicU32,
    retries: AtomicU32,
    /// Requests and retries refused, for `/clusters`.
    pub overflows: AtomicU64,
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overflow {
    Requests,
    Pending,
}

impl std::fmt::Display for Overflow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Overflow::Requests => {
                "too many requests in flight; raise connectionPool.http.http2MaxRequests in the service's DestinationRule, or add instances"
            }
            Overflow::Pending => {
                "too many requests waiting for a connection; raise connectionPool.tcp.maxConnections or connectionPool.http.http1MaxPendingRequests in the service's DestinationRule, or add instances"
            }
        })
    }
}

/// A request admitted to the cluster; releases its place when dropped
/// (the proxy keeps it until the response body ends).
#[derive(Debug)]
pub struct Admission {
    limits: Arc<Limits>,
    _connection: Option<OwnedSemaphorePermit>,
}

impl Drop for Admission {
    fn drop(&mut self) {
        self.limits.active.fetch_sub(1, Relaxed);
    }
}

/// A retry in flight.
#[derive(Debug)]
pub struct RetryToken(Arc<Limits>);

impl Drop for RetryToken {
    fn drop(&mut self) {
        self.0.retries.fetch_sub(1, Relaxed);
    }
}

/// Counts a waiting request while it waits (also if the wait is cancelled).
struct Waiting<'a>(&'a AtomicU32);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

impl Limits {
    /// Counters for `t`'s thresholds; requests in flight are counted here,
    /// so a cluster's new version keeps the one its old version had.
    pub fn new(t: &Thresholds) -> Arc<Limits> {
        Arc::new(Limits {
            max_requests: t.max_requests,
            max_pending: t.max_pending,
            max_retries: t.max_retries,
            budget: t.budget,
            connections: (t.max_connections != u32::MAX).then(|| Arc::new(Semaphore::new(t.max_connections as usize))),
            active: AtomicU32::new(0),
            pending: AtomicU32::new(0),
            retries: AtomicU32::new(0),
            overflows: AtomicU64::new(0),
        })
    }

    fn overflow<T>(&self, o: Overflow) -> Result<T, Overflow> {
        self.overflows.fetch_add(1, Relaxed);
        Err(o)
    }

    /// Admits a request, waiting for an HTTP/1.1 connection if it must and
    /// may; refuses at once otherwise.
    pub async fn admit(self: &Arc<Self>, http1: bool) -> Result<Admission, Overflow> {
        if self.active.fetch_add(1, Relaxed) >= self.max_requests {
            self.active.fetch_sub(1, Relaxed);
            return self.overflow(Overflow::Requests);
        }
        let mut admission = Admission { limits: self.clone(), _connection: None };
        let Some(sem) = self.connections.as_ref().filter(|_| http1) else { return Ok(admission) };
        match sem.clone().try_acquire_owned() {
            Ok(p) => admission._connection = Some(p),
            Err(_) => {
                if self.pending.fetch_add(1, Relaxed) >= self.max_pending {
                    self.pending.fetch_sub(1, Relaxed);
                    return self.overflow(Overflow::Pending);
                }
                let _waiting = Waiting(&self.pending);
                admission._connection = sem.clone().acquire_owned().await.ok();
            }
        }
        Ok(admission)
    }

    /// A place for one more retry, or None when retries are at their limit.
    pub fn retry(self: &Arc<Self>) -> Option<RetryToken> {
        let max = match self.budget {
            Some((percent, min)) => {
                let active = self.active.load(Relaxed) + self.pending.load(Relaxed);
                min.max((active as f64 * percent / 100.0) as u32)
            }
            None => self.max_retries,
        };
        if self.retries.fetch_add(1, Relaxed) >= max {
            self.retries.fetch_sub(1, Relaxed);
            self.overflows.fetch_add(1, Relaxed);
            return None;
        }
        Some(RetryToken(self.clone()))
    }

    pub fn active(&self) -> u32 {
        self.active.load(Relaxed)
    }

    pub fn pending(&self) -> u32 {
        self.pending.load(Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from_proto(c: &Cluster) -> Option<Arc<Limits>> {
        crate::config::limits::Thresholds::from_proto(c).map(|t| Limits::new(&t))
    }
    use envoy_types::pb::envoy::config::cluster::v3::{CircuitBreakers, Cluster, circuit_breakers::Thresholds};
    use envoy_types::pb::google::protobuf::UInt32Value;

    fn limits(conns: u32, pending: u32, requests: u32, retries: u32) -> Arc<Limits> {
        let v = |n| Some(UInt32Value { value: n });
        let c = Cluster {
            circuit_breakers: Some(CircuitBreakers {
                thresholds: vec![Thresholds {
                    max_connections: v(conns),
                    max_pending_requests: v(pending),
                    max_requests: v(requests),
                    max_retries: v(retries),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        };
        from_proto(&c).unwrap()
    }

    #[test]
    fn unlimited_thresholds_cost_nothing() {
        let max = u32::MAX;
        let c = Cluster {
            circuit_breakers: Some(CircuitBreakers {
                thresholds: vec![Thresholds {
                    max_connections: Some(UInt32Value { value: max }),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(from_proto(&c).is_none());
        assert!(from_proto(&Cluster::default()).is_none());
    }

    #[tokio::test]
    async fn requests_over_the_limit_are_refused_and_places_come_back() {
        let l = limits(u32::MAX, u32::MAX, 2, u32::MAX);
        let a = l.admit(false).await.unwrap();
        let _b = l.admit(false).await.unwrap();
        assert_eq!(l.admit(false).await.unwrap_err(), Overflow::Requests);
        drop(a);
        assert!(l.admit(false).await.is_ok());
        assert_eq!(l.overflows.load(Relaxed), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn http1_waits_for_a_connection_up_to_the_pending_limit() {
        let l = limits(1, 1, u32::MAX, u32::MAX);
        let first = l.admit(true).await.unwrap();
        // The second waits (pending), the third is refused at once.
        let l2 = l.clone();
        let waiter = tokio::spawn(async move { l2.admit(true).await.map(|_| ()) });
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        assert_eq!(l.pending(), 1);
        assert_eq!(l.admit(true).await.unwrap_err(), Overflow::Pending);
        // HTTP/2 requests do not need a connection place.
        assert!(l.admit(false).await.is_ok());
        drop(first);
        waiter.await.unwrap().unwrap();
        assert_eq!(l.pending(), 0);
    }

    #[tokio::test]
    async fn retries_are_capped_by_count_or_by_budget() {
        let l = limits(u32::MAX, u32::MAX, u32::MAX, 1);
        let t = l.retry().unwrap();
        assert!(l.retry().is_none());
        drop(t);
        assert!(l.retry().is_some());
        // Budget 20% with a floor of 3: 3 retries at 10 active, 4 at 20.
        let mut b = Arc::try_unwrap(limits(u32::MAX, u32::MAX, u32::MAX, 1)).unwrap();
        b.budget = Some((20.0, 3));
        let b = Arc::new(b);
        let mut held: Vec<_> = Vec::new();
        for _ in 0..10 {
            held.push(b.admit(false).await.unwrap());
        }
        let r: Vec<_> = (0..5).filter_map(|_| b.retry()).collect();
        assert_eq!(r.len(), 3);
        for _ in 0..10 {
            held.push(b.admit(false).await.unwrap());
        }
        let fourth = b.retry();
        assert!(fourth.is_some(), "20% of 20 active is 4");
        assert!(b.retry().is_none());
    }
}
