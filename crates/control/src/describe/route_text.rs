//! An Envoy route as an operator reads it: what it matches, where it
//! sends a request (clusters and weights) and what it does on the way.

use envoy_types::pb::envoy::config::route::v3::{self as rt, route, route_action, route_match};
use serde_json::{Value, json};

/// `{name, match, to: [{cluster, weight}], action, timeout, retries, mirror, fault}`.
pub fn route(r: &rt::Route) -> Value {
    let mut v = json!({"name": r.name, "match": match_text(r.r#match.as_ref())});
    match &r.action {
        Some(route::Action::Route(a)) => {
            v["to"] = destinations(a);
            v["timeout"] = a.timeout.as_ref().map_or("none".to_owned(), seconds).into();
            if let Some(p) = a.retry_policy.as_ref().filter(|p| p.num_retries.as_ref().is_some_and(|n| n.value > 0)) {
                let n = p.num_retries.as_ref().map_or(0, |n| n.value);
                v["retries"] = format!("{n} on {}", p.retry_on).into();
            }
            let mirrors: Vec<&str> = a.request_mirror_policies.iter().map(|m| m.cluster.as_str()).collect();
            if !mirrors.is_empty() {
                v["mirror"] = mirrors.into();
            }
        }
        Some(route::Action::Redirect(red)) => {
            let host = if red.host_redirect.is_empty() { "the same host" } else { &red.host_redirect };
            v["action"] = format!("redirect to {host}").into();
        }
        Some(route::Action::DirectResponse(d)) => v["action"] = format!("answer {} here", d.status).into(),
        _ => v["action"] = "none".into(),
    }
    if r.typed_per_filter_config.keys().any(|k| k.contains("fault")) {
        v["fault"] = true.into();
    }
    v
}

/// The clusters a route action sends to, with their share in percent.
fn destinations(a: &rt::RouteAction) -> Value {
    match &a.cluster_specifier {
        Some(route_action::ClusterSpecifier::Cluster(c)) => json!([{"cluster": c, "weight": 100}]),
        Some(route_action::ClusterSpecifier::WeightedClusters(w)) => {
            let weight = |c: &rt::weighted_cluster::ClusterWeight| c.weight.as_ref().map_or(0, |w| w.value);
            let total: u32 = w.clusters.iter().map(weight).sum();
            w.clusters
                .iter()
                .map(|c| {
                    let share = if total > 0 { f64::from(weight(c)) * 100.0 / f64::from(total) } else { 0.0 };
                    json!({"cluster": c.name, "weight": (share * 10.0).round() / 10.0})
                })
                .collect()
        }
        _ => json!([]),
    }
}

fn seconds(d: &envoy_types::pb::google::protobuf::Duration) -> String {
    let s = d.seconds as f64 + f64::from(d.nanos) / 1e9;
    if s == 0.0 { "none".to_owned() } else { format!("{s}s") }
}

/// `prefix /reviews + 2 headers`, as the proxy's own `/config_dump` says it.
fn match_text(m: Option<&rt::RouteMatch>) -> String {
    let Some(m) = m else { return "any".to_owned() };
    let mut s = match &m.path_specifier {
        Some(route_match::PathSpecifier::Prefix(p)) => format!("prefix {p}"),
        Some(route_match::PathSpecifier::Path(p)) => format!("exact {p}"),
        Some(route_match::PathSpecifier::PathSeparatedPrefix(p)) => format!("path-prefix {p}"),
        Some(route_match::PathSpecifier::SafeRegex(r)) => format!("regex {}", r.regex),
        _ => "any".to_owned(),
    };
    if m.case_sensitive.as_ref().is_some_and(|c| !c.value) {
        s.push_str(" (any case)");
    }
    let headers: Vec<&str> = m.headers.iter().map(|h| h.name.as_str()).collect();
    if !headers.is_empty() {
        s.push_str(&format!(" + headers {}", headers.join(", ")));
    }
    let params: Vec<&str> = m.query_parameters.iter().map(|q| q.name.as_str()).collect();
    if !params.is_empty() {
        s.push_str(&format!(" + query {}", params.join(", ")));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::google::protobuf::UInt32Value;

    #[test]
    fn a_weighted_route_reads_as_shares_of_its_clusters() {
        let cw = |name: &str, w: u32| rt::weighted_cluster::ClusterWeight {
            name: name.into(),
            weight: Some(UInt32Value { value: w }),
            ..Default::default()
        };
        let r = rt::Route {
            name: "canary".into(),
            r#match: Some(rt::RouteMatch {
                path_specifier: Some(route_match::PathSpecifier::Prefix("/api".into())),
                headers: vec![rt::HeaderMatcher { name: "end-user".into(), ..Default::default() }],
                ..Default::default()
            }),
            action: Some(route::Action::Route(rt::RouteAction {
                cluster_specifier: Some(route_action::ClusterSpecifier::WeightedClusters(rt::WeightedCluster {
                    clusters: vec![cw("a", 3), cw("b", 1)],
                    ..Default::default()
                })),
                ..Default::default()
            })),
            ..Default::default()
        };
        let v = route(&r);
        assert_eq!(v["match"], "prefix /api + headers end-user");
        assert_eq!(v["to"], json!([{"cluster": "a", "weight": 75.0}, {"cluster": "b", "weight": 25.0}]));
        assert_eq!(v["timeout"], "none");
    }
}
