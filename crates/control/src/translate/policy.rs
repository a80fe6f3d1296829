//! A DestinationRule's traffic policy as Envoy cluster fields, following
//! Istio's translation: load balancer, outlier detection (and the panic
//! threshold), circuit breakers, connection pool options; plus weft's
//! annotation extensions (active health checks, extra outlier detectors).

use super::routes::pb_duration;
use envoy_types::pb::envoy::config::cluster::v3::{
    CircuitBreakers, Cluster, OutlierDetection, circuit_breakers, cluster,
};
use envoy_types::pb::envoy::config::core::v3::{
    HealthCheck, HttpProtocolOptions as CommonHttpOptions, RuntimeDouble, health_check,
};
use envoy_types::pb::envoy::r#type::v3::{Int64Range, Percent};
use envoy_types::pb::google::protobuf::{UInt32Value, UInt64Value};
use weft_api::extensions::{self, OutlierExt, Probe};
use weft_api::types::*;

/// Subset policy fields override the rule's, field by field (as Istio does),
/// then port-level settings for this port override both.
pub fn effective_policy(dr: Option<&DestinationRuleSpec>, subset: Option<&Subset>, port: u16) -> TrafficPolicy {
    let mut tp = dr.and_then(|d| d.traffic_policy.clone()).unwrap_or_default();
    if let Some(s) = subset.and_then(|s| s.traffic_policy.as_ref()) {
        tp.load_balancer = s.load_balancer.clone().or(tp.load_balancer);
        tp.connection_pool = s.connection_pool.clone().or(tp.connection_pool);
        tp.outlier_detection = s.outlier_detection.clone().or(tp.outlier_detection);
        tp.tls = s.tls.clone().or(tp.tls);
        tp.retry_budget = s.retry_budget.clone().or(tp.retry_budget);
        if !s.port_level_settings.is_empty() {
            tp.port_level_settings = s.port_level_settings.clone();
        }
    }
    if let Some(pl) = tp.port_level_settings.iter().find(|p| p.port.as_ref().is_some_and(|x| x.number == port)).cloned()
    {
        tp.load_balancer = pl.load_balancer.or(tp.load_balancer);
        tp.connection_pool = pl.connection_pool.or(tp.connection_pool);
        tp.outlier_detection = pl.outlier_detection.or(tp.outlier_detection);
        tp.tls = pl.tls.or(tp.tls);
    }
    tp
}

pub fn apply_lb(c: &mut Cluster, lb: Option<&LoadBalancerSettings>) {
    use cluster::LbPolicy as P;
    let Some(lb) = lb else { return };
    if let Some(ch) = &lb.consistent_hash {
        if let Some(m) = &ch.maglev {
            c.lb_policy = P::Maglev as i32;
            c.lb_config = Some(cluster::LbConfig::MaglevLbConfig(cluster::MaglevLbConfig {
                table_size: Some(UInt64Value { value: m.table_size.unwrap_or(65537) }),
            }));
        } else {
            c.lb_policy = P::RingHash as i32;
            let min = ch.ring_hash.as_ref().and_then(|r| r.minimum_ring_size).or(ch.minimum_ring_size).unwrap_or(1024);
            c.lb_config = Some(cluster::LbConfig::RingHashLbConfig(cluster::RingHashLbConfig {
                minimum_ring_size: Some(UInt64Value { value: min }),
                ..Default::default()
            }));
        }
        return;
    }
    c.lb_policy = match lb.simple {
        Some(SimpleLb::Random) => P::Random,
        Some(SimpleLb::LeastRequest | SimpleLb::LeastConn) => P::LeastRequest,
        Some(SimpleLb::Passthrough) => P::ClusterProvided,
        _ => P::RoundRobin,
    } as i32;
    // `warmup` is Envoy's slow start, on round robin and least request only.
    let Some((w, window)) = lb.warmup.as_ref().and_then(|w| Some((w, w.duration?))) else { return };
    let slow_start_config = Some(cluster::SlowStartConfig {
        slow_start_window: Some(pb_duration(window.0)),
        aggression: Some(RuntimeDouble { default_value: w.aggression.unwrap_or(1.0), runtime_key: String::new() }),
        min_weight_percent: Some(Percent { value: w.minimum_percent.unwrap_or(10.0) }),
    });
    if c.lb_policy == P::LeastRequest as i32 {
        c.lb_config = Some(cluster::LbConfig::LeastRequestLbConfig(cluster::LeastRequestLbConfig {
            slow_start_config,
            ..Default::default()
        }));
    } else if c.lb_policy == P::RoundRobin as i32 {
        c.lb_config = Some(cluster::LbConfig::RoundRobinLbConfig(cluster::RoundRobinLbConfig { slow_start_config }));
    }
}

