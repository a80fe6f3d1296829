//! Clusters compiled from Envoy `Cluster` + `ClusterLoadAssignment`.

use super::CompileError;
use crate::balancer::{Balancer, LbKind};
use crate::http::pool::{EndpointPool, PoolRegistry};
use envoy_types::pb::envoy::config::cluster::v3::{Cluster, cluster};
use envoy_types::pb::envoy::config::core::v3::{address, socket_address};
use envoy_types::pb::envoy::config::endpoint::v3::{ClusterLoadAssignment, lb_endpoint};
use envoy_types::pb::envoy::extensions::upstreams::http::v3::{HttpProtocolOptions, http_protocol_options};
use envoy_types::pb::google::protobuf::value::Kind;
use prost::Message;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Http1,
    Http2,
    /// Whatever the downstream spoke (inbound clusters).
    Downstream,
}

#[derive(Debug)]
pub struct Endpoint {
    pub addr: SocketAddr,
    pub authority: http::uri::Authority,
    pub weight: u32,
    pub workload: Arc<str>,
    pub namespace: Arc<str>,
    pub locality: Arc<str>,
    pub pool: Arc<EndpointPool>,
    active: AtomicU64,
}

/// Decrements the endpoint's active count when dropped.
pub struct ActiveGuard(Arc<Endpoint>);

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Endpoint {
    pub fn new(
        addr: SocketAddr,
        weight: u32,
        workload: Arc<str>,
        namespace: Arc<str>,
        locality: Arc<str>,
        pool: Arc<EndpointPool>,
    ) -> Self {
        let authority = addr.to_string().parse().expect("a socket address is a valid authority");
        Endpoint { addr, authority, weight, workload, namespace, locality, pool, active: AtomicU64::new(0) }
    }

    pub fn active(&self) -> u64 {
        self.active.load(Ordering::Relaxed)
    }

    pub fn start(self: &Arc<Self>) -> ActiveGuard {
        self.active.fetch_add(1, Ordering::Relaxed);
        ActiveGuard(self.clone())
    }
}

/// A cluster's endpoints and the balancer built over them. Swapped whole
/// when an endpoint update arrives; a request holds the set it started with.
#[derive(Debug)]
pub struct EndpointSet {
    pub endpoints: Vec<Arc<Endpoint>>,
    pub lb: Balancer,
}

#[derive(Debug)]
pub struct ClusterCfg {
    pub name: Arc<str>,
    /// Destination service (FQDN) for telemetry, from the Istio-style name.
    pub service: Arc<str>,
    pub service_name: Arc<str>,
    pub service_namespace: Arc<str>,
    pub protocol: Protocol,
    pub connect_timeout: Duration,
    /// Lock-free to read; replaced by `update_endpoints`.
    pub set: arc_swap::ArcSwap<EndpointSet>,
    lb_kind: LbKind,
    dns: Option<i32>,
}

fn protocol(c: &Cluster) -> Protocol {
    use http_protocol_options::{UpstreamProtocolOptions as U, explicit_http_config::ProtocolConfig as P};
    #[allow(deprecated)]
    if c.http2_protocol_options.is_some() {
        return Protocol::Http2;
    }
    let Some(any) = c.typed_extension_protocol_options.get("envoy.extensions.upstreams.http.v3.HttpProtocolOptions")
    else {
        return Protocol::Http1;
    };
    match HttpProtocolOptions::decode(any.value.as_slice()).ok().and_then(|o| o.upstream_protocol_options) {
        Some(U::ExplicitHttpConfig(e)) => match e.protocol_config {
            Some(P::Http2ProtocolOptions(_)) => Protocol::Http2,
            _ => Protocol::Http1,
        },
        Some(U::UseDownstreamProtocolConfig(_)) | Some(U::AutoConfig(_)) => Protocol::Downstream,
        None => Protocol::Http1,
    }
}

/// Addresses of `host`, IPv4 first when it has any (Envoy's V4_PREFERRED).
fn resolve(host: &str, port: u16) -> Vec<std::net::IpAddr> {
    use std::net::ToSocketAddrs;
    let all: Vec<std::net::IpAddr> =
        (host, port).to_socket_addrs().map(|a| a.map(|s| s.ip()).collect()).unwrap_or_default();
    let v4: Vec<_> = all.iter().copied().filter(|ip| ip.is_ipv4()).collect();
    if v4.is_empty() { all } else { v4 }
}

