//! Translation shared between proxies, encoded once.
//!
//! What a proxy receives splits into parts that depend on little about it:
//! clusters and endpoints on its namespace (DestinationRule lookup and
//! exportTo), the outbound route table and TCP routes on its namespace and
//! labels (`sourceLabels`), a gateway's routes on its namespace and labels.
//! Each part is computed once per snapshot version and key, encoded once,
//! and shared by every proxy with that key; only listeners and the inbound
//! pieces (ports, addresses) are built per proxy, and they are small.

use super::node::{ProxyNode, Role};
use super::{Snapshot, access_log, authz, clusters, grpc, listeners, routes, tracing};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpFilter;
use envoy_types::pb::google::protobuf::Any;
use envoy_types::util::pack_any;
use parking_lot::Mutex;
use prost::{Message, Name};
use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;
use tokio::sync::OnceCell;
use weft_api::index::Index;
use weft_api::types::telemetry::Side;

/// One encoded resource, with a hash of its bytes to tell what changed.
#[derive(Debug)]
pub struct Res {
    pub name: String,
    pub any: Any,
    pub hash: u64,
}

pub type ResList = Vec<Arc<Res>>;

/// What one proxy receives, encoded.
#[derive(Debug, Default)]
pub struct Encoded {
    pub listeners: ResList,
    pub routes: ResList,
    pub clusters: ResList,
    pub endpoints: ResList,
}

/// A resource as the ADS server sends it: packed, with its content's hash.
pub fn encode_res<M: Message + Name>(name: String, m: M) -> Arc<Res> {
    encode(name, m)
}

fn encode<M: Message + Name>(name: String, m: M) -> Arc<Res> {
    let any = pack_any(m);
    let mut h = DefaultHasher::new();
    any.value.hash(&mut h);
    Arc::new(Res { name, any, hash: h.finish() })
}

#[derive(Default)]
struct Part {
    /// A proxyless gRPC client's, which depend only on the key.
    listeners: ResList,
    routes: ResList,
    clusters: ResList,
    endpoints: ResList,
    tcp: Vec<(u16, Vec<routes::l4::Chain>)>,
    /// A gateway's TCP ports and each one's filter chains.
    gateway_tcp: Vec<(u16, Vec<routes::l4::Chain>)>,
    /// RBAC filters (authorization policies) of an HTTP listener, by the port it serves.
    authz: Vec<(u16, Vec<HttpFilter>)>,
    /// A gateway's terminating HTTPS servers, by port.
    tls: Vec<(u16, Vec<super::gateway_tls::TlsChain>)>,
    /// What a sidecar's inbound listener takes (PeerAuthentication).
    mtls: Option<weft_api::types::MtlsMode>,
    /// A sidecar's inbound as TCP (its services' ports are all TCP), with
    /// its network RBAC filters; None: HTTP, with `authz`.
    inbound_tcp: Option<Vec<envoy_types::pb::envoy::config::listener::v3::Filter>>,
    /// Its access logs and tracing (Telemetry), with its collector.
    seen: listeners::Telemetry,
}

/// Parts of the current snapshot version, by key. Each part is computed by
/// the first stream that needs it, on the blocking pool; the others await
/// it (without holding a runtime thread) rather than compute it again.
#[derive(Default)]
pub struct Cache {
    version: u64,
    cells: HashMap<String, Arc<OnceCell<Arc<Part>>>>,
}

async fn part(
    cache: &Mutex<Cache>,
    snap: &Arc<Snapshot>,
    key: String,
    f: impl FnOnce(&Index, &Snapshot) -> Part + Send + 'static,
) -> Arc<Part> {
    let cell = {
        let mut c = cache.lock();
        if c.version != snap.version {
            c.version = snap.version;
            c.cells.clear();
        }
        c.cells.entry(key).or_default().clone()
    };
    let snap = snap.clone();
    cell.get_or_init(|| async move {
        match tokio::task::spawn_blocking(move || Arc::new(f(&Index::new(&snap.resources), &snap))).await {
            Ok(part) => part,
            // Only a runtime shutting down cancels it (`weft up` stopping
            // while a change is translated), and it drops this task next.
            Err(e) if e.is_cancelled() => std::future::pending().await,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    })
    .await
    .clone()
}

/// The services whose selector selects the workload behind `node`.
fn own_services<'i>(ix: &'i Index, node: &ProxyNode) -> Vec<&'i weft_api::index::SvcInfo> {
    ix.services.values().filter(|s| s.selects_workload(&node.namespace, &node.labels)).collect()
}

