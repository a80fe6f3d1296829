//! A histogram recorded with atomics, encoded as prometheus-client's.
//!
//! prometheus-client's `Histogram` takes a write lock per observation, and
//! every request records three (duration, request and response sizes): on
//! a proxy with several workers, they would all queue on the same locks.
//! Here an observation is two relaxed atomic adds, the bucket's and the
//! sum's; the count is the buckets' total, so it always equals `+Inf`'s.

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::{MetricType, TypedMetric};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

#[derive(Clone, Debug)]
pub struct Histogram(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    /// Upper bounds, ascending; one more count than bounds, for `+Inf`.
    bounds: &'static [f64],
    counts: Box<[AtomicU64]>,
    /// The sum in units of `1 / scale`, so that it can be added atomically.
    sum: AtomicU64,
    scale: f64,
}

impl Histogram {
    /// A histogram over `bounds` whose sum keeps `1 / scale` of a unit
    /// (1 for whole bytes, 1000 for milliseconds to the microsecond).
    pub fn new(bounds: &'static [f64], scale: f64) -> Self {
        let counts = (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect();
        Histogram(Arc::new(Inner { bounds, counts, sum: AtomicU64::new(0), scale }))
    }

    /// Each bucket's own count (not cumulative; the last is `+Inf`'s) and
    /// the sum, for `/stats?format=json`.
    pub fn counts(&self) -> (Vec<u64>, f64) {
        let h = &*self.0;
        (h.counts.iter().map(|c| c.load(Relaxed)).collect(), h.sum.load(Relaxed) as f64 / h.scale)
    }

    pub fn observe(&self, v: f64) {
        let h = &*self.0;
        // The first bucket whose bound is ≥ v (NaN and beyond the last go to
        // +Inf). A scan: most values fall in the first few buckets.
        let i = h.bounds.iter().position(|b| v <= *b).unwrap_or(h.bounds.len());
        h.counts[i].fetch_add(1, Relaxed);
        h.sum.fetch_add((v * h.scale).round().max(0.0) as u64, Relaxed);
    }
}

impl TypedMetric for Histogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for Histogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let h = &*self.0;
        // Per bucket, as prometheus-client's encoder expects (it accumulates).
        let buckets: Vec<(f64, u64)> = h
            .bounds
            .iter()
            .copied()
            .chain(std::iter::once(f64::MAX))
            .zip(h.counts.iter().map(|c| c.load(Relaxed)))
            .collect();
        let count = buckets.iter().map(|(_, n)| n).sum();
        let sum = h.sum.load(Relaxed) as f64 / h.scale;
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::registry::Registry;

    #[test]
    fn observations_encode_as_cumulative_buckets_with_their_count_and_sum() {
        let h = Histogram::new(&[1.0, 10.0], 1000.0);
        for v in [0.5, 1.0, 2.25, 10.5, f64::NAN] {
            h.observe(v);
        }
        let mut registry = Registry::default();
        registry.register("latency", "test", h.clone());
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        for line in [
            "latency_bucket{le=\"1.0\"} 2",
            "latency_bucket{le=\"10.0\"} 3",
            "latency_bucket{le=\"+Inf\"} 5",
            "latency_count 5",
            "latency_sum 14.25",
        ] {
            assert!(text.lines().any(|l| l == line), "{line:?} missing from\n{text}");
        }
    }
}
