//! State shared by the proxy's tasks. The request path only ever does
//! `config.load()` (lock-free); the xDS task is the only writer.

pub use crate::node::NodeInfo;
use crate::snapshot::Snapshot;
use crate::telemetry::Metrics;
use arc_swap::ArcSwap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::watch;

pub struct ProxyState {
    pub node: NodeInfo,
    pub config: ArcSwap<Snapshot>,
    /// Bumped on every accepted config; the listener manager follows it.
    pub updates: watch::Sender<u64>,
    /// Every route table and endpoint set the listeners need has arrived.
    pub xds_complete: AtomicBool,
    /// The listeners of the latest complete config are bound.
    pub listening: AtomicBool,
    /// Set once on shutdown; listeners, connections, the xDS client and
    /// registration follow it (connections wake on it alone, not on every
    /// config update).
    pub draining: watch::Sender<bool>,
    /// Latched once every host under active health checks has had its
    /// first check (Envoy's cluster warming), so a proxy is not reported
    /// ready while it could still send a request to an unchecked host.
    warm: AtomicBool,
    pub metrics: Metrics,
    /// Connection pools and host health, kept across config versions.
    pub hosts: Arc<crate::upstream::Registries>,
    pub last_nack: parking_lot::Mutex<Option<String>>,
    /// Open taps (`weft tap`): offered each finished request while open.
    pub taps: crate::telemetry::tap::Taps,
    /// When this proxy started: its counts are since then (`/stats`).
    pub started: tokio::time::Instant,
    /// Why the last certificate request failed; cleared by the next success.
    pub cert_error: parking_lot::Mutex<Option<String>>,
    /// `workload.namespace`, sent to the next hop so its metrics can name us.
    pub source_header: Option<http::HeaderValue>,
    /// Downstream connections' idle and request-head timeouts (`crate::idle`).
    pub timeouts: crate::listener::idle::Timeouts,
    /// Set when the proxy is to speak mutual TLS: it is not ready until
    /// its first certificate is issued (Istio's sidecar waits for SDS).
    pub wants_cert: AtomicBool,
}

impl ProxyState {
    pub fn new(node: NodeInfo, timeouts: crate::listener::idle::Timeouts) -> Arc<Self> {
        let mut metrics = Metrics::new(&node);
        let hosts: Arc<crate::upstream::Registries> = Default::default();
        metrics.registry.register("weft_access_log_lines", "Access log lines written", hosts.logs.written.clone());
        metrics.registry.register("weft_spans_exported", "Spans a collector took", hosts.spans.exported.clone());
        metrics.registry.register(
            "weft_spans_dropped",
            "Spans dropped: their exporter's queue was full, or the collector did not take them",
            hosts.spans.dropped.clone(),
        );
        metrics.registry.register(
            "weft_access_log_dropped",
            "Access log lines dropped because their writer fell behind (its queue was full)",
            hosts.logs.dropped.clone(),
        );
        let source_header = http::HeaderValue::from_str(&metrics.own.header(&node.workload, &node.namespace)).ok();
        Arc::new(ProxyState {
            node,
            config: ArcSwap::from_pointee(Snapshot::default()),
            updates: watch::Sender::new(0),
            xds_complete: AtomicBool::new(false),
            listening: AtomicBool::new(false),
            draining: watch::Sender::new(false),
            warm: AtomicBool::new(false),
            metrics,
            wants_cert: AtomicBool::new(false),
            hosts,
            last_nack: parking_lot::Mutex::new(None),
            cert_error: parking_lot::Mutex::new(None),
            started: tokio::time::Instant::now(),
            taps: Default::default(),
            source_header,
            timeouts,
        })
    }

    pub fn ready(&self) -> bool {
        self.listening.load(Ordering::Acquire) && !self.is_draining() && self.warm() && !self.awaiting_cert()
    }

    /// This proxy's workload certificate, once issued (`crate::mtls`);
    /// the mesh endpoints' connection pools read it when they dial.
    pub fn tls(&self) -> &crate::mtls::Slot {
        &self.hosts.pools.tls
    }

    /// Set to speak mutual TLS and no certificate issued yet.
    pub fn awaiting_cert(&self) -> bool {
        self.wants_cert.load(Ordering::Relaxed) && self.tls().load().is_none()
    }

    pub fn is_draining(&self) -> bool {
        *self.draining.borrow()
    }

    /// Resolves once the proxy is draining (at once if it already is).
    pub async fn drained(&self) {
        let _ = self.draining.subscribe().wait_for(|d| *d).await;
    }

    fn warm(&self) -> bool {
        if self.warm.load(Ordering::Acquire) {
            return true;
        }
        let pending = crate::upstream::health::flag::PENDING_ACTIVE_HC;
        let cfg = self.config.load();
        // Hosts not checked yet, or DNS names not resolved yet.
        let checking = cfg.clusters.iter().any(|c| {
            !c.dns_ready()
                || c.built().is_some_and(|s| {
                    s.endpoints.iter().any(|e| e.health.as_ref().is_some_and(|h| h.flags() & pending != 0))
                })
        });
        if !checking {
            self.warm.store(true, Ordering::Release);
        }
        !checking
    }
}
