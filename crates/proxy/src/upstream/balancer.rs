//! Load balancers. Each is built once per config version from the endpoint
//! list; a pick reads immutable tables and atomics only, never a lock.
//!
//! - round robin: weights become a precomputed smooth weighted round robin
//!   schedule (nginx's algorithm), walked by an atomic counter;
//! - random: weighted by cumulative weights;
//! - least request: power of two choices on active requests / weight;
//! - ring hash and maglev: consistent hashing on a per-request key.

use super::endpoint::Endpoint;
use crate::config::balance::LbKind;
use rand::Rng;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

#[derive(Debug)]
pub struct Balancer {
    kind: LbKind,
    next: AtomicUsize,
    /// The one table `kind` uses (one per cluster per level: kept small).
    table: Table,
}

#[derive(Debug)]
enum Table {
    /// Equal weights (round robin, least request).
    None,
    /// Round robin order (endpoint indexes) when weights differ.
    Schedule(Box<[u32]>),
    /// Random: cumulative weights.
    Cumulative(Box<[u64]>),
    /// Least request: the weights, when they differ.
    Weights(Box<[u32]>),
    /// Ring hash: sorted (hash, endpoint).
    Ring(Box<[(u64, u32)]>),
    /// Maglev: the lookup table of endpoints.
    Maglev(Box<[u32]>),
}

/// The hash of consistent hashing, for request keys and host placement:
/// xxHash64 with seed 0, as Envoy's ring hash and maglev use it. Its output
/// is fixed by its specification, so every build (and an Envoy beside
/// weft) places a key on the same host.
pub fn hash64(bytes: &[u8]) -> u64 {
    xxhash_rust::xxh64::xxh64(bytes, 0)
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// Smooth weighted round robin: spreads heavy endpoints out instead of
/// sending their whole share in a burst.
fn smooth_schedule(weights: &[u32]) -> Vec<u32> {
    if weights.windows(2).all(|w| w[0] == w[1]) {
        return Vec::new();
    }
    let g = weights.iter().copied().fold(0, gcd).max(1);
    let mut w: Vec<i64> = weights.iter().map(|x| (*x / g).max(1) as i64).collect();
    let mut total: i64 = w.iter().sum();
    // Keep the table small: scale down proportionally past 10k entries.
    if total > 10_000 {
        let f = total as f64 / 10_000.0;
        w = w.iter().map(|x| ((*x as f64 / f).round() as i64).max(1)).collect();
        total = w.iter().sum();
    }
    let mut current = vec![0i64; w.len()];
    let mut out = Vec::with_capacity(total as usize);
    for _ in 0..total {
        for (c, wi) in current.iter_mut().zip(&w) {
            *c += wi;
        }
        let (best, _) = current.iter().enumerate().max_by_key(|(i, c)| (**c, std::cmp::Reverse(*i))).unwrap_or((0, &0));
        current[best] -= total;
        out.push(best as u32);
    }
    out
}

/// What a consistent-hash table hashes a host by: its address, as text.
fn host_key(e: &Endpoint) -> String {
    e.addr.to_string()
}

fn maglev_table(eps: &[Arc<Endpoint>], weights: &[u32], m: usize) -> Vec<u32> {
    let n = eps.len();
    let mut table = vec![u32::MAX; m];
    if n == 0 {
        return Vec::new();
    }
    let perms: Vec<(usize, usize)> = eps
        .iter()
        .map(|e| {
            // Envoy's: offset and skip from the address hashed with seeds 0 and 1.
            let key = host_key(e);
            let (offset, skip) = (hash64(key.as_bytes()), xxhash_rust::xxh64::xxh64(key.as_bytes(), 1));
            ((offset % m as u64) as usize, (skip % (m as u64 - 1)) as usize + 1)
        })
        .collect();
    let mut next = vec![0usize; n];
    let mut filled = 0;
    'outer: loop {
        for i in 0..n {
            // Weighted: an endpoint of weight w takes w turns per round.
            for _ in 0..weights[i].max(1) {
                let (offset, skip) = perms[i];
                let mut c = (offset + next[i] * skip) % m;
                while table[c] != u32::MAX {
                    next[i] += 1;
                    c = (offset + next[i] * skip) % m;
                }
                table[c] = i as u32;
                next[i] += 1;
                filled += 1;
                if filled == m {
                    break 'outer;
                }
            }
        }
    }
    table
}

