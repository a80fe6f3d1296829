//! Clusters compiled from Envoy `Cluster` + `ClusterLoadAssignment`.

use super::endpoints::{DEFAULT_OVERPROVISIONING, EndpointSet, SetPolicy, Warmup};
use super::limits::Limits;
use super::{CompileError, Registries, Wire};
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
    /// A weft sidecar fronts it (`tlsMode: istio`): requests to it carry
    /// this proxy's identity, requests to anything else do not.
    pub mesh: bool,
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
            mesh: false,
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
    /// The endpoint set and its balancer, lock-free to read (`endpoints`).
    /// None until the cluster is first used: a sidecar's config names every
    /// service in the mesh and it calls few of them, so a set is built from
    /// its assignment (kept in `pending` meanwhile) when a request, mirror
    /// or TCP connection first needs it. Clusters with active health
    /// checks, DNS or slow start are built at once, and so is a new version
    /// of a cluster in use (see `compile`).
    set: arc_swap::ArcSwapOption<EndpointSet>,
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
    /// Serializes writers of `set` (first use, endpoint updates, health
    /// changes), and holds the assignment an unbuilt set is built from.
    /// Requests take it only on a cluster's first use.
    pending: Mutex<Option<Wire<ClusterLoadAssignment>>>,
    hosts: Arc<Registries>,
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

/// The host and port of an endpoint, or why it has none.
fn host_port<'a>(
    cla: &ClusterLoadAssignment,
    ep: &'a lb_endpoint::HostIdentifier,
) -> Result<Option<(&'a str, u16)>, CompileError> {
    let lb_endpoint::HostIdentifier::Endpoint(ep) = ep else { return Ok(None) };
    let Some(address::Address::SocketAddress(sa)) = ep.address.as_ref().and_then(|a| a.address.as_ref()) else {
        return Err(CompileError::new(format!("cluster {}: endpoint without a socket address", cla.cluster_name)));
    };
    match sa.port_specifier {
        Some(socket_address::PortSpecifier::PortValue(p)) => Ok(Some((&sa.address, p as u16))),
        _ => Err(CompileError::new(format!("cluster {}: endpoint without a port", cla.cluster_name))),
    }
}

fn not_an_ip(cla: &ClusterLoadAssignment, host: &str) -> CompileError {
    CompileError::new(format!(
        "cluster {}: endpoint address {host:?} is not an IP; names need a STRICT_DNS or LOGICAL_DNS cluster",
        cla.cluster_name
    ))
}