/// Whether the workload behind `node` serves TCP: its sidecar's inbound
/// is then a TCP listener. The app speaks what its services' ports say:
/// TCP when all are.
pub fn serves_tcp(ix: &Index, node: &ProxyNode) -> bool {
    let own = own_services(ix, node);
    !own.is_empty() && own.iter().all(|s| s.ports.iter().all(routes::tcp_port))
}

/// The filters that judge a request before it is routed: its JWT checked
/// (RequestAuthentication), then the authorization policies (Istio's order).
fn request_filters(ix: &Index, snap: &Snapshot, target: &authz::Target) -> Vec<HttpFilter> {
    super::jwt::filter(ix, target.node, &snap.jwks).into_iter().chain(authz::filters(ix, target)).collect()
}

/// What Telemetry asks of `node` on `side`.
fn observe(ix: &Index, snap: &Snapshot, node: &ProxyNode, side: Side) -> listeners::Observe {
    let (tracing, collector) = tracing::for_side(ix, node, side, snap.trace_store).unzip();
    listeners::Observe { logs: access_log::logs(ix, node, side), tracing, collector: collector.flatten() }
}

fn clusters_part(
    index: &Index,
    snap: &Snapshot,
    node: &ProxyNode,
    only: Option<&std::collections::BTreeSet<String>>,
) -> (ResList, ResList) {
    let (cs, es) = clusters::build(index, &snap.instances, node, only);
    let cs = cs.into_iter().map(|c| encode(c.name.clone(), c)).collect();
    let es = es.into_iter().map(|e| encode(e.cluster_name.clone(), e)).collect();
    (cs, es)
}

