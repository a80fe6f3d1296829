//! The mesh's golden signals over the last minutes (`weft stat`, and the
//! dashboard to come): every `Limits::stats_every`, each proxy's request
//! series are read from its admin (`/stats?format=json`) and what changed
//! since the last read is kept per edge of the service graph (caller,
//! service, serving workload) for `KEEP`.
//!
//! Edges are counted once: by the destination's proxy where it reports
//! them (inbound), else by the caller's (a destination outside the mesh).
//! TCP connections are counted by the caller's (Istio's TCP metrics there).
//! Nothing is pushed to the control plane between reads, and a proxy that
//! does not answer costs its own edges only.

mod window;

pub use window::{By, Counts};

use crate::hub::Hub;
use parking_lot::Mutex;
use serde_json::Value;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How far back the window reaches.
pub const KEEP: Duration = Duration::from_secs(15 * 60);

/// One edge of the service graph.
#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord)]
pub struct Edge {
    /// `workload.namespace` of the caller (`unknown.unknown` when it did not say).
    pub source: String,
    /// The service's host name.
    pub service: String,
    /// `workload.namespace` that served it.
    pub destination: String,
}

/// What changed between two reads: per edge, as the destination reported
/// it and as the caller did.
struct Interval {
    start: Instant,
    end: Instant,
    edges: HashMap<Edge, [Counts; 2]>,
}

/// A series' identity within one proxy: its labels, as the proxy wrote them.
type SeriesKey = (String, String, String, String, u64, String);

#[derive(Default)]
struct Inner {
    /// Per proxy, per series: the request count and duration buckets last read.
    last: HashMap<String, HashMap<SeriesKey, (u64, Vec<u64>)>>,
    intervals: VecDeque<Interval>,
    last_read: Option<Instant>,
    bounds: Vec<f64>,
}

#[derive(Default)]
pub struct Stats {
    inner: Mutex<Inner>,
}

fn key(s: &Value) -> SeriesKey {
    let t = |k: &str| s[k].as_str().unwrap_or_default().to_owned();
    (t("reporter"), t("source"), t("destinationService"), t("destination"), s["code"].as_u64().unwrap_or(0), t("flags"))
}

impl Stats {
    /// Takes one read of every proxy (`(id, answer)`, the answers that came).
    pub fn ingest(&self, now: Instant, answers: Vec<(String, Value)>) {
        let mut inner = self.inner.lock();
        let start = inner.last_read.unwrap_or(now);
        inner.last_read = Some(now);
        let mut edges: HashMap<Edge, [Counts; 2]> = HashMap::new();
        let mut seen = HashMap::new();
        for (proxy, answer) in answers {
            if inner.bounds.is_empty()
                && let Some(b) = answer["durationBoundsMs"].as_array()
            {
                inner.bounds = b.iter().filter_map(Value::as_f64).collect();
            }
            // A proxy read for the first time is a baseline (its counts
            // since it started are not this interval's) unless it started
            // within this interval.
            let fresh = answer["uptimeSeconds"]
                .as_f64()
                .and_then(|up| now.checked_sub(Duration::from_secs_f64(up)))
                .is_some_and(|began| began >= start && start < now);
            let before = inner.last.remove(&proxy).or_else(|| fresh.then(HashMap::new));
            let mut now_seen = HashMap::new();
            for s in answer["series"].as_array().into_iter().flatten() {
                let k = key(s);
                let requests = s["requests"].as_u64().unwrap_or(0);
                let buckets: Vec<u64> =
                    s["durationBuckets"].as_array().into_iter().flatten().filter_map(Value::as_u64).collect();
                // A series new in a known proxy is this interval's; a count
                // that went down restarted.
                let delta = before.as_ref().map(|b| match b.get(&k) {
                    Some((r, _)) if *r > requests => (requests, buckets.clone()),
                    Some((r, bk)) => (
                        requests - r,
                        buckets
                            .iter()
                            .zip(bk.iter().chain(std::iter::repeat(&0)))
                            .map(|(a, b)| a.saturating_sub(*b))
                            .collect(),
                    ),
                    None => (requests, buckets.clone()),
                });
                if let Some((n, bk)) = delta.filter(|(n, _)| *n > 0) {
                    let edge = Edge { source: k.1.clone(), service: k.2.clone(), destination: k.3.clone() };
                    let side = usize::from(k.0 != "destination");
                    let errors = if k.4 >= 500 || k.4 == 0 { n } else { 0 };
                    edges.entry(edge).or_default()[side].add(n, errors, &bk);
                }
                now_seen.insert(k, (requests, buckets));
            }
            // TCP connections opened, by the source (keyed apart from requests).
            for s in answer["tcp"].as_array().into_iter().flatten() {
                let mut k = key(s);
                k.0 = format!("tcp:{}", k.0);
                let opened = s["opened"].as_u64().unwrap_or(0);
                let delta = before.as_ref().map(|b| match b.get(&k) {
                    Some((o, _)) if *o <= opened => opened - o,
                    _ => opened,
                });
                if let Some(n) = delta.filter(|n| *n > 0) {
                    let edge = Edge { source: k.1.clone(), service: k.2.clone(), destination: k.3.clone() };
                    edges.entry(edge).or_default()[1].tcp += n;
                }
                now_seen.insert(k, (opened, Vec::new()));
            }
            seen.insert(proxy, now_seen);
        }
        // Proxies that did not answer keep their last read (a slow answer
        // is not a restart); those gone from the mesh leave with `forget`.
        inner.last.extend(seen);
        if start < now {
            inner.intervals.push_back(Interval { start, end: now, edges });
        }
        while inner.intervals.front().is_some_and(|i| now.duration_since(i.end) > KEEP) {
            inner.intervals.pop_front();
        }
    }

