//! VirtualService rules as Envoy route tables.
//!
//! Each match block of an http rule becomes one Envoy route with the rule's
//! action, in order, so "first match wins" carries over unchanged.

use super::cluster_name;
use super::node::ProxyNode;
use envoy_types::pb::envoy::config::core::v3::{
    DataSource, HeaderValue, HeaderValueOption, RuntimeFractionalPercent, data_source,
};
use envoy_types::pb::envoy::config::route::v3::{
    self as rt, DirectResponseAction, HeaderMatcher, QueryParameterMatcher, RedirectAction, RetryPolicy, RouteAction,
    RouteConfiguration, RouteMatch, VirtualHost, WeightedCluster, header_matcher, query_parameter_matcher,
    redirect_action, route, route_action, route_match, weighted_cluster,
};
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::tcp_proxy;
use envoy_types::pb::envoy::r#type::matcher::v3::{
    RegexMatchAndSubstitute, RegexMatcher, StringMatcher, string_matcher,
};
use envoy_types::pb::envoy::r#type::v3::{FractionalPercent, fractional_percent};
use envoy_types::pb::google::protobuf::{Any, BoolValue, Duration as PbDuration, UInt32Value};
use std::collections::{BTreeMap, BTreeSet};
use weft_api::index::{Index, SvcInfo, host_matches};
use weft_api::resource::Resource;
use weft_api::types::*;

pub fn pb_duration(d: std::time::Duration) -> PbDuration {
    PbDuration { seconds: d.as_secs() as i64, nanos: d.subsec_nanos() as i32 }
}

fn string_matcher(m: &StringMatch, ignore_case: bool) -> Option<StringMatcher> {
    let pattern = if let Some(e) = &m.exact {
        string_matcher::MatchPattern::Exact(e.clone())
    } else if let Some(p) = &m.prefix {
        string_matcher::MatchPattern::Prefix(p.clone())
    } else if let Some(r) = &m.regex {
        string_matcher::MatchPattern::SafeRegex(RegexMatcher { regex: r.clone(), engine_type: None })
    } else {
        return None;
    };
    Some(StringMatcher { match_pattern: Some(pattern), ignore_case })
}

fn header(name: &str, m: &StringMatch, invert: bool) -> HeaderMatcher {
    let spec = match string_matcher(m, false) {
        Some(sm) => header_matcher::HeaderMatchSpecifier::StringMatch(sm),
        None => header_matcher::HeaderMatchSpecifier::PresentMatch(true),
    };
    HeaderMatcher {
        name: name.to_owned(),
        header_match_specifier: Some(spec),
        invert_match: invert,
        ..Default::default()
    }
}

fn route_match(m: Option<&HttpMatchRequest>) -> RouteMatch {
    let Some(m) = m else {
        return RouteMatch {
            path_specifier: Some(route_match::PathSpecifier::Prefix("/".into())),
            ..Default::default()
        };
    };
    let path = match &m.uri {
        Some(StringMatch { exact: Some(e), .. }) => route_match::PathSpecifier::Path(e.clone()),
        Some(StringMatch { prefix: Some(p), .. }) => route_match::PathSpecifier::Prefix(p.clone()),
        Some(StringMatch { regex: Some(r), .. }) => {
            route_match::PathSpecifier::SafeRegex(RegexMatcher { regex: r.clone(), engine_type: None })
        }
        _ => route_match::PathSpecifier::Prefix("/".into()),
    };
    let mut headers: Vec<HeaderMatcher> = m.headers.iter().map(|(k, v)| header(k, v, false)).collect();
    for (name, sm) in [(":method", &m.method), (":authority", &m.authority), (":scheme", &m.scheme)] {
        if let Some(sm) = sm {
            headers.push(header(name, sm, false));
        }
    }
    headers.extend(m.without_headers.iter().map(|(k, v)| header(k, v, true)));
    let query_parameters = m
        .query_params
        .iter()
        .map(|(k, v)| QueryParameterMatcher {
            name: k.clone(),
            query_parameter_match_specifier: Some(match string_matcher(v, false) {
                Some(sm) => query_parameter_matcher::QueryParameterMatchSpecifier::StringMatch(sm),
                None => query_parameter_matcher::QueryParameterMatchSpecifier::PresentMatch(true),
            }),
        })
        .collect();
    RouteMatch {
        path_specifier: Some(path),
        case_sensitive: m.ignore_uri_case.then_some(BoolValue { value: false }),
        headers,
        query_parameters,
        ..Default::default()
    }
}