fn u32v(v: u32) -> Option<UInt32Value> {
    Some(UInt32Value { value: v })
}

/// `outlierDetection` as Istio maps it: success rate off unless weft's
/// annotation turns it on, enforcement 100% for every threshold given,
/// `minHealthPercent` as the panic threshold (0 when unset).
pub fn apply_outlier(c: &mut Cluster, od: Option<&weft_api::types::OutlierDetection>, ext: &OutlierExt) {
    let Some(od) = od else { return };
    let mut out =
        OutlierDetection { enforcing_success_rate: u32v(if ext.success_rate { 100 } else { 0 }), ..Default::default() };
    if let Some(v) = od.consecutive_5xx_errors {
        out.consecutive_5xx = u32v(v);
        out.enforcing_consecutive_5xx = u32v(if v > 0 { 100 } else { 0 });
    } else if let Some(v) = od.consecutive_errors {
        // Deprecated field: Istio counts it as gateway errors only.
        out.consecutive_gateway_failure = u32v(v);
        out.enforcing_consecutive_gateway_failure = u32v(100);
        out.enforcing_consecutive_5xx = u32v(0);
    }
    if let Some(v) = od.consecutive_gateway_errors {
        out.consecutive_gateway_failure = u32v(v);
        out.enforcing_consecutive_gateway_failure = u32v(if v > 0 { 100 } else { 0 });
    }
    if od.split_external_local_origin_errors == Some(true) {
        out.split_external_local_origin_errors = true;
        if let Some(v) = od.consecutive_local_origin_failures.filter(|v| *v > 0) {
            out.consecutive_local_origin_failure = u32v(v);
            out.enforcing_consecutive_local_origin_failure = u32v(100);
        }
        out.enforcing_local_origin_success_rate = u32v(0);
    }
    out.interval = od.interval.map(|d| pb_duration(d.0));
    out.base_ejection_time = od.base_ejection_time.map(|d| pb_duration(d.0));
    out.max_ejection_percent = od.max_ejection_percent.and_then(u32v);
    if let Some(p) = ext.failure_percentage {
        out.failure_percentage_threshold = u32v(p);
        out.enforcing_failure_percentage = u32v(100);
    }
    c.outlier_detection = Some(out);
    panic_threshold(c, od.min_health_percent.unwrap_or(0));
}

fn panic_threshold(c: &mut Cluster, percent: u32) {
    c.common_lb_config.get_or_insert_with(Default::default).healthy_panic_threshold =
        Some(Percent { value: percent.min(100) as f64 });
}

