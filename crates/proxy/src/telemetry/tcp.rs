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
    pub destination_principal: &'static str,
    pub destination_app: Arc<str>,
    pub destination_version: Arc<str>,
    pub destination_canonical_service: Arc<str>,
    pub destination_canonical_revision: Arc<str>,
    pub destination_cluster: &'static str,
}

#[derive(Default)]
pub struct TcpMetrics {
    opened: Family<TcpLabels, Counter>,
    closed: Family<TcpLabels, Counter>,
    received: Family<TcpLabels, Counter>,
    sent: Family<TcpLabels, Counter>,
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

    /// A connection to the destination `labels` name was opened.
    pub fn opened(&self, labels: &TcpLabels) {
        self.opened.get_or_create(labels).inc();
    }

    /// It closed, having moved these bytes (from the client, to it).
    pub fn closed(&self, labels: &TcpLabels, (received, sent): (u64, u64)) {
        self.closed.get_or_create(labels).inc();
        self.received.get_or_create(labels).inc_by(received);
        self.sent.get_or_create(labels).inc_by(sent);
    }
}
