//! Clusters compiled from Envoy `Cluster` + `ClusterLoadAssignment`.

use super::endpoints::{DEFAULT_OVERPROVISIONING, EndpointSet, SetPolicy, Warmup};
use super::limits::Limits;
use super::{CompileError, Registries};
use crate::balancer::LbKind;
use crate::health::active::HealthCheckCfg;
use crate::health::outlier::OutlierCfg;
use crate::health::{HostHealth, flag};
use crate::http::pool::{ConnPolicy, EndpointPool};
use envoy_types::pb::envoy::config::cluster::v3::{Cluster, cluster};
use envoy_types::pb::envoy::config::core::v3::{address, socket_address};
use envoy_types::pb::envoy::config::endpoint::v3::{ClusterLoadAssignment, lb_endpoint};
use envoy_types::pb::envoy::extensions::upstreams::http::v3::{HttpProtocolOptions, http_protocol_options};
use envoy_types::pb::google::protobuf::value::Kind;
use prost::Message;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

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
    pub weight: u32,
    pub workload: Arc<str>,
    pub namespace: Arc<str>,
    pub locality: Arc<str>,
    /// Envoy priority (0 is preferred); set per caller by the control plane.
    pub priority: u32,
    /// The locality's weight, when the cluster weights localities.
    pub locality_weight: u32,
    pub pool: Arc<EndpointPool>,
    /// None when the cluster has no outlier detection or health checks.
    pub health: Option<Arc<HostHealth>>,
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
        Endpoint {
            addr,
            weight,
            workload,
            namespace,
            locality,
            priority: 0,
            locality_weight: 1,
            pool,
            health: None,
            active: AtomicU64::new(0),
        }
    }

    pub fn active(&self) -> u64 {
        self.active.load(Ordering::Relaxed)
    }

    /// Envoy's `/clusters` health flags: `healthy` or what keeps it out.
    pub fn health_text(&self) -> String {
        self.health.as_ref().map_or("healthy".into(), |h| h.flags_text())
    }

    pub fn start(self: &Arc<Self>) -> ActiveGuard {
        self.active.fetch_add(1, Ordering::Relaxed);
        ActiveGuard(self.clone())
    }
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
    /// Balancer, panic threshold, locality weights, slow start.
    pub policy: SetPolicy,
    dns: Option<i32>,
    /// The EDS name its endpoints come under, if it uses EDS.
    pub eds: Option<Arc<str>>,
    /// Boxed: most clusters have neither, and a sidecar holds thousands.
    pub outlier: Option<Box<OutlierCfg>>,
    pub health_check: Option<Box<HealthCheckCfg>>,
    /// Circuit breakers; None when every limit is unlimited.
    pub limits: Option<Arc<Limits>>,
    pub conn_policy: ConnPolicy,
    /// Signalled when a new endpoint set is installed, so the health
    /// checker probes new hosts at once rather than at its next round.
    pub endpoints_changed: tokio::sync::Notify,
    /// Serializes writers of `set` (endpoint updates, health changes);
    /// requests never take it.
    writer: Mutex<()>,
}

fn http_options(c: &Cluster) -> Option<HttpProtocolOptions> {
    let any = c.typed_extension_protocol_options.get("envoy.extensions.upstreams.http.v3.HttpProtocolOptions")?;
    HttpProtocolOptions::decode(any.value.as_slice()).ok()
}

fn protocol(c: &Cluster, opts: Option<&HttpProtocolOptions>) -> Protocol {
    use http_protocol_options::{UpstreamProtocolOptions as U, explicit_http_config::ProtocolConfig as P};
    #[allow(deprecated)]
    if c.http2_protocol_options.is_some() {
        return Protocol::Http2;
    }
    match opts.and_then(|o| o.upstream_protocol_options.as_ref()) {
        Some(U::ExplicitHttpConfig(e)) => match e.protocol_config {
            Some(P::Http2ProtocolOptions(_)) => Protocol::Http2,
            _ => Protocol::Http1,
        },
        Some(U::UseDownstreamProtocolConfig(_)) | Some(U::AutoConfig(_)) => Protocol::Downstream,
        None => Protocol::Http1,
    }
}

fn conn_policy(opts: Option<&HttpProtocolOptions>) -> ConnPolicy {
    let common = opts.and_then(|o| o.common_http_protocol_options.as_ref());
    let dur = super::duration;
    let mut p = ConnPolicy::default();
    if let Some(c) = common {
        if let Some(d) = c.idle_timeout.as_ref().map(dur).filter(|d| !d.is_zero()) {
            p.idle_timeout = d;
        }
        p.max_requests = c.max_requests_per_connection.as_ref().map(|v| v.value).filter(|v| *v > 0);
        p.max_age = c.max_connection_duration.as_ref().map(dur).filter(|d| !d.is_zero());
    }
    p
}

