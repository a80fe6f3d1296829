//! Request metrics with Istio's standard names and labels, so existing
//! dashboards work: `istio_requests_total`, `istio_request_duration_milliseconds`,
//! `istio_request_bytes`, `istio_response_bytes`; TCP's in `tcp`.
//!
//! A request is recorded with its labels borrowed (`Labels`: from the
//! compiled config, the request's headers): the four series of a label set
//! are looked up by them once (one fast hash) and cached together, so a
//! request clones no pointer and copies no string; owned labels are made
//! only for a label set seen for the first time. Going through the four
//! families meant four SipHashes of every label per request (`labels`).
//!
//! Label sets are capped (`max_series`): past the cap, a new set is
//! recorded in the catch-all series whose free-text labels read `overflow`
//! (its code, flags, protocol and reporter kept), and counted in
//! `weft_metric_series_overflow_total`. Callers' names come from a header
//! on plaintext, so without the cap any client could grow the proxy and
//! its scrape without bound. A caller's name that is not a workload name
//! (RFC 1123) is recorded as `unknown`.

use crate::node::NodeInfo;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::Arc;

pub mod access_log;
mod histogram;
mod labels;
pub mod peer;
pub mod tap;
pub mod tcp;
pub mod trace;
pub use histogram::Histogram;
pub use labels::{Labels, RequestLabels};

/// The label value of what is not known (Istio's).
pub const UNKNOWN: &str = "unknown";

/// The free-text labels of requests recorded past the label-set cap.
pub const OVERFLOW: &str = "overflow";

/// Label sets per proxy by default (`--max-metric-series`).
pub const DEFAULT_MAX_SERIES: usize = 2000;

/// An authorization decision, by the policy that made it (`""` when none
/// matched: an ALLOW filter's default deny, say).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AuthzLabels {
    /// `allowed`, `denied`, `logged`, `shadow_allowed` or `shadow_denied`.
    pub decision: &'static str,
    pub policy: Arc<str>,
}

type HistFamily = Family<RequestLabels, Histogram, fn() -> Histogram>;

/// The four series one label set records into (handles share the families' values).
struct Series {
    requests: Counter,
    duration: Histogram,
    request_bytes: Histogram,
    response_bytes: Histogram,
}

pub struct Metrics {
    pub registry: Registry,
    requests: Family<RequestLabels, Counter>,
    duration: HistFamily,
    request_bytes: HistFamily,
    response_bytes: HistFamily,
    pub xds_nacks: Counter,
    pub config_updates: Counter,
    pub active_requests: Gauge,
    /// Upgraded (WebSocket) connections and TCP splices open: a drain waits
    /// for them as for requests.
    pub active_tunnels: Gauge,
    pub idle_timeouts: Counter,
    pub request_head_timeouts: Counter,
    /// Workload certificates issued to this proxy (`crate::mtls`).
    pub cert_renewals: Counter,
    /// Inbound connections served over mutual TLS, and inbound TLS handshakes that failed.
    pub mtls_connections: Counter,
    pub tls_handshake_failures: Counter,
    /// Plaintext connections a STRICT inbound listener closed.
    pub plaintext_refused: Counter,
    pub authz: Family<AuthzLabels, Counter>,
    pub tcp: tcp::TcpMetrics,
    /// This proxy's workload as its metrics name it.
    pub own: peer::Workload,
    pub workload: Arc<str>,
    pub namespace: Arc<str>,
    /// Requests recorded in the catch-all series because the cap was reached.
    pub series_overflow: Counter,
    max_series: std::sync::atomic::AtomicUsize,
    /// Written once per new label set; every other request only reads.
    series: parking_lot::RwLock<hashbrown::HashMap<RequestLabels, Series>>,
}

/// Istio's default buckets (milliseconds).
const DURATION_MS: [f64; 19] = [
    0.5, 1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0, 30000.0, 60000.0, 300000.0,
    600000.0, 1800000.0, 3600000.0,
];

const BYTES: [f64; 10] =
    [1.0, 10.0, 100.0, 1000.0, 10000.0, 100000.0, 1000000.0, 10000000.0, 100000000.0, 1000000000.0];

fn duration_hist() -> Histogram {
    // The sum to the microsecond.
    Histogram::new(&DURATION_MS, 1000.0)
}

fn bytes_hist() -> Histogram {
    Histogram::new(&BYTES, 1.0)
}

/// What one finished request contributes.
pub struct Record<'a> {
    pub labels: Labels<'a>,
    pub duration_ms: f64,
    pub request_bytes: u64,
    pub response_bytes: u64,
}

/// Counts one in a gauge while it lives: here, a tunnel open.
pub struct Held(Gauge);

