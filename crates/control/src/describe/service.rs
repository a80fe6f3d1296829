//! One service as a caller sees it: the resources that shape its traffic
//! and, from the translation a caller's proxy gets, where a request to each
//! port goes (routes, clusters, endpoints).

use super::route_text;
use crate::translate::{self, ProxyNode, Snapshot};
use envoy_types::pb::envoy::config::endpoint::v3::{ClusterLoadAssignment, lb_endpoint};
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::tcp_proxy;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use weft_api::Spec;
use weft_api::index::{Index, SvcInfo};
use weft_api::types::TrafficPolicy;

/// Everything `describe` says of `svc` for requests from `caller`, but
/// what only proxies know (health, signals): `super` adds those.
pub fn view(ix: &Index, snap: &Snapshot, svc: &SvcInfo, caller: &ProxyNode) -> Value {
    let resource = ix.resources.get(svc.resource);
    let ports: Vec<Value> = svc
        .ports
        .iter()
        .map(|p| {
            let target = match &p.target {
                Some(weft_api::types::IntOrString::Int(n)) => json!(n),
                Some(weft_api::types::IntOrString::Str(s)) => json!(s),
                None => Value::Null,
            };
            json!({"name": p.name, "port": p.port, "protocol": p.protocol, "targetPort": target})
        })
        .collect();
    let mut related: Vec<String> = resource.iter().map(|r| r.key()).collect();

    let virtual_services: Vec<Value> = ix
        .resources
        .iter()
        .filter_map(|r| match &r.spec {
            Spec::VirtualService(vs)
                if vs.hosts.iter().any(|h| ix.service(h, r.namespace()).is_some_and(|s| s.fqdn == svc.fqdn)) =>
            {
                related.push(r.key());
                let gateways = if vs.gateways.is_empty() { vec!["mesh".to_owned()] } else { vs.gateways.clone() };
                Some(json!({
                    "name": r.key(),
                    "gateways": gateways,
                    "exportedToCaller": ix.exported(r, &caller.namespace),
                    "rules": {"http": vs.http.len(), "tcp": vs.tcp.len(), "tls": vs.tls.len()},
                }))
            }
            _ => None,
        })
        .collect();

    let dr = ix.destination_rule(&svc.fqdn, &caller.namespace);
    let destination_rule = dr.map(|(r, d)| {
        related.push(r.key());
        let subsets: Vec<Value> = d
            .subsets
            .iter()
            .map(|s| json!({"name": s.name, "labels": s.labels, "policy": s.traffic_policy.as_ref().map(policy)}))
            .collect();
        json!({"name": r.key(), "policy": d.traffic_policy.as_ref().map(policy), "subsets": subsets})
    });

    // The routes the caller's proxy gets for this service's ports.
    let table = translate::sidecar_outbound(ix, caller);
    let prefix = format!("{}:", svc.fqdn);
    let mut routes: Vec<Value> = table
        .virtual_hosts
        .iter()
        .filter(|vh| vh.name.starts_with(&prefix))
        .map(|vh| {
            json!({
                "port": vh.name[prefix.len()..].parse::<u16>().ok(),
                "protocol": "http",
                "routes": vh.routes.iter().map(route_text::route).collect::<Vec<_>>(),
            })
        })
        .collect();
    for sp in svc.ports.iter().filter(|p| translate::tcp_port(p)) {
        let to = match translate::tcp_route(ix, caller, svc, sp.port) {
            tcp_proxy::ClusterSpecifier::Cluster(c) => json!([{"cluster": c, "weight": 100}]),
            tcp_proxy::ClusterSpecifier::WeightedClusters(w) => {
                let total: u32 = w.clusters.iter().map(|c| c.weight).sum::<u32>().max(1);
                w.clusters
                    .iter()
                    .map(|c| json!({"cluster": c.name, "weight": f64::from(c.weight) * 100.0 / f64::from(total)}))
                    .collect()
            }
        };
        routes.push(json!({"port": sp.port, "protocol": "tcp", "routes": [{"name": "tcp", "match": "any", "to": to}]}));
    }

    // Every cluster of the service (each port, each subset) and those its
    // routes send to, with the endpoints the caller's proxy is given.
    let mut names: BTreeSet<String> = BTreeSet::new();
    let subsets: Vec<&str> =
        std::iter::once("").chain(dr.iter().flat_map(|(_, d)| d.subsets.iter().map(|s| s.name.as_str()))).collect();
    for sp in &svc.ports {
        names.extend(subsets.iter().map(|s| translate::cluster_name(sp.port, s, &svc.fqdn)));
    }
    for r in &routes {
        for route in r["routes"].as_array().into_iter().flatten() {
            names.extend(
                route["to"].as_array().into_iter().flatten().filter_map(|t| t["cluster"].as_str().map(str::to_owned)),
            );
        }
    }
    let (cs, las) = translate::clusters_for(ix, &snap.instances, caller, Some(&names));
    let assignments = las.iter().chain(cs.iter().filter_map(|c| c.load_assignment.as_ref()));
    let clusters: Vec<Value> = assignments.map(endpoints).collect();
    let workloads: BTreeSet<(String, String)> = clusters
        .iter()
        .flat_map(|c| c["endpoints"].as_array().cloned().unwrap_or_default())
        .filter_map(|e| Some((e["workload"].as_str()?.to_owned(), e["namespace"].as_str()?.to_owned())))
        .collect();

    // Policies of the workloads behind it, as their sidecars apply them.
    let mut authorization = Vec::new();
    let mut mtls = Vec::new();
    for (name, ns) in &workloads {
        let Some(inst) = snap.instances.iter().find(|i| &i.name == name && &i.namespace == ns) else { continue };
        let node = super::node_of(&inst.namespace, &inst.name, &inst.labels);
        for (r, p) in translate::authorization_policies(ix, &node) {
            related.push(r.key());
            authorization.push(json!({
                "workload": name, "policy": r.key(),
                "action": p.action.as_deref().unwrap_or("ALLOW"), "rules": p.rules.len(),
            }));
        }
        let mode = ix.mtls_mode(ns, &inst.labels, None);
        mtls.push(json!({"workload": name, "mode": format!("{mode:?}").to_uppercase()}));
    }
    related.extend(ix.resources.iter().filter(|r| matches!(r.spec, Spec::PeerAuthentication(_))).map(|r| r.key()));

    json!({
        "service": {
            "name": svc.name, "namespace": svc.namespace, "host": svc.fqdn,
            "resource": resource.map(|r| r.key()), "ports": ports, "selector": svc.selector,
        },
        "caller": {"namespace": caller.namespace, "labels": caller.labels},
        "virtualServices": virtual_services,
        "destinationRule": destination_rule,
        "routes": routes,
        "clusters": clusters,
        "workloads": workloads.iter().map(|(n, ns)| format!("{n}.{ns}")).collect::<Vec<_>>(),
        "authorization": authorization,
        "mtls": mtls,
        "related": related,
    })
}

