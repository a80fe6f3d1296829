//! `GET /debug/describe?service=NAME[&from=WORKLOAD]` and
//! `?workload=NAME`: what applies to one service or workload and what a
//! request to it would hit (`weft describe`).
//!
//! The config side comes from the same translation proxies get, so a route
//! shown is the route run; health and golden signals come from the proxies
//! (`health_view`) and the metrics window (`stats`).

mod route_text;
mod service;

use crate::hub::Hub;
use crate::stats::{By, Stats};
use crate::translate::{ProxyNode, Role};
use serde_json::{Value, json};
use std::time::Duration;
use weft_api::index::{Index, SvcInfo};
use weft_api::types::Labels;

/// What a describe asks for, parsed from the query string.
#[derive(Debug)]
enum Ask {
    Service { name: String, from: Option<String> },
    Workload(String),
}

fn parse(query: &str) -> Result<Ask, String> {
    let (mut service, mut workload, mut from) = (None, None, None);
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let v = percent_encoding::percent_decode_str(v).decode_utf8_lossy().into_owned();
        match k {
            "service" => service = Some(v),
            "workload" => workload = Some(v),
            "from" => from = Some(v),
            other => return Err(format!("unknown parameter `{other}`; use service (and from) or workload")),
        }
    }
    match (service, workload) {
        (Some(name), None) => Ok(Ask::Service { name, from }),
        (None, Some(w)) if from.is_none() => Ok(Ask::Workload(w)),
        _ => Err("give one of service=NAME (with from=WORKLOAD if you like) or workload=NAME".to_owned()),
    }
}

/// A sidecar in `ns` with `labels`, as translation sees a caller.
fn node_of(ns: &str, name: &str, labels: &Labels) -> ProxyNode {
    ProxyNode {
        id: format!("describe~{name}.{ns}"),
        role: Role::Sidecar,
        namespace: ns.to_owned(),
        workload: name.to_owned(),
        labels: labels.clone(),
        listen_ip: "127.0.0.1".into(),
        outbound_ip: "127.0.0.1".into(),
        outbound_port: 15001,
        inbound_port: 15006,
        app_port: None,
        port_offset: 0,
        locality: None,
        holds_mesh_cert: true,
        weft: true,
        sds: false,
        admin: None,
    }
}

/// A name a typo of `wanted` was likely meant as.
fn close(name: &str, wanted: &str) -> bool {
    name.contains(wanted) || weft_api::extensions::strsim_close(name, wanted)
}

/// The service `wanted` names: its host, `name.namespace`, or a name only
/// one namespace has.
fn find_service<'i>(ix: &'i Index, wanted: &str) -> Result<&'i SvcInfo, String> {
    let by = |f: &dyn Fn(&SvcInfo) -> bool| ix.services.values().filter(|s| f(s)).collect::<Vec<_>>();
    let mut found = by(&|s| s.fqdn == wanted);
    if found.is_empty() {
        found = by(&|s| format!("{}.{}", s.name, s.namespace) == wanted);
    }
    if found.is_empty() {
        found = by(&|s| s.name == wanted);
    }
    match found[..] {
        [one] => Ok(one),
        [] => {
            let mut near: Vec<&str> =
                ix.services.values().filter(|s| close(&s.name, wanted)).map(|s| s.fqdn.as_str()).take(8).collect();
            near.sort();
            let hint = if near.is_empty() {
                format!("the mesh has {} services; `weft stat` lists those with traffic", ix.services.len())
            } else {
                format!("did you mean {}?", near.join(", "))
            };
            Err(format!("no service `{wanted}`: {hint}"))
        }
        _ => Err(format!(
            "`{wanted}` names services in several namespaces ({}); write name.namespace",
            found.iter().map(|s| s.namespace.as_str()).collect::<Vec<_>>().join(", ")
        )),
    }
}

