//! The proxy's configuration compiled from xDS: data only, no runtime
//! state. Listeners, route tables and cluster settings are built here,
//! once per update and outside the request path; `crate::snapshot` pairs
//! them with the runtime clusters of `crate::upstream`.

pub mod access_log;
pub mod assignment;
pub mod balance;
pub mod certs;
pub mod cluster;
pub mod health_check;
pub mod jwt;
pub mod limits;
pub mod listener;
pub mod matcher;
pub mod outlier;
pub mod pins;
pub mod rbac;
pub mod route;
pub mod server_cert;
pub mod sni;
pub mod terminate;
pub mod tls_params;
pub mod tracing;
pub mod upstream_tls;
pub mod wire;

use std::collections::HashMap;
use std::sync::Arc;

#[derive(Debug, Clone)]
pub struct CompileError(pub String);

impl CompileError {
    pub fn new(msg: impl Into<String>) -> Self {
        CompileError(msg.into())
    }
}

impl std::fmt::Display for CompileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The transports a sidecar's inbound listener takes (its filter chain's
/// `transport_protocol`, from the workload's PeerAuthentication); `tls` is
/// mutual TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// TLS and plaintext (no `transport_protocol`): Istio's PERMISSIVE.
    Any,
    /// `tls` only: STRICT.
    Tls,
    /// `raw_buffer` only: DISABLE.
    Plaintext,
}

impl Transport {
    pub fn from_protocol(p: &str) -> Result<Self, CompileError> {
        match p {
            "" => Ok(Transport::Any),
            "tls" => Ok(Transport::Tls),
            "raw_buffer" => Ok(Transport::Plaintext),
            other => Err(CompileError::new(format!("unknown transport_protocol {other:?}: use tls or raw_buffer"))),
        }
    }
}

/// Which type a compile error belongs to, so the right one is NACKed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Listener,
    Route,
    Cluster,
}

/// A cluster's place in its config version's cluster list: what routes
/// and TCP listeners point at (`crate::snapshot::Clusters` holds the list).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClusterId(pub u32);

/// Cluster ids by name, for linking routes to the clusters of a version.
pub type ClusterIndex = HashMap<Arc<str>, ClusterId>;

/// A protobuf duration as a std one (negative parts count as zero).
pub fn duration(d: &envoy_types::pb::google::protobuf::Duration) -> std::time::Duration {
    std::time::Duration::new(d.seconds.max(0) as u64, d.nanos.max(0) as u32)
}

/// A fraction of requests in parts per million; unset means all of them.
pub fn parts_per_million(f: Option<&envoy_types::pb::envoy::r#type::v3::FractionalPercent>) -> u32 {
    use envoy_types::pb::envoy::r#type::v3::fractional_percent::DenominatorType as D;
    let Some(f) = f else { return 1_000_000 };
    let scale = match D::try_from(f.denominator).unwrap_or(D::Hundred) {
        D::Hundred => 10_000,
        D::TenThousand => 100,
        D::Million => 1,
    };
    f.numerator.saturating_mul(scale).min(1_000_000)
}

/// True for `ppm` parts per million of calls (a fault's or mirror's share).
pub fn chance(ppm: u32) -> bool {
    ppm >= 1_000_000 || (ppm > 0 && crate::rng::below(1_000_000) < ppm)
}