/// A cluster's endpoints: address, serving workload, locality, priority.
fn endpoints(la: &ClusterLoadAssignment) -> Value {
    let mut out = Vec::new();
    for (loc, group) in la.endpoints.iter().map(|g| (g.locality.as_ref(), g)) {
        let locality = loc.map(|l| [l.region.as_str(), &l.zone, &l.sub_zone].join("/")).filter(|l| l != "//");
        for e in &group.lb_endpoints {
            let Some(lb_endpoint::HostIdentifier::Endpoint(ep)) = &e.host_identifier else { continue };
            let address = ep.address.as_ref().and_then(|a| match &a.address {
                Some(envoy_types::pb::envoy::config::core::v3::address::Address::SocketAddress(s)) => {
                    let port = match s.port_specifier {
                        Some(envoy_types::pb::envoy::config::core::v3::socket_address::PortSpecifier::PortValue(p)) => {
                            p
                        }
                        _ => 0,
                    };
                    Some(format!("{}:{port}", s.address))
                }
                _ => None,
            });
            let workload = e
                .metadata
                .as_ref()
                .and_then(|m| m.filter_metadata.get("istio"))
                .and_then(|s| s.fields.get("workload"))
                .and_then(|v| match &v.kind {
                    Some(envoy_types::pb::google::protobuf::value::Kind::StringValue(s)) => Some(s.clone()),
                    _ => None,
                });
            // "name;namespace;canonical service;canonical revision;cluster"
            let mut parts = workload.as_deref().unwrap_or_default().split(';');
            let (name, ns) = (parts.next().filter(|n| !n.is_empty()), parts.next());
            out.push(json!({
                "address": address, "workload": name, "namespace": ns, "locality": locality,
                "priority": group.priority, "weight": e.load_balancing_weight.as_ref().map(|w| w.value),
            }));
        }
    }
    json!({"name": la.cluster_name, "endpoints": out})
}

/// A traffic policy in a few words per setting.
fn policy(tp: &TrafficPolicy) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(lb) = &tp.load_balancer {
        if let Some(s) = lb.simple {
            out.push(format!("loadBalancer {s:?}"));
        }
        if let Some(h) = &lb.consistent_hash {
            let by = match (&h.http_header_name, &h.http_cookie, h.use_source_ip, &h.http_query_parameter_name) {
                (Some(name), ..) => format!("header {name}"),
                (_, Some(c), ..) => format!("cookie {}", c.name),
                (_, _, Some(true), _) => "source IP".to_owned(),
                (.., Some(q)) => format!("query {q}"),
                _ => "?".to_owned(),
            };
            out.push(format!("consistentHash by {by}"));
        }
        if lb.locality_lb_setting.is_some() {
            out.push("localityLbSetting".to_owned());
        }
    }
    if tp.connection_pool.is_some() {
        out.push("connectionPool".to_owned());
    }
    if tp.outlier_detection.is_some() {
        out.push("outlierDetection".to_owned());
    }
    if let Some(tls) = &tp.tls {
        out.push(format!("tls {}", tls.mode.as_deref().unwrap_or("DISABLE")));
    }
    if tp.retry_budget.is_some() {
        out.push("retryBudget".to_owned());
    }
    if !tp.port_level_settings.is_empty() {
        out.push(format!("{} port-level settings", tp.port_level_settings.len()));
    }
    out
}