/// weft's active health check annotations as an Envoy health check.
pub fn apply_health_check(c: &mut Cluster, hc: Option<&extensions::HealthCheck>, has_outlier: bool) {
    let Some(hc) = hc else { return };
    let checker = match &hc.probe {
        Probe::Http { path } => health_check::HealthChecker::HttpHealthCheck(health_check::HttpHealthCheck {
            path: path.clone(),
            expected_statuses: hc
                .expected
                .iter()
                .map(|(a, b)| Int64Range { start: *a as i64, end: *b as i64 })
                .collect(),
            ..Default::default()
        }),
        Probe::Tcp => health_check::HealthChecker::TcpHealthCheck(Default::default()),
    };
    c.health_checks = vec![HealthCheck {
        timeout: Some(pb_duration(hc.timeout)),
        interval: Some(pb_duration(hc.interval)),
        interval_jitter: (!hc.jitter.is_zero()).then(|| pb_duration(hc.jitter)),
        healthy_threshold: u32v(hc.healthy_threshold),
        unhealthy_threshold: u32v(hc.unhealthy_threshold),
        health_checker: Some(checker),
        ..Default::default()
    }];
    if !has_outlier {
        panic_threshold(c, 0);
    }
}

/// Unset limits are unlimited, as in Istio (Envoy's own default is 1024).
const UNLIMITED: u32 = u32::MAX;

/// `connectionPool` and `retryBudget`: circuit breaker thresholds on the
/// cluster; per-connection limits returned for the HTTP protocol options.
pub fn apply_connection_pool(c: &mut Cluster, tp: &TrafficPolicy) -> Option<CommonHttpOptions> {
    let cp = tp.connection_pool.as_ref();
    let (tcp, http) = (cp.and_then(|p| p.tcp.as_ref()), cp.and_then(|p| p.http.as_ref()));
    let pos = |v: Option<u32>| v.filter(|v| *v > 0).unwrap_or(UNLIMITED);
    let mut t = circuit_breakers::Thresholds {
        max_connections: u32v(pos(tcp.and_then(|t| t.max_connections))),
        max_pending_requests: u32v(pos(http.and_then(|h| h.http1_max_pending_requests))),
        max_requests: u32v(pos(http.and_then(|h| h.http2_max_requests))),
        max_retries: u32v(pos(http.and_then(|h| h.max_retries))),
        track_remaining: true,
        ..Default::default()
    };
    if let Some(b) = &tp.retry_budget {
        t.retry_budget = Some(circuit_breakers::thresholds::RetryBudget {
            budget_percent: Some(Percent { value: b.percent.unwrap_or(20.0).clamp(0.0, 100.0) }),
            min_retry_concurrency: u32v(b.min_retry_concurrency.unwrap_or(3)),
            ..Default::default()
        });
    }
    c.circuit_breakers = Some(CircuitBreakers { thresholds: vec![t], ..Default::default() });
    // `tcpKeepalive` as Envoy's socket keepalive (seconds; unset = the system's).
    if let Some(k) = tcp.and_then(|t| t.tcp_keepalive.as_ref()) {
        let secs =
            |d: Option<weft_api::types::Duration>| d.and_then(|d| u32::try_from(d.0.as_secs()).ok()).and_then(u32v);
        c.upstream_connection_options = Some(envoy_types::pb::envoy::config::cluster::v3::UpstreamConnectionOptions {
            tcp_keepalive: Some(envoy_types::pb::envoy::config::core::v3::TcpKeepalive {
                keepalive_probes: k.probes.and_then(u32v),
                keepalive_time: secs(k.time),
                keepalive_interval: secs(k.interval),
            }),
            ..Default::default()
        });
    }
    let mut opts = CommonHttpOptions::default();
    let mut any = false;
    if let Some(d) = http.and_then(|h| h.idle_timeout).or(tcp.and_then(|t| t.idle_timeout)) {
        opts.idle_timeout = Some(pb_duration(d.0));
        any = true;
    }
    if let Some(n) = http.and_then(|h| h.max_requests_per_connection).filter(|n| *n > 0) {
        opts.max_requests_per_connection = u32v(n);
        any = true;
    }
    if let Some(d) = tcp.and_then(|t| t.max_connection_duration) {
        opts.max_connection_duration = Some(pb_duration(d.0));
        any = true;
    }
    any.then_some(opts)
}