impl Balancer {
    /// A balancer over `eps`, endpoint `i` weighted `weights[i]`.
    pub fn new(kind: LbKind, eps: &[Arc<Endpoint>], weights: &[u32]) -> Self {
        debug_assert_eq!(eps.len(), weights.len());
        let table = match kind {
            LbKind::RoundRobin => {
                let s = smooth_schedule(weights);
                if s.is_empty() { Table::None } else { Table::Schedule(s.into()) }
            }
            LbKind::Random => {
                let mut acc = 0u64;
                Table::Cumulative(
                    weights
                        .iter()
                        .map(|w| {
                            acc += *w as u64;
                            acc
                        })
                        .collect(),
                )
            }
            LbKind::LeastRequest if weights.windows(2).any(|w| w[0] != w[1]) => Table::Weights(weights.into()),
            LbKind::LeastRequest => Table::None,
            LbKind::RingHash { min_ring } => {
                let total: u64 = weights.iter().map(|w| *w as u64).sum::<u64>().max(1);
                let mut ring = Vec::new();
                for (i, e) in eps.iter().enumerate() {
                    let key = host_key(e);
                    let replicas = ((min_ring as u64 * weights[i] as u64).div_ceil(total)).max(1);
                    for r in 0..replicas {
                        // Envoy's ring points: "address_replica".
                        ring.push((hash64(format!("{key}_{r}").as_bytes()), i as u32));
                    }
                }
                ring.sort_unstable();
                Table::Ring(ring.into())
            }
            LbKind::Maglev { table_size } => Table::Maglev(maglev_table(eps, weights, table_size.max(2)).into()),
        };
        Balancer { kind, next: AtomicUsize::new(rand::rng().random_range(0..eps.len().max(1))), table }
    }

    pub fn kind(&self) -> LbKind {
        self.kind
    }

    /// An endpoint index, avoiding `exclude` (hosts already tried) when it can.
    pub fn pick(&self, eps: &[Arc<Endpoint>], hash: Option<u64>, exclude: &[usize]) -> Option<usize> {
        let n = eps.len();
        if n == 0 {
            return None;
        }
        for _ in 0..3 {
            let i = self.pick_once(eps, hash);
            if !exclude.contains(&i) || exclude.len() >= n {
                return Some(i);
            }
            if hash.is_some() {
                // Consistent hashing: walk on to the next distinct host.
                return (1..n).map(|k| (i + k) % n).find(|j| !exclude.contains(j)).or(Some(i));
            }
        }
        (0..n).find(|j| !exclude.contains(j)).or(Some(0))
    }

