//! Istio rule actions as Envoy route actions: destinations and weights,
//! rewrites, redirects, direct responses, retries, timeouts, mirrors,
//! header operations and consistent-hash policies.

use super::super::cluster_name;
use super::super::node::ProxyNode;
use envoy_types::pb::envoy::config::core::v3::{
    DataSource, HeaderValue, HeaderValueOption, RuntimeFractionalPercent, data_source,
};
use envoy_types::pb::envoy::config::route::v3::{
    self as rt, DirectResponseAction, RedirectAction, RetryPolicy, RouteAction, WeightedCluster, redirect_action,
    route, route_action, weighted_cluster,
};
use envoy_types::pb::envoy::r#type::matcher::v3::{RegexMatchAndSubstitute, RegexMatcher};
use envoy_types::pb::envoy::r#type::v3::{FractionalPercent, fractional_percent};
use envoy_types::pb::google::protobuf::{Any, Duration as PbDuration, UInt32Value};
use weft_api::index::Index;
use weft_api::types::*;

pub fn pb_duration(d: std::time::Duration) -> PbDuration {
    PbDuration { seconds: d.as_secs() as i64, nanos: d.subsec_nanos() as i32 }
}

pub(super) fn header_ops(ops: Option<&HeaderOperations>) -> (Vec<HeaderValueOption>, Vec<String>) {
    let Some(ops) = ops else { return (Vec::new(), Vec::new()) };
    let opt = |k: &String, v: &String, action: i32| HeaderValueOption {
        header: Some(HeaderValue { key: k.clone(), value: v.clone(), ..Default::default() }),
        append_action: action,
        ..Default::default()
    };
    // 2 = OVERWRITE_IF_EXISTS_OR_ADD (set), 0 = APPEND_IF_EXISTS_OR_ADD (add)
    let mut add: Vec<_> = ops.set.iter().map(|(k, v)| opt(k, v, 2)).collect();
    add.extend(ops.add.iter().map(|(k, v)| opt(k, v, 0)));
    (add, ops.remove.clone())
}

/// Cluster for a destination written in namespace `ns`.
pub fn destination_cluster(index: &Index, ns: &str, d: &Destination) -> String {
    let subset = d.subset.as_deref().unwrap_or("");
    match index.service(&d.host, ns) {
        Some(svc) => {
            let port = d.port.as_ref().map(|p| p.number).or_else(|| svc.ports.first().map(|p| p.port)).unwrap_or(80);
            cluster_name(port, subset, &svc.fqdn)
        }
        None => cluster_name(d.port.as_ref().map_or(80, |p| p.number), subset, &d.host),
    }
}

/// An Istio percentage (0-100, unset = all) in parts per million.
pub fn fraction(p: Option<Percent>) -> FractionalPercent {
    let value = p.map_or(100.0, |p| p.value);
    FractionalPercent {
        numerator: (value * 10_000.0).round().clamp(0.0, 1_000_000.0) as u32,
        denominator: fractional_percent::DenominatorType::Million as i32,
    }
}

pub(super) fn percent(p: Option<Percent>) -> RuntimeFractionalPercent {
    RuntimeFractionalPercent { default_value: Some(fraction(p)), runtime_key: String::new() }
}

pub(super) fn retry_policy(r: Option<&HttpRetry>, timeout: Option<&Duration>) -> Option<RetryPolicy> {
    // Istio's default when `retries` is absent: 2 attempts on these conditions.
    let (attempts, on, per_try) = match r {
        None => (2, "connect-failure,refused-stream,unavailable,cancelled".to_owned(), None),
        Some(r) if r.attempts == 0 => return None,
        Some(r) => (
            r.attempts,
            r.retry_on.clone().unwrap_or_else(|| "connect-failure,refused-stream,unavailable,cancelled,5xx".into()),
            r.per_try_timeout.as_ref().or(timeout),
        ),
    };
    // Istio's bare status codes (`retryOn: "503,gateway-error"`) are
    // Envoy's `retriable-status-codes` with the codes listed.
    let (codes, mut tokens): (Vec<&str>, Vec<&str>) =
        on.split(',').map(str::trim).filter(|t| !t.is_empty()).partition(|t| t.parse::<u16>().is_ok());
    if !codes.is_empty() && !tokens.contains(&"retriable-status-codes") {
        tokens.push("retriable-status-codes");
    }
    Some(RetryPolicy {
        retry_on: tokens.join(","),
        retriable_status_codes: codes.iter().filter_map(|c| c.parse().ok()).collect(),
        num_retries: Some(UInt32Value { value: attempts }),
        per_try_timeout: per_try.map(|d| pb_duration(d.0)),
        retry_host_predicate: vec![rt::retry_policy::RetryHostPredicate {
            name: "envoy.retry_host_predicates.previous_hosts".into(),
            config_type: Some(rt::retry_policy::retry_host_predicate::ConfigType::TypedConfig(Any {
                type_url: "type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate"
                    .into(),
                value: Vec::new(),
            })),
        }],
        // Istio's `retryRemoteLocalities`: retries leave the priority
        // levels (localities) tried, as Istio configures it.
        retry_priority: r.filter(|r| r.retry_remote_localities == Some(true)).map(|_| {
            use envoy_types::pb::envoy::extensions::retry::priority::previous_priorities::v3::PreviousPrioritiesConfig;
            rt::retry_policy::RetryPriority {
                name: "envoy.retry_priorities.previous_priorities".into(),
                config_type: Some(rt::retry_policy::retry_priority::ConfigType::TypedConfig(Any {
                    type_url: "type.googleapis.com/envoy.extensions.retry.priority.previous_priorities.v3.PreviousPrioritiesConfig".into(),
                    value: prost::Message::encode_to_vec(&PreviousPrioritiesConfig { update_frequency: 2 }),
                })),
            }
        }),
        host_selection_retry_max_attempts: 5,
        retry_back_off: Some(rt::retry_policy::RetryBackOff {
            base_interval: Some(pb_duration(std::time::Duration::from_millis(25))),
            max_interval: None,
        }),
        ..Default::default()
    })
}

