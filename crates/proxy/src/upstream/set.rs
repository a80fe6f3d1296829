//! A cluster's endpoint set and the balancers built over it: which hosts
//! get traffic, and how much, given their health, priority, locality weight
//! and age. Rebuilt whole when any of these change (an EDS update, a host
//! ejected or readmitted, a slow-start step); a request reads the set it
//! started with and never a lock.
//!
//! Priorities follow Envoy: a priority level's health is the share of its
//! hosts available times the overprovisioning factor (1.4), capped at 100%;
//! levels take traffic in order until their health adds up to 100%. So a
//! level keeps all its traffic while at least 1/1.4 = 71% of it is up, then
//! spills the missing share to the next level, host by host.

use super::balancer::Balancer;
use super::endpoint::Endpoint;
use crate::config::balance::SetPolicy;
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::time::Instant;

/// One priority level that gets traffic.
#[derive(Debug)]
struct Level {
    /// Indexes (ascending) of the endpoints picked from; empty when the
    /// level is every endpoint of the set.
    members: Vec<u32>,
    member_eps: Vec<Arc<Endpoint>>,
    lb: Balancer,
    /// Share of traffic up to and including this level, in 1/10000.
    upto: u32,
}

#[derive(Debug)]
pub struct EndpointSet {
    pub endpoints: Vec<Arc<Endpoint>>,
    levels: Vec<Level>,
    /// Some level has too few hosts available: it spreads over all of them.
    pub panic: bool,
    /// Some endpoint is ramping up: the set is rebuilt as time passes.
    pub warming: bool,
    /// Envoy's overprovisioning factor, in percent (from the assignment).
    pub overprovisioning: u32,
    /// Balancer weight of each endpoint (0: gets no traffic); empty when
    /// every endpoint gets its configured weight.
    weights: Vec<u32>,
    /// (priority, share of traffic in percent) of the levels in use;
    /// empty for a single level taking everything (see `loads()`).
    loads: Vec<(u32, f64)>,
    /// Bits of the endpoints that were unavailable when the set was built.
    down: Vec<u64>,
}

/// Bits of the unavailable endpoints; empty when all are available.
fn down_bits(eps: &[Arc<Endpoint>]) -> Vec<u64> {
    let mut bits = Vec::new();
    for (i, e) in eps.iter().enumerate() {
        if !available(e) {
            bits.resize(bits.len().max(i / 64 + 1), 0u64);
            bits[i / 64] |= 1 << (i % 64);
        }
    }
    bits
}

fn available(e: &Endpoint) -> bool {
    e.health.as_ref().is_none_or(|h| h.available())
}

/// Envoy's priority loads, in 1/10000, over levels given as (available,
/// total): each level's health is available/total × overprovisioning,
/// capped at 100%; the levels fill in order, normalized when together they
/// are under 100%; nothing available sends everything to the first level.
fn priority_loads(levels: &[(usize, usize)], overprovisioning: u32) -> Vec<u32> {
    let health: Vec<u64> = levels
        .iter()
        .map(|(a, t)| if *t == 0 { 0 } else { (*a as u64 * overprovisioning as u64 * 100 / *t as u64).min(10_000) })
        .collect();
    let total = health.iter().sum::<u64>().min(10_000);
    let mut loads = vec![0u32; levels.len()];
    if total == 0 {
        if let Some(first) = loads.first_mut() {
            *first = 10_000;
        }
        return loads;
    }
    let mut left = 10_000u64;
    for (l, h) in loads.iter_mut().zip(&health) {
        let share = (h * 10_000 / total).min(left);
        *l = share as u32;
        left -= share;
    }
    // Rounding leftovers go to the first level in use.
    if let Some(l) = loads.iter_mut().find(|l| **l > 0) {
        *l += left as u32;
    }
    loads
}