fn header_ops(ops: Option<&HeaderOperations>) -> (Vec<HeaderValueOption>, Vec<String>) {
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

fn percent(p: Option<Percent>) -> RuntimeFractionalPercent {
    RuntimeFractionalPercent { default_value: Some(fraction(p)), runtime_key: String::new() }
}

fn retry_policy(r: Option<&HttpRetry>, timeout: Option<&Duration>) -> Option<RetryPolicy> {
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
    Some(RetryPolicy {
        retry_on: on,
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
        host_selection_retry_max_attempts: 5,
        retry_back_off: Some(rt::retry_policy::RetryBackOff {
            base_interval: Some(pb_duration(std::time::Duration::from_millis(25))),
            max_interval: None,
        }),
        ..Default::default()
    })
}

fn hash_policy(index: &Index, ns: &str, d: &Destination) -> Vec<route_action::HashPolicy> {
    use route_action::hash_policy::{self as hp, PolicySpecifier as P};
    let Some(svc) = index.service(&d.host, ns) else { return Vec::new() };
    let Some((_, dr)) = index.destination_rule(&svc.fqdn, ns) else { return Vec::new() };
    let subset_lb = d
        .subset
        .as_ref()
        .and_then(|s| dr.subsets.iter().find(|x| &x.name == s))
        .and_then(|s| s.traffic_policy.as_ref())
        .and_then(|t| t.load_balancer.as_ref());
    let lb = subset_lb.or(dr.traffic_policy.as_ref().and_then(|t| t.load_balancer.as_ref()));
    let Some(ch) = lb.and_then(|l| l.consistent_hash.as_ref()) else { return Vec::new() };
    let spec = if let Some(h) = &ch.http_header_name {
        P::Header(hp::Header { header_name: h.clone(), regex_rewrite: None })
    } else if let Some(c) = &ch.http_cookie {
        P::Cookie(hp::Cookie {
            name: c.name.clone(),
            ttl: c.ttl.map(|t| pb_duration(t.0)),
            path: c.path.clone().unwrap_or_default(),
            ..Default::default()
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

fn action(index: &Index, ns: &str, rule: &HttpRoute, m: Option<&HttpMatchRequest>) -> route::Action {
    if let Some(d) = &rule.direct_response {
        let body = d
            .body
            .as_ref()
            .and_then(|b| b.string.clone())
            .map(|s| DataSource { specifier: Some(data_source::Specifier::InlineString(s)), ..Default::default() });
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
            port_redirect: rd.port.map_or(0, u32::from),
            scheme_rewrite_specifier: rd.scheme.clone().map(S::SchemeRedirect),
            path_rewrite_specifier: path,
            response_code: code as i32,
            ..Default::default()
        });
    }
    let weighted: Vec<_> = rule.route.iter().filter(|d| rule.route.len() == 1 || d.weight.unwrap_or(0) > 0).collect();
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
        hash_policy: rule.route.first().map(|d| hash_policy(index, ns, &d.destination)).unwrap_or_default(),
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

/// Where a rule is being installed, to filter match blocks by `port`,
/// `gateways`, `sourceLabels` and `sourceNamespace`.
struct Place<'a> {
    gateway: Option<&'a str>,
    port: u16,
    node: &'a ProxyNode,
}

fn applies(m: &HttpMatchRequest, place: &Place) -> bool {
    if m.port.is_some_and(|p| p != place.port) {
        return false;
    }
    if !m.gateways.is_empty() && !m.gateways.iter().any(|g| Some(g.as_str()) == place.gateway.or(Some("mesh"))) {
        return false;
    }
    if place.gateway.is_none() && !selects(&m.source_labels, &place.node.labels) {
        return false;
    }
    m.source_namespace.as_ref().is_none_or(|ns| place.gateway.is_some() || ns == &place.node.namespace)
}

fn rules_to_routes(index: &Index, vs: &Resource, spec: &VirtualServiceSpec, place: &Place) -> Vec<rt::Route> {
    let mut out = Vec::new();
    for (i, rule) in spec.http.iter().enumerate() {
        let (add, remove) = header_ops(rule.headers.as_ref().and_then(|h| h.request.as_ref()));
        let (radd, rremove) = header_ops(rule.headers.as_ref().and_then(|h| h.response.as_ref()));
        let matches: Vec<Option<&HttpMatchRequest>> =
            if rule.match_.is_empty() { vec![None] } else { rule.match_.iter().map(Some).collect() };
        for m in matches {
            if m.is_some_and(|m| !applies(m, place)) {
                continue;
            }
            let name = rule.name.clone().unwrap_or_else(|| format!("{}.{}/{i}", vs.name(), vs.namespace()));
            out.push(rt::Route {
                name,
                r#match: Some(route_match(m)),
                action: Some(action(index, vs.namespace(), rule, m)),
                request_headers_to_add: add.clone(),
                request_headers_to_remove: remove.clone(),
                response_headers_to_add: radd.clone(),
                response_headers_to_remove: rremove.clone(),
                typed_per_filter_config: super::fault::per_route(rule.fault.as_ref()).into_iter().collect(),
                ..Default::default()
            });
        }
    }
    out
}

/// The route to a service that no VirtualService describes; it still
/// carries the hash policy of the service's DestinationRule.
fn default_route(index: &Index, node: &ProxyNode, svc: &SvcInfo, port: u16) -> rt::Route {
    let dest = Destination { host: svc.fqdn.clone(), subset: None, port: Some(PortSelector { number: port }) };
    rt::Route {
        name: "default".into(),
        r#match: Some(route_match(None)),
        action: Some(route::Action::Route(RouteAction {
            cluster_specifier: Some(route_action::ClusterSpecifier::Cluster(cluster_name(port, "", &svc.fqdn))),
            timeout: Some(pb_duration(std::time::Duration::ZERO)),
            retry_policy: retry_policy(None, None),
            hash_policy: hash_policy(index, &node.namespace, &dest),
            ..Default::default()
        })),
        ..Default::default()
    }
}

/// VirtualServices that apply to sidecars (`mesh`) and are exported to `ns`.
fn mesh_virtual_services<'a>(
    index: &'a Index,
    ns: &'a str,
) -> impl Iterator<Item = (&'a Resource, &'a VirtualServiceSpec)> {
    index.resources.iter().filter_map(move |r| match &r.spec {
        weft_api::Spec::VirtualService(vs)
            if (vs.gateways.is_empty() || vs.gateways.iter().any(|g| g == "mesh")) && index.exported(r, ns) =>
        {
            Some((r, vs))
        }
        _ => None,
    })
}

fn http_port(p: &weft_api::index::SvcPort) -> bool {
    matches!(p.protocol.as_str(), "" | "http" | "http2" | "grpc" | "grpc-web")
}

/// Ports carried as opaque TCP (no HTTP routing).
pub fn tcp_port(p: &weft_api::index::SvcPort) -> bool {
    !http_port(p)
}

/// Where a TCP connection to `svc:port` goes: the first `tcp` rule of a
/// mesh VirtualService for the service that matches the port (weighted
/// destinations allowed), else the service itself.
pub fn tcp_route(index: &Index, node: &ProxyNode, svc: &SvcInfo, port: u16) -> tcp_proxy::ClusterSpecifier {
    for (r, vs) in mesh_virtual_services(index, &node.namespace) {
        if !vs.hosts.iter().any(|h| index.service(h, r.namespace()).is_some_and(|s| s.fqdn == svc.fqdn)) {
            continue;
        }
        for rule in &vs.tcp {
            let applies = rule.match_.is_empty()
                || rule
                    .match_
                    .iter()
                    .any(|m| m.port.is_none_or(|p| p == port) && selects(&m.source_labels, &node.labels));
            if !applies || rule.route.is_empty() {
                continue;
            }
            let weighted: Vec<_> =
                rule.route.iter().filter(|d| rule.route.len() == 1 || d.weight.unwrap_or(0) > 0).collect();
            if weighted.len() == 1 {
                return tcp_proxy::ClusterSpecifier::Cluster(destination_cluster(
                    index,
                    r.namespace(),
                    &weighted[0].destination,
                ));
            }
            let clusters = weighted
                .iter()
                .map(|d| tcp_proxy::weighted_cluster::ClusterWeight {
                    name: destination_cluster(index, r.namespace(), &d.destination),
                    weight: d.weight.unwrap_or(0) as u32,
                    ..Default::default()
                })
                .collect();
            return tcp_proxy::ClusterSpecifier::WeightedClusters(tcp_proxy::WeightedCluster { clusters });
        }
    }
    tcp_proxy::ClusterSpecifier::Cluster(cluster_name(port, "", &svc.fqdn))
}

/// Names a service answers to on `port`; the no-port forms only on its
/// default port (80, else its first), since Envoy forbids duplicate domains.
fn domains(svc: &SvcInfo, port: u16, node_ns: &str) -> Vec<String> {
    let mut names = vec![svc.fqdn.clone()];
    if svc.fqdn.ends_with(".svc.cluster.local") {
        names.push(format!("{}.{}.svc", svc.name, svc.namespace));
        names.push(format!("{}.{}", svc.name, svc.namespace));
        if svc.namespace == node_ns {
            names.push(svc.name.clone());
        }
    }
    let default_port = svc.ports.iter().find(|p| p.port == 80).or(svc.ports.first()).map(|p| p.port);
    let mut out: Vec<String> = names.iter().map(|n| format!("{n}:{port}")).collect();
    if default_port == Some(port) {
        out.extend(names);
    }
    out
}

/// The sidecar's outbound table: one virtual host per service port.
pub fn sidecar_outbound(index: &Index, node: &ProxyNode) -> RouteConfiguration {
    let mut vhosts = Vec::new();
    let mut used = BTreeSet::new();
    for svc in index.visible_services(&node.namespace) {
        for sp in svc.ports.iter().filter(|p| http_port(p)) {
            let place = Place { gateway: None, port: sp.port, node };
            let mut routes = Vec::new();
            let mut has_vs = false;
            for (r, vs) in mesh_virtual_services(index, &node.namespace) {
                if vs.hosts.iter().any(|h| index.service(h, r.namespace()).is_some_and(|s| s.fqdn == svc.fqdn)) {
                    has_vs = true;
                    routes.extend(rules_to_routes(index, r, vs, &place));
                }
            }
            if !has_vs {
                routes.push(default_route(index, node, svc, sp.port));
            }
            let domains: Vec<String> =
                domains(svc, sp.port, &node.namespace).into_iter().filter(|d| used.insert(d.clone())).collect();
            vhosts.push(VirtualHost {
                name: format!("{}:{}", svc.fqdn, sp.port),
                domains,
                routes,
                ..Default::default()
            });
        }
    }
    RouteConfiguration {
        name: "outbound".into(),
        virtual_hosts: vhosts,
        validate_clusters: Some(BoolValue { value: false }),
        ..Default::default()
    }
}

/// The sidecar's inbound table: everything to the local application.
pub fn sidecar_inbound(node: &ProxyNode) -> Option<RouteConfiguration> {
    let app = node.app_port?;
    Some(RouteConfiguration {
        name: "inbound".into(),
        virtual_hosts: vec![VirtualHost {
            name: "inbound".into(),
            domains: vec!["*".into()],
            routes: vec![rt::Route {
                name: "inbound".into(),
                r#match: Some(route_match(None)),
                action: Some(route::Action::Route(RouteAction {
                    cluster_specifier: Some(route_action::ClusterSpecifier::Cluster(format!("inbound|{app}||"))),
                    timeout: Some(pb_duration(std::time::Duration::ZERO)),
                    ..Default::default()
                })),
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    })
}

/// A gateway's table for one server port: the VirtualServices bound to the
/// Gateways that select this proxy, grouped by host.
pub fn gateway(index: &Index, node: &ProxyNode, port: u16) -> RouteConfiguration {
    let mut by_domain: BTreeMap<String, Vec<rt::Route>> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    for gw in index.resources {
        let weft_api::Spec::Gateway(g) = &gw.spec else { continue };
        if !selects(&g.selector, &node.labels) {
            continue;
        }
        let servers: Vec<&Server> = g.servers.iter().filter(|s| s.port.number == port).collect();
        if servers.is_empty() {
            continue;
        }
        let full = format!("{}/{}", gw.namespace(), gw.name());
        for vs_res in index.resources {
            let weft_api::Spec::VirtualService(vs) = &vs_res.spec else { continue };
            let bound = vs
                .gateways
                .iter()
                .any(|g| index.gateway(g, vs_res.namespace()).is_some_and(|(r, _)| std::ptr::eq(r, gw)));
            if !bound {
                continue;
            }
            let gw_ref =
                vs.gateways.iter().find(|g| g.as_str() == gw.name() || **g == full).map_or(gw.name(), |s| s.as_str());
            let place = Place { gateway: Some(gw_ref), port, node };
            let routes = rules_to_routes(index, vs_res, vs, &place);
            for host in &vs.hosts {
                let served = servers.iter().flat_map(|s| s.hosts.iter()).any(|sh| {
                    let sh = sh.split_once('/').map_or(sh.as_str(), |(_, h)| h);
                    host_matches(sh, host) || host_matches(host, sh)
                });
                if !served {
                    continue;
                }
                if !by_domain.contains_key(host) {
                    order.push(host.clone());
                }
                by_domain.entry(host.clone()).or_default().extend(routes.iter().cloned());
            }
        }
    }
    let virtual_hosts = order
        .into_iter()
        .map(|d| VirtualHost {
            name: format!("{d}:{port}"),
            routes: by_domain.remove(&d).unwrap_or_default(),
            domains: vec![d],
            ..Default::default()
        })
        .collect();
    RouteConfiguration {
        name: format!("http.{port}"),
        virtual_hosts,
        validate_clusters: Some(BoolValue { value: false }),
        ..Default::default()
    }
}

/// Clusters the route tables send traffic (or mirrors) to.
pub fn referenced_clusters(routes: &[RouteConfiguration]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for rc in routes {
        for vh in &rc.virtual_hosts {
            for r in &vh.routes {
                if let Some(route::Action::Route(ra)) = &r.action {
                    match &ra.cluster_specifier {
                        Some(route_action::ClusterSpecifier::Cluster(c)) => {
                            out.insert(c.clone());
                        }
                        Some(route_action::ClusterSpecifier::WeightedClusters(w)) => {
                            out.extend(w.clusters.iter().map(|c| c.name.clone()))
                        }
                        _ => {}
                    }
                    out.extend(ra.request_mirror_policies.iter().map(|m| m.cluster.clone()));
                }
            }
        }
    }
    out
}