/// The hash policy of `d`'s DestinationRule as `caller` gets it (a rule's
/// `workloadSelector` may pick it), resolving `d.host` in `ns`.
pub(super) fn hash_policy(
    index: &Index,
    ns: &str,
    caller: &ProxyNode,
    d: &Destination,
) -> Vec<route_action::HashPolicy> {
    use route_action::hash_policy::{self as hp, PolicySpecifier as P};
    let Some(svc) = index.service(&d.host, ns) else { return Vec::new() };
    let dr = index.destination_rule_for(&svc.fqdn, &caller.namespace, &caller.labels).map(|(_, dr)| dr);
    let subset = d.subset.as_ref().and_then(|s| dr?.subsets.iter().find(|x| &x.name == s));
    // The port's policy: the cluster's balancer is the same one (subset,
    // then port-level settings, over the rule's).
    let port = d.port.as_ref().map(|p| p.number).or_else(|| svc.ports.first().map(|p| p.port)).unwrap_or(80);
    let tp = super::super::policy::effective_policy(dr, subset, port);
    // A Service's `sessionAffinity: ClientIP`, where no rule balances otherwise.
    let lb = tp.load_balancer.or_else(|| index.session_affinity(svc));
    let Some(ch) = lb.as_ref().and_then(|l| l.consistent_hash.as_ref()) else { return Vec::new() };
    let spec = if let Some(h) = &ch.http_header_name {
        P::Header(hp::Header { header_name: h.clone(), regex_rewrite: None })
    } else if let Some(c) = &ch.http_cookie {
        P::Cookie(hp::Cookie {
            name: c.name.clone(),
            ttl: c.ttl.map(|t| pb_duration(t.0)),
            path: c.path.clone().unwrap_or_default(),
            attributes: c
                .attributes
                .iter()
                .map(|a| hp::CookieAttribute { name: a.name.clone(), value: a.value.clone().unwrap_or_default() })
                .collect(),
        })
    } else if ch.use_source_ip == Some(true) {
        P::ConnectionProperties(hp::ConnectionProperties { source_ip: true })
    } else if let Some(q) = &ch.http_query_parameter_name {
        P::QueryParameter(hp::QueryParameter { name: q.clone() })
    } else {
        return Vec::new();
    };
    vec![route_action::HashPolicy { policy_specifier: Some(spec), terminal: false }]
}

/// The destinations that get traffic: all of one, else those weighted above 0.
fn weighted(rule: &HttpRoute) -> Vec<&HttpRouteDestination> {
    rule.route.iter().filter(|d| rule.route.len() == 1 || d.weight.unwrap_or(0) > 0).collect()
}

/// The one destination a rule sends to, if it sends to one: its `headers`
/// then go on the route (a weighted split carries each destination's).
pub(super) fn single_destination(rule: &HttpRoute) -> Option<&HttpRouteDestination> {
    match weighted(rule)[..] {
        [d] if rule.direct_response.is_none() && rule.redirect.is_none() => Some(d),
        _ => None,
    }
}