/// Everything `endpoints` could refuse, without building anything: an
/// assignment is checked when it arrives and built on first use.
fn check_endpoints(cla: &ClusterLoadAssignment, dns: bool) -> Result<(), CompileError> {
    for lb in cla.endpoints.iter().flat_map(|l| &l.lb_endpoints) {
        let Some(id) = &lb.host_identifier else { continue };
        if let Some((host, _)) = host_port(cla, id)?
            && !dns
            && host.parse::<std::net::IpAddr>().is_err()
        {
            return Err(not_an_ip(cla, host));
        }
    }
    Ok(())
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
            let Some(id) = &lb.host_identifier else { continue };
            let Some((host, port)) = host_port(cla, id)? else { continue };
            let ips = match host.parse() {
                Ok(ip) => vec![ip],
                Err(_) if dns => {
                    let ips = resolve(host, port);
                    if ips.is_empty() {
                        tracing::warn!(cluster = %cla.cluster_name, host, "cannot resolve endpoint; it is left out");
                    }
                    ips
                }
                Err(_) => return Err(not_an_ip(cla, host)),
            };
            let meta = lb.metadata.as_ref().and_then(|m| m.filter_metadata.get("istio"));
            let field = |k: &str| -> Arc<str> {
                match meta.and_then(|m| m.fields.get(k)).and_then(|v| v.kind.as_ref()) {
                    Some(Kind::StringValue(s)) => s.as_str().into(),
                    _ => "unknown".into(),
                }
            };
            let weight = lb.load_balancing_weight.as_ref().map_or(1, |w| w.value.max(1));
            let mesh = lb
                .metadata
                .as_ref()
                .and_then(|m| m.filter_metadata.get("envoy.transport_socket_match"))
                .and_then(|m| m.fields.get("tlsMode"))
                .is_some_and(|v| matches!(&v.kind, Some(Kind::StringValue(s)) if s == "istio"));
            for ip in ips {
                let addr = SocketAddr::new(ip, port);
                // `istio.workload` is "name;namespace" (Istio's form).
                let wl = field("workload");
                let (w, ns): (Arc<str>, Arc<str>) = match wl.split_once(';') {
                    Some((w, ns)) => (w.into(), hosts.names.get(ns.split(';').next().unwrap_or("unknown"))),
                    None => (wl.clone(), hosts.names.get(&field("namespace"))),
                };
                let mut e = Endpoint::new(addr, weight, w, ns, locality.clone(), hosts.pools.get(addr, mesh));
                e.priority = loc.priority;
                e.locality_weight = loc.load_balancing_weight.as_ref().map_or(0, |w| w.value);
                e.mesh = mesh;
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
    /// `cla` is the assignment from EDS, if the cluster uses EDS and one
    /// has arrived; `in_use` says the version this one replaces was used.
    pub fn compile(
        c: &Cluster,
        cla: Option<&Wire<ClusterLoadAssignment>>,
        hosts: &Arc<Registries>,
        in_use: bool,
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
            set: Default::default(),
            policy,
            dns,
            outlier: c.outlier_detection.as_ref().map(|o| Box::new(OutlierCfg::from_proto(o))),
            health_check,
            endpoints_changed: tokio::sync::Notify::new(),
            pending: Mutex::new(None),
            hosts: hosts.clone(),
        };
        cfg.assigned(cla, c.load_assignment.as_ref(), in_use)
    }

    /// A new version of this cluster, with the same settings and another
    /// assignment: what a compile makes of a cluster whose resource did not
    /// change (and whose bytes were let go) when its endpoints did.
    /// Circuit breakers are shared, so requests in flight stay counted.
    pub fn reassigned(&self, cla: Option<&Wire<ClusterLoadAssignment>>, in_use: bool) -> Result<Self, CompileError> {
        let cfg = ClusterCfg {
            name: self.name.clone(),
            service: self.service.clone(),
            service_name: self.service_name.clone(),
            service_namespace: self.service_namespace.clone(),
            protocol: self.protocol,
            connect_timeout: self.connect_timeout,
            set: Default::default(),
            policy: self.policy,
            dns: self.dns,
            eds: self.eds.clone(),
            outlier: self.outlier.clone(),
            health_check: self.health_check.clone(),
            limits: self.limits.clone(),
            conn_policy: self.conn_policy,
            endpoints_changed: tokio::sync::Notify::new(),
            pending: Mutex::new(None),
            hosts: self.hosts.clone(),
        };
        cfg.assigned(cla, None, in_use)
    }

    /// Takes the cluster's first assignment: from EDS, or written in the
    /// cluster (`inline`).
    fn assigned(
        mut self,
        cla: Option<&Wire<ClusterLoadAssignment>>,
        inline: Option<&ClusterLoadAssignment>,
        in_use: bool,
    ) -> Result<Self, CompileError> {
        // Built now rather than on first use: clusters resolved, probed or
        // warmed up from the start (slow start counts from when a host
        // arrives), static hosts written into the cluster (inbound and
        // local clusters: few, and used), and a new version of a cluster in
        // use (built while the old one still holds its hosts' health).
        let eager = in_use || self.dns.is_some() || self.health_check.is_some() || self.policy.warmup.is_some();
        match (cla, inline) {
            (Some(wire), _) => {
                let cla = wire.decode().map_err(|e| CompileError::new(format!("cluster {}: {e}", self.name)))?;
                if eager {
                    self.install(self.endpoint_set(&cla)?);
                } else {
                    self.check_assignment(&cla)?;
                    *self.pending.get_mut().expect("endpoint set writer") = Some(wire.clone());
                }
            }
            (None, Some(inline)) => self.install(self.endpoint_set(inline)?),
            (None, None) if eager => self.install(self.empty_set()),
            (None, None) => {}
        }
        Ok(self)
    }

    /// Checks an assignment for this cluster without building anything.
    pub fn check_assignment(&self, cla: &ClusterLoadAssignment) -> Result<(), CompileError> {
        check_endpoints(cla, self.dns.is_some())
    }

    /// Takes a checked assignment (an EDS update): rebuilds the endpoint
    /// set now if the cluster is in use, else keeps it for the first use.
    pub fn assign(&self, cla: &ClusterLoadAssignment, wire: Wire<ClusterLoadAssignment>) {
        let mut pending = self.pending.lock().expect("endpoint set writer");
        if self.set.load().is_some() {
            drop(pending);
            self.install(self.or_empty(self.endpoint_set(cla)));
        } else {
            *pending = Some(wire);
        }
    }

    /// The endpoint set, built now if this is the cluster's first use.
    pub fn endpoints(&self) -> Arc<EndpointSet> {
        match self.set.load_full() {
            Some(set) => set,
            None => self.first_use(),
        }
    }

    /// The endpoint set if the cluster has been used.
    pub fn built(&self) -> Option<Arc<EndpointSet>> {
        self.set.load_full()
    }

    /// The endpoint set for display: the built one, or one built from the
    /// pending assignment and not kept (so looking does not count as use).
    pub fn view(&self) -> Arc<EndpointSet> {
        let pending = self.pending.lock().expect("endpoint set writer");
        if let Some(set) = self.set.load_full() {
            return set;
        }
        self.build(pending.as_ref())
    }

    #[cold]
    fn first_use(&self) -> Arc<EndpointSet> {
        let mut pending = self.pending.lock().expect("endpoint set writer");
        if let Some(set) = self.set.load_full() {
            return set; // built by another thread meanwhile
        }
        let set = self.build(pending.take().as_ref());
        self.set.store(Some(set.clone()));
        drop(pending);
        self.endpoints_changed.notify_one();
        set
    }

    /// A set from a checked assignment (empty without one).
    fn build(&self, wire: Option<&Wire<ClusterLoadAssignment>>) -> Arc<EndpointSet> {
        self.or_empty(match wire {
            Some(w) => w.decode().and_then(|cla| self.endpoint_set(&cla)),
            None => Ok(self.empty_set()),
        })
    }

    /// The set built from a checked assignment, which cannot fail; if it
    /// somehow does, the cluster has no hosts rather than the proxy a panic.
    fn or_empty(&self, built: Result<Arc<EndpointSet>, CompileError>) -> Arc<EndpointSet> {
        built.unwrap_or_else(|e| {
            tracing::error!(cluster = %self.name, error = %e.0, "an assignment checked on arrival failed to build");
            self.empty_set()
        })
    }

    fn empty_set(&self) -> Arc<EndpointSet> {
        Arc::new(EndpointSet::new(Vec::new(), &self.policy, DEFAULT_OVERPROVISIONING, Instant::now()))
    }

    /// The endpoint set (with its balancer) for an assignment, not yet
    /// installed.
    fn endpoint_set(&self, cla: &ClusterLoadAssignment) -> Result<Arc<EndpointSet>, CompileError> {
        let hosts = &*self.hosts;
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
    fn install(&self, set: Arc<EndpointSet>) {
        let _w = self.pending.lock().expect("endpoint set writer");
        self.set.store(Some(if set.health_changed() { Arc::new(self.rebuilt(&set)) } else { set }));
        self.endpoints_changed.notify_one();
    }

    /// Rebuilds the balancer if hosts changed availability since it was
    /// built, or some are warming up.
    pub fn refresh(&self) {
        let _w = self.pending.lock().expect("endpoint set writer");
        let Some(cur) = self.set.load_full() else { return };
        if cur.stale() {
            let next = self.rebuilt(&cur);
            if next.panic && !cur.panic {
                tracing::warn!(cluster = %self.name, available = next.available(), total = next.endpoints.len(), "too few healthy hosts: spreading over all of them (panic)");
            }
            self.set.store(Some(Arc::new(next)));
        }
    }

    /// Runs `f` (which may change host health) on the endpoint set with set
    /// writers held off, then rebuilds the balancer if availability
    /// changed. None for a cluster not used yet: it has no hosts to judge.
    pub fn with_set<R>(&self, f: impl FnOnce(&EndpointSet) -> R) -> Option<R> {
        let r = {
            let _w = self.pending.lock().expect("endpoint set writer");
            f(&*self.set.load_full()?)
        };
        self.refresh();
        Some(r)
    }

    fn rebuilt(&self, set: &EndpointSet) -> EndpointSet {
        EndpointSet::new(set.endpoints.clone(), &self.policy, set.overprovisioning, Instant::now())
    }

    pub fn lb_kind(&self) -> LbKind {
        self.policy.kind
    }
}
