//! Listeners compiled from Envoy `Listener`s: an address and either an
//! HTTP connection manager (with its route table) or a TCP proxy.

use super::access_log::AccessLogs;
use super::route::{RouteTable, Target};
use super::sni::{ChainOpts, TcpRoutes};
use super::{ClusterIndex, CompileError};
use crate::names::Interner;
use crate::telemetry::access_log::Sinks;
use envoy_types::pb::envoy::config::core::v3::{address, socket_address};
use envoy_types::pb::envoy::config::listener::v3::{Listener, filter};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, http_connection_manager,
};
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::{TcpProxy, tcp_proxy};
use prost::Message;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Traffic from the local app (or a gateway's clients) to the mesh.
    Outbound,
    /// Traffic from the mesh to the local app.
    Inbound,
}

#[derive(Debug)]
pub struct HttpListener {
    pub route_name: String,
    /// None until the route table arrives (requests get 404 meanwhile).
    pub routes: Option<Arc<RouteTable>>,
    pub strip_port: bool,
    pub direction: Direction,
    /// What becomes of a request's `x-forwarded-client-cert`.
    pub client_cert: ClientCert,
    /// Whether the caller's URI SAN goes into the header it sets (Envoy's
    /// `set_current_client_cert_details.uri`); `By` and `Hash` always do.
    pub client_cert_uri: bool,
    /// The client's address is appended to `x-forwarded-for` and the
    /// scheme set in `x-forwarded-proto` (Envoy's `use_remote_address`:
    /// the edge, where the client is not trusted to say either).
    pub remote_address: bool,
    /// Its JWT filter (RequestAuthentication), judged before `authz`.
    pub jwt: Option<Box<super::jwt::Jwt>>,
    /// RBAC filters in chain order (authorization policies); most have none.
    pub authz: Box<[super::rbac::Filter]>,
    /// Whether a policy of `authz` looks at the client `x-forwarded-for`
    /// names: only then is the header read.
    pub authz_reads_xff: bool,
    /// What its connections may be (a sidecar's PeerAuthentication mode).
    pub transport: Transport,
    /// TLS it terminates (a gateway's HTTPS servers), by server name.
    pub terminate: Option<Arc<super::terminate::Terminate>>,
    /// Its access logs (Istio's Telemetry `accessLogging`); most have none.
    pub access_log: Option<Box<AccessLogs>>,
    /// Its tracing (Istio's Telemetry `tracing`); most have none.
    pub tracing: Option<Box<super::tracing::Tracing>>,
}

pub use super::Transport;

/// Envoy's `forward_client_cert_details`: what a listener does with the
/// `x-forwarded-client-cert` header a request arrives with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientCert {
    /// Removed (Envoy's default).
    Sanitize,
    /// Kept on mutual TLS, removed on plaintext.
    ForwardOnly,
    /// Kept always.
    AlwaysForwardOnly,
    /// On mutual TLS the caller's certificate is appended; removed on plaintext.
    AppendForward,
    /// On mutual TLS replaced by the caller's certificate; removed on plaintext.
    SanitizeSet,
}

impl ClientCert {
    fn from_proto(v: i32) -> Self {
        use http_connection_manager::ForwardClientCertDetails as X;
        match X::try_from(v) {
            Ok(X::ForwardOnly) => ClientCert::ForwardOnly,
            Ok(X::AlwaysForwardOnly) => ClientCert::AlwaysForwardOnly,
            Ok(X::AppendForward) => ClientCert::AppendForward,
            Ok(X::SanitizeSet) => ClientCert::SanitizeSet,
            Ok(X::Sanitize) | Err(_) => ClientCert::Sanitize,
        }
    }
}

#[derive(Debug)]
pub enum ListenerKind {
    Http(Arc<HttpListener>),
    Tcp(TcpRoutes),
}

#[derive(Debug)]
pub struct ListenerCfg {
    pub name: Arc<str>,
    pub addr: SocketAddr,
    pub kind: ListenerKind,
}

fn listener_addr(l: &Listener) -> Result<SocketAddr, CompileError> {
    let Some(address::Address::SocketAddress(sa)) = l.address.as_ref().and_then(|a| a.address.as_ref()) else {
        return Err(CompileError::new(format!("listener {}: no socket address", l.name)));
    };
    let Some(socket_address::PortSpecifier::PortValue(port)) = sa.port_specifier else {
        return Err(CompileError::new(format!("listener {}: no port", l.name)));
    };
    let ip = sa
        .address
        .parse()
        .map_err(|_| CompileError::new(format!("listener {}: {:?} is not an IP address", l.name, sa.address)))?;
    Ok(SocketAddr::new(ip, port as u16))
}