/// `request_port`: the port the request came to (the table's, plus a
/// gateway's offset), for a redirect's `derivePort: FROM_REQUEST_PORT`.
pub(super) fn action(
    index: &Index,
    ns: &str,
    caller: &ProxyNode,
    rule: &HttpRoute,
    m: Option<&HttpMatchRequest>,
    request_port: u16,
) -> route::Action {
    if let Some(d) = &rule.direct_response {
        // `bytes` is base64 (validation refuses what does not decode).
        let body = d.body.as_ref().and_then(|b| match (&b.string, &b.bytes) {
            (Some(s), _) => Some(data_source::Specifier::InlineString(s.clone())),
            (None, Some(b)) => base64::Engine::decode(&base64::engine::general_purpose::STANDARD, b)
                .ok()
                .map(data_source::Specifier::InlineBytes),
            (None, None) => None,
        });
        let body = body.map(|b| DataSource { specifier: Some(b), ..Default::default() });
        return route::Action::DirectResponse(DirectResponseAction {
            status: d.status.into(),
            body,
            ..Default::default()
        });
    }
    if let Some(rd) = &rule.redirect {
        use redirect_action::{PathRewriteSpecifier as PR, RedirectResponseCode as C, SchemeRewriteSpecifier as S};
        let code = match rd.redirect_code.unwrap_or(301) {
            302 => C::Found,
            303 => C::SeeOther,
            307 => C::TemporaryRedirect,
            308 => C::PermanentRedirect,
            _ => C::MovedPermanently,
        };
        let path = rd.uri.clone().map(PR::PathRedirect).or_else(|| rd.prefix_rewrite.clone().map(PR::PrefixRewrite));
        return route::Action::Redirect(RedirectAction {
            host_redirect: rd.authority.clone().unwrap_or_default(),
            // Istio's way: a table built per port knows the request's port.
            port_redirect: match (rd.port, rd.derive_port.as_deref()) {
                (Some(p), _) => p.into(),
                (None, Some("FROM_REQUEST_PORT")) => request_port.into(),
                (None, _) => 0,
            },
            scheme_rewrite_specifier: rd.scheme.clone().map(S::SchemeRedirect),
            path_rewrite_specifier: path,
            response_code: code as i32,
            ..Default::default()
        });
    }
    let weighted = weighted(rule);
    let cluster_specifier = if weighted.len() == 1 {
        route_action::ClusterSpecifier::Cluster(destination_cluster(index, ns, &weighted[0].destination))
    } else {
        route_action::ClusterSpecifier::WeightedClusters(WeightedCluster {
            clusters: weighted
                .iter()
                .map(|d| {
                    let (add, remove) = header_ops(d.headers.as_ref().and_then(|h| h.request.as_ref()));
                    let (radd, rremove) = header_ops(d.headers.as_ref().and_then(|h| h.response.as_ref()));
                    weighted_cluster::ClusterWeight {
                        name: destination_cluster(index, ns, &d.destination),
                        weight: Some(UInt32Value { value: d.weight.unwrap_or(0) as u32 }),
                        request_headers_to_add: add,
                        request_headers_to_remove: remove,
                        response_headers_to_add: radd,
                        response_headers_to_remove: rremove,
                        ..Default::default()
                    }
                })
                .collect(),
            ..Default::default()
        })
    };
    let mut ra = RouteAction {
        cluster_specifier: Some(cluster_specifier),
        // With a fault, neither timeout nor retries apply (Istio's rule).
        timeout: Some(pb_duration(
            rule.timeout.filter(|_| rule.fault.is_none()).map_or(std::time::Duration::ZERO, |t| t.0),
        )),
        retry_policy: if rule.fault.is_some() {
            None
        } else {
            retry_policy(rule.retries.as_ref(), rule.timeout.as_ref())
        },
        hash_policy: rule.route.first().map(|d| hash_policy(index, ns, caller, &d.destination)).unwrap_or_default(),
        ..Default::default()
    };
    if let Some(rw) = &rule.rewrite {
        if let Some(uri) = &rw.uri {
            // Istio rewrites the matched prefix; for exact and regex matches
            // the whole path, which prefix_rewrite of the full path also does.
            ra.prefix_rewrite = uri.clone();
            if matches!(m.and_then(|m| m.uri.as_ref()), Some(StringMatch { regex: Some(_), .. })) {
                ra.regex_rewrite = Some(RegexMatchAndSubstitute {
                    pattern: Some(RegexMatcher { regex: ".*".into(), engine_type: None }),
                    substitution: uri.clone(),
                });
                ra.prefix_rewrite.clear();
            }
        }
        if let Some(rr) = &rw.uri_regex_rewrite {
            ra.regex_rewrite = Some(RegexMatchAndSubstitute {
                pattern: Some(RegexMatcher { regex: rr.match_.clone(), engine_type: None }),
                substitution: rr.rewrite.clone(),
            });
        }
        if let Some(a) = &rw.authority {
            ra.host_rewrite_specifier = Some(route_action::HostRewriteSpecifier::HostRewriteLiteral(a.clone()));
        }
    }
    let mut mirrors: Vec<(&Destination, Option<Percent>)> = Vec::new();
    if let Some(m) = &rule.mirror {
        let pct = rule.mirror_percentage.or(rule.mirror_percent.map(|p| Percent { value: p as f64 }));
        mirrors.push((m, pct));
    }
    mirrors.extend(rule.mirrors.iter().map(|m| (&m.destination, m.percentage)));
    ra.request_mirror_policies = mirrors
        .into_iter()
        .map(|(d, p)| route_action::RequestMirrorPolicy {
            cluster: destination_cluster(index, ns, d),
            runtime_fraction: Some(percent(p)),
            ..Default::default()
        })
        .collect();
    route::Action::Route(ra)
}
