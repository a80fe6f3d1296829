//! Route tables: a sidecar's outbound and inbound tables and a gateway's,
//! each VirtualService rule's match blocks in order (first match wins),
//! and a default route for every service port no rule covers.

use super::super::cluster_name;
use super::super::node::ProxyNode;
use super::actions::*;
use super::matchers::*;
use envoy_types::pb::envoy::config::route::v3::{
    self as rt, RouteAction, RouteConfiguration, VirtualHost, route, route_action,
};
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::tcp_proxy;
use envoy_types::pb::google::protobuf::BoolValue;
use std::collections::{BTreeMap, BTreeSet};
use weft_api::index::{Index, SvcInfo, host_matches};
use weft_api::resource::Resource;
use weft_api::types::*;

fn rules_to_routes<'a>(
    index: &Index<'a>,
    vs: &'a Resource,
    spec: &'a VirtualServiceSpec,
    place: &Place,
) -> Vec<rt::Route> {
    let mut out = Vec::new();
    for weft_api::delegate::Rule { rule, namespace, default_name } in weft_api::delegate::rules(index, vs, spec) {
        // A rule with nowhere to send a request (one whose delegate is
        // missing is already left out) would make the table invalid.
        if rule.route.is_empty() && rule.redirect.is_none() && rule.direct_response.is_none() {
            continue;
        }
        let rule = &*rule;
        let (mut add, mut remove) = header_ops(rule.headers.as_ref().and_then(|h| h.request.as_ref()));
        let (mut radd, mut rremove) = header_ops(rule.headers.as_ref().and_then(|h| h.response.as_ref()));
        // One destination's `headers` go on the route, before the rule's
        // (Envoy applies the more specific first; the rule's `set` wins).
        if let Some(h) = single_destination(rule).and_then(|d| d.headers.as_ref()) {
            let (a, r) = header_ops(h.request.as_ref());
            let (ra, rr) = header_ops(h.response.as_ref());
            (add, remove) = (a.into_iter().chain(add).collect(), r.into_iter().chain(remove).collect());
            (radd, rremove) = (ra.into_iter().chain(radd).collect(), rr.into_iter().chain(rremove).collect());
        }
        let matches: Vec<Option<&HttpMatchRequest>> =
            if rule.match_.is_empty() { vec![None] } else { rule.match_.iter().map(Some).collect() };
        for m in matches {
            if m.is_some_and(|m| !applies(m, place)) {
                continue;
            }
            let name = rule.name.clone().unwrap_or_else(|| default_name.clone());
            let offset = if place.gateway.is_some() { place.node.port_offset } else { 0 };
            out.push(rt::Route {
                name,
                r#match: Some(route_match(m)),
                action: Some(action(index, namespace, place.node, rule, m, place.port.saturating_add(offset))),
                request_headers_to_add: add.clone(),
                request_headers_to_remove: remove.clone(),
                response_headers_to_add: radd.clone(),
                response_headers_to_remove: rremove.clone(),
                typed_per_filter_config: super::super::fault::per_route(rule.fault.as_ref())
                    .into_iter()
                    .chain(super::cors::per_route(rule.cors_policy.as_ref()))
                    .collect(),
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
            hash_policy: hash_policy(index, &node.namespace, node, &dest),
            ..Default::default()
        })),
        ..Default::default()
    }
}

/// VirtualServices that apply to sidecars (`mesh`) and are exported to `ns`.
pub(super) fn mesh_virtual_services<'a>(
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
                || rule.match_.iter().any(|m| {
                    super::l4::on_sidecar(
                        m.port,
                        &m.gateways,
                        &m.source_labels,
                        m.source_namespace.as_deref(),
                        port,
                        node,
                    )
                });
            if let Some(to) = l4_destinations(index, r.namespace(), &rule.route).filter(|_| applies) {
                return to;
            }
        }
    }
    tcp_proxy::ClusterSpecifier::Cluster(cluster_name(port, "", &svc.fqdn))
}

