//! Locality load balancing, decided per caller as Istio does: the control
//! plane knows where the calling proxy runs (its xDS node's locality) and
//! writes each endpoint group's Envoy `priority` (failover) or locality
//! `load_balancing_weight` (distribute) into the assignment it sends it.
//! Any Envoy-compatible proxy then does the rest: priority 0 takes the
//! traffic while enough of it is healthy, and the overflow goes on in order.
//!
//! Priorities by distance from the caller (Istio's order):
//! 0 same region, zone and subzone; 1 same zone; 2 same region;
//! 3 a region the `failover` rules name for the caller's region; 4 the rest.
//! `failoverPriority` labels rank before distance: an endpoint matching the
//! caller on the first n labels outranks one matching fewer. Priorities
//! are then renumbered 0, 1, 2... without gaps.

use super::node::ProxyNode;
use envoy_types::pb::envoy::config::core::v3::Locality;
use weft_api::types::{Labels, LocalityLbSetting};

/// How a caller ranks the endpoints of one cluster; what depends on the
/// caller alone is worked out once, not per endpoint.
#[derive(Debug, Default)]
pub enum Placement<'a> {
    /// Every endpoint is equal (no locality, or locality LB disabled).
    #[default]
    Flat,
    Failover {
        /// The caller's (region, zone, subzone); None ranks by labels only.
        here: Option<[&'a str; 3]>,
        /// Regions the `failover` rules send the caller's region to.
        next_regions: Vec<&'a str>,
        /// `failoverPriority`, in order: a label and the value an endpoint
        /// must have to match (the caller's own, or the `label=value` one).
        labels: Vec<(&'a str, Option<&'a str>)>,
    },
    /// `distribute`: locality pattern to percent of traffic.
    Distribute { to: Vec<(&'a str, u32)> },
}

/// A locality split in (region, zone, subzone).
fn parts(l: &str) -> [&str; 3] {
    let mut it = l.splitn(3, '/');
    [it.next().unwrap_or(""), it.next().unwrap_or(""), it.next().unwrap_or("")]
}

/// `region/zone/subzone` as Envoy's `Locality`.
pub fn to_pb(l: &str) -> Locality {
    let [region, zone, sub_zone] = parts(l).map(str::to_owned);
    Locality { region, zone, sub_zone }
}

/// Envoy's `Locality` as `region/zone/subzone`; None when it is empty.
pub fn text(l: &Locality) -> Option<String> {
    Some(format!("{}/{}/{}", l.region, l.zone, l.sub_zone).trim_end_matches('/').to_owned()).filter(|t| !t.is_empty())
}

/// Istio's locality match: `pattern` segments equal `locality`'s, up to
/// a `*` that matches the rest (`us-west/*`, `*`); a shorter pattern
/// matches every locality under it.
pub fn matches(pattern: &str, locality: &str) -> bool {
    let loc = parts(locality);
    for (i, seg) in pattern.split('/').enumerate() {
        if seg == "*" {
            return true;
        }
        if i >= 3 || loc[i] != seg {
            return false;
        }
    }
    true
}

/// The values of the `topology.*` labels, taken from a locality.
fn topology_label<'a>(key: &str, locality: Option<[&'a str; 3]>) -> Option<&'a str> {
    let p = locality?;
    match key {
        "topology.kubernetes.io/region" => Some(p[0]),
        "topology.kubernetes.io/zone" => Some(p[1]),
        "topology.istio.io/subzone" => Some(p[2]),
        _ => None,
    }
}

