//! What the control plane accepts, and how often a limit was hit.
//!
//! Every limit refuses the one request or edit that crosses it with an
//! error saying which limit and how to raise it, and counts the refusal in
//! `weft_control_limit_refusals_total{limit}` (`GET /metrics`): nothing a
//! client sends can grow the control plane without bound.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::time::Duration;

/// The control plane's limits; `weft control` and `weft up` take flags for
/// those an operator may need to raise.
#[derive(Clone, Debug)]
pub struct Limits {
    /// A control API request's body (`--max-request-bytes`).
    pub max_request_bytes: usize,
    /// Registered instances in the mesh (`--max-instances`).
    pub max_instances: usize,
    /// A registration's TTL is clamped up to this (short TTLs only cost heartbeats).
    pub min_ttl: Duration,
    /// A registration asking for more is refused (`--max-ttl`): an instance
    /// that died must leave within this.
    pub max_ttl: Duration,
    /// The labels of one registration.
    pub max_labels: usize,
    /// After a start, how long a proxy that already has config (from the
    /// control plane before a restart) keeps it before it is answered
    /// (`--warmup`): about one registration TTL, so that every live
    /// instance has registered again and no endpoint set is pushed empty.
    pub warmup: Duration,
    /// The config folder's size, documents and alias expansion.
    pub config: weft_api::load::LoadLimits,
    /// Names the control API answers to besides IP addresses and
    /// `localhost` (`--api-host`: a control plane reached by DNS name).
    pub api_hosts: Vec<String>,
    /// How often every proxy's request counts are read for the golden
    /// signals (`--stats-interval`; `stats`); zero never.
    pub stats_every: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_request_bytes: 64 * 1024,
            max_instances: 50_000,
            min_ttl: Duration::from_secs(1),
            max_ttl: Duration::from_secs(300),
            max_labels: 64,
            warmup: Duration::from_secs(10),
            config: Default::default(),
            api_hosts: Vec::new(),
            stats_every: Duration::from_secs(10),
        }
    }
}

/// serde_json's nesting limit, which every API body is parsed under: a
/// deeper body is a 400, never a deep recursion.
pub const JSON_DEPTH: usize = 128;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LimitLabel {
    limit: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeniedLabel {
    /// What was asked: `certificate`, `registration`, `token`.
    request: &'static str,
}

/// The control plane's own metrics.
pub struct Metrics {
    registry: Registry,
    refusals: Family<LimitLabel, Counter>,
    denied: Family<DeniedLabel, Counter>,
    pub instances: Gauge,
    /// RequestAuthentication key sets that could not be fetched.
    pub jwks_fetch_failures: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let refusals = Family::<LimitLabel, Counter>::default();
        let instances = Gauge::default();
        registry.register("weft_control_limit_refusals", "Requests and edits refused by a limit", refusals.clone());
        registry.register("weft_control_registered_instances", "Instances registered at run time", instances.clone());
        let denied = Family::<DeniedLabel, Counter>::default();
        registry.register(
            "weft_control_unauthorized",
            "API requests refused because the caller did not prove the identity (or admin right) they need",
            denied.clone(),
        );
        let jwks_fetch_failures = Counter::default();
        registry.register(
            "weft_control_jwks_fetch_failures",
            "Fetches of a RequestAuthentication's key set (jwksUri, OpenID discovery) that failed",
            jwks_fetch_failures.clone(),
        );
        Metrics { registry, refusals, denied, instances, jwks_fetch_failures }
    }
}

impl Metrics {
    /// Counts one refusal by `limit` (`request_bytes`, `instances`, `ttl`, ...).
    pub fn refused(&self, limit: &'static str) {
        self.refusals.get_or_create(&LimitLabel { limit }).inc();
    }

    /// Counts one request refused for want of a credential.
    pub fn unauthorized(&self, request: &'static str) {
        self.denied.get_or_create(&DeniedLabel { request }).inc();
    }

    /// The Prometheus text exposition.
    pub fn text(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
