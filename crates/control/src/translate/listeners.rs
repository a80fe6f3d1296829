//! Listeners: where a proxy accepts traffic, and which route table serves it.

use super::gateway_tls::TlsChain;
use super::node::ProxyNode;
use super::routes::l4::Chain;
use envoy_types::pb::envoy::config::accesslog::v3::AccessLog;
use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::core::v3::{
    Address, AggregatedConfigSource, ConfigSource, SocketAddress, address, config_source, socket_address,
};
use envoy_types::pb::envoy::config::listener::v3::{
    Filter, FilterChain, FilterChainMatch, Listener, ListenerFilter, filter, listener_filter,
};
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::listener::tls_inspector::v3::TlsInspector;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_connection_manager::Tracing;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, HttpFilter, Rds, http_connection_manager, http_filter,
};
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::{TcpProxy, tcp_proxy};
use envoy_types::util::pack_any;
use std::collections::BTreeSet;
use weft_api::index::Index;
use weft_api::types::{MtlsMode, selects};

pub fn socket(ip: &str, port: u16) -> Address {
    Address {
        address: Some(address::Address::SocketAddress(SocketAddress {
            address: ip.to_owned(),
            port_specifier: Some(socket_address::PortSpecifier::PortValue(port.into())),
            ..Default::default()
        })),
    }
}

pub fn ads() -> ConfigSource {
    ConfigSource {
        resource_api_version: 2, // V3
        config_source_specifier: Some(config_source::ConfigSourceSpecifier::Ads(AggregatedConfigSource {})),
        ..Default::default()
    }
}

/// Which side of the mesh an HTTP listener faces: it decides which
/// headers about the client are trusted, set or removed.
#[derive(Clone, Copy)]
enum Facing {
    /// A sidecar's outbound: from its own app. The app cannot name the
    /// client certificates its request came through: `x-forwarded-client-cert` is removed.
    App,
    /// A sidecar's inbound: from the mesh. The caller's certificate is
    /// appended to `x-forwarded-client-cert` (Istio's sidecar default).
    Mesh,
    /// A gateway: from clients outside. Their `x-forwarded-client-cert` is
    /// removed, and the client's address is appended to
    /// `x-forwarded-for` (`use_remote_address`, as Istio's gateways).
    Edge,
}

/// What Telemetry asks of one side of a proxy's traffic.
#[derive(Clone, Debug, Default)]
pub struct Observe {
    pub logs: Vec<AccessLog>,
    pub tracing: Option<Tracing>,
    /// The cluster `tracing` reports spans to, if it reports.
    pub collector: Option<Cluster>,
}

/// A proxy's Telemetry, by the side of its traffic.
#[derive(Clone, Debug, Default)]
pub struct Telemetry {
    /// Outbound listeners' (a gateway's are these too, as Istio's).
    pub client: Observe,
    /// The inbound listener's.
    pub server: Observe,
}

impl Telemetry {
    /// The collector clusters its listeners report to, each once (the two
    /// sides may name different providers).
    pub fn collectors(&self) -> impl Iterator<Item = &Cluster> {
        let client = self.client.collector.as_ref();
        let server = self.server.collector.as_ref().filter(|s| client.is_none_or(|c| c.name != s.name));
        client.into_iter().chain(server)
    }
}

/// The filter chains of a sidecar's inbound listener, each with `filters`:
/// one taking only `transport` (`tls`, `raw_buffer`; any when `None`), with
/// the TLS inspector to tell. For a proxy whose mesh certificate comes over
/// SDS (`sds`: Envoy), a `tls` chain terminates mutual TLS with a transport
/// socket naming it, and PERMISSIVE is two chains; weft's proxy terminates
/// by itself and takes one.
fn inbound_chains(filters: Vec<Filter>, transport: Option<&str>, sds: bool) -> (Vec<FilterChain>, Vec<ListenerFilter>) {
    let chain = |t: Option<&str>, filters: Vec<Filter>| FilterChain {
        filter_chain_match: t.map(|t| FilterChainMatch { transport_protocol: t.into(), ..Default::default() }),
        transport_socket: (sds && t == Some("tls")).then(super::gateway_tls::mesh_socket),
        filters,
        ..Default::default()
    };
    let chains = match (sds, transport) {
        (true, None) => vec![chain(Some("tls"), filters.clone()), chain(Some("raw_buffer"), filters)],
        (_, t) => vec![chain(t, filters)],
    };
    let inspect = transport.is_some() || sds;
    (chains, inspect.then(tls_inspector).into_iter().collect())
}