fn tcp_target(spec: Option<tcp_proxy::ClusterSpecifier>, clusters: &ClusterIndex) -> Result<Target, CompileError> {
    match spec {
        Some(tcp_proxy::ClusterSpecifier::Cluster(c)) => Ok(Target::single(&c, clusters)),
        Some(tcp_proxy::ClusterSpecifier::WeightedClusters(w)) => Target::weighted(
            w.clusters.into_iter().map(|c| (c.name, c.weight, Default::default(), Default::default())),
            clusters,
        ),
        None => Err(CompileError::new("tcp_proxy needs a cluster")),
    }
}

/// Each filter chain's tcp_proxy target, by the server names it matches;
/// network RBAC filters before it (the first chain's: weft's control
/// plane gives every chain the same). `inbound`: a sidecar's inbound
/// listener, whose chain's `transport_protocol` says what it takes.
fn tcp_routes(l: &Listener, inbound: bool, clusters: &ClusterIndex, logs: &Sinks) -> Result<TcpRoutes, CompileError> {
    let mut routes = TcpRoutes {
        by_name: Vec::new(),
        default: None,
        access_log: None,
        authz: Box::new([]),
        inbound: None,
        chains: Box::new([]),
    };
    let (mut named, mut default) = (Vec::new(), ChainOpts::default());
    for (i, fc) in l.filter_chains.iter().enumerate() {
        let any = match fc.filters.last().and_then(|f| f.config_type.as_ref()) {
            Some(filter::ConfigType::TypedConfig(any)) if any.type_url.ends_with("TcpProxy") => any,
            _ => return Err(CompileError::new("every filter chain of a TCP listener needs a tcp_proxy, last")),
        };
        if i == 0 {
            routes.authz = network_rbac(&fc.filters[..fc.filters.len() - 1])?;
            if inbound {
                let chain_match = fc.filter_chain_match.as_ref();
                routes.inbound =
                    Some(super::Transport::from_protocol(chain_match.map_or("", |m| m.transport_protocol.as_str()))?);
            }
        }
        let tp = TcpProxy::decode(any.value.as_slice()).map_err(|e| CompileError::new(e.to_string()))?;
        if routes.access_log.is_none() {
            routes.access_log = AccessLogs::compile(&tp.access_log, logs)?;
        }
        let target = tcp_target(tp.cluster_specifier, clusters)?;
        let names: Vec<String> = fc
            .filter_chain_match
            .as_ref()
            .map(|m| m.server_names.iter().map(|n| n.to_ascii_lowercase()).collect())
            .unwrap_or_default();
        // A gateway's chain that ends TLS before routing (a sidecar's
        // inbound mutual TLS is `inbound`'s).
        let tls = match &fc.transport_socket {
            Some(ts) if !inbound => Some(chain_tls(ts)?),
            _ => None,
        };
        let opts = ChainOpts { terminate: tls, idle: tp.idle_timeout.as_ref().map(super::duration) };
        if names.is_empty() {
            if routes.default.replace(target).is_some() {
                return Err(CompileError::new("two filter chains match any server name"));
            }
            default = opts;
        } else {
            routes.by_name.push((names, target));
            named.push(opts);
        }
    }
    if named.iter().chain([&default]).any(|o| o.terminate.is_some() || o.idle.is_some()) {
        routes.chains = named.into_iter().chain([default]).collect();
    }
    if routes.inbound.is_some() && routes.by_sni() {
        return Err(CompileError::new("an inbound TCP listener routes every connection to its app, not by SNI"));
    }
    Ok(routes)
}

/// The TLS one filter chain ends (its `DownstreamTlsContext`).
fn chain_tls(
    ts: &envoy_types::pb::envoy::config::core::v3::TransportSocket,
) -> Result<Arc<super::terminate::Terminate>, CompileError> {
    use envoy_types::pb::envoy::config::core::v3::transport_socket::ConfigType;
    let Some(ConfigType::TypedConfig(cfg)) = &ts.config_type else {
        return Err(CompileError::new("a transport socket needs a typed config"));
    };
    if !cfg.type_url.ends_with("DownstreamTlsContext") {
        return Err(CompileError::new(format!("unsupported transport socket {}", cfg.type_url)));
    }
    let mut t = super::terminate::Terminate::default();
    t.add(Vec::new(), &cfg.value)?;
    Ok(Arc::new(t))
}

