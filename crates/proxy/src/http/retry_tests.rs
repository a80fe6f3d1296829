//! The retry state machine on tokio's paused clock: each `retryOn`
//! condition, the count and the budget, backoff bounds, per-try timeouts
//! and a different host on each retry.

use super::*;
use crate::config::balance::{DEFAULT_OVERPROVISIONING, LbKind, SetPolicy};
use crate::config::limits::Thresholds;
use crate::upstream::endpoint::Endpoint;
use crate::upstream::pool::EndpointPool;
use crate::upstream::set::EndpointSet;
use tokio::time::Instant;

fn policy(on: &str, n: u32) -> RetryPolicy {
    RetryPolicy {
        retry_on: RetryOn::parse(on).0,
        num_retries: n,
        per_try_timeout: None,
        statuses: vec![418],
        base_interval: Duration::from_millis(25),
        unsupported: Vec::new(),
        other_priorities: false,
    }
}

static NO_HEADERS: std::sync::LazyLock<http::HeaderMap> = std::sync::LazyLock::new(http::HeaderMap::new);

fn status(s: u16) -> Attempted<'static> {
    Attempted::Response { status: s, headers: &NO_HEADERS }
}

/// A trailers-only gRPC answer with `code` (leaked: a test's few bytes).
fn grpc(code: u8) -> Attempted<'static> {
    let mut h = http::HeaderMap::new();
    h.insert("grpc-status", u32::from(code).into());
    Attempted::Response { status: 200, headers: Box::leak(Box::new(h)) }
}

/// Circuit-breaker thresholds with only a retry limit.
fn retry_limit(max_retries: u32) -> Arc<Limits> {
    Limits::new(&Thresholds {
        max_connections: u32::MAX,
        max_pending: u32::MAX,
        max_requests: u32::MAX,
        max_retries,
        budget: None,
    })
}

fn failed(k: ErrorKind) -> ProxyError {
    ProxyError::new(k, "test")
}

/// Whether one attempt with `outcome` under `on` is retried.
fn retried(on: &str, outcome: Attempted) -> bool {
    let p = policy(on, 1);
    matches!(Retries::new(Some(&p), true, None).decide(outcome), Decision::Retry(_))
}

#[test]
fn each_retry_on_condition_retries_what_it_names_and_nothing_else() {
    assert!(retried("5xx", status(500)) && retried("5xx", status(503)));
    assert!(!retried("5xx", status(404)) && !retried("5xx", status(200)));
    assert!(retried("gateway-error", status(502)) && retried("gateway-error", status(504)));
    assert!(!retried("gateway-error", status(500)));
    assert!(retried("retriable-4xx", status(409)) && !retried("retriable-4xx", status(404)));
    assert!(retried("retriable-status-codes", status(418)) && !retried("retriable-status-codes", status(500)));
    for (name, code) in
        [("cancelled", 1), ("deadline-exceeded", 4), ("resource-exhausted", 8), ("unavailable", 14), ("internal", 13)]
    {
        assert!(retried(name, grpc(code)), "{name}");
        assert!(!retried(name, grpc(if code == 1 { 2 } else { 1 })), "{name} only");
        assert!(!retried("5xx", grpc(code)), "5xx is not a gRPC status");
    }
    let connect = failed(ErrorKind::ConnectFailure);
    assert!(retried("connect-failure", Attempted::Failed(&connect)));
    assert!(!retried("5xx", Attempted::Failed(&connect)));
    let reset = failed(ErrorKind::UpstreamReset);
    assert!(retried("reset", Attempted::Failed(&reset)) && retried("refused-stream", Attempted::Failed(&reset)));
    assert!(!retried("connect-failure", Attempted::Failed(&reset)));
    let per_try = failed(ErrorKind::PerTryTimeout);
    for on in ["5xx", "gateway-error", "reset"] {
        assert!(retried(on, Attempted::Failed(&per_try)), "{on}");
    }
    assert!(!retried("connect-failure", Attempted::Failed(&per_try)));
    for k in [ErrorKind::NoHealthyUpstream, ErrorKind::Overflow, ErrorKind::Timeout] {
        assert!(!retried("5xx,gateway-error,reset,connect-failure", Attempted::Failed(&failed(k))), "{k:?}");
    }
}

#[test]
fn retries_stop_at_the_count_and_say_so() {
    let p = policy("5xx", 2);
    let mut r = Retries::new(Some(&p), true, None);
    assert!(matches!(r.decide(status(503)), Decision::Retry(_)));
    assert!(matches!(r.decide(status(503)), Decision::Retry(_)));
    assert_eq!(r.decide(status(503)), Decision::Done);
    assert_eq!(r.flags(), Flags::RETRY_LIMIT);
    // An answer no condition covers ends it without a flag.
    let mut r = Retries::new(Some(&p), true, None);
    assert_eq!(r.decide(status(404)), Decision::Done);
    assert_eq!(r.flags(), Flags::NONE);
    // URX joins the failure's own flag, as Envoy reports it.
    let p = policy("connect-failure", 0);
    let mut r = Retries::new(Some(&p), true, None);
    let e = failed(ErrorKind::ConnectFailure);
    assert_eq!(r.decide(Attempted::Failed(&e)), Decision::Done);
    assert_eq!((e.flags() | r.flags()).as_str(), "UF,URX");
}

