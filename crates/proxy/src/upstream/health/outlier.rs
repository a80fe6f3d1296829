//! Passive outlier detection, as Envoy does it: consecutive errors eject a
//! host at once; every `interval` a sweep readmits hosts whose ejection is
//! over and runs the success-rate and failure-percentage detectors.
//!
//! - An ejection lasts `base_ejection_time × (times ejected)`, capped at
//!   `max_ejection_time` (300 s). The multiplier drops by one for every
//!   `base_ejection_time` a readmitted host stays in.
//! - A host is ejected only while the ejected share of the cluster is below
//!   `max_ejection_percent`, so with any positive percentage one host can
//!   always go.
//! - Without `split_external_local_origin_errors`, connect failures, resets
//!   and timeouts count as the 503/504 the proxy answers for them; with it,
//!   they count only toward `consecutive_local_origin_failure`.

use super::{HostHealth, Observation, flag};
use crate::config::outlier::OutlierCfg;
use crate::upstream::endpoint::Endpoint;
use rand::Rng;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;
use tokio::time::Instant;

/// Ejections are enforced `percent` of the time (Envoy's `enforcing_*`).
fn enforced(percent: u32) -> bool {
    percent >= 100 || (percent > 0 && rand::rng().random_range(0..100) < percent)
}

/// Counts one attempt's outcome; names the detector that wants the host
/// ejected, if one does. Runs on the request path: atomics only.
pub fn record(h: &HostHealth, obs: Observation, cfg: &OutlierCfg) -> Option<&'static str> {
    let status = match obs {
        Observation::LocalFailure(_) if cfg.split_local => {
            h.window_total.fetch_add(1, Relaxed);
            h.window_failed.fetch_add(1, Relaxed);
            let n = h.consecutive_local.fetch_add(1, Relaxed) + 1;
            let hit = cfg.consecutive_local > 0 && n >= cfg.consecutive_local && enforced(cfg.enforcing_local);
            return hit.then_some("consecutive_local_origin_failure");
        }
        Observation::LocalFailure(s) => s,
        Observation::Status(s) => {
            // An answer means the connection worked: a local-origin success.
            h.consecutive_local.store(0, Relaxed);
            s
        }
    };
    h.window_total.fetch_add(1, Relaxed);
    if status < 500 {
        h.consecutive_5xx.store(0, Relaxed);
        h.consecutive_gateway.store(0, Relaxed);
        return None;
    }
    h.window_failed.fetch_add(1, Relaxed);
    let n5 = h.consecutive_5xx.fetch_add(1, Relaxed) + 1;
    let ngw = if matches!(status, 502..=504) {
        h.consecutive_gateway.fetch_add(1, Relaxed) + 1
    } else {
        h.consecutive_gateway.store(0, Relaxed);
        0
    };
    if cfg.consecutive_5xx > 0 && n5 >= cfg.consecutive_5xx && enforced(cfg.enforcing_5xx) {
        return Some("consecutive_5xx");
    }
    if cfg.consecutive_gateway > 0 && ngw >= cfg.consecutive_gateway && enforced(cfg.enforcing_gateway) {
        return Some("consecutive_gateway_failure");
    }
    None
}

fn ejected(e: &Endpoint) -> bool {
    e.health.as_ref().is_some_and(|h| h.flags() & flag::FAILED_OUTLIER_CHECK != 0)
}

/// Ejects `h` unless the cluster's ejected share has reached the maximum;
/// true when it did.
pub fn eject(eps: &[Arc<Endpoint>], h: &HostHealth, reason: &'static str, now: Instant, cfg: &OutlierCfg) -> bool {
    let n = eps.len();
    let out = eps.iter().filter(|e| ejected(e)).count();
    if n == 0 || out * 100 >= cfg.max_ejection_percent as usize * n {
        return false;
    }
    if !h.set(flag::FAILED_OUTLIER_CHECK, true) {
        return false; // already out
    }
    h.ejections.fetch_add(1, Relaxed);
    *h.changed_at.lock() = Some(now);
    *h.reason.lock() = reason;
    h.consecutive_5xx.store(0, Relaxed);
    h.consecutive_gateway.store(0, Relaxed);
    h.consecutive_local.store(0, Relaxed);
    true
}

/// How long the `k`th ejection lasts.
pub fn ejection_time(cfg: &OutlierCfg, k: u32) -> Duration {
    cfg.base_ejection.saturating_mul(k.max(1)).min(cfg.max_ejection)
}