/// The describe `query` asks for, or why it cannot be given (a 400 or 404
/// as the bool says: true when nothing of that name exists).
pub async fn describe(hub: &Hub, stats: &Stats, query: &str) -> Result<Value, (bool, String)> {
    let ask = parse(query).map_err(|e| (false, e))?;
    let snap = hub.snapshot();
    let s = snap.clone();
    // Translation for one caller is the work of one proxy's push: off the runtime.
    let view = tokio::task::spawn_blocking(move || {
        let ix = Index::new(&s.resources);
        match &ask {
            Ask::Service { name, from } => {
                let svc = find_service(&ix, name).map_err(|e| (true, e))?;
                let caller = match from {
                    Some(w) => {
                        let i = find_instance(&s, w).map_err(|e| (true, e))?;
                        node_of(&i.namespace, &i.name, &i.labels)
                    }
                    None => node_of(&svc.namespace, "describe", &Labels::new()),
                };
                Ok(service::view(&ix, &s, svc, &caller))
            }
            Ask::Workload(w) => {
                let first = find_instance(&s, w).map_err(|e| (true, e))?;
                Ok(workload(&ix, &s, &first.name, &first.namespace))
            }
        }
    })
    .await
    .map_err(|e| (false, format!("describe failed: {e}")))?;
    let mut view = view?;
    let related: Vec<String> =
        view["related"].as_array().into_iter().flatten().filter_map(|r| r.as_str().map(str::to_owned)).collect();
    view["warnings"] =
        hub.warnings().into_iter().filter(|w| related.iter().any(|k| w.contains(&format!("in {k}")))).collect();
    enrich(hub, stats, &mut view).await;
    Ok(view)
}

fn find_instance<'s>(
    snap: &'s crate::translate::Snapshot,
    wanted: &str,
) -> Result<&'s crate::registry::Instance, String> {
    let found: Vec<_> = snap
        .instances
        .iter()
        .filter(|i| i.name == wanted || format!("{}.{}", i.name, i.namespace) == wanted)
        .map(|i| &**i)
        .collect();
    let namespaces: std::collections::BTreeSet<&str> = found.iter().map(|i| i.namespace.as_str()).collect();
    match (found.first(), namespaces.len()) {
        (Some(i), 1) => Ok(i),
        (None, _) => {
            let near: std::collections::BTreeSet<&str> =
                snap.instances.iter().map(|i| i.name.as_str()).filter(|n| close(n, wanted)).collect();
            let hint = if near.is_empty() {
                "`weft status` lists the proxies".to_owned()
            } else {
                format!("did you mean {}?", near.into_iter().collect::<Vec<_>>().join(", "))
            };
            Err(format!("no workload `{wanted}` has an instance: {hint}"))
        }
        _ => Err(format!(
            "`{wanted}` names workloads in several namespaces ({}); write name.namespace",
            namespaces.into_iter().collect::<Vec<_>>().join(", ")
        )),
    }
}

/// A workload: its instances, the services it serves, the policies its
/// sidecar applies and what it may reach.
fn workload(ix: &Index, snap: &crate::translate::Snapshot, name: &str, ns: &str) -> Value {
    let instances: Vec<_> = snap.instances.iter().filter(|i| i.name == name && i.namespace == ns).collect();
    let labels = instances.first().map(|i| i.labels.clone()).unwrap_or_default();
    let node = node_of(ns, name, &labels);
    let mut related = Vec::new();
    let services: Vec<String> =
        ix.services.values().filter(|s| s.selects_workload(ns, &labels)).map(|s| s.fqdn.clone()).collect();
    let authorization: Vec<Value> = crate::translate::authorization_policies(ix, &node)
        .map(|(r, p)| {
            related.push(r.key());
            json!({"policy": r.key(), "action": p.action.as_deref().unwrap_or("ALLOW"), "rules": p.rules.len()})
        })
        .collect();
    let sidecar = weft_api::index::sidecar_for(ix.resources, ns, &labels).map(|r| r.key());
    related.extend(sidecar.clone());
    related.extend(
        ix.resources
            .iter()
            .filter(|r| matches!(r.spec, weft_api::Spec::PeerAuthentication(_) | weft_api::Spec::Telemetry(_)))
            .map(|r| r.key()),
    );
    let instances: Vec<Value> = instances
        .iter()
        .map(|i| {
            let sa = i.service_account.as_deref().unwrap_or("default");
            json!({
                "address": i.address, "port": i.port, "ports": i.ports, "locality": i.locality,
                "serviceAccount": sa, "identity": format!("spiffe://{}/ns/{ns}/sa/{sa}", crate::ca::TRUST_DOMAIN),
            })
        })
        .collect();
    json!({
        "workload": {"name": name, "namespace": ns, "labels": labels},
        "instances": instances,
        "services": services,
        "authorization": authorization,
        "mtls": format!("{:?}", ix.mtls_mode(ns, &labels, None)).to_uppercase(),
        "sidecarScope": sidecar,
        "reaches": ix.reachable_services(ns, &labels).count(),
        "related": related,
    })
}

