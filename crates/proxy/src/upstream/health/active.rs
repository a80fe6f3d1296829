//! Active health checks: every `interval` (plus up to `jitter`), each host
//! of the cluster is probed on a fresh connection, HTTP GET or TCP connect,
//! within `timeout`.
//!
//! - A new host starts as pending and is not picked until its first check
//!   passes (or everything is pending, when the cluster panics to all).
//! - A host goes out after `unhealthy_threshold` failures in a row and comes
//!   back after `healthy_threshold` passes in a row, as in Envoy.

use super::{HostHealth, flag};
use crate::config::health_check::{HealthCheckCfg, Probe};
use crate::upstream::cluster::Cluster;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use rand::Rng;
use std::net::SocketAddr;
use std::sync::Weak;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

/// Folds one result into the host's state; true when its availability changed.
pub fn apply(h: &HostHealth, passed: bool, cfg: &HealthCheckCfg) -> bool {
    let before = h.available();
    if passed {
        h.hc_failures.store(0, Relaxed);
        let n = h.hc_passes.fetch_add(1, Relaxed) + 1;
        if h.flags() & flag::PENDING_ACTIVE_HC != 0 {
            // A host never checked before needs one pass (Envoy does the same).
            h.set(flag::PENDING_ACTIVE_HC | flag::FAILED_ACTIVE_HC, false);
        } else if n >= cfg.healthy_threshold {
            h.set(flag::FAILED_ACTIVE_HC, false);
        }
    } else {
        h.hc_passes.store(0, Relaxed);
        let n = h.hc_failures.fetch_add(1, Relaxed) + 1;
        if h.flags() & flag::PENDING_ACTIVE_HC != 0 || n >= cfg.unhealthy_threshold {
            if h.set(flag::FAILED_ACTIVE_HC, true) {
                *h.reason.lock() = "active_health_check";
            }
            h.set(flag::PENDING_ACTIVE_HC, false);
        }
    }
    before != h.available()
}

/// One probe of `addr`: true when healthy.
pub async fn probe(addr: SocketAddr, cfg: &HealthCheckCfg) -> bool {
    let check = async {
        let stream = tokio::net::TcpStream::connect(addr).await.ok()?;
        let Probe::Http { path, host, expected } = &cfg.probe else { return Some(true) };
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.ok()?;
        tokio::spawn(conn);
        let mut req = http::Request::get(path.as_str())
            .header(http::header::HOST, host.as_str())
            .header(http::header::USER_AGENT, super::PROBE_USER_AGENT)
            .header(http::header::CONNECTION, "close")
            .body(Empty::<bytes::Bytes>::new())
            .ok()?;
        // Decided unsampled: a probe is no user's request, and traced it
        // would bury the traces of those under its own.
        let (trace, span) = (crate::telemetry::trace::new_trace_id(), crate::telemetry::trace::new_id());
        crate::telemetry::trace::context::inject(req.headers_mut(), trace, span, None, false, false);
        let resp = send.send_request(req).await.ok()?;
        let status = resp.status().as_u16();
        let _ = resp.into_body().collect().await;
        Some(expected.iter().any(|(a, b)| (*a..*b).contains(&status)))
    };
    matches!(tokio::time::timeout(cfg.timeout, check).await, Ok(Some(true)))
}

/// Checks the cluster's hosts until the cluster is dropped (a newer config
/// version starts its own checker).
pub async fn run(cluster: Weak<Cluster>, cfg: HealthCheckCfg) {
    loop {
        let Some(set) = cluster.upgrade().map(|c| c.endpoints()) else { return };
        let cfg = &cfg;
        let results =
            futures::future::join_all(set.endpoints.iter().map(|e| async move { (e, probe(e.addr, cfg).await) })).await;
        let mut changed = false;
        for (e, passed) in results {
            if let Some(h) = &e.health {
                let (was, first) = (h.available(), h.flags() & flag::PENDING_ACTIVE_HC != 0);
                if apply(h, passed, cfg) {
                    changed = true;
                    // A new host passing its first checks is routine, not news.
                    match (was, h.available(), first) {
                        (false, true, true) => tracing::debug!(endpoint = %e.addr, "passed its first health checks"),
                        (false, true, false) => tracing::warn!(endpoint = %e.addr, "healthy again"),
                        _ => tracing::warn!(endpoint = %e.addr, "failing its health check"),
                    }
                }
            }
        }
        drop(set);
        let Some(c) = cluster.upgrade() else { return };
        if changed {
            tracing::info!(cluster = %c.name(), "health check changed availability; rebuilding its balancer");
        }
        c.refresh();
        let jitter = if cfg.jitter.is_zero() {
            Duration::ZERO
        } else {
            Duration::from_micros(rand::rng().random_range(0..=cfg.jitter.as_micros() as u64))
        };
        // Next round after the interval, or at once when endpoints change
        // (new hosts are pending until checked).
        tokio::select! {
            _ = tokio::time::sleep(cfg.interval + jitter) => {}
            _ = c.endpoints_changed.notified() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(healthy: u32, unhealthy: u32) -> HealthCheckCfg {
        HealthCheckCfg {
            interval: Duration::from_secs(1),
            jitter: Duration::ZERO,
            timeout: Duration::from_millis(200),
            healthy_threshold: healthy,
            unhealthy_threshold: unhealthy,
            probe: Probe::Tcp,
        }
    }

    #[test]
    fn thresholds_and_the_first_check() {
        let c = cfg(2, 3);
        let h = HostHealth::default();
        h.set(flag::PENDING_ACTIVE_HC, true);
        assert!(!h.available());
        assert!(apply(&h, true, &c), "a pending host needs one pass");
        assert!(h.available());
        assert!(!apply(&h, false, &c));
        assert!(!apply(&h, false, &c));
        assert!(apply(&h, false, &c), "out on the third failure");
        assert_eq!(h.flags_text(), "/failed_active_hc");
        assert!(!apply(&h, true, &c));
        assert!(apply(&h, true, &c), "back on the second pass");
        let p = HostHealth::default();
        p.set(flag::PENDING_ACTIVE_HC, true);
        apply(&p, false, &c);
        assert_eq!(p.flags_text(), "/failed_active_hc", "a pending host failing its first check is failed at once");
    }

    #[tokio::test]
    async fn probes_a_real_listener_and_a_closed_port() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let open = l.local_addr().unwrap();
        let closed = {
            let t = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            t.local_addr().unwrap()
        };
        assert!(probe(open, &cfg(1, 1)).await);
        assert!(!probe(closed, &cfg(1, 1)).await);
    }
}
