//! How a cluster spreads traffic: the balancer kind and its parameters,
//! the panic threshold, locality weighting and slow start.

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LbKind {
    RoundRobin,
    Random,
    LeastRequest,
    RingHash { min_ring: usize },
    Maglev { table_size: usize },
}

/// Slow start (DestinationRule `warmup`): an endpoint that became available
/// `age` ago gets `factor(age)` of its weight.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Warmup {
    pub window: Duration,
    /// The least share of its weight a warming endpoint gets (0..1).
    pub min_factor: f64,
    /// Steepness of the curve; 1.0 is a smooth S, near 0 a straight line.
    pub aggression: f64,
}

impl Warmup {
    /// The logistic curve P(t) = 1/(1+e^(−k(t−μ))) with μ = window/2 and
    /// k = 10·aggression/window, rescaled to run from 0 at t = 0 to 1 at the
    /// end of the window, and never below `min_factor`.
    pub fn factor(&self, age: Duration) -> f64 {
        let d = self.window.as_secs_f64();
        if age >= self.window || d <= 0.0 {
            return 1.0;
        }
        let k = 10.0 * self.aggression.max(1e-3) / d;
        let p = |t: f64| 1.0 / (1.0 + (-k * (t - d / 2.0)).exp());
        let (p0, p1) = (p(0.0), p(d));
        ((p(age.as_secs_f64()) - p0) / (p1 - p0)).clamp(self.min_factor.clamp(0.0, 1.0), 1.0)
    }
}

/// Envoy's default overprovisioning factor, in percent.
pub const DEFAULT_OVERPROVISIONING: u32 = 140;

/// How a cluster spreads traffic over its endpoints; fixed per cluster version.
#[derive(Debug, Clone, Copy)]
pub struct SetPolicy {
    pub kind: LbKind,
    /// Below this percentage of available hosts, a level spreads over all of them.
    pub panic_threshold: u32,
    /// Localities carry weights (`localityLbSetting.distribute`).
    pub locality_weighted: bool,
    /// Slow start; never set for hash-based balancers (as in Envoy).
    pub warmup: Option<Warmup>,
}
