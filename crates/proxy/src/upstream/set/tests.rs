use super::*;
use crate::config::balance::{LbKind, Warmup};
use crate::upstream::health::{HealthRegistry, flag};
use std::time::Duration;

fn endpoint(i: usize, priority: u32, locality: &str, locality_weight: u32) -> Endpoint {
    let addr: std::net::SocketAddr = format!("127.0.0.1:{}", 2000 + i).parse().unwrap();
    let pool = Arc::new(crate::upstream::pool::EndpointPool::new(addr));
    let mut e = Endpoint::new(addr, 1, "w".into(), "ns".into(), locality.into(), pool);
    e.priority = priority;
    e.locality_weight = locality_weight;
    e
}

/// Endpoints with health state: (priority, locality, locality weight).
fn endpoints(reg: &HealthRegistry, spec: &[(u32, &str, u32)]) -> Vec<Arc<Endpoint>> {
    let cluster: Arc<str> = "c".into();
    spec.iter()
        .enumerate()
        .map(|(i, (p, l, w))| {
            let mut e = endpoint(i, *p, l, *w);
            e.health = Some(reg.get(&cluster, e.addr, 0));
            Arc::new(e)
        })
        .collect()
}

fn down(e: &Endpoint) {
    e.health.as_ref().unwrap().set(flag::FAILED_OUTLIER_CHECK, true);
}

fn policy() -> SetPolicy {
    SetPolicy { kind: LbKind::RoundRobin, panic_threshold: 50, locality_weighted: false, warmup: None }
}

fn counts(set: &EndpointSet, n: usize) -> Vec<usize> {
    let mut c = vec![0; set.endpoints.len()];
    for _ in 0..n {
        c[set.pick(None, &[], false).unwrap()] += 1;
    }
    c
}

#[test]
fn priority_loads_follow_envoy() {
    assert_eq!(priority_loads(&[(2, 2), (2, 2)], 140), vec![10_000, 0]);
    // One of two up: 50% × 1.4 = 70% stays, 30% spills over.
    assert_eq!(priority_loads(&[(1, 2), (2, 2)], 140), vec![7_000, 3_000]);
    // 3 of 4 up: 75% × 1.4 ≥ 100%, nothing spills.
    assert_eq!(priority_loads(&[(3, 4), (2, 2)], 140), vec![10_000, 0]);
    assert_eq!(priority_loads(&[(0, 2), (2, 2)], 140), vec![0, 10_000]);
    assert_eq!(priority_loads(&[(0, 2), (0, 2)], 140), vec![10_000, 0]);
    // Together under 100%: normalized.
    assert_eq!(priority_loads(&[(1, 3), (1, 3)], 140), vec![5_000, 5_000]);
}

#[test]
fn a_level_keeps_its_traffic_until_its_hosts_fail() {
    let reg = HealthRegistry::default();
    let eps = endpoints(&reg, &[(0, "r/a", 1), (0, "r/a", 1), (1, "r/b", 1), (1, "r/b", 1)]);
    let now = Instant::now();
    let set = EndpointSet::new(eps.clone(), &policy(), 140, now);
    assert_eq!(counts(&set, 400), vec![200, 200, 0, 0]);
    // A retry that used up priority 0 goes on to priority 1.
    assert_eq!(set.pick(None, &[0, 1], false).map(|i| i >= 2), Some(true));
    // One host of it tried: a retry stays in the level, unless told to go
    // elsewhere (`previous_priorities`); with every level used, it stays.
    for _ in 0..50 {
        assert_eq!(set.pick(None, &[0], false), Some(1));
        assert!(set.pick(None, &[0], true).is_some_and(|i| i >= 2));
        assert!(set.pick(None, &[0, 2], true).is_some_and(|i| i != 0 && i != 2));
    }
    down(&eps[0]);
    assert!(set.stale());
    let set = EndpointSet::new(eps.clone(), &policy(), 140, now);
    let c = counts(&set, 10_000);
    assert_eq!(c[0], 0);
    assert!((6_500..7_500).contains(&c[1]), "70% stays in priority 0: {c:?}");
    assert!(c[2] + c[3] > 2_500, "{c:?}");
    down(&eps[1]);
    let set = EndpointSet::new(eps.clone(), &policy(), 140, now);
    assert_eq!(counts(&set, 400), vec![0, 0, 200, 200]);
    assert!(!set.panic);
    // Retries move on to the other level once this one is used up.
    let set = EndpointSet::new(eps.clone(), &policy(), 140, now);
    assert_eq!(set.pick(None, &[2, 3], false).map(|i| i >= 2), Some(true));
    // Everything down: panic in the first level (the caller's locality).
    down(&eps[2]);
    down(&eps[3]);
    let set = EndpointSet::new(eps, &policy(), 140, now);
    assert!(set.panic);
    let c = counts(&set, 400);
    assert_eq!((c[0], c[1], c[2] + c[3]), (200, 200, 0));
}