impl<'a> Placement<'a> {
    /// The placement `setting` gives `node`'s traffic. Failover needs
    /// outlier detection (without it no host is ever found unhealthy, so
    /// nothing would fail over), as upstream.
    pub fn of(setting: Option<&'a LocalityLbSetting>, outlier: bool, node: &'a ProxyNode) -> Self {
        let here = node.locality.as_deref().map(parts);
        if setting.and_then(|s| s.enabled) == Some(false) {
            return Placement::Flat;
        }
        if let Some(s) = setting.filter(|s| !s.distribute.is_empty()) {
            let Some(me) = node.locality.as_deref() else { return Placement::Flat };
            return match s.distribute.iter().find(|d| matches(&d.from, me)) {
                Some(d) => Placement::Distribute { to: d.to.iter().map(|(k, v)| (k.as_str(), *v)).collect() },
                None => Placement::Flat,
            };
        }
        let priority = setting.map_or(&[][..], |s| &s.failover_priority[..]);
        if !outlier || (here.is_none() && priority.is_empty()) {
            return Placement::Flat;
        }
        let next_regions = match here {
            Some(me) => {
                setting.iter().flat_map(|s| &s.failover).filter(|f| f.from == me[0]).map(|f| f.to.as_str()).collect()
            }
            None => Vec::new(),
        };
        let labels = priority
            .iter()
            .map(|item| match item.split_once('=') {
                Some((k, v)) => (k, Some(v)),
                None => {
                    (item.as_str(), topology_label(item, here).or_else(|| node.labels.get(item).map(String::as_str)))
                }
            })
            .collect();
        Placement::Failover { here, next_regions, labels }
    }

    pub fn locality_weighted(&self) -> bool {
        matches!(self, Placement::Distribute { .. })
    }

    /// The rank of an endpoint (lower is preferred; renumbered later):
    /// `failoverPriority` labels first, then distance from the caller.
    pub fn rank(&self, locality: Option<&str>, labels: Option<&Labels>) -> u32 {
        let Placement::Failover { here, next_regions, labels: wanted } = self else { return 0 };
        let ep = locality.map(parts);
        let value = |key: &str| topology_label(key, ep).or_else(|| labels?.get(key).map(String::as_str));
        let matched = wanted.iter().take_while(|(key, want)| want.is_some() && value(key) == *want).count();
        let by_distance = match (here, ep) {
            (None, _) => 0,
            (Some(me), Some(ep)) if me[0] == ep[0] => {
                if me[1] != ep[1] {
                    2
                } else if me[2] != ep[2] {
                    1
                } else {
                    0
                }
            }
            (Some(_), Some(ep)) if next_regions.contains(&ep[0]) => 3,
            _ => 4,
        };
        (wanted.len() - matched) as u32 * 5 + by_distance
    }

    /// `distribute`: the weight of each locality (None leaves it out): a
    /// `to` entry's percentage shared equally by the localities it is the
    /// most specific match of.
    pub fn weights(&self, localities: &[Option<&str>]) -> Vec<Option<u32>> {
        let Placement::Distribute { to } = self else { return vec![Some(1); localities.len()] };
        let entry = |l: &Option<&str>| -> Option<usize> {
            let l = (*l)?;
            (0..to.len()).filter(|i| matches(to[*i].0, l)).max_by_key(|i| to[*i].0.trim_end_matches("/*").len())
        };
        let chosen: Vec<Option<usize>> = localities.iter().map(entry).collect();
        chosen
            .iter()
            .map(|c| {
                let i = (*c)?;
                let sharing = chosen.iter().filter(|x| **x == Some(i)).count() as u32;
                Some((to[i].1 * 1000 / sharing).max(1)).filter(|_| to[i].1 > 0)
            })
            .collect()
    }
}