/// An HTTP listener; `authz` are its RBAC filters (authorization policies),
/// which judge a request before anything else does; `seen` its access
/// logs and tracing;
/// `transport` the one transport protocol it takes (`tls`, `raw_buffer`;
/// any when `None`), with `sds` as `inbound_chains` says.
#[allow(clippy::too_many_arguments)]
fn http_listener(
    name: &str,
    addr: Address,
    stat_prefix: &str,
    route: &str,
    facing: Facing,
    (authz, seen): (Vec<HttpFilter>, &Observe),
    transport: Option<&str>,
    sds: bool,
) -> Listener {
    use http_connection_manager::ForwardClientCertDetails as Xfcc;
    let (xfcc, remote) = match facing {
        Facing::App => (Xfcc::Sanitize, false),
        Facing::Mesh => (Xfcc::AppendForward, false),
        Facing::Edge => (Xfcc::Sanitize, true),
    };
    // Inbound and gateway listeners match hosts without their port.
    let strip_port = !matches!(facing, Facing::App);
    let hcm = HttpConnectionManager {
        stat_prefix: stat_prefix.to_owned(),
        codec_type: 0, // AUTO: HTTP/1.1 and h2c with prior knowledge
        route_specifier: Some(http_connection_manager::RouteSpecifier::Rds(Rds {
            config_source: Some(ads()),
            route_config_name: route.to_owned(),
        })),
        strip_port_mode: strip_port.then_some(http_connection_manager::StripPortMode::StripAnyHostPort(true)),
        // Istio's order: authorization first; CORS answers preflights
        // before a fault applies.
        http_filters: authz
            .into_iter()
            .chain([
                HttpFilter {
                    name: super::routes::cors::FILTER.into(),
                    config_type: Some(http_filter::ConfigType::TypedConfig(super::routes::cors::filter_config())),
                    ..Default::default()
                },
                HttpFilter {
                    name: super::fault::FILTER.into(),
                    config_type: Some(http_filter::ConfigType::TypedConfig(super::fault::filter_config())),
                    ..Default::default()
                },
                HttpFilter {
                    name: "envoy.filters.http.router".into(),
                    config_type: Some(http_filter::ConfigType::TypedConfig(pack_any(Router::default()))),
                    ..Default::default()
                },
            ])
            .collect(),
        upgrade_configs: vec![http_connection_manager::UpgradeConfig {
            upgrade_type: "websocket".into(),
            ..Default::default()
        }],
        forward_client_cert_details: xfcc as i32,
        set_current_client_cert_details: matches!(xfcc, Xfcc::AppendForward)
            .then(|| http_connection_manager::SetCurrentClientCertDetails { uri: true, ..Default::default() }),
        use_remote_address: remote.then_some(envoy_types::pb::google::protobuf::BoolValue { value: true }),
        access_log: seen.logs.clone(),
        tracing: seen.tracing.clone(),
        ..Default::default()
    };
    let hcm = Filter {
        name: "envoy.filters.network.http_connection_manager".into(),
        config_type: Some(filter::ConfigType::TypedConfig(pack_any(hcm))),
    };
    let (filter_chains, listener_filters) = inbound_chains(vec![hcm], transport, sds);
    Listener { name: name.to_owned(), address: Some(addr), filter_chains, listener_filters, ..Default::default() }
}

/// A sidecar's inbound listener: HTTP with its RBAC HTTP filters, or, for
/// an app whose service ports are all TCP, TCP with network ones.
pub enum Inbound {
    Http(Vec<HttpFilter>),
    Tcp(Vec<Filter>),
}