#[test]
fn locality_weights_split_traffic_and_shrink_with_failures() {
    let reg = HealthRegistry::default();
    let eps = endpoints(&reg, &[(0, "r/a", 1), (0, "r/b", 3), (0, "r/b", 3), (0, "r/c", 0)]);
    let p = SetPolicy { locality_weighted: true, ..policy() };
    let set = EndpointSet::new(eps.clone(), &p, 140, Instant::now());
    let c = counts(&set, 4_000);
    assert_eq!(c, vec![1_000, 1_500, 1_500, 0], "weights 1:3, weight 0 gets nothing");
    // Half of b down: b's weight × 0.5 × 1.4 = 2.1 against a's 1.
    down(&eps[1]);
    let set = EndpointSet::new(eps, &p, 140, Instant::now());
    let c = counts(&set, 3_100);
    assert_eq!((c[0], c[1]), (1_000, 0), "{c:?}");
}

#[test]
fn warmup_follows_the_logistic_curve() {
    let w = Warmup { window: Duration::from_secs(10), min_factor: 0.1, aggression: 1.0 };
    let f = |s: f64| w.factor(Duration::from_secs_f64(s));
    assert_eq!(f(0.0), 0.1);
    assert!((f(5.0) - 0.5).abs() < 1e-9, "halfway at μ = window/2");
    assert_eq!(f(10.0), 1.0);
    let steps: Vec<f64> = (0..=10).map(|s| f(s as f64)).collect();
    assert!(steps.windows(2).all(|p| p[0] <= p[1]), "rises: {steps:?}");
    // Slow at both ends, fast in the middle.
    assert!(f(6.0) - f(5.0) > f(9.0) - f(8.0));
    // Near-zero aggression is a straight line; more aggression is steeper.
    let lin = Warmup { aggression: 0.001, min_factor: 0.0, ..w };
    assert!((lin.factor(Duration::from_secs(3)) - 0.3).abs() < 0.01);
    let steep = Warmup { aggression: 3.0, min_factor: 0.0, ..w };
    assert!(steep.factor(Duration::from_secs(3)) < f(3.0));
}

#[tokio::test(start_paused = true)]
async fn a_new_endpoint_ramps_up() {
    let reg = HealthRegistry::default();
    let eps = endpoints(&reg, &[(0, "", 1), (0, "", 1)]);
    let start = Instant::now();
    let w = Warmup { window: Duration::from_secs(10), min_factor: 0.1, aggression: 1.0 };
    let p = SetPolicy { warmup: Some(w), ..policy() };
    // Both new: equal shares, but still warming.
    let set = EndpointSet::new(eps.clone(), &p, 140, start);
    assert!(set.warming);
    assert_eq!(counts(&set, 200), vec![100, 100]);
    // The second is readmitted 20 s later: it starts at 10%.
    tokio::time::advance(Duration::from_secs(20)).await;
    down(&eps[1]);
    eps[1].health.as_ref().unwrap().set(flag::FAILED_OUTLIER_CHECK, false);
    let back = eps[1].health.as_ref().unwrap().available_since().unwrap();
    let set = EndpointSet::new(eps.clone(), &p, 140, back);
    assert_eq!(counts(&set, 1_100), vec![1_000, 100]);
    let set = EndpointSet::new(eps.clone(), &p, 140, back + Duration::from_secs(5));
    assert_eq!(counts(&set, 1_500), vec![1_000, 500]);
    let set = EndpointSet::new(eps, &p, 140, back + Duration::from_secs(10));
    assert!(!set.warming);
    assert_eq!(counts(&set, 200), vec![100, 100]);
}