/// The network filters before a tcp_proxy: RBAC only.
fn network_rbac(
    filters: &[envoy_types::pb::envoy::config::listener::v3::Filter],
) -> Result<Box<[super::rbac::Filter]>, CompileError> {
    use envoy_types::pb::envoy::extensions::filters::network::rbac::v3::Rbac;
    let mut out = Vec::new();
    for f in filters {
        match &f.config_type {
            Some(filter::ConfigType::TypedConfig(any)) if any.type_url.ends_with("filters.network.rbac.v3.RBAC") => {
                let rbac = Rbac::decode(any.value.as_slice())
                    .map_err(|e| CompileError::new(format!("filter {}: {e}", f.name)))?;
                out.push(
                    super::rbac::Filter::compile_network(&rbac)
                        .map_err(|e| CompileError::new(format!("filter {}: {e}", f.name)))?,
                );
            }
            _ => {
                return Err(CompileError::new(format!(
                    "unsupported network filter {:?} before tcp_proxy (weft's proxy takes RBAC)",
                    f.name
                )));
            }
        }
    }
    Ok(out.into())
}

/// The TLS of filter chains with a TLS transport socket (a gateway's HTTPS
/// servers), by their server names. Every chain serves the same route
/// table: a chain differs only in its certificate.
fn terminate(l: &Listener) -> Result<Option<Arc<super::terminate::Terminate>>, CompileError> {
    use envoy_types::pb::envoy::config::core::v3::transport_socket::ConfigType;
    let mut t = super::terminate::Terminate::default();
    let mut any = false;
    for fc in &l.filter_chains {
        let Some(ts) = &fc.transport_socket else { continue };
        let Some(ConfigType::TypedConfig(cfg)) = &ts.config_type else {
            return Err(CompileError::new("a transport socket needs a typed config"));
        };
        if !cfg.type_url.ends_with("DownstreamTlsContext") {
            return Err(CompileError::new(format!("unsupported transport socket {}", cfg.type_url)));
        }
        let names = fc.filter_chain_match.as_ref().map(|m| m.server_names.clone()).unwrap_or_default();
        t.add(names, &cfg.value)?;
        any = true;
    }
    Ok(any.then(|| Arc::new(t)))
}

/// The connection manager's JWT filter, compiled, if it has one.
fn jwt_filter(hcm: &HttpConnectionManager) -> Result<Option<Box<super::jwt::Jwt>>, CompileError> {
    use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_filter::ConfigType;
    let mut found = hcm.http_filters.iter().filter_map(|f| match &f.config_type {
        Some(ConfigType::TypedConfig(any)) if any.type_url.ends_with(super::jwt::TYPE) => Some((f, any)),
        _ => None,
    });
    let Some((f, any)) = found.next() else { return Ok(None) };
    if found.next().is_some() {
        return Err(CompileError::new("one JWT filter per listener"));
    }
    let jwt = super::jwt::Jwt::compile(&any.value).map_err(|e| CompileError::new(format!("filter {}: {e}", f.name)))?;
    Ok(Some(Box::new(jwt)))
}

/// The connection manager's RBAC filters, compiled, in their order.
fn rbac_filters(hcm: &HttpConnectionManager) -> Result<Box<[super::rbac::Filter]>, CompileError> {
    use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_filter::ConfigType;
    let mut out = Vec::new();
    for f in &hcm.http_filters {
        let Some(ConfigType::TypedConfig(any)) = &f.config_type else { continue };
        if any.type_url.ends_with("envoy.extensions.filters.http.rbac.v3.RBAC") {
            let rbac = envoy_types::pb::envoy::extensions::filters::http::rbac::v3::Rbac::decode(any.value.as_slice())
                .map_err(|e| CompileError::new(format!("filter {}: {e}", f.name)))?;
            out.push(
                super::rbac::Filter::compile(&rbac)
                    .map_err(|e| CompileError::new(format!("filter {}: {e}", f.name)))?,
            );
        }
    }
    Ok(out.into())
}