/// Addresses of `host`, IPv4 first when it has any (Envoy's V4_PREFERRED).
fn resolve(host: &str, port: u16) -> Vec<std::net::IpAddr> {
    use std::net::ToSocketAddrs;
    let all: Vec<std::net::IpAddr> =
        (host, port).to_socket_addrs().map(|a| a.map(|s| s.ip()).collect()).unwrap_or_default();
    let v4: Vec<_> = all.iter().copied().filter(|ip| ip.is_ipv4()).collect();
    if v4.is_empty() { all } else { v4 }
}

/// How a cluster's hosts get health state: its name and the flags a host
/// seen for the first time starts with.
struct HealthKeys<'a> {
    cluster: &'a Arc<str>,
    initial: u8,
    /// Flags of checks the cluster no longer has, to clear.
    stale: u8,
}

fn endpoints(
    cla: &ClusterLoadAssignment,
    hosts: &Registries,
    dns: bool,
    health: Option<HealthKeys>,
) -> Result<Vec<Arc<Endpoint>>, CompileError> {
    let mut out = Vec::new();
    for loc in &cla.endpoints {
        let locality = hosts.names.get(&loc.locality.as_ref().map_or(String::new(), |l| {
            format!("{}/{}/{}", l.region, l.zone, l.sub_zone).trim_end_matches('/').to_owned()
        }));
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
                    Some((w, ns)) => (w.into(), hosts.names.get(ns.split(';').next().unwrap_or("unknown"))),
                    None => (wl.clone(), hosts.names.get(&field("namespace"))),
                };
                let mut e = Endpoint::new(addr, weight, w, ns, locality.clone(), hosts.pools.get(addr));
                e.priority = loc.priority;
                e.locality_weight = loc.load_balancing_weight.as_ref().map_or(0, |w| w.value);
                if let Some(k) = &health {
                    let h = hosts.health.get(k.cluster, addr, k.initial);
                    h.set(k.stale, false);
                    e.health = Some(h);
                }
                out.push(Arc::new(e));
            }
        }
    }
    Ok(out)
}

