//! One host of a cluster as requests use it: its address and labels, its
//! connection pool, health and requests in flight.

use super::health::HostHealth;
use super::pool::EndpointPool;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug)]
pub struct Endpoint {
    pub addr: SocketAddr,
    pub weight: u32,
    pub workload: Arc<str>,
    pub namespace: Arc<str>,
    pub locality: Arc<str>,
    /// Envoy priority (0 is preferred); set per caller by the control plane.
    pub priority: u32,
    /// The locality's weight, when the cluster weights localities.
    pub locality_weight: u32,
    pub pool: Arc<EndpointPool>,
    /// None when the cluster has no outlier detection or health checks.
    pub health: Option<Arc<HostHealth>>,
    /// A weft sidecar fronts it (`tlsMode: istio`): requests to it carry
    /// this proxy's identity, requests to anything else do not.
    pub mesh: bool,
    /// Its names in metrics (app, version, canonical service and revision).
    pub meta: Arc<crate::telemetry::peer::Workload>,
    active: AtomicU64,
}

/// Decrements the endpoint's active count when dropped.
pub struct ActiveGuard(Arc<Endpoint>);

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Endpoint {
    pub fn new(
        addr: SocketAddr,
        weight: u32,
        workload: Arc<str>,
        namespace: Arc<str>,
        locality: Arc<str>,
        pool: Arc<EndpointPool>,
    ) -> Self {
        Endpoint {
            addr,
            weight,
            workload,
            namespace,
            locality,
            priority: 0,
            locality_weight: 1,
            pool,
            health: None,
            mesh: false,
            meta: crate::telemetry::peer::Workload::unknown(),
            active: AtomicU64::new(0),
        }
    }

    pub fn active(&self) -> u64 {
        self.active.load(Ordering::Relaxed)
    }

    /// Envoy's `/clusters` health flags: `healthy` or what keeps it out.
    pub fn health_text(&self) -> String {
        self.health.as_ref().map_or("healthy".into(), |h| h.flags_text())
    }

    pub fn start(self: &Arc<Self>) -> ActiveGuard {
        self.active.fetch_add(1, Ordering::Relaxed);
        ActiveGuard(self.clone())
    }
}