/// Renumbers ranks to consecutive priorities, keeping their order.
pub fn compact(ranks: &[u32]) -> Vec<u32> {
    let mut sorted = ranks.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    ranks.iter().map(|r| sorted.binary_search(r).expect("rank is present") as u32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_api::types::LocalityFailover;

    fn node(locality: &str, labels: &[(&str, &str)]) -> ProxyNode {
        use envoy_types::pb::envoy::config::core::v3::Node;
        let mut n =
            ProxyNode::from_node(&Node { id: "n".into(), locality: Some(to_pb(locality)), ..Default::default() });
        n.labels = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        n
    }

    #[test]
    fn patterns_match_like_istio() {
        assert!(matches("*", "r/z/s"));
        assert!(matches("r/*", "r/z"));
        assert!(matches("r", "r/z/s"));
        assert!(matches("r/z", "r/z"));
        assert!(!matches("r/y", "r/z"));
        assert!(!matches("q/*", "r/z"));
    }

    #[test]
    fn failover_ranks_by_distance_then_rules() {
        let n = node("r1/z1/s1", &[]);
        let rules = LocalityLbSetting {
            failover: vec![LocalityFailover { from: "r1".into(), to: "r2".into() }],
            ..Default::default()
        };
        let p = Placement::of(Some(&rules), true, &n);
        let r = |l: &str| p.rank(Some(l), None);
        assert_eq!([r("r1/z1/s1"), r("r1/z1/s2"), r("r1/z2"), r("r2/z1"), r("r3/z1")], [0, 1, 2, 3, 4]);
        assert_eq!(compact(&[4, 0, 2, 0]), vec![2, 0, 1, 0]);
        // Without outlier detection, or disabled: flat.
        assert!(matches!(Placement::of(Some(&rules), false, &n), Placement::Flat));
        let off = LocalityLbSetting { enabled: Some(false), ..Default::default() };
        assert!(matches!(Placement::of(Some(&off), true, &n), Placement::Flat));
        // Locality LB is on by default once outlier detection is set.
        assert_eq!(Placement::of(None, true, &n).rank(Some("r1/z2"), None), 2);
    }

    #[test]
    fn failover_priority_labels_rank_first() {
        let n = node("r1/z1", &[("net", "a"), ("tier", "gold")]);
        let rules = LocalityLbSetting {
            failover_priority: vec!["net".into(), "tier".into(), "topology.kubernetes.io/zone".into()],
            ..Default::default()
        };
        let p = Placement::of(Some(&rules), true, &n);
        let labels = |net: &str, tier: &str| -> Labels {
            [("net".to_string(), net.to_string()), ("tier".to_string(), tier.to_string())].into()
        };
        let all = p.rank(Some("r1/z1"), Some(&labels("a", "gold")));
        let two = p.rank(Some("r1/z2"), Some(&labels("a", "gold")));
        let one = p.rank(Some("r1/z1"), Some(&labels("a", "silver")));
        let none = p.rank(Some("r1/z1"), Some(&labels("b", "gold")));
        assert!(all < two && two < one && one < none, "{all} {two} {one} {none}");
        let fixed = LocalityLbSetting { failover_priority: vec!["tier=silver".into()], ..Default::default() };
        let p = Placement::of(Some(&fixed), true, &n);
        assert!(
            p.rank(Some("r1/z1"), Some(&labels("a", "silver"))) < p.rank(Some("r1/z1"), Some(&labels("a", "gold")))
        );
    }

    #[test]
    fn distribute_shares_weights_among_matching_localities() {
        let n = node("r1/z1", &[]);
        let rules = LocalityLbSetting {
            distribute: vec![weft_api::types::LocalityDistribute {
                from: "r1/z1/*".into(),
                to: [("r1/z1/*".to_string(), 80), ("r1/*".to_string(), 20)].into(),
            }],
            ..Default::default()
        };
        let p = Placement::of(Some(&rules), false, &n);
        assert!(p.locality_weighted());
        let w = p.weights(&[Some("r1/z1"), Some("r1/z2"), Some("r1/z3"), Some("r2/z1"), None]);
        assert_eq!(w, vec![Some(80_000), Some(10_000), Some(10_000), None, None]);
        // A caller no rule is `from` gets no locality weights.
        assert!(matches!(Placement::of(Some(&rules), false, &node("r2/z1", &[])), Placement::Flat));
    }
}
