//! TCP listeners' filter chains: on a gateway's TCP and TLS-passthrough
//! servers, the `tls` rules (by SNI) and `tcp` rules of the VirtualServices
//! bound to them; on a sidecar's TLS service port, the `tls` rules of the
//! mesh VirtualServices for the service. Istio's order: rules in order, the
//! first claim of a server name wins, the first `tcp` rule takes the rest.

use super::super::node::ProxyNode;
use super::tables::{bound, l4_destinations, mesh_virtual_services};
use envoy_types::pb::envoy::config::core::v3::TransportSocket;
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::tcp_proxy::ClusterSpecifier;
use std::collections::BTreeSet;
use weft_api::index::{Index, SvcInfo, SvcPort, host_matches};
use weft_api::types::{Server, selects};

/// One filter chain: connections naming one of `server_names` (any, when
/// empty) go to `cluster`, their TLS first ended with `transport` if set.
#[derive(Clone, Debug)]
pub struct Chain {
    pub server_names: Vec<String>,
    pub cluster: ClusterSpecifier,
    pub transport: Option<TransportSocket>,
    /// Its connections' idle timeout (`with_idle_timeouts`).
    pub idle_timeout: Option<std::time::Duration>,
}

impl Chain {
    /// The clusters the chain sends connections to.
    pub fn cluster_names(&self) -> Vec<String> {
        match &self.cluster {
            ClusterSpecifier::Cluster(c) => vec![c.clone()],
            ClusterSpecifier::WeightedClusters(w) => w.clusters.iter().map(|c| c.name.clone()).collect(),
        }
    }
}

/// Each chain's idle timeout: its (first) destination's DestinationRule
/// `connectionPool.tcp.idleTimeout`, as the caller gets the rule, which
/// Istio sets on the chain's tcp_proxy.
pub fn with_idle_timeouts(index: &Index, node: &ProxyNode, chains: &mut [Chain]) {
    for c in chains {
        c.idle_timeout = c.cluster_names().first().and_then(|name| tcp_idle_timeout(index, node, name));
    }
}

/// `outbound|port|subset|host`'s `connectionPool.tcp.idleTimeout`.
fn tcp_idle_timeout(index: &Index, node: &ProxyNode, cluster: &str) -> Option<std::time::Duration> {
    let mut parts = cluster.split('|');
    let (_, port, subset, host) = (parts.next()?, parts.next()?.parse::<u16>().ok()?, parts.next()?, parts.next()?);
    let (_, dr) = index.destination_rule_for(host, &node.namespace, &node.labels)?;
    let subset = dr.subsets.iter().find(|s| !subset.is_empty() && s.name == subset);
    let tp = super::super::policy::effective_policy(Some(dr), subset, port);
    tp.connection_pool?.tcp?.idle_timeout.map(|d| d.0)
}

/// Whether a rule's match (`port`, `gateways`) applies on this server port.
fn applies(port: Option<u16>, gateways: &[String], here: u16, gw_ref: &str) -> bool {
    port.is_none_or(|p| p == here) && (gateways.is_empty() || gateways.iter().any(|g| g == gw_ref))
}

/// Whether an L4 match applies on a sidecar's `port`: the port, `mesh`
/// among its gateways (when it names some), the caller's labels and
/// namespace.
pub fn on_sidecar(
    port: Option<u16>,
    gateways: &[String],
    source_labels: &weft_api::types::Labels,
    source_namespace: Option<&str>,
    here: u16,
    node: &ProxyNode,
) -> bool {
    applies(port, gateways, here, "mesh")
        && selects(source_labels, &node.labels)
        && source_namespace.is_none_or(|ns| ns == node.namespace)
}

/// The chains of a gateway's TCP listener on `port`.
pub fn gateway_chains(index: &Index, node: &ProxyNode, port: u16) -> Vec<Chain> {
    let mut chains = Vec::new();
    let mut claimed = BTreeSet::new();
    let mut rest = None;
    let mut auto_hosts = Vec::new();
    for (servers, vses) in bound(index, node, port, Server::tcp) {
        let hosts: Vec<&str> = servers
            .iter()
            .filter(|s| s.passthrough())
            .flat_map(|s| s.hosts.iter())
            .map(|h| h.split_once('/').map_or(h.as_str(), |(_, h)| h))
            .collect();
        let plain_tcp =
            servers.iter().any(|s| !s.passthrough() && !s.auto_passthrough() && s.terminates_tcp().is_none());
        let auto: Vec<&str> = servers
            .iter()
            .filter(|s| s.auto_passthrough())
            .flat_map(|s| s.hosts.iter())
            .map(|h| h.split_once('/').map_or(h.as_str(), |(_, h)| h))
            .collect();
        auto_hosts.extend(auto);
        for &(vs_res, vs, gw_ref) in &vses {
            for rule in &vs.tls {
                let Some(to) = l4_destinations(index, vs_res.namespace(), &rule.route) else { continue };
                let names: Vec<String> = rule
                    .match_
                    .iter()
                    .filter(|m| applies(m.port, &m.gateways, port, gw_ref))
                    .flat_map(|m| m.sni_hosts.iter())
                    .filter(|sni| hosts.iter().any(|h| host_matches(h, sni) || host_matches(sni, h)))
                    .map(|sni| sni.to_ascii_lowercase())
                    .filter(|sni| claimed.insert(sni.clone()))
                    .collect();
                if !names.is_empty() {
                    chains.push(Chain { server_names: names, cluster: to, transport: None, idle_timeout: None });
                }
            }
            if rest.is_some() || !plain_tcp {
                continue;
            }
            rest = tcp_destination(index, vs_res, vs, port, gw_ref);
        }
        chains.extend(terminated(index, node, port, &servers, &vses, &mut claimed));
    }
    chains.extend(auto_passthrough(index, node, &auto_hosts, &mut claimed));
    chains.extend(rest.map(|cluster| Chain { server_names: Vec::new(), cluster, transport: None, idle_timeout: None }));
    with_idle_timeouts(index, node, &mut chains);
    chains
}