impl EndpointSet {
    /// The set over `endpoints` as of `now` (which decides slow-start shares).
    pub fn new(endpoints: Vec<Arc<Endpoint>>, p: &SetPolicy, overprovisioning: u32, now: Instant) -> Self {
        let factor = |e: &Endpoint| -> f64 {
            let Some(w) = p.warmup else { return 1.0 };
            e.health
                .as_ref()
                .and_then(|h| h.available_since())
                .map_or(1.0, |s| w.factor(now.saturating_duration_since(s)))
        };
        let warming = endpoints.iter().any(|e| available(e) && factor(e) < 1.0);
        let down = down_bits(&endpoints);
        let simple = !warming
            && !p.locality_weighted
            && down.is_empty()
            && endpoints.iter().all(|e| e.priority == endpoints[0].priority);
        if simple {
            let weights: Vec<u32> = endpoints.iter().map(|e| e.weight.max(1)).collect();
            let lb = Balancer::new(p.kind, &endpoints, &weights);
            let level = Level { members: Vec::new(), member_eps: Vec::new(), lb, upto: 10_000 };
            return EndpointSet {
                endpoints,
                levels: vec![level],
                panic: false,
                warming,
                overprovisioning,
                weights: Vec::new(),
                loads: Vec::new(),
                down,
            };
        }
        // Endpoint indexes by priority.
        let mut by_priority: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
        for (i, e) in endpoints.iter().enumerate() {
            by_priority.entry(e.priority).or_default().push(i as u32);
        }
        let counts: Vec<(usize, usize)> = by_priority
            .values()
            .map(|ix| (ix.iter().filter(|i| available(&endpoints[**i as usize])).count(), ix.len()))
            .collect();
        let shares = priority_loads(&counts, overprovisioning);
        let mut weights = vec![0u32; endpoints.len()];
        let (mut levels, mut loads, mut panic, mut upto) = (Vec::new(), Vec::new(), false, 0);
        for ((prio, ix), ((avail, total), share)) in by_priority.iter().zip(counts.iter().zip(&shares)) {
            // A level without a share still serves retries that used up the
            // levels before it (Envoy's `previous_priorities`), if it has hosts.
            if *share == 0 && *avail == 0 {
                continue;
            }
            // Envoy's panic: a level under the threshold spreads over all its hosts.
            let level_panic = *share > 0 && (*avail == 0 || avail * 100 < p.panic_threshold as usize * total);
            panic |= level_panic;
            let members: Vec<u32> =
                ix.iter().copied().filter(|i| level_panic || available(&endpoints[*i as usize])).collect();
            let w = member_weights(&endpoints, ix, &members, p, overprovisioning, &factor);
            let (members, w): (Vec<u32>, Vec<u32>) = members.into_iter().zip(w).filter(|(_, w)| *w > 0).unzip();
            if members.is_empty() {
                continue;
            }
            for (i, wi) in members.iter().zip(&w) {
                weights[*i as usize] = *wi;
            }
            let member_eps: Vec<Arc<Endpoint>> = members.iter().map(|i| endpoints[*i as usize].clone()).collect();
            upto += share;
            levels.push(Level { lb: Balancer::new(p.kind, &member_eps, &w), members, member_eps, upto });
            if *share > 0 {
                loads.push((*prio, *share as f64 / 100.0));
            }
        }
        if let Some(last) = levels.last_mut() {
            last.upto = 10_000; // levels dropped for zero weight give their share to the last
        }
        EndpointSet { endpoints, levels, panic, warming, overprovisioning, weights, loads, down }
    }