impl Held {
    pub fn new(gauge: &Gauge) -> Held {
        gauge.inc();
        Held(gauge.clone())
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl Metrics {
    pub fn new(node: &NodeInfo) -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        let duration: HistFamily = Family::new_with_constructor(duration_hist);
        let request_bytes: HistFamily = Family::new_with_constructor(bytes_hist);
        let response_bytes: HistFamily = Family::new_with_constructor(bytes_hist);
        registry.register("istio_requests", "Requests handled by the proxy", requests.clone());
        registry.register("istio_request_duration_milliseconds", "Request duration in milliseconds", duration.clone());
        registry.register("istio_request_bytes", "Request sizes in bytes", request_bytes.clone());
        registry.register("istio_response_bytes", "Response sizes in bytes", response_bytes.clone());
        let xds_nacks = Counter::default();
        let config_updates = Counter::default();
        let active_requests = Gauge::default();
        let active_tunnels = Gauge::default();
        let idle_timeouts = Counter::default();
        let request_head_timeouts = Counter::default();
        let (cert_renewals, mtls_connections, tls_handshake_failures): (Counter, Counter, Counter) = Default::default();
        registry.register("weft_xds_nacks", "xDS updates rejected by this proxy", xds_nacks.clone());
        registry.register("weft_config_updates", "xDS updates applied by this proxy", config_updates.clone());
        registry.register("weft_active_requests", "Requests in flight", active_requests.clone());
        registry.register(
            "weft_active_tunnels",
            "Upgraded connections and TCP connections being spliced",
            active_tunnels.clone(),
        );
        registry.register(
            "weft_downstream_idle_timeouts",
            "Downstream connections closed after their idle timeout",
            idle_timeouts.clone(),
        );
        registry.register(
            "weft_downstream_request_head_timeouts",
            "HTTP/1.1 connections closed because a request head did not end within its timeout",
            request_head_timeouts.clone(),
        );
        registry.register(
            "weft_workload_certificates",
            "Workload certificates issued to this proxy",
            cert_renewals.clone(),
        );
        registry.register(
            "weft_inbound_mtls_connections",
            "Inbound connections served over mutual TLS",
            mtls_connections.clone(),
        );
        let series_overflow = Counter::default();
        registry.register(
            "weft_metric_series_overflow",
            "Requests recorded with `overflow` labels because the proxy holds its cap of label sets (--max-metric-series)",
            series_overflow.clone(),
        );
        registry.register(
            "weft_tls_handshake_failures",
            "Inbound TLS handshakes refused, failed or timed out (a client without a mesh certificate; a handshake where this proxy has no certificate)",
            tls_handshake_failures.clone(),
        );
        let plaintext_refused = Counter::default();
        registry.register(
            "weft_inbound_plaintext_refused",
            "Plaintext connections closed by an inbound listener that takes mutual TLS only (PeerAuthentication STRICT)",
            plaintext_refused.clone(),
        );
        let authz = Family::<AuthzLabels, Counter>::default();
        registry.register(
            "weft_authz_decisions",
            "Requests decided by authorization policies (allowed, denied, logged by AUDIT, and dry runs' shadow_allowed and shadow_denied), by the policy that decided",
            authz.clone(),
        );
        let tcp = tcp::TcpMetrics::register(&mut registry);
        Metrics {
            tcp,
            own: peer::Workload::of(node),
            registry,
            requests,
            duration,
            request_bytes,
            response_bytes,
            xds_nacks,
            config_updates,
            active_requests,
            active_tunnels,
            idle_timeouts,
            request_head_timeouts,
            cert_renewals,
            mtls_connections,
            tls_handshake_failures,
            plaintext_refused,
            authz,
            workload: node.workload.as_str().into(),
            namespace: node.namespace.as_str().into(),
            series_overflow,
            max_series: DEFAULT_MAX_SERIES.into(),
            series: Default::default(),
        }
    }

    /// The telemetry hook every request passes through once it completes.
    pub fn record(&self, r: Record) {
        let observe = |s: &Series| {
            s.requests.inc();
            s.duration.observe(r.duration_ms);
            s.request_bytes.observe(r.request_bytes as f64);
            s.response_bytes.observe(r.response_bytes as f64);
        };
        let mut labels = r.labels;
        {
            let all = self.series.read();
            if let Some(s) = all.get(&labels) {
                return observe(s);
            }
            labels = labels.checked();
            if let Some(s) = all.get(&labels) {
                return observe(s);
            }
            if all.len() >= self.max_series.load(std::sync::atomic::Ordering::Relaxed) {
                self.series_overflow.inc();
                labels = labels.overflowed();
                if let Some(s) = all.get(&labels) {
                    return observe(s);
                }
            }
        }
        let labels = labels.to_owned();
        let mut all = self.series.write();
        let s = all.entry(labels).or_insert_with_key(|labels| Series {
            requests: self.requests.get_or_create(labels).clone(),
            duration: self.duration.get_or_create(labels).clone(),
            request_bytes: self.request_bytes.get_or_create(labels).clone(),
            response_bytes: self.response_bytes.get_or_create(labels).clone(),
        });
        observe(s);
    }

    /// Caps the label sets (`--max-metric-series`); the catch-all sets
    /// past it come on top (one per code, flags, protocol and reporter).
    pub fn set_max_series(&self, n: usize) {
        self.max_series.store(n, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn series(&self) -> usize {
        self.series.read().len()
    }

    /// Every request series with its count and duration buckets (Istio's
    /// bounds, in `durationBoundsMs`), as JSON: what the control plane
    /// gathers for its golden signals (`weft stat`), with every TCP series'
    /// connections (`tcp`).
    pub fn requests_json(&self) -> serde_json::Value {
        let all = self.series.read();
        let series: Vec<serde_json::Value> = all
            .iter()
            .map(|(l, s)| {
                let (buckets, sum) = s.duration.counts();
                serde_json::json!({
                    "reporter": l.reporter,
                    "source": format!("{}.{}", l.source_workload, l.source_workload_namespace),
                    "destinationService": &*l.destination_service,
                    "destination": format!("{}.{}", l.destination_workload, l.destination_workload_namespace),
                    "code": l.response_code,
                    "flags": l.response_flags,
                    "requests": s.requests.get(),
                    "durationBuckets": buckets,
                    "durationSumMs": sum,
                })
            })
            .collect();
        serde_json::json!({"durationBoundsMs": DURATION_MS, "series": series, "tcp": self.tcp.json()})
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels<'a>(workload: &'a str, code: u16) -> Labels<'a> {
        Labels {
            reporter: "source",
            source_workload: "productpage",
            source_workload_namespace: "default",
            destination_workload: workload,
            destination_workload_namespace: "default",
            destination_service: "reviews.default.svc.cluster.local",
            destination_service_name: "reviews",
            destination_service_namespace: "default",
            request_protocol: "http",
            response_code: code,
            grpc_response_status: "",
            response_flags: "-",
            connection_security_policy: "none",
            ..Labels::unknown_peers()
        }
    }

    #[test]
    fn borrowed_labels_find_the_series_their_owned_copy_made() {
        use std::hash::BuildHasher;
        let m = Metrics::new(&NodeInfo::default());
        let hasher = m.series.read().hasher().clone();
        let l = labels("reviews-v1", 200);
        assert_eq!(hasher.hash_one(l), hasher.hash_one(l.to_owned()), "the same hash borrowed or owned");

        // Equal text at other addresses is the same label set.
        let other = String::from("reviews-v1");
        for (l, bytes) in
            [(l, 10), (labels(&other, 200), 20), (labels("reviews-v2", 200), 30), (labels(&other, 503), 40)]
        {
            m.record(Record { labels: l, duration_ms: 1.0, request_bytes: 0, response_bytes: bytes });
        }
        assert_eq!(m.series.read().len(), 3);
        let text = m.encode();
        let count = |workload: &str, code: u16| {
            let prefix = "istio_requests_total{";
            text.lines()
                .find(|l| {
                    l.starts_with(prefix)
                        && l.contains(&format!("destination_workload=\"{workload}\""))
                        && l.contains(&format!("response_code=\"{code}\""))
                })
                .and_then(|l| l.rsplit(' ').next())
                .map(str::to_owned)
        };
        assert_eq!(count("reviews-v1", 200).as_deref(), Some("2"), "{text}");
        assert_eq!(count("reviews-v2", 200).as_deref(), Some("1"));
        assert_eq!(count("reviews-v1", 503).as_deref(), Some("1"));
    }

    #[test]
    fn label_sets_past_the_cap_go_to_the_overflow_series() {
        let m = Metrics::new(&NodeInfo::default());
        m.set_max_series(3);
        let names: Vec<String> = (0..50).map(|i| format!("caller-{i}")).collect();
        for n in &names {
            let l = Labels { source_workload: n, ..labels("reviews-v1", 200) };
            m.record(Record { labels: l, duration_ms: 1.0, request_bytes: 0, response_bytes: 0 });
        }
        // A name no workload can have is `unknown`, not a set of its own.
        let bad = Labels { source_workload: "x\"} 1\nfake_metric{a=\"", ..labels("reviews-v1", 200) };
        m.record(Record { labels: bad, duration_ms: 1.0, request_bytes: 0, response_bytes: 0 });
        assert_eq!(m.series(), 4, "three sets and the catch-all");
        assert_eq!(m.series_overflow.get(), 48);
        let text = m.encode();
        let overflow = text
            .lines()
            .find(|l| l.starts_with("istio_requests_total{") && l.contains("source_workload=\"overflow\""))
            .unwrap_or_else(|| panic!("{text}"));
        assert!(overflow.ends_with(" 48") && overflow.contains("response_code=\"200\""), "{overflow}");
        assert!(!text.contains("fake_metric"));
    }
}
