//! Circuit-breaker thresholds (Envoy's `circuit_breakers`, Istio's
//! `connectionPool` and `retryBudget`). Admission against them runs in
//! `upstream::limits`.

use envoy_types::pb::envoy::config::cluster::v3::Cluster;

/// The default-priority thresholds of a cluster; `u32::MAX` is no limit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    pub max_connections: u32,
    pub max_pending: u32,
    pub max_requests: u32,
    pub max_retries: u32,
    /// Retry budget: (percent of active requests, minimum concurrency).
    pub budget: Option<(f64, u32)>,
}

/// Values from u32::MAX / 2 up mean "no limit" (Istio writes u32::MAX).
fn limit(v: Option<&envoy_types::pb::google::protobuf::UInt32Value>) -> u32 {
    v.map_or(u32::MAX, |v| if v.value >= u32::MAX / 2 { u32::MAX } else { v.value })
}

impl Thresholds {
    /// The default-priority thresholds of `c`, if any limit is finite.
    pub fn from_proto(c: &Cluster) -> Option<Thresholds> {
        let t = c.circuit_breakers.as_ref()?.thresholds.iter().find(|t| t.priority == 0)?;
        let budget = t.retry_budget.as_ref().map(|b| {
            (
                b.budget_percent.as_ref().map_or(20.0, |p| p.value.clamp(0.0, 100.0)),
                b.min_retry_concurrency.as_ref().map_or(3, |v| v.value),
            )
        });
        let th = Thresholds {
            max_connections: limit(t.max_connections.as_ref()),
            max_pending: limit(t.max_pending_requests.as_ref()),
            max_requests: limit(t.max_requests.as_ref()),
            max_retries: limit(t.max_retries.as_ref()),
            budget,
        };
        let limits = [th.max_connections, th.max_pending, th.max_requests, th.max_retries];
        (budget.is_some() || limits.iter().any(|v| *v != u32::MAX)).then_some(th)
    }
}
