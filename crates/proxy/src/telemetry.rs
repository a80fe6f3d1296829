//! Request metrics with Istio's standard names and labels, so existing
//! dashboards work: `istio_requests_total`, `istio_request_duration_milliseconds`,
//! `istio_request_bytes`, `istio_response_bytes`.
//!
//! Label values are `Arc<str>` taken from the compiled config, so recording
//! a request clones pointers, never strings. The four series of a label set
//! are looked up once (one fast hash) and cached together: going through
//! the four families meant four SipHashes of twelve labels per request.

use crate::state::NodeInfo;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::Arc;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub reporter: &'static str,
    pub source_workload: Arc<str>,
    pub source_workload_namespace: Arc<str>,
    pub destination_workload: Arc<str>,
    pub destination_workload_namespace: Arc<str>,
    pub destination_service: Arc<str>,
    pub destination_service_name: Arc<str>,
    pub destination_service_namespace: Arc<str>,
    pub request_protocol: &'static str,
    pub response_code: u16,
    pub response_flags: &'static str,
    pub connection_security_policy: &'static str,
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
    pub workload: Arc<str>,
    pub namespace: Arc<str>,
    /// Written once per new label set; every other request only reads.
    series: std::sync::RwLock<hashbrown::HashMap<RequestLabels, Series>>,
}

fn duration_hist() -> Histogram {
    // Istio's default buckets (milliseconds).
    Histogram::new([
        0.5, 1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0, 30000.0, 60000.0,
        300000.0, 600000.0, 1800000.0, 3600000.0,
    ])
}

fn bytes_hist() -> Histogram {
    Histogram::new([1.0, 10.0, 100.0, 1000.0, 10000.0, 100000.0, 1000000.0, 10000000.0, 100000000.0, 1000000000.0])
}

/// What one finished request contributes.
pub struct Record {
    pub labels: RequestLabels,
    pub duration_ms: f64,
    pub request_bytes: u64,
    pub response_bytes: u64,
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
        registry.register("weft_xds_nacks", "xDS updates rejected by this proxy", xds_nacks.clone());
        registry.register("weft_config_updates", "xDS updates applied by this proxy", config_updates.clone());
        registry.register("weft_active_requests", "Requests in flight", active_requests.clone());
        Metrics {
            registry,
            requests,
            duration,
            request_bytes,
            response_bytes,
            xds_nacks,
            config_updates,
            active_requests,
            workload: node.workload.as_str().into(),
            namespace: node.namespace.as_str().into(),
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
        if let Some(s) = self.series.read().expect("metric series").get(&r.labels) {
            return observe(s);
        }
        let mut all = self.series.write().expect("metric series");
        let s = all.entry(r.labels.clone()).or_insert_with(|| Series {
            requests: self.requests.get_or_create(&r.labels).clone(),
            duration: self.duration.get_or_create(&r.labels).clone(),
            request_bytes: self.request_bytes.get_or_create(&r.labels).clone(),
            response_bytes: self.response_bytes.get_or_create(&r.labels).clone(),
        });
        observe(s);
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