/// The encoded config for `node`, sharing what it can through `cache`.
pub async fn encoded(snap: &Arc<Snapshot>, node: &ProxyNode, cache: &Mutex<Cache>) -> Encoded {
    let labels: Vec<String> = node.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    // Endpoint priorities depend on where the caller is (locality) and
    // with `failoverPriority` on its labels; what it reaches, on the
    // Sidecar resource that applies to it.
    let scope = weft_api::index::sidecar_for(&snap.resources, &node.namespace, &node.labels)
        .map_or(String::new(), |r| format!("|{}", r.key()));
    let ranking = match (&node.locality, snap.label_failover()) {
        (None, false) => scope,
        (loc, false) => format!("|{}{scope}", loc.as_deref().unwrap_or("")),
        (loc, true) => format!("|{}|{}{scope}", loc.as_deref().unwrap_or(""), labels.join(",")),
    };
    // Clusters' mesh TLS depends on whether the proxy holds its certificate.
    let certs = if node.holds_mesh_cert { "" } else { "|no-mesh-cert" };
    let ranking = format!("{ranking}{certs}");
    // Policies on request principals are written in each proxy's dialect.
    let dialect = if node.weft { "" } else { "|envoy" };
    match node.role {
        Role::Grpc => {
            let n = node.clone();
            let key = format!("grpc|{}|{}{ranking}", node.namespace, labels.join(","));
            let p = part(cache, snap, key, move |ix, snap| {
                let (cs, es) = clusters::build(ix, &snap.instances, &n, None);
                let outbound = routes::sidecar_outbound(ix, &n);
                Part {
                    listeners: grpc::listeners(&outbound).into_iter().map(|l| encode(l.name.clone(), l)).collect(),
                    routes: grpc::route_tables(outbound).into_iter().map(|r| encode(r.name.clone(), r)).collect(),
                    clusters: grpc::clusters(cs).into_iter().map(|c| encode(c.name.clone(), c)).collect(),
                    endpoints: grpc::endpoints(es).into_iter().map(|e| encode(e.cluster_name.clone(), e)).collect(),
                    ..Default::default()
                }
            })
            .await;
            Encoded {
                listeners: p.listeners.clone(),
                routes: p.routes.clone(),
                clusters: p.clusters.clone(),
                endpoints: p.endpoints.clone(),
            }
        }
        Role::Sidecar => {
            let n = node.clone();
            let key = format!("clusters|{}{ranking}", node.namespace);
            let cl = part(cache, snap, key, move |ix, snap| {
                let (clusters, endpoints) = clusters_part(ix, snap, &n, None);
                Part { clusters, endpoints, ..Default::default() }
            })
            .await;
            let n = node.clone();
            let rt = part(cache, snap, format!("routes|{}|{}", node.namespace, labels.join(",")), move |ix, _| Part {
                routes: vec![encode("outbound".into(), routes::sidecar_outbound(ix, &n))],
                tcp: listeners::tcp_specs(ix, &n),
                ..Default::default()
            })
            .await;
            let n = node.clone();
            let app_port = node.app_port.unwrap_or(0);
            let key = format!(
                "authz|{}|{}|{}|{app_port}|{}{dialect}",
                node.namespace,
                node.workload,
                labels.join(","),
                node.listen_ip
            );
            let az = part(cache, snap, key, move |ix, snap| {
                let own = own_services(ix, &n);
                let target = authz::Target { node: &n, port: app_port };
                let tcp = serves_tcp(ix, &n);
                Part {
                    clusters: super::app_cluster::inbound(&n, &own)
                        .map(|c| encode(c.name.clone(), c))
                        .into_iter()
                        .collect(),
                    authz: if tcp { Vec::new() } else { vec![(app_port, request_filters(ix, snap, &target))] },
                    inbound_tcp: tcp.then(|| authz::network_filters(ix, &target)),
                    mtls: Some(ix.mtls_mode(&n.namespace, &n.labels, n.app_port)),
                    seen: listeners::Telemetry {
                        client: observe(ix, snap, &n, Side::Client),
                        server: observe(ix, snap, &n, Side::Server),
                    },
                    ..Default::default()
                }
            })
            .await;
            let inbound = match &az.inbound_tcp {
                Some(rbac) => listeners::Inbound::Tcp(rbac.clone()),
                None => listeners::Inbound::Http(az.authz.first().map(|(_, f)| f.clone()).unwrap_or_default()),
            };
            let mtls = az.mtls.unwrap_or(weft_api::types::MtlsMode::Permissive);
            let mut out = Encoded {
                listeners: listeners::sidecar(node, &rt.tcp, inbound, mtls, &az.seen)
                    .into_iter()
                    .map(|l| encode(l.name.clone(), l))
                    .collect(),
                routes: rt.routes.clone(),
                clusters: cl.clusters.clone(),
                endpoints: cl.endpoints.clone(),
            };
            if az.inbound_tcp.is_none() {
                out.routes.extend(routes::sidecar_inbound(node).map(|r| encode(r.name.clone(), r)));
            }
            out.clusters.extend(az.clusters.iter().cloned());
            out.clusters.extend(az.seen.collectors().map(|c| encode(c.name.clone(), c.clone())));
            out
        }
        Role::Gateway => {
            let n = node.clone();
            let locality = node.locality.as_deref().unwrap_or("");
            let key = format!("gateway|{}|{}|{locality}|{}{certs}", node.namespace, labels.join(","), node.listen_ip)
                + dialect;
            let g = part(cache, snap, key, move |ix, snap| {
                let (ports, tcp_ports) = listeners::gateway_ports(ix, &n);
                let rs: Vec<_> = ports.iter().map(|p| routes::gateway(ix, &n, *p)).collect();
                let gateway_tcp: Vec<_> =
                    tcp_ports.iter().map(|p| (*p, routes::l4::gateway_chains(ix, &n, *p))).collect();
                let mut referenced = routes::referenced_clusters(&rs);
                referenced.extend(gateway_tcp.iter().flat_map(|(_, cs)| cs.iter()).flat_map(|c| c.cluster_names()));
                let (clusters, endpoints) = clusters_part(ix, snap, &n, Some(&referenced));
                let routes = rs.into_iter().map(|r| encode(r.name.clone(), r)).collect();
                let authz = ports
                    .iter()
                    .map(|p| (*p, request_filters(ix, snap, &authz::Target { node: &n, port: *p })))
                    .collect();
                let tls = ports.iter().map(|p| (*p, super::gateway_tls::chains(ix, &n, *p))).collect();
                let seen =
                    listeners::Telemetry { client: observe(ix, snap, &n, Side::Client), server: Default::default() };
                Part { routes, clusters, endpoints, gateway_tcp, authz, tls, seen, ..Default::default() }
            })
            .await;
            let listeners = listeners::gateway(node, &g.authz, &g.tls, &g.seen.client).into_iter();
            Encoded {
                listeners: listeners
                    .chain(listeners::gateway_tcp(node, &g.gateway_tcp, &g.seen.client.logs))
                    .map(|l| encode(l.name.clone(), l))
                    .collect(),
                routes: g.routes.clone(),
                clusters: g
                    .clusters
                    .iter()
                    .cloned()
                    .chain(g.seen.collectors().map(|c| encode(c.name.clone(), c.clone())))
                    .collect(),
                endpoints: g.endpoints.clone(),
            }
        }
    }
}