/// Adds what proxies know: each endpoint's health as its callers see it,
/// the golden signals of the last minute, and a workload's own proxies.
async fn enrich(hub: &Hub, stats: &Stats, view: &mut Value) {
    // Proxies are asked for the clusters of the service, or of the services
    // the workload serves: those hosts, not the mesh's.
    let services: Vec<String> = match view["service"]["host"].as_str() {
        Some(host) => vec![host.to_owned()],
        None => {
            view["services"].as_array().into_iter().flatten().filter_map(|s| s.as_str().map(str::to_owned)).collect()
        }
    };
    let views = futures::future::join_all(services.iter().map(|s| crate::health_view::gather(hub, Some(s)))).await;
    let hosts: Vec<Value> =
        views.into_iter().flat_map(|v| v["hosts"].as_array().cloned().unwrap_or_default()).collect();
    let host = |cluster: &str, address: &str| hosts.iter().find(|h| h["cluster"] == cluster && h["address"] == address);
    for c in view["clusters"].as_array_mut().into_iter().flatten() {
        let cluster = c["name"].as_str().unwrap_or_default().to_owned();
        for e in c["endpoints"].as_array_mut().into_iter().flatten() {
            if let Some(h) = host(&cluster, e["address"].as_str().unwrap_or_default()) {
                e["health"] =
                    json!({"seenBy": h["seenBy"], "healthyIn": h["healthyIn"], "unhealthyIn": h["unhealthyIn"]});
            }
        }
    }
    let minute = Duration::from_secs(60);
    if let Some(host) = view["service"]["host"].as_str().map(str::to_owned) {
        let rows = stats.query(By::Service, minute);
        view["signals"] = rows["rows"].as_array().into_iter().flatten().find(|r| r["name"] == host).cloned().into();
        let edges = stats.query(By::Edge, minute);
        view["callers"] =
            edges["rows"].as_array().into_iter().flatten().filter(|r| r["service"] == host).cloned().collect();
    }
    if let Some(name) = view["workload"]["name"].as_str().map(str::to_owned) {
        let ns = view["workload"]["namespace"].as_str().unwrap_or_default().to_owned();
        let rows = stats.query(By::Workload, minute);
        view["signals"] =
            rows["rows"].as_array().into_iter().flatten().find(|r| r["name"] == format!("{name}.{ns}")).cloned().into();
        let latest = hub.snapshot().version;
        let proxies: Vec<Value> = hub
            .proxies()
            .into_iter()
            .filter(|p| p.id.rsplit('~').next() == Some(&format!("{name}.{ns}")))
            .map(|p| json!({"id": p.id, "synced": p.synced == latest, "lastNack": p.last_nack}))
            .collect();
        view["proxies"] = proxies.into();
        let addresses: Vec<String> = view["instances"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|i| i["address"].as_str().map(str::to_owned))
            .collect();
        view["health"] = hosts
            .iter()
            .filter(|h| {
                let a = h["address"].as_str().unwrap_or_default();
                addresses.iter().any(|ip| a.rsplit_once(':').is_some_and(|(host, _)| host == ip))
            })
            .cloned()
            .collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_describe_asks_for_one_service_or_one_workload() {
        assert!(matches!(parse("service=reviews&from=productpage-v1"), Ok(Ask::Service { from: Some(_), .. })));
        assert!(matches!(parse("workload=reviews-v1"), Ok(Ask::Workload(w)) if w == "reviews-v1"));
        assert!(parse("service=a&workload=b").is_err());
        assert!(parse("workload=a&from=b").is_err());
        assert!(parse("nodes=1").unwrap_err().contains("unknown parameter"));
    }
}