/// A tcp or tls rule's destinations as a TCP proxy's cluster (weighted
/// when several take traffic); None for a rule without any.
pub(super) fn l4_destinations(
    index: &Index,
    ns: &str,
    route: &[RouteDestination],
) -> Option<tcp_proxy::ClusterSpecifier> {
    let weighted: Vec<_> = route.iter().filter(|d| route.len() == 1 || d.weight.unwrap_or(0) > 0).collect();
    match weighted.as_slice() {
        [] => None,
        [one] => Some(tcp_proxy::ClusterSpecifier::Cluster(destination_cluster(index, ns, &one.destination))),
        many => {
            let clusters = many
                .iter()
                .map(|d| tcp_proxy::weighted_cluster::ClusterWeight {
                    name: destination_cluster(index, ns, &d.destination),
                    weight: d.weight.unwrap_or(0) as u32,
                    ..Default::default()
                })
                .collect();
            Some(tcp_proxy::ClusterSpecifier::WeightedClusters(tcp_proxy::WeightedCluster { clusters }))
        }
    }
}

/// A Gateway's servers on one port, and the VirtualServices bound to it
/// with the name each gives it.
pub(super) type Bound<'a> = (Vec<&'a Server>, Vec<(&'a Resource, &'a VirtualServiceSpec, &'a str)>);

/// The Gateway resources that select `node`, with the servers on `port`
/// that `keep` keeps, and the VirtualServices bound to each (with the name
/// each uses for it, for `match.gateways`).
pub(super) fn bound<'a>(
    index: &Index<'a>,
    node: &ProxyNode,
    port: u16,
    keep: impl Fn(&Server) -> bool,
) -> Vec<Bound<'a>> {
    let mut out = Vec::new();
    for gw in index.resources {
        let weft_api::Spec::Gateway(g) = &gw.spec else { continue };
        if !selects(&g.selector, &node.labels) {
            continue;
        }
        let servers: Vec<&Server> = g.servers.iter().filter(|s| s.port.number == port && keep(s)).collect();
        if servers.is_empty() {
            continue;
        }
        let full = format!("{}/{}", gw.namespace(), gw.name());
        let mut vses = Vec::new();
        for vs_res in index.resources {
            let weft_api::Spec::VirtualService(vs) = &vs_res.spec else { continue };
            let Some(gw_ref) = vs
                .gateways
                .iter()
                .find(|g| index.gateway(g, vs_res.namespace()).is_some_and(|(r, _)| std::ptr::eq(r, gw)))
            else {
                continue;
            };
            let gw_ref = vs.gateways.iter().find(|g| g.as_str() == gw.name() || **g == full).unwrap_or(gw_ref);
            vses.push((vs_res, vs, gw_ref.as_str()));
        }
        out.push((servers, vses));
    }
    out
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
    for svc in index.reachable_services(&node.namespace, &node.labels) {
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
    for (servers, vses) in bound(index, node, port, Server::http) {
        for (vs_res, vs, gw_ref) in vses {
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
    // `httpsRedirect` servers: their hosts answer 301 to https, routes or
    // not (Envoy's `require_tls: ALL` on the virtual host, as Istio writes it).
    let redirect: Vec<String> = index
        .resources
        .iter()
        .filter_map(|r| match &r.spec {
            weft_api::Spec::Gateway(g) if selects(&g.selector, &node.labels) => Some(g),
            _ => None,
        })
        .flat_map(|g| g.servers.iter().filter(|s| s.port.number == port && s.https_redirect()))
        .flat_map(|s| s.hosts.iter().map(|h| h.split_once('/').map_or(h.as_str(), |(_, h)| h).to_owned()))
        .collect();
    for h in &redirect {
        if !by_domain.contains_key(h) && !order.contains(h) {
            order.push(h.clone());
        }
    }
    let virtual_hosts = order
        .into_iter()
        .map(|d| VirtualHost {
            name: format!("{d}:{port}"),
            routes: by_domain.remove(&d).unwrap_or_default(),
            require_tls: if redirect.iter().any(|h| host_matches(h, &d)) { 2 } else { 0 }, // ALL
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