/// The inbound TCP listener: every connection to the app (`cluster`),
/// judged first by the network RBAC filters (`authz`), taking the
/// transports PeerAuthentication allows.
fn tcp_inbound(
    addr: Address,
    cluster: String,
    authz: Vec<Filter>,
    (transport, sds): (Option<&str>, bool),
    logs: &[AccessLog],
) -> Listener {
    let proxy = tcp_filter("inbound", tcp_proxy::ClusterSpecifier::Cluster(cluster), logs, None);
    let (filter_chains, listener_filters) = inbound_chains(authz.into_iter().chain([proxy]).collect(), transport, sds);
    Listener { name: "inbound".into(), address: Some(addr), filter_chains, listener_filters, ..Default::default() }
}

fn tcp_filter(
    name: &str,
    cluster: tcp_proxy::ClusterSpecifier,
    logs: &[AccessLog],
    idle: Option<std::time::Duration>,
) -> Filter {
    let tp = TcpProxy {
        stat_prefix: name.to_owned(),
        cluster_specifier: Some(cluster),
        access_log: logs.to_vec(),
        idle_timeout: idle.map(super::routes::pb_duration),
        ..Default::default()
    };
    Filter {
        name: "envoy.filters.network.tcp_proxy".into(),
        config_type: Some(filter::ConfigType::TypedConfig(pack_any(tp))),
    }
}

/// A TCP listener with a filter chain per chain: by server name (SNI,
/// read by Envoy's TLS inspector) where it names some, else any.
fn tcp_listener(name: &str, addr: Address, chains: &[Chain], logs: &[AccessLog]) -> Listener {
    let filter_chains = chains
        .iter()
        .map(|c| FilterChain {
            filter_chain_match: (!c.server_names.is_empty())
                .then(|| FilterChainMatch { server_names: c.server_names.clone(), ..Default::default() }),
            filters: vec![tcp_filter(name, c.cluster.clone(), logs, c.idle_timeout)],
            transport_socket: c.transport.clone(),
            ..Default::default()
        })
        .collect();
    let sni = chains.iter().any(|c| !c.server_names.is_empty());
    Listener {
        name: name.to_owned(),
        address: Some(addr),
        listener_filters: sni.then(tls_inspector).into_iter().collect(),
        filter_chains,
        ..Default::default()
    }
}

/// TCP service ports a sidecar in this namespace (with these labels)
/// forwards, and the filter chains of each: by SNI for the `tls` rules of a
/// TLS port, then where the rest goes. Shared by every such sidecar.
pub fn tcp_specs(index: &Index, node: &ProxyNode) -> Vec<(u16, Vec<Chain>)> {
    let mut taken = BTreeSet::new();
    let mut out = Vec::new();
    for svc in index.reachable_services(&node.namespace, &node.labels) {
        for sp in svc.ports.iter().filter(|p| super::routes::tcp_port(p)) {
            if taken.insert(sp.port) {
                let mut chains = super::routes::l4::sidecar_chains(index, node, svc, sp);
                let rest = super::routes::tcp_route(index, node, svc, sp.port);
                chains.push(Chain { server_names: Vec::new(), cluster: rest, transport: None, idle_timeout: None });
                super::routes::l4::with_idle_timeouts(index, node, &mut chains);
                out.push((sp.port, chains));
            } else {
                tracing::debug!(service = %svc.fqdn, port = sp.port, "tcp port already served on this sidecar");
            }
        }
    }
    out
}