    /// An endpoint index, avoiding `tried` (hosts already tried) when it can;
    /// with `elsewhere` (a retry policy's `previous_priorities`, Istio's
    /// `retryRemoteLocalities`), a retry goes to a level none of whose hosts
    /// was tried yet, when there is one.
    pub fn pick(&self, hash: Option<u64>, tried: &[usize], elsewhere: bool) -> Option<usize> {
        let mut level = match self.levels.len() {
            0 => return None,
            1 => &self.levels[0],
            _ => {
                let x = hash.map_or_else(|| crate::rng::below(10_000), |h| (h % 10_000) as u32);
                self.levels.iter().find(|l| l.upto > x).unwrap_or(&self.levels[0])
            }
        };
        let used = |l: &Level| l.members.iter().any(|m| tried.contains(&(*m as usize)));
        if elsewhere
            && self.levels.len() > 1
            && !tried.is_empty()
            && let Some(l) = self.levels.iter().find(|l| !l.members.is_empty() && !used(l))
        {
            level = l;
        } else if self.levels.len() > 1 && level.members.iter().all(|m| tried.contains(&(*m as usize))) {
            // A retry whose level is used up moves on to a level with hosts left.
            if let Some(l) = self.levels.iter().find(|l| l.members.iter().any(|m| !tried.contains(&(*m as usize)))) {
                level = l;
            }
        }
        if level.members.is_empty() {
            return level.lb.pick(&self.endpoints, hash, tried);
        }
        let local: Vec<usize> = tried.iter().filter_map(|g| level.members.binary_search(&(*g as u32)).ok()).collect();
        level.lb.pick(&level.member_eps, hash, &local).map(|i| level.members[i] as usize)
    }

    /// (priority, percent of traffic) of each level that gets traffic.
    pub fn loads(&self) -> Vec<(u32, f64)> {
        match self.endpoints.first() {
            Some(e) if self.loads.is_empty() => vec![(e.priority, 100.0)],
            _ => self.loads.clone(),
        }
    }

    /// The endpoints the balancers pick from.
    pub fn available(&self) -> usize {
        self.levels.iter().map(|l| if l.members.is_empty() { self.endpoints.len() } else { l.members.len() }).sum()
    }

    /// The balancer weight of endpoint `i` (0 when it gets no traffic).
    pub fn weight(&self, i: usize) -> u32 {
        if self.weights.is_empty() { self.endpoints[i].weight.max(1) } else { self.weights[i] }
    }

    /// True when some host changed availability since the set was built.
    pub fn health_changed(&self) -> bool {
        self.endpoints.iter().enumerate().any(|(i, e)| {
            let was_down = self.down.get(i / 64).is_some_and(|w| w & (1 << (i % 64)) != 0);
            was_down == available(e)
        })
    }

    /// True when the set should be rebuilt: health changed, or some host
    /// is still warming up (its share grows with time).
    pub fn stale(&self) -> bool {
        self.warming || self.health_changed()
    }
}

/// Balancer weights of a level's members: their own weight, shared within
/// their locality by the locality's weight (scaled by how much of the
/// locality is up, as Envoy does), times their slow-start factor.
fn member_weights(
    eps: &[Arc<Endpoint>],
    level: &[u32],
    members: &[u32],
    p: &SetPolicy,
    overprovisioning: u32,
    factor: &dyn Fn(&Endpoint) -> f64,
) -> Vec<u32> {
    let ep = |i: &u32| &eps[*i as usize];
    let mut locality_share: BTreeMap<&str, f64> = BTreeMap::new();
    if p.locality_weighted {
        // Per locality: (its weight, its members' weights, members, hosts).
        let mut groups: BTreeMap<&str, (u32, f64, usize, usize)> = BTreeMap::new();
        for i in level {
            groups.entry(&*ep(i).locality).or_insert((ep(i).locality_weight, 0.0, 0, 0)).3 += 1;
        }
        for m in members {
            let g = groups.get_mut(&*ep(m).locality).expect("members are in the level");
            g.1 += ep(m).weight.max(1) as f64;
            g.2 += 1;
        }
        for (l, (w, sum, up, hosts)) in groups {
            let up = (up as f64 * overprovisioning as f64 / 100.0 / hosts as f64).min(1.0);
            if sum > 0.0 {
                locality_share.insert(l, w as f64 * up / sum);
            }
        }
    }
    members
        .iter()
        .map(|m| {
            let e = ep(m);
            let base = e.weight.max(1) as f64;
            let share =
                if p.locality_weighted { locality_share.get(&*e.locality).copied().unwrap_or(0.0) } else { 1.0 };
            if share == 0.0 {
                return 0;
            }
            ((base * share * factor(e) * 1000.0).round() as u32).max(1)
        })
        .collect()
}

#[cfg(test)]
mod tests;
