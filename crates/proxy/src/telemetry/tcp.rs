//! Istio's TCP metrics, per label set of a spliced connection:
//! `istio_tcp_connections_opened_total`, `istio_tcp_connections_closed_total`,
//! `istio_tcp_received_bytes_total` (from the client) and
//! `istio_tcp_sent_bytes_total` (to it). A connection's bytes are counted
//! when it closes; Istio also reports them while it is open.
//!
//! The labels come from the config (the cluster's service, the endpoint's
//! workload), never from what a client sends, so their sets are bounded
//! by the config.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use std::collections::HashMap;
use std::sync::Arc;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TcpLabels {
    pub reporter: &'static str,
    pub source_workload: Arc<str>,
    pub source_workload_namespace: Arc<str>,
    pub destination_workload: Arc<str>,
    pub destination_workload_namespace: Arc<str>,
    pub destination_service: Arc<str>,
    pub destination_service_name: Arc<str>,
    pub destination_service_namespace: Arc<str>,
    pub request_protocol: &'static str,
    pub response_flags: &'static str,
    pub connection_security_policy: &'static str,
    pub source_principal: Arc<str>,
    pub source_app: Arc<str>,
    pub source_version: Arc<str>,
    pub source_canonical_service: Arc<str>,
    pub source_canonical_revision: Arc<str>,
    pub source_cluster: &'static str,
    pub destination_principal: Arc<str>,
    pub destination_app: Arc<str>,
    pub destination_version: Arc<str>,
    pub destination_canonical_service: Arc<str>,
    pub destination_canonical_revision: Arc<str>,
    pub destination_cluster: &'static str,
}

/// A connection counted open, to be counted closed.
pub struct Opened(Arc<Series>);

impl Opened {
    /// It closed, having moved these bytes (from the client, to it).
    pub fn closed(self, (received, sent): (u64, u64)) {
        self.0.closed.inc();
        self.0.received.inc_by(received);
        self.0.sent.inc_by(sent);
    }
}

/// One label set's four counters (handles share the families' values).
struct Series {
    opened: Counter,
    closed: Counter,
    received: Counter,
    sent: Counter,
}

#[derive(Default)]
pub struct TcpMetrics {
    opened: Family<TcpLabels, Counter>,
    closed: Family<TcpLabels, Counter>,
    received: Family<TcpLabels, Counter>,
    sent: Family<TcpLabels, Counter>,
    /// The label sets seen, for `json`: one lookup per connection event
    /// finds all four counters; written once per new set.
    series: parking_lot::RwLock<HashMap<TcpLabels, Arc<Series>>>,
}

impl TcpMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let m = TcpMetrics::default();
        registry.register("istio_tcp_connections_opened", "TCP connections opened", m.opened.clone());
        registry.register("istio_tcp_connections_closed", "TCP connections closed", m.closed.clone());
        registry.register(
            "istio_tcp_received_bytes",
            "Bytes received from the client on TCP connections",
            m.received.clone(),
        );
        registry.register("istio_tcp_sent_bytes", "Bytes sent to the client on TCP connections", m.sent.clone());
        m
    }

    fn series(&self, labels: &TcpLabels) -> Arc<Series> {
        if let Some(s) = self.series.read().get(labels) {
            return s.clone();
        }
        let mut all = self.series.write();
        all.entry(labels.clone())
            .or_insert_with(|| {
                Arc::new(Series {
                    opened: self.opened.get_or_create(labels).clone(),
                    closed: self.closed.get_or_create(labels).clone(),
                    received: self.received.get_or_create(labels).clone(),
                    sent: self.sent.get_or_create(labels).clone(),
                })
            })
            .clone()
    }

    /// A connection to the destination `labels` name was opened; what it
    /// returns counts its close (its series found once per connection).
    pub fn opened(&self, labels: &TcpLabels) -> Opened {
        let s = self.series(labels);
        s.opened.inc();
        Opened(s)
    }

    /// Every label set with its connections opened and closed, as JSON:
    /// what the control plane reads for `weft stat`'s TCP column.
    pub fn json(&self) -> Vec<serde_json::Value> {
        self.series
            .read()
            .iter()
            .map(|(l, s)| {
                serde_json::json!({
                    "reporter": l.reporter,
                    "source": format!("{}.{}", l.source_workload, l.source_workload_namespace),
                    "destinationService": &*l.destination_service,
                    "destination": format!("{}.{}", l.destination_workload, l.destination_workload_namespace),
                    "flags": l.response_flags,
                    "opened": s.opened.get(),
                    "closed": s.closed.get(),
                })
            })
            .collect()
    }
}