#[test]
fn a_body_that_cannot_be_replayed_is_never_retried() {
    let p = policy("5xx,reset", 3);
    let mut r = Retries::new(Some(&p), false, None);
    assert_eq!(r.decide(status(503)), Decision::Done);
    assert_eq!(r.decide(Attempted::Failed(&failed(ErrorKind::NotSent))), Decision::Done);
    assert_eq!(r.flags(), Flags::NONE);
}

#[test]
fn a_request_the_host_never_saw_is_resent_once_for_free() {
    let not_sent = failed(ErrorKind::NotSent);
    // No retry policy at all: one resend, then the failure stands.
    let mut r = Retries::new(None, true, None);
    assert!(matches!(r.decide(Attempted::Failed(&not_sent)), Decision::Retry(_)));
    assert_eq!(r.decide(Attempted::Failed(&not_sent)), Decision::Done);
    assert_eq!(r.flags(), Flags::NONE, "no policy, no retry limit to exceed");
    // The free resend takes no budget place.
    let limits = retry_limit(0);
    let p = policy("5xx", 1);
    let mut r = Retries::new(Some(&p), true, Some(&limits));
    assert!(matches!(r.decide(Attempted::Failed(&not_sent)), Decision::Retry(_)));
    assert_eq!(limits.overflows.load(std::sync::atomic::Ordering::Relaxed), 0);
}

#[test]
fn the_budget_refuses_retries_beyond_it() {
    let limits = retry_limit(1);
    let p = policy("5xx", 5);
    let mut first = Retries::new(Some(&p), true, Some(&limits));
    assert!(matches!(first.decide(status(503)), Decision::Retry(_)), "the one place");
    let mut second = Retries::new(Some(&p), true, Some(&limits));
    assert_eq!(second.decide(status(503)), Decision::Done, "no place while the first retry is in flight");
    assert_eq!(second.flags(), Flags::OVERFLOW);
    drop(first);
    let mut third = Retries::new(Some(&p), true, Some(&limits));
    assert!(matches!(third.decide(status(503)), Decision::Retry(_)), "the place came back");
}

#[test]
fn backoff_stays_within_envoys_bounds() {
    let base = Duration::from_millis(25);
    for n in 1..=12 {
        let cap = (base * 2u32.pow(n - 1)).min(base * 10);
        let waits: Vec<Duration> = (0..200).map(|_| backoff(base, n)).collect();
        assert!(waits.iter().all(|w| *w <= cap), "retry {n}: over {cap:?}");
        assert!(waits.iter().any(|w| *w > cap / 2), "retry {n}: jitter spans the range");
    }
}

#[tokio::test(start_paused = true)]
async fn a_try_that_times_out_is_retried_after_its_backoff() {
    let mut p = policy("5xx", 1);
    p.per_try_timeout = Some(Duration::from_millis(100));
    let mut r = Retries::new(Some(&p), true, None);
    let start = Instant::now();
    let per_try = r.per_try_timeout().expect("per-try timeout");
    // An upstream that never answers.
    let attempt = tokio::time::timeout(per_try, std::future::pending::<()>()).await;
    assert!(attempt.is_err());
    let e = ProxyError::new(ErrorKind::PerTryTimeout, "per-try timeout");
    let Decision::Retry(wait) = r.decide(Attempted::Failed(&e)) else { panic!("retried") };
    tokio::time::sleep(wait).await;
    let elapsed = start.elapsed();
    assert!(elapsed >= Duration::from_millis(100) && elapsed <= Duration::from_millis(125), "{elapsed:?}");
    // The second try times out too: retries are spent.
    assert!(tokio::time::timeout(per_try, std::future::pending::<()>()).await.is_err());
    assert_eq!(r.decide(Attempted::Failed(&e)), Decision::Done);
    assert!((e.flags() | r.flags()).contains(Flags::TIMEOUT | Flags::RETRY_LIMIT));
}

#[test]
fn each_retry_goes_to_a_host_not_tried_yet() {
    let endpoints = (0..3)
        .map(|i| {
            let addr = std::net::SocketAddr::from(([127, 0, 0, 1], 3000 + i));
            Arc::new(Endpoint::new(addr, 1, "w".into(), "ns".into(), "".into(), Arc::new(EndpointPool::new(addr))))
        })
        .collect();
    let kind = SetPolicy { kind: LbKind::RoundRobin, panic_threshold: 50, locality_weighted: false, warmup: None };
    let set = EndpointSet::new(endpoints, &kind, DEFAULT_OVERPROVISIONING, Instant::now());
    let p = policy("connect-failure", 5);
    let mut r = Retries::new(Some(&p), true, None);
    let e = failed(ErrorKind::ConnectFailure);
    let mut seen = Vec::new();
    for _ in 0..3 {
        let i = set.pick(None, r.tried(), false).expect("a host");
        assert!(!seen.contains(&i), "host {i} tried twice");
        seen.push(i);
        r.attempt(i);
        assert!(matches!(r.decide(Attempted::Failed(&e)), Decision::Retry(_)));
    }
    assert_eq!(seen.len(), 3);
}
