//! The runtime side of clusters: endpoints and the endpoint set a request
//! picks from (`cluster`, `set`, `balancer`), host health (`health`),
//! circuit-breaker admission (`limits`) and connection pools (`pool`).
//! Built from `crate::config`'s settings; state that must outlive a config
//! version (pools, health) lives in `Registries`.

pub mod balancer;
pub mod cluster;
pub mod dns;
pub mod endpoint;
pub mod health;
pub mod limits;
pub mod pool;
pub mod set;
pub mod watch;

/// Per-host state that outlives config versions: connection pools and
/// health, and the shared names. Read when endpoint sets are built, never
/// per request.
#[derive(Default)]
pub struct Registries {
    pub pools: pool::PoolRegistry,
    pub health: health::HealthRegistry,
    pub names: crate::names::Interner,
    pub dns: dns::DnsCache,
    /// Access log writers, by path.
    pub logs: crate::telemetry::access_log::Sinks,
    /// Span exporters, by collector.
    pub spans: crate::telemetry::trace::Exporters,
}

impl std::fmt::Debug for Registries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Registries")
    }
}