    fn pick_once(&self, eps: &[Arc<Endpoint>], hash: Option<u64>) -> usize {
        let n = eps.len();
        match (&self.table, self.kind) {
            (Table::Schedule(s), _) => s[self.next.fetch_add(1, Ordering::Relaxed) % s.len()] as usize,
            (Table::None, LbKind::RoundRobin) => self.next.fetch_add(1, Ordering::Relaxed) % n,
            (Table::Cumulative(c), _) => {
                let total = *c.last().unwrap_or(&1);
                let x = crate::rng::range(0..total.max(1));
                c.partition_point(|c| *c <= x).min(n - 1)
            }
            (t, LbKind::LeastRequest) => {
                if n == 1 {
                    return 0;
                }
                let a = crate::rng::range(0..n);
                let b = (a + crate::rng::range(1..n)) % n;
                let weight = |i: usize| match t {
                    Table::Weights(w) => w.get(i).map_or(1, |w| (*w).max(1)),
                    _ => 1,
                };
                let load = |i: usize| (eps[i].active() + 1) as f64 / weight(i) as f64;
                if load(b) < load(a) { b } else { a }
            }
            (Table::Ring(ring), _) => {
                let h = hash.unwrap_or_else(crate::rng::u64);
                let i = ring.partition_point(|(x, _)| *x < h);
                ring.get(i).or(ring.first()).map_or(0, |(_, e)| *e as usize)
            }
            (Table::Maglev(table), _) => {
                let h = hash.unwrap_or_else(crate::rng::u64);
                table.get((h % table.len().max(1) as u64) as usize).map_or(0, |e| *e as usize)
            }
            // Not built by `new`; any endpoint will do.
            (Table::None | Table::Weights(_), _) => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eps(weights: &[u32]) -> Vec<Arc<Endpoint>> {
        weights
            .iter()
            .enumerate()
            .map(|(i, w)| {
                let addr: std::net::SocketAddr = format!("127.0.0.1:{}", 1000 + i).parse().unwrap();
                let pool = Arc::new(crate::upstream::pool::EndpointPool::new(addr));
                Arc::new(Endpoint::new(addr, *w, "w".into(), "ns".into(), "".into(), pool))
            })
            .collect()
    }

    fn w(e: &[Arc<Endpoint>]) -> Vec<u32> {
        e.iter().map(|e| e.weight).collect()
    }

    fn counts(b: &Balancer, e: &[Arc<Endpoint>], n: usize, hash: impl Fn(usize) -> Option<u64>) -> Vec<usize> {
        let mut c = vec![0; e.len()];
        for k in 0..n {
            c[b.pick(e, hash(k), &[]).unwrap()] += 1;
        }
        c
    }

    #[test]
    fn round_robin_is_even_and_weighted_is_exact_and_smooth() {
        let e = eps(&[1, 1, 1]);
        assert_eq!(counts(&Balancer::new(LbKind::RoundRobin, &e, &w(&e)), &e, 300, |_| None), vec![100, 100, 100]);
        let e = eps(&[5, 1, 1]);
        let b = Balancer::new(LbKind::RoundRobin, &e, &w(&e));
        assert_eq!(counts(&b, &e, 700, |_| None), vec![500, 100, 100]);
        // Smooth: the heavy endpoint never gets more than 3 in a row at 5:1:1.
        assert_eq!(smooth_schedule(&[5, 1, 1]), vec![0, 0, 1, 0, 2, 0, 0]);
    }

    #[test]
    fn random_follows_weights_within_tolerance() {
        let e = eps(&[3, 1]);
        let c = counts(&Balancer::new(LbKind::Random, &e, &w(&e)), &e, 20_000, |_| None);
        let share = c[0] as f64 / 20_000.0;
        assert!((share - 0.75).abs() < 0.02, "{c:?}");
    }

    #[test]
    fn least_request_prefers_the_idle_endpoint() {
        let e = eps(&[1, 1]);
        let b = Balancer::new(LbKind::LeastRequest, &e, &w(&e));
        let _busy: Vec<_> = (0..10).map(|_| e[0].start()).collect();
        assert_eq!(counts(&b, &e, 1000, |_| None), vec![0, 1000]);
    }

    #[test]
    fn the_hash_is_xxhash64_as_specified() {
        // The specification's test vectors: any build, and Envoy, agree.
        assert_eq!(hash64(b""), 0xEF46_DB37_51D8_E999);
        assert_eq!(hash64(b"abc"), 0x44BC_2CF5_AD77_0999);
    }

    #[test]
    fn consistent_hashes_are_sticky_and_spread() {
        let e = eps(&[1, 1, 1, 1]);
        for kind in [LbKind::RingHash { min_ring: 1024 }, LbKind::Maglev { table_size: 65537 }] {
            let b = Balancer::new(kind, &e, &w(&e));
            for key in 0..50u64 {
                let first = b.pick(&e, Some(hash64(&key.to_le_bytes())), &[]);
                assert!((0..5).all(|_| b.pick(&e, Some(hash64(&key.to_le_bytes())), &[]) == first));
            }
            let c = counts(&b, &e, 8000, |k| Some(hash64(&k.to_le_bytes())));
            assert!(c.iter().all(|n| *n > 1400 && *n < 2600), "{kind:?} {c:?}");
        }
    }

    #[test]
    fn retries_avoid_tried_hosts() {
        let e = eps(&[1, 1, 1]);
        let b = Balancer::new(LbKind::Random, &e, &w(&e));
        for _ in 0..100 {
            let i = b.pick(&e, None, &[0, 1]).unwrap();
            assert_eq!(i, 2);
        }
    }
}