fn endpoints(cla: &ClusterLoadAssignment, pools: &PoolRegistry, dns: bool) -> Result<Vec<Arc<Endpoint>>, CompileError> {
    let mut out = Vec::new();
    for loc in &cla.endpoints {
        let locality: Arc<str> = loc
            .locality
            .as_ref()
            .map_or(String::new(), |l| {
                format!("{}/{}/{}", l.region, l.zone, l.sub_zone).trim_end_matches('/').to_owned()
            })
            .into();
        for lb in &loc.lb_endpoints {
            let Some(lb_endpoint::HostIdentifier::Endpoint(ep)) = &lb.host_identifier else { continue };
            let Some(address::Address::SocketAddress(sa)) = ep.address.as_ref().and_then(|a| a.address.as_ref()) else {
                return Err(CompileError::new(format!(
                    "cluster {}: endpoint without a socket address",
                    cla.cluster_name
                )));
            };
            let port = match sa.port_specifier {
                Some(socket_address::PortSpecifier::PortValue(p)) => p as u16,
                _ => return Err(CompileError::new(format!("cluster {}: endpoint without a port", cla.cluster_name))),
            };
            let ips = match sa.address.parse() {
                Ok(ip) => vec![ip],
                Err(_) if dns => {
                    let ips = resolve(&sa.address, port);
                    if ips.is_empty() {
                        tracing::warn!(cluster = %cla.cluster_name, host = %sa.address, "cannot resolve endpoint; it is left out");
                    }
                    ips
                }
                Err(_) => {
                    return Err(CompileError::new(format!(
                        "cluster {}: endpoint address {:?} is not an IP; names need a STRICT_DNS or LOGICAL_DNS cluster",
                        cla.cluster_name, sa.address
                    )));
                }
            };
            let meta = lb.metadata.as_ref().and_then(|m| m.filter_metadata.get("istio"));
            let field = |k: &str| -> Arc<str> {
                match meta.and_then(|m| m.fields.get(k)).and_then(|v| v.kind.as_ref()) {
                    Some(Kind::StringValue(s)) => s.as_str().into(),
                    _ => "unknown".into(),
                }
            };
            let weight = lb.load_balancing_weight.as_ref().map_or(1, |w| w.value.max(1));
            for ip in ips {
                let addr = SocketAddr::new(ip, port);
                // `istio.workload` is "name;namespace" (Istio's form).
                let wl = field("workload");
                let (w, ns): (Arc<str>, Arc<str>) = match wl.split_once(';') {
                    Some((w, ns)) => (w.into(), ns.split(';').next().unwrap_or("unknown").into()),
                    None => (wl.clone(), field("namespace")),
                };
                out.push(Arc::new(Endpoint::new(addr, weight, w, ns, locality.clone(), pools.get(addr))));
            }
        }
    }
    Ok(out)
}

fn lb_kind(c: &Cluster) -> LbKind {
    use cluster::LbPolicy as P;
    match P::try_from(c.lb_policy).unwrap_or(P::RoundRobin) {
        P::Random => LbKind::Random,
        P::LeastRequest => LbKind::LeastRequest,
        P::RingHash => LbKind::RingHash {
            min_ring: match &c.lb_config {
                Some(cluster::LbConfig::RingHashLbConfig(r)) => {
                    r.minimum_ring_size.as_ref().map_or(1024, |v| v.value as usize)
                }
                _ => 1024,
            }
            .min(1 << 20),
        },
        P::Maglev => LbKind::Maglev {
            table_size: match &c.lb_config {
                Some(cluster::LbConfig::MaglevLbConfig(m)) => m.table_size.as_ref().map_or(65537, |v| v.value as usize),
                _ => 65537,
            }
            .min(5_000_011),
        },
        _ => LbKind::RoundRobin,
    }
}

impl ClusterCfg {
    pub fn compile(
        c: &Cluster,
        cla: Option<&ClusterLoadAssignment>,
        pools: &PoolRegistry,
    ) -> Result<Self, CompileError> {
        use cluster::DiscoveryType as D;
        let dns = match c.cluster_discovery_type {
            Some(cluster::ClusterDiscoveryType::Type(t)) if t == D::StrictDns as i32 || t == D::LogicalDns as i32 => {
                Some(t)
            }
            _ => None,
        };
        let kind = lb_kind(c);
        // outbound|port|subset|fqdn
        let parts: Vec<&str> = c.name.split('|').collect();
        let service = if parts.len() == 4 && !parts[3].is_empty() { parts[3] } else { c.name.as_str() };
        let mut labels = service.split('.');
        let (service_name, service_namespace) = (labels.next().unwrap_or(service), labels.next().unwrap_or("unknown"));
        let cfg = ClusterCfg {
            name: c.name.as_str().into(),
            service: service.into(),
            service_name: service_name.into(),
            service_namespace: service_namespace.into(),
            protocol: protocol(c),
            connect_timeout: c
                .connect_timeout
                .as_ref()
                .map_or(Duration::from_secs(10), |d| Duration::new(d.seconds.max(0) as u64, d.nanos.max(0) as u32)),
            set: arc_swap::ArcSwap::from_pointee(EndpointSet { lb: Balancer::new(kind, &[]), endpoints: Vec::new() }),
            lb_kind: kind,
            dns,
        };
        if let Some(cla) = cla.or(c.load_assignment.as_ref()) {
            cfg.update_endpoints(cla, pools)?;
        }
        Ok(cfg)
    }

    /// The endpoint set (with its balancer) for an assignment, not yet
    /// installed: an update compiles every set before it swaps any in.
    pub fn endpoint_set(
        &self,
        cla: &ClusterLoadAssignment,
        pools: &PoolRegistry,
    ) -> Result<Arc<EndpointSet>, CompileError> {
        let mut eps = endpoints(cla, pools, self.dns.is_some())?;
        // LOGICAL_DNS uses one address at a time.
        if self.dns == Some(cluster::DiscoveryType::LogicalDns as i32) {
            eps.truncate(1);
        }
        Ok(Arc::new(EndpointSet { lb: Balancer::new(self.lb_kind, &eps), endpoints: eps }))
    }

    /// Replaces the endpoints (an EDS update); requests in flight keep the
    /// set they started with.
    pub fn update_endpoints(&self, cla: &ClusterLoadAssignment, pools: &PoolRegistry) -> Result<(), CompileError> {
        self.set.store(self.endpoint_set(cla, pools)?);
        Ok(())
    }

    pub fn lb_kind(&self) -> LbKind {
        self.lb_kind
    }
}