    /// Drops what is kept of proxies no longer connected.
    pub fn forget(&self, connected: &[String]) {
        self.inner.lock().last.retain(|id, _| connected.contains(id));
    }

    /// The signals over the last `window`, grouped `by`.
    pub fn query(&self, by: By, window: Duration) -> Value {
        let inner = self.inner.lock();
        let now = inner.last_read.unwrap_or_else(Instant::now);
        // Every interval that overlaps the window: at least the latest.
        let within: Vec<&Interval> = inner.intervals.iter().filter(|i| now.duration_since(i.end) < window).collect();
        let covered = within.first().map_or(Duration::ZERO, |i| now.duration_since(i.start));
        let mut edges: HashMap<&Edge, [Counts; 2]> = HashMap::new();
        for i in &within {
            for (e, sides) in &i.edges {
                let acc = edges.entry(e).or_default();
                acc[0].merge(&sides[0]);
                acc[1].merge(&sides[1]);
            }
        }
        let once = edges.into_iter().map(|(e, sides)| (e, window::once(sides)));
        window::rows(by, once, covered, &inner.bounds)
    }
}

impl Stats {
    /// Per name, one point per interval of the last `window` (oldest
    /// first): seconds ago, requests/s, success rate, p99 — the
    /// dashboard's charts.
    pub fn series(&self, by: By, window: Duration) -> Value {
        let inner = self.inner.lock();
        let now = inner.last_read.unwrap_or_else(Instant::now);
        let mut names: serde_json::Map<String, Value> = serde_json::Map::new();
        for i in inner.intervals.iter().filter(|i| now.duration_since(i.end) < window) {
            let once = i.edges.iter().map(|(e, sides)| (e, window::once(sides.clone())));
            let rows = window::rows(by, once, i.end.duration_since(i.start), &inner.bounds);
            let ago = now.duration_since(i.end).as_secs_f64();
            for r in rows["rows"].as_array().into_iter().flatten() {
                let point = serde_json::json!({"ago": ago, "rps": r["rps"], "successRate": r["successRate"], "p99Ms": r["p99Ms"]});
                let name = r["name"].as_str().unwrap_or_default().to_owned();
                match names.entry(name).or_insert_with(|| Value::Array(Vec::new())) {
                    Value::Array(points) => points.push(point),
                    _ => unreachable!("only arrays are inserted"),
                }
            }
        }
        serde_json::json!({"names": names})
    }
}