/// Where the first `tcp` rule of `vs` that applies here sends connections.
fn tcp_destination(
    index: &Index,
    vs_res: &weft_api::Resource,
    vs: &weft_api::types::VirtualServiceSpec,
    port: u16,
    gw_ref: &str,
) -> Option<ClusterSpecifier> {
    vs.tcp
        .iter()
        .filter(|r| r.match_.is_empty() || r.match_.iter().any(|m| applies(m.port, &m.gateways, port, gw_ref)))
        .find_map(|r| l4_destinations(index, vs_res.namespace(), &r.route))
}

/// TLS servers of one Gateway whose TLS the gateway ends: a chain each, by
/// its hosts' names, with its TLS, to where the first `tcp` rule of a
/// VirtualService bound to the Gateway sends connections (Istio's TLS
/// termination).
fn terminated(
    index: &Index,
    node: &ProxyNode,
    port: u16,
    servers: &[&Server],
    vses: &[(&weft_api::Resource, &weft_api::types::VirtualServiceSpec, &str)],
    claimed: &mut BTreeSet<String>,
) -> Vec<Chain> {
    let mut out = Vec::new();
    for s in servers.iter().filter(|s| s.terminates_tcp().is_some()) {
        let Some(gw) = index
            .resources
            .iter()
            .find(|r| matches!(&r.spec, weft_api::Spec::Gateway(g) if g.servers.iter().any(|x| std::ptr::eq(x, *s))))
        else {
            continue;
        };
        // Every VirtualService here is bound to the server's Gateway.
        let to = vses.iter().find_map(|(res, vs, r)| tcp_destination(index, res, vs, port, r));
        let (Some(to), Some(transport)) = (to, crate::translate::gateway_tls::server_transport(index, node, gw, s))
        else {
            continue;
        };
        let names = crate::translate::gateway_tls::server_names(s);
        if names.iter().all(|n| claimed.insert(n.clone())) {
            out.push(Chain { server_names: names, cluster: to, transport: Some(transport), idle_timeout: None });
        }
    }
    out
}

/// AUTO_PASSTHROUGH: each port and subset of each service the servers'
/// `hosts` take, by Istio's server name for it, to its passthrough
/// cluster (the same endpoints, no TLS of the gateway's: the caller's
/// mutual TLS goes through to the workload's sidecar).
fn auto_passthrough(index: &Index, node: &ProxyNode, hosts: &[&str], claimed: &mut BTreeSet<String>) -> Vec<Chain> {
    if hosts.is_empty() {
        return Vec::new();
    }
    let mut out = Vec::new();
    for svc in index.visible_services(&node.namespace) {
        if !hosts.iter().any(|h| host_matches(h, &svc.fqdn)) {
            continue;
        }
        let dr = index.destination_rule_for(&svc.fqdn, &node.namespace, &node.labels).map(|(_, d)| d);
        let subsets = std::iter::once("").chain(dr.iter().flat_map(|d| d.subsets.iter()).map(|s| s.name.as_str()));
        for subset in subsets {
            for sp in &svc.ports {
                let name = passthrough_cluster(&crate::translate::cluster_name(sp.port, subset, &svc.fqdn));
                if claimed.insert(name.clone()) {
                    out.push(Chain {
                        server_names: vec![name.clone()],
                        cluster: ClusterSpecifier::Cluster(name),
                        transport: None,
                        idle_timeout: None,
                    });
                }
            }
        }
    }
    out
}

/// The passthrough twin of cluster `outbound|<port>|<subset>|<host>`,
/// named as the server name it is reached by (Istio's SNI-DNAT cluster).
pub fn passthrough_cluster(cluster: &str) -> String {
    super::super::upstream_tls::sni_of(cluster)
}

/// A sidecar's chains by SNI for a TLS service port (`tls-*`, `https`):
/// the `tls` rules of mesh VirtualServices for the service whose match
/// applies to this caller (labels) and port. The rest is the caller's
/// (`tables::tcp_route`).
pub fn sidecar_chains(index: &Index, node: &ProxyNode, svc: &SvcInfo, sp: &SvcPort) -> Vec<Chain> {
    let mut chains = Vec::new();
    if !matches!(sp.protocol.as_str(), "tls" | "https") {
        return chains;
    }
    let mut claimed = BTreeSet::new();
    for (r, vs) in mesh_virtual_services(index, &node.namespace) {
        if !vs.hosts.iter().any(|h| index.service(h, r.namespace()).is_some_and(|s| s.fqdn == svc.fqdn)) {
            continue;
        }
        for rule in &vs.tls {
            let Some(to) = l4_destinations(index, r.namespace(), &rule.route) else { continue };
            let names: Vec<String> = rule
                .match_
                .iter()
                .filter(|m| {
                    on_sidecar(m.port, &m.gateways, &m.source_labels, m.source_namespace.as_deref(), sp.port, node)
                })
                .flat_map(|m| m.sni_hosts.iter())
                .map(|sni| sni.to_ascii_lowercase())
                .filter(|sni| claimed.insert(sni.clone()))
                .collect();
            if !names.is_empty() {
                chains.push(Chain { server_names: names, cluster: to, transport: None, idle_timeout: None });
            }
        }
    }
    chains
}