/// The interval's work: readmit, decay multipliers, run the statistical
/// detectors, reset the windows. Returns the hosts ejected and readmitted.
pub fn sweep(eps: &[Arc<Endpoint>], now: Instant, cfg: &OutlierCfg) -> (usize, usize) {
    let (mut ejected_now, mut readmitted) = (0, 0);
    // (host, requests, failures) for the hosts with traffic this interval.
    let mut stats: Vec<(&HostHealth, u32, u32)> = Vec::new();
    for h in eps.iter().filter_map(|e| e.health.as_deref()) {
        let total = h.window_total.swap(0, Relaxed);
        let failed = h.window_failed.swap(0, Relaxed);
        let mut at = h.changed_at.lock();
        if h.flags() & flag::FAILED_OUTLIER_CHECK != 0 {
            let k = h.ejections.load(Relaxed);
            if at.is_none_or(|t| now >= t + ejection_time(cfg, k)) {
                h.set(flag::FAILED_OUTLIER_CHECK, false);
                *at = Some(now); // from now on: time since readmission
                readmitted += 1;
            }
            continue;
        }
        if h.ejections.load(Relaxed) > 0 && at.is_none_or(|t| now >= t + cfg.base_ejection) {
            h.ejections.fetch_sub(1, Relaxed);
            *at = Some(now);
        }
        stats.push((h, total, failed));
    }
    let sr = &cfg.success_rate;
    let eligible: Vec<_> = stats.iter().filter(|(_, t, _)| *t >= sr.request_volume.max(1)).collect();
    if sr.enforcing > 0 && eligible.len() >= sr.minimum_hosts.max(1) {
        let rates: Vec<f64> = eligible.iter().map(|(_, t, f)| 1.0 - *f as f64 / *t as f64).collect();
        let mean = rates.iter().sum::<f64>() / rates.len() as f64;
        let var = rates.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / rates.len() as f64;
        let threshold = mean - sr.stdev_factor as f64 / 1000.0 * var.sqrt();
        for ((h, _, _), rate) in eligible.iter().zip(rates) {
            if rate < threshold && enforced(sr.enforcing) && eject(eps, h, "success_rate", now, cfg) {
                ejected_now += 1;
            }
        }
    }
    let fp = &cfg.failure_percentage;
    let eligible: Vec<_> = stats.iter().filter(|(_, t, _)| *t >= fp.request_volume.max(1)).collect();
    if fp.enforcing > 0 && eligible.len() >= fp.minimum_hosts.max(1) {
        for (h, t, f) in eligible {
            if *f as u64 * 100 >= fp.threshold as u64 * *t as u64
                && enforced(fp.enforcing)
                && eject(eps, h, "failure_percentage", now, cfg)
            {
                ejected_now += 1;
            }
        }
    }
    (ejected_now, readmitted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::health::HealthRegistry;
    use envoy_types::pb::envoy::config::cluster::v3::OutlierDetection;

    fn cfg() -> OutlierCfg {
        OutlierCfg::from_proto(&OutlierDetection::default())
    }

    fn hosts(n: usize) -> Vec<Arc<Endpoint>> {
        let reg = HealthRegistry::default();
        (0..n)
            .map(|i| {
                let addr: std::net::SocketAddr = format!("127.0.0.1:{}", 2000 + i).parse().unwrap();
                let pool = Arc::new(crate::upstream::pool::EndpointPool::new(addr));
                let mut e = Endpoint::new(addr, 1, "w".into(), "ns".into(), "".into(), pool);
                e.health = Some(reg.get(&"c".into(), addr, 0));
                Arc::new(e)
            })
            .collect()
    }

    fn h(e: &Arc<Endpoint>) -> &HostHealth {
        e.health.as_deref().unwrap()
    }

    #[test]
    fn defaults_are_envoys() {
        let c = cfg();
        assert_eq!((c.consecutive_5xx, c.enforcing_gateway, c.max_ejection_percent), (5, 0, 10));
        assert_eq!(
            (c.interval, c.base_ejection, c.max_ejection),
            (Duration::from_secs(10), Duration::from_secs(30), Duration::from_secs(300))
        );
        assert_eq!(
            (c.success_rate.minimum_hosts, c.success_rate.request_volume, c.success_rate.stdev_factor),
            (5, 100, 1900)
        );
        assert_eq!(
            (c.failure_percentage.threshold, c.failure_percentage.request_volume, c.failure_percentage.enforcing),
            (85, 50, 0)
        );
    }

    #[test]
    fn consecutive_5xx_trips_on_the_fifth_and_a_success_resets() {
        let c = cfg();
        let e = hosts(1);
        for _ in 0..4 {
            assert_eq!(record(h(&e[0]), Observation::Status(503), &c), None);
        }
        assert_eq!(record(h(&e[0]), Observation::Status(200), &c), None);
        for _ in 0..4 {
            assert_eq!(record(h(&e[0]), Observation::Status(500), &c), None);
        }
        assert_eq!(record(h(&e[0]), Observation::Status(500), &c), Some("consecutive_5xx"));
    }

    #[test]
    fn local_origin_failures_count_as_5xx_unless_split() {
        let mut c = cfg();
        c.consecutive_5xx = 2;
        let e = hosts(1);
        record(h(&e[0]), Observation::LocalFailure(503), &c);
        assert_eq!(record(h(&e[0]), Observation::LocalFailure(503), &c), Some("consecutive_5xx"));
        c.split_local = true;
        c.consecutive_local = 3;
        let e = hosts(1);
        record(h(&e[0]), Observation::LocalFailure(503), &c);
        record(h(&e[0]), Observation::LocalFailure(503), &c);
        assert_eq!(h(&e[0]).consecutive_5xx.load(Relaxed), 0, "split: not counted as 5xx");
        record(h(&e[0]), Observation::Status(503), &c);
        record(h(&e[0]), Observation::LocalFailure(503), &c);
        record(h(&e[0]), Observation::LocalFailure(503), &c);
        assert_eq!(record(h(&e[0]), Observation::LocalFailure(503), &c), Some("consecutive_local_origin_failure"));
    }

    #[test]
    fn max_ejection_percent_caps_ejections_but_one_can_always_go() {
        let c = cfg(); // 10%
        let e = hosts(3);
        let now = Instant::now();
        assert!(eject(&e, h(&e[0]), "t", now, &c));
        assert!(!eject(&e, h(&e[1]), "t", now, &c), "33% ejected is past 10%");
        let mut c50 = c.clone();
        c50.max_ejection_percent = 50;
        assert!(eject(&e, h(&e[1]), "t", now, &c50), "33% < 50%");
        assert!(!eject(&e, h(&e[2]), "t", now, &c50));
    }

    #[tokio::test(start_paused = true)]
    async fn ejection_time_grows_with_each_ejection_and_is_capped() {
        let mut c = cfg();
        c.max_ejection_percent = 100;
        let e = hosts(1);
        let host = h(&e[0]);
        // First ejection: 30 s.
        assert!(eject(&e, host, "t", Instant::now(), &c));
        tokio::time::advance(Duration::from_secs(29)).await;
        assert_eq!(sweep(&e, Instant::now(), &c), (0, 0));
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(sweep(&e, Instant::now(), &c), (0, 1));
        assert!(host.available());
        // Second ejection right away: 60 s.
        assert!(eject(&e, host, "t", Instant::now(), &c));
        tokio::time::advance(Duration::from_secs(59)).await;
        assert_eq!(sweep(&e, Instant::now(), &c).1, 0);
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(sweep(&e, Instant::now(), &c).1, 1);
        // The 11th ejection would be 330 s; it is capped at 300 s.
        host.ejections.store(10, Relaxed);
        assert_eq!(ejection_time(&c, 11), Duration::from_secs(300));
        // Staying in for a base ejection time takes one off the multiplier.
        host.ejections.store(2, Relaxed);
        tokio::time::advance(Duration::from_secs(30)).await;
        sweep(&e, Instant::now(), &c);
        assert_eq!(host.ejection_count(), 1);
    }

    #[test]
    fn success_rate_ejects_the_outlier_only_with_enough_hosts_and_volume() {
        let mut c = cfg();
        c.max_ejection_percent = 100;
        let e = hosts(5);
        let fill = |ok: &[u32]| {
            for (i, ok) in ok.iter().enumerate() {
                h(&e[i]).window_total.store(200, Relaxed);
                h(&e[i]).window_failed.store(200 - ok, Relaxed);
            }
        };
        fill(&[200, 199, 200, 198, 100]);
        assert_eq!(sweep(&e, Instant::now(), &c).0, 1);
        assert!(!h(&e[4]).available());
        assert_eq!(h(&e[4]).reason(), "success_rate");
        // Four hosts with volume are fewer than the five required.
        let e2 = hosts(4);
        for x in &e2 {
            h(x).window_total.store(200, Relaxed);
        }
        h(&e2[3]).window_failed.store(150, Relaxed);
        assert_eq!(sweep(&e2, Instant::now(), &c).0, 0);
    }

    #[test]
    fn failure_percentage_is_off_by_default_and_ejects_when_enforced() {
        let mut c = cfg();
        c.max_ejection_percent = 100;
        c.success_rate.enforcing = 0;
        let e = hosts(5);
        let fill = || {
            for x in &e {
                h(x).window_total.store(60, Relaxed);
            }
            h(&e[2]).window_failed.store(55, Relaxed);
        };
        fill();
        assert_eq!(sweep(&e, Instant::now(), &c).0, 0);
        c.failure_percentage.enforcing = 100;
        fill();
        assert_eq!(sweep(&e, Instant::now(), &c).0, 1);
        assert_eq!(h(&e[2]).reason(), "failure_percentage");
    }
}
