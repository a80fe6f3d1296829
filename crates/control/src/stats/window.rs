//! Counts summed over a window and read as golden signals: requests per
//! second, success rate (not 5xx) and latency quantiles from the duration
//! buckets, as Prometheus' `histogram_quantile` reads them.

use super::Edge;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::Duration;

/// What a row of `weft stat` is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum By {
    Service,
    Workload,
    Edge,
}

impl std::str::FromStr for By {
    type Err = String;
    fn from_str(s: &str) -> Result<By, String> {
        match s {
            "service" | "services" | "svc" => Ok(By::Service),
            "workload" | "workloads" => Ok(By::Workload),
            "edge" | "edges" => Ok(By::Edge),
            other => Err(format!("`{other}`: stats are by service, workload or edge")),
        }
    }
}

/// Requests, the failed among them, their duration buckets, and TCP
/// connections opened.
#[derive(Clone, Debug, Default)]
pub struct Counts {
    pub requests: u64,
    pub errors: u64,
    pub buckets: Vec<u64>,
    pub tcp: u64,
}

/// An edge's counts once: the destination's requests where it reported
/// any, else the caller's; TCP connections as the caller counted them.
pub fn once([dst, src]: [Counts; 2]) -> Counts {
    let tcp = dst.tcp + src.tcp;
    let mut c = if dst.requests > 0 { dst } else { src };
    c.tcp = tcp;
    c
}

impl Counts {
    pub fn add(&mut self, requests: u64, errors: u64, buckets: &[u64]) {
        self.requests += requests;
        self.errors += errors;
        if self.buckets.len() < buckets.len() {
            self.buckets.resize(buckets.len(), 0);
        }
        for (a, b) in self.buckets.iter_mut().zip(buckets) {
            *a += b;
        }
    }

    pub fn merge(&mut self, other: &Counts) {
        self.add(other.requests, other.errors, &other.buckets);
        self.tcp += other.tcp;
    }

    /// The `q` quantile in milliseconds: linear within the bucket it falls
    /// in; the last finite bound when it falls beyond it.
    pub fn quantile(&self, q: f64, bounds: &[f64]) -> Option<f64> {
        let total: u64 = self.buckets.iter().sum();
        if total == 0 || bounds.is_empty() {
            return None;
        }
        let rank = q * total as f64;
        let mut below = 0u64;
        for (i, n) in self.buckets.iter().enumerate() {
            if (below + n) as f64 >= rank && *n > 0 {
                let Some(upper) = bounds.get(i) else { return bounds.last().copied() };
                let lower = if i == 0 { 0.0 } else { bounds[i - 1] };
                return Some(lower + (upper - lower) * (rank - below as f64) / *n as f64);
            }
            below += n;
        }
        bounds.last().copied()
    }
}

/// One row per name, busiest first.
pub fn rows<'a>(by: By, edges: impl Iterator<Item = (&'a Edge, Counts)>, covered: Duration, bounds: &[f64]) -> Value {
    let mut grouped: BTreeMap<String, (Counts, Option<&'a Edge>)> = BTreeMap::new();
    for (e, c) in edges {
        let name = match by {
            By::Service => e.service.clone(),
            By::Workload => e.destination.clone(),
            By::Edge => format!("{} → {} ({})", e.source, e.service, e.destination),
        };
        let g = grouped.entry(name).or_default();
        g.0.merge(&c);
        g.1 = Some(e);
    }
    let secs = covered.as_secs_f64();
    let mut rows: Vec<Value> = grouped
        .into_iter()
        .map(|(name, (c, edge))| {
            let mut row = json!({
                "name": name,
                "requests": c.requests,
                "rps": if secs > 0.0 { c.requests as f64 / secs } else { 0.0 },
                "successRate": (c.requests > 0).then(|| 1.0 - c.errors as f64 / c.requests as f64),
                "p50Ms": c.quantile(0.5, bounds),
                "p95Ms": c.quantile(0.95, bounds),
                "p99Ms": c.quantile(0.99, bounds),
                "tcpConnections": c.tcp,
            });
            if let (By::Edge, Some(e)) = (by, edge) {
                row["source"] = e.source.clone().into();
                row["service"] = e.service.clone().into();
                row["destination"] = e.destination.clone().into();
            }
            row
        })
        .collect();
    rows.sort_by(|a, b| {
        b["requests"].as_u64().cmp(&a["requests"].as_u64()).then_with(|| a["name"].as_str().cmp(&b["name"].as_str()))
    });
    json!({"coveredSeconds": secs, "rows": rows})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_interpolate_within_their_bucket() {
        let bounds = [1.0, 10.0, 100.0];
        let mut c = Counts::default();
        // 50 under 1 ms, 40 in (1, 10], 10 in (10, 100].
        c.add(100, 5, &[50, 40, 10, 0]);
        assert_eq!(c.quantile(0.5, &bounds), Some(1.0));
        assert_eq!(c.quantile(0.7, &bounds), Some(1.0 + 9.0 * 20.0 / 40.0));
        assert_eq!(c.quantile(0.95, &bounds), Some(10.0 + 90.0 * 5.0 / 10.0));
        let mut slow = Counts::default();
        slow.add(1, 0, &[0, 0, 0, 1]);
        assert_eq!(slow.quantile(0.99, &bounds), Some(100.0), "beyond the last bound: the last bound");
        assert_eq!(Counts::default().quantile(0.5, &bounds), None);
    }
}