/// Slow start, from the round robin or least request config (as Istio
/// writes `warmup`); hash-based balancers have none.
fn warmup(c: &Cluster) -> Option<Warmup> {
    let ss = match &c.lb_config {
        Some(cluster::LbConfig::RoundRobinLbConfig(r)) => r.slow_start_config.as_ref(),
        Some(cluster::LbConfig::LeastRequestLbConfig(l)) => l.slow_start_config.as_ref(),
        _ => None,
    }?;
    let window = ss.slow_start_window.as_ref().map(super::duration).filter(|d| !d.is_zero())?;
    Some(Warmup {
        window,
        // Envoy's defaults: 10% and 1.0.
        min_factor: ss.min_weight_percent.as_ref().map_or(0.1, |p| p.value / 100.0),
        aggression: ss.aggression.as_ref().map_or(1.0, |a| a.default_value),
    })
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
    pub fn compile(c: &Cluster, cla: Option<&ClusterLoadAssignment>, hosts: &Registries) -> Result<Self, CompileError> {
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
        let health_check = match c.health_checks.first() {
            Some(hc) => Some(Box::new(
                HealthCheckCfg::from_proto(hc, service)
                    .map_err(|e| CompileError::new(format!("cluster {}: {e}", c.name)))?,
            )),
            None => None,
        };
        let opts = http_options(c);
        let policy = SetPolicy {
            kind,
            // Envoy's default is 50%.
            panic_threshold: c
                .common_lb_config
                .as_ref()
                .and_then(|l| l.healthy_panic_threshold.as_ref())
                .map_or(50, |p| p.value.clamp(0.0, 100.0) as u32),
            locality_weighted: matches!(
                c.common_lb_config.as_ref().and_then(|l| l.locality_config_specifier.as_ref()),
                Some(cluster::common_lb_config::LocalityConfigSpecifier::LocalityWeightedLbConfig(_))
            ),
            // Envoy ramps round robin and least request only.
            warmup: warmup(c).filter(|_| !matches!(kind, LbKind::RingHash { .. } | LbKind::Maglev { .. })),
        };
        let name = hosts.names.get(&c.name);
        let cfg = ClusterCfg {
            eds: super::eds_name(c).map(|n| hosts.names.get(&n)),
            name,
            service: service.into(),
            service_name: service_name.into(),
            service_namespace: hosts.names.get(service_namespace),
            protocol: protocol(c, opts.as_ref()),
            limits: Limits::from_proto(c),
            conn_policy: conn_policy(opts.as_ref()),
            connect_timeout: c.connect_timeout.as_ref().map_or(Duration::from_secs(10), super::duration),
            set: arc_swap::ArcSwap::from_pointee(EndpointSet::new(
                Vec::new(),
                &policy,
                DEFAULT_OVERPROVISIONING,
                Instant::now(),
            )),
            policy,
            dns,
            outlier: c.outlier_detection.as_ref().map(|o| Box::new(OutlierCfg::from_proto(o))),
            health_check,
            endpoints_changed: tokio::sync::Notify::new(),
            writer: Mutex::new(()),
        };
        if let Some(cla) = cla.or(c.load_assignment.as_ref()) {
            cfg.update_endpoints(cla, hosts)?;
        }
        Ok(cfg)
    }

    /// The endpoint set (with its balancer) for an assignment, not yet
    /// installed: an update compiles every set before it swaps any in.
    pub fn endpoint_set(
        &self,
        cla: &ClusterLoadAssignment,
        hosts: &Registries,
    ) -> Result<Arc<EndpointSet>, CompileError> {
        // Slow start needs to know since when a host is available.
        let tracked = self.outlier.is_some() || self.health_check.is_some() || self.policy.warmup.is_some();
        let health = tracked.then(|| {
            let checks = flag::FAILED_ACTIVE_HC | flag::PENDING_ACTIVE_HC;
            HealthKeys {
                cluster: &self.name,
                initial: if self.health_check.is_some() { flag::PENDING_ACTIVE_HC } else { 0 },
                stale: if self.health_check.is_some() { 0 } else { checks }
                    | if self.outlier.is_some() { 0 } else { flag::FAILED_OUTLIER_CHECK },
            }
        });
        let mut eps = endpoints(cla, hosts, self.dns.is_some(), health)?;
        // LOGICAL_DNS uses one address at a time.
        if self.dns == Some(cluster::DiscoveryType::LogicalDns as i32) {
            eps.truncate(1);
        }
        let over = cla
            .policy
            .as_ref()
            .and_then(|p| p.overprovisioning_factor.as_ref())
            .map_or(DEFAULT_OVERPROVISIONING, |v| v.value.max(1));
        Ok(Arc::new(EndpointSet::new(eps, &self.policy, over, Instant::now())))
    }

    /// Installs a new endpoint set (an EDS update); requests in flight keep
    /// the set they started with. Health that changed since the set was
    /// built is caught up at once.
    pub fn install(&self, set: Arc<EndpointSet>) {
        let _w = self.writer.lock().expect("endpoint set writer");
        self.set.store(if set.health_changed() { Arc::new(self.rebuilt(&set)) } else { set });
        self.endpoints_changed.notify_one();
    }

    pub fn update_endpoints(&self, cla: &ClusterLoadAssignment, hosts: &Registries) -> Result<(), CompileError> {
        self.install(self.endpoint_set(cla, hosts)?);
        Ok(())
    }

    /// Rebuilds the balancer if hosts changed availability since it was
    /// built, or some are warming up.
    pub fn refresh(&self) {
        let _w = self.writer.lock().expect("endpoint set writer");
        let cur = self.set.load();
        if cur.stale() {
            let next = self.rebuilt(&cur);
            if next.panic && !cur.panic {
                tracing::warn!(cluster = %self.name, available = next.available(), total = next.endpoints.len(), "too few healthy hosts: spreading over all of them (panic)");
            }
            self.set.store(Arc::new(next));
        }
    }

    /// Runs `f` (which may change host health) with set writers held off,
    /// then rebuilds the balancer if availability changed.
    pub fn with_set<R>(&self, f: impl FnOnce(&EndpointSet) -> R) -> R {
        let r = {
            let _w = self.writer.lock().expect("endpoint set writer");
            f(&self.set.load())
        };
        self.refresh();
        r
    }

    fn rebuilt(&self, set: &EndpointSet) -> EndpointSet {
        EndpointSet::new(set.endpoints.clone(), &self.policy, set.overprovisioning, Instant::now())
    }

    pub fn lb_kind(&self) -> LbKind {
        self.policy.kind
    }
}