/// Reads every proxy each `every` for as long as the control plane runs.
pub async fn run(hub: Arc<Hub>, stats: Arc<Stats>, every: Duration) {
    if every.is_zero() {
        return;
    }
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let proxies = hub.proxies();
        let reads = proxies
            .iter()
            .map(|p| async move { crate::reach::ask(p, "/stats?format=json").await.ok().map(|v| (p.id.clone(), v)) });
        let answers: Vec<(String, Value)> = futures::future::join_all(reads).await.into_iter().flatten().collect();
        stats.forget(&proxies.iter().map(|p| p.id.clone()).collect::<Vec<_>>());
        stats.ingest(Instant::now(), answers);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read(reporter: &str, code: u16, requests: u64, buckets: [u64; 3]) -> Value {
        json!({"reporter": reporter, "source": "web.default", "destinationService": "api.default.svc.cluster.local",
               "destination": "api-v1.default", "code": code, "flags": "-", "requests": requests, "durationBuckets": buckets})
    }

    fn answer(series: Vec<Value>) -> Value {
        json!({"durationBoundsMs": [1.0, 10.0], "series": series})
    }

    #[test]
    fn reads_become_deltas_counted_once_per_edge() {
        let stats = Stats::default();
        let t0 = Instant::now();
        // First reads are baselines: what came before is no interval's.
        stats.ingest(
            t0,
            vec![
                ("web".into(), answer(vec![read("source", 200, 100, [100, 0, 0])])),
                ("api".into(), answer(vec![read("destination", 200, 100, [100, 0, 0])])),
            ],
        );
        let t1 = t0 + Duration::from_secs(10);
        stats.ingest(
            t1,
            vec![
                ("web".into(), answer(vec![read("source", 200, 120, [110, 10, 0]), read("source", 503, 5, [5, 0, 0])])),
                (
                    "api".into(),
                    answer(vec![read("destination", 200, 120, [110, 10, 0]), read("destination", 503, 5, [5, 0, 0])]),
                ),
            ],
        );
        let v = stats.query(By::Service, Duration::from_secs(60));
        let row = &v["rows"][0];
        assert_eq!(row["requests"], 25, "20 + 5, once, by the destination: {v}");
        assert_eq!(row["rps"], 2.5);
        assert_eq!(row["successRate"], 0.8);
        assert_eq!(v["coveredSeconds"], 10.0);
        // A restarted proxy counts from zero again; one that did not
        // answer keeps its baseline.
        let t2 = t1 + Duration::from_secs(10);
        stats.ingest(t2, vec![("api".into(), answer(vec![read("destination", 200, 3, [3, 0, 0])]))]);
        let v = stats.query(By::Workload, Duration::from_secs(5));
        assert_eq!(
            (v["rows"][0]["name"].as_str(), v["rows"][0]["requests"].as_u64()),
            (Some("api-v1.default"), Some(3)),
            "{v}"
        );
        // A proxy first read: counted whole if it started since the last
        // read, else a baseline.
        let t3 = t2 + Duration::from_secs(10);
        let mut young = answer(vec![read("destination", 200, 7, [7, 0, 0])]);
        young["uptimeSeconds"] = 4.0.into();
        let mut old = answer(vec![read("destination", 200, 900, [900, 0, 0])]);
        old["uptimeSeconds"] = 400.0.into();
        stats.ingest(t3, vec![("api2".into(), young), ("api3".into(), old)]);
        let v = stats.query(By::Service, Duration::from_secs(5));
        assert_eq!(v["rows"][0]["requests"], 7, "{v}");
        let edge = stats.query(By::Edge, Duration::from_secs(20));
        assert_eq!(edge["rows"][0]["source"], "web.default", "{edge}");
        assert_eq!(edge["rows"][0]["requests"], 10, "{edge}");
    }
}