impl ListenerCfg {
    /// Compiles a listener; an RDS table is taken from `routes` (None until
    /// it arrives), an inline one compiled against `clusters`.
    pub fn compile(
        l: &Listener,
        routes: &HashMap<Arc<str>, Arc<RouteTable>>,
        clusters: &ClusterIndex,
        names: &Interner,
        logs: &Sinks,
        spans: &crate::telemetry::trace::Exporters,
    ) -> Result<ListenerCfg, CompileError> {
        let err = |e: &dyn std::fmt::Display| CompileError::new(format!("listener {}: {e}", l.name));
        let addr = listener_addr(l)?;
        // The chain's terminal filter decides its kind: network filters
        // (RBAC) may come before a tcp_proxy.
        let filter = l.filter_chains.first().and_then(|fc| fc.filters.last());
        let Some(filter::ConfigType::TypedConfig(any)) = filter.and_then(|f| f.config_type.as_ref()) else {
            return Err(err(&"needs an http_connection_manager or tcp_proxy filter"));
        };
        let kind = if any.type_url.ends_with("HttpConnectionManager") {
            let hcm = HttpConnectionManager::decode(any.value.as_slice()).map_err(|e| err(&e))?;
            let authz = rbac_filters(&hcm).map_err(|e| err(&e))?;
            let jwt = jwt_filter(&hcm).map_err(|e| err(&e))?;
            let chain_match = l.filter_chains.first().and_then(|fc| fc.filter_chain_match.as_ref());
            let transport = Transport::from_protocol(chain_match.map_or("", |m| m.transport_protocol.as_str()))
                .map_err(|e| err(&e))?;
            let (route_name, table) = match hcm.route_specifier {
                Some(http_connection_manager::RouteSpecifier::Rds(rds)) => {
                    let t = routes.get(rds.route_config_name.as_str()).cloned();
                    (rds.route_config_name, t)
                }
                Some(http_connection_manager::RouteSpecifier::RouteConfig(rc)) => {
                    let t = RouteTable::compile(&rc, clusters, names)
                        .map_err(|e| err(&format!("route table {}: {e}", rc.name)))?;
                    (rc.name.clone(), Some(Arc::new(t)))
                }
                _ => return Err(err(&"unsupported route specifier")),
            };
            let direction = if hcm.stat_prefix.starts_with("inbound") || l.name.starts_with("inbound") {
                Direction::Inbound
            } else {
                Direction::Outbound
            };
            let current = hcm.set_current_client_cert_details.unwrap_or_default();
            if current.subject.is_some_and(|b| b.value) || current.cert || current.chain || current.dns {
                return Err(err(&"set_current_client_cert_details: weft's proxy sets By, Hash and URI in \
                    x-forwarded-client-cert; subject, cert, chain and dns are not supported"));
            }
            let strip_port =
                matches!(hcm.strip_port_mode, Some(http_connection_manager::StripPortMode::StripAnyHostPort(true)));
            ListenerKind::Http(Arc::new(HttpListener {
                route_name,
                routes: table,
                strip_port,
                direction,
                client_cert: ClientCert::from_proto(hcm.forward_client_cert_details),
                client_cert_uri: current.uri,
                remote_address: hcm.use_remote_address.is_some_and(|b| b.value),
                authz_reads_xff: authz.iter().any(super::rbac::Filter::reads_remote_ip),
                jwt,
                authz,
                transport,
                terminate: terminate(l).map_err(|e| err(&e))?,
                access_log: AccessLogs::compile(&hcm.access_log, logs).map_err(|e| err(&e))?,
                tracing: hcm
                    .tracing
                    .as_ref()
                    .map(|t| super::tracing::Tracing::compile(t, spans).map(Box::new))
                    .transpose()
                    .map_err(|e| err(&e))?,
            }))
        } else if any.type_url.ends_with("TcpProxy") {
            let tp = TcpProxy::decode(any.value.as_slice()).map_err(|e| err(&e))?;
            let inbound = tp.stat_prefix.starts_with("inbound") || l.name.starts_with("inbound");
            ListenerKind::Tcp(tcp_routes(l, inbound, clusters, logs).map_err(|e| err(&e))?)
        } else {
            return Err(err(&format!("unsupported filter {}", any.type_url)));
        };
        Ok(ListenerCfg { name: l.name.as_str().into(), addr, kind })
    }
}