/// The sidecar's listeners: HTTP outbound (all HTTP services by Host),
/// inbound (to the local app), and one TCP listener per TCP service port on
/// the proxy's listen IP (the first service to claim a port gets it).
/// Inbound takes what the workload's PeerAuthentication says (`mtls`):
/// STRICT mutual TLS only, DISABLE plaintext only, PERMISSIVE both.
pub fn sidecar(
    node: &ProxyNode,
    tcp: &[(u16, Vec<Chain>)],
    inbound: Inbound,
    mtls: MtlsMode,
    seen: &Telemetry,
) -> Vec<Listener> {
    let mut out = vec![http_listener(
        "outbound",
        socket(&node.outbound_ip, node.outbound_port),
        "outbound",
        "outbound",
        Facing::App,
        (Vec::new(), &seen.client),
        None,
        false,
    )];
    let transport = match mtls {
        MtlsMode::Permissive => None,
        MtlsMode::Strict => Some("tls"),
        MtlsMode::Disable => Some("raw_buffer"),
    };
    let addr = socket(&node.listen_ip, node.inbound_port);
    match (node.app_port, inbound) {
        (None, _) => {}
        (Some(_), Inbound::Http(authz)) => out.push(http_listener(
            "inbound",
            addr,
            "inbound",
            "inbound",
            Facing::Mesh,
            (authz, &seen.server),
            transport,
            node.sds,
        )),
        (Some(app), Inbound::Tcp(authz)) => {
            out.push(tcp_inbound(addr, format!("inbound|{app}||"), authz, (transport, node.sds), &seen.server.logs))
        }
    }
    for (port, chains) in tcp {
        if *port == node.outbound_port || *port == node.inbound_port {
            continue;
        }
        let name = format!("{}_{}", node.outbound_ip, port);
        out.push(tcp_listener(&name, socket(&node.outbound_ip, *port), chains, &seen.client.logs));
    }
    out
}

/// Ports of the Gateway servers that select this proxy's labels: those
/// with an HTTP server, then those with only TCP or TLS-passthrough ones
/// (a port takes one kind of listener; HTTP wins, and validation says so).
pub fn gateway_ports(index: &Index, node: &ProxyNode) -> (Vec<u16>, Vec<u16>) {
    let (mut http, mut tcp) = (BTreeSet::new(), BTreeSet::new());
    for r in index.resources {
        if let weft_api::Spec::Gateway(g) = &r.spec
            && selects(&g.selector, &node.labels)
        {
            http.extend(g.servers.iter().filter(|s| s.http()).map(|s| s.port.number));
            tcp.extend(g.servers.iter().filter(|s| s.tcp()).map(|s| s.port.number));
        }
    }
    let tcp = tcp.difference(&http).copied().collect();
    (http.into_iter().collect(), tcp)
}

/// A gateway's TCP listeners, one per port, each with its filter chains.
pub fn gateway_tcp(node: &ProxyNode, ports: &[(u16, Vec<Chain>)], logs: &[AccessLog]) -> Vec<Listener> {
    ports
        .iter()
        .map(|(p, chains)| {
            let name = format!("0.0.0.0_{p}");
            tcp_listener(&name, socket(&node.listen_ip, p.saturating_add(node.port_offset)), chains, logs)
        })
        .collect()
}

fn tls_inspector() -> ListenerFilter {
    ListenerFilter {
        name: "envoy.filters.listener.tls_inspector".into(),
        config_type: Some(listener_filter::ConfigType::TypedConfig(pack_any(TlsInspector::default()))),
        ..Default::default()
    }
}

/// A gateway's listeners, one per server port (plus its port offset), each
/// with its RBAC filters; a port of HTTPS servers the gateway terminates
/// has a filter chain per server, by server name, with its TLS.
pub fn gateway(
    node: &ProxyNode,
    ports: &[(u16, Vec<HttpFilter>)],
    tls: &[(u16, Vec<TlsChain>)],
    seen: &Observe,
) -> Vec<Listener> {
    ports
        .iter()
        .map(|(p, authz)| {
            let addr = socket(&node.listen_ip, p.saturating_add(node.port_offset));
            let authz = authz.clone();
            let (name, stats, route) = (format!("0.0.0.0_{p}"), format!("gateway_{p}"), format!("http.{p}"));
            let mut l = http_listener(&name, addr, &stats, &route, Facing::Edge, (authz, seen), None, false);
            if let Some((_, chains)) = tls.iter().find(|(tp, c)| tp == p && !c.is_empty()) {
                let plain = l.filter_chains.remove(0);
                l.filter_chains = chains
                    .iter()
                    .map(|c| FilterChain {
                        filter_chain_match: (!c.server_names.is_empty())
                            .then(|| FilterChainMatch { server_names: c.server_names.clone(), ..Default::default() }),
                        transport_socket: Some(c.transport.clone()),
                        ..plain.clone()
                    })
                    .collect();
                l.listener_filters = vec![tls_inspector()];
            }
            l
        })
        .collect()
}
