//! A cluster at run time: its settings, its endpoint set (built lazily,
//! swapped whole) and its circuit breakers. The request path reads the set
//! with one atomic load; writers (first use, EDS updates, health changes)
//! serialize on `pending`, which requests take only on a cluster's first use.

use super::Registries;
use super::endpoint::Endpoint;
use super::health::{HealthKeys, HostHealth, flag};
use super::limits::Limits;
use super::set::EndpointSet;
use crate::config::CompileError;
use crate::config::assignment::{self, Host, HostAddr};
use crate::config::balance::DEFAULT_OVERPROVISIONING;
use crate::config::cluster::{ClusterSettings, Dns};
use crate::config::wire::Wire;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use parking_lot::Mutex;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio::time::Instant;

#[derive(Debug)]
pub struct Cluster {
    pub settings: ClusterSettings,
    /// Circuit breakers; None when every limit is unlimited. Shared by a
    /// cluster's versions, so requests in flight stay counted.
    pub limits: Option<Arc<Limits>>,
    /// The endpoint set and its balancer, lock-free to read (`set`).
    /// None until the cluster is first used: a sidecar's config names every
    /// service in the mesh and it calls few of them, so a set is built from
    /// its assignment (kept in `pending` meanwhile) when a request, mirror
    /// or TCP connection first needs it. Clusters with active health
    /// checks, DNS or slow start are built at once, and so is a new version
    /// of a cluster in use (see `assigned`).
    set: arc_swap::ArcSwapOption<EndpointSet>,
    /// Signalled when a new endpoint set is installed, so the health
    /// checker probes new hosts at once rather than at its next round.
    pub endpoints_changed: tokio::sync::Notify,
    /// Serializes writers of `set` (first use, endpoint updates, health
    /// changes), and holds the assignment an unbuilt set is built from.
    pending: Mutex<Option<Wire<ClusterLoadAssignment>>>,
    hosts: Arc<Registries>,
    /// With outlier detection: hosts a request found tripping a detector,
    /// for the cluster's outlier task to eject (`super::watch`). Ejecting
    /// rebuilds the endpoint set, which is not a request's work.
    trips: Option<Box<Trips>>,
    /// A DNS cluster's hosts, resolved by its resolver task (`super::watch`).
    dns: Option<Box<DnsHosts>>,
}

/// What a DNS cluster's set is rebuilt from when its names resolve anew.
#[derive(Debug)]
struct DnsHosts {
    hosts: Vec<Host>,
    overprovisioning: u32,
    /// Set once every name has had its first answer (the proxy is not
    /// ready before, as Envoy's DNS clusters warm).
    resolved: tokio::sync::watch::Sender<bool>,
}

/// A host that tripped an outlier detector, and the detector's reason.
pub type Trip = (Arc<HostHealth>, &'static str);

#[derive(Debug)]
struct Trips {
    tx: mpsc::UnboundedSender<Trip>,
    rx: Mutex<Option<mpsc::UnboundedReceiver<Trip>>>,
}

impl Cluster {
    /// `cla` is the assignment from EDS, if the cluster uses EDS and one
    /// has arrived, `inline` the one written in the cluster; `in_use` says
    /// the version this one replaces was used.
    pub fn new(
        settings: ClusterSettings,
        cla: Option<&Wire<ClusterLoadAssignment>>,
        inline: Option<&ClusterLoadAssignment>,
        hosts: &Arc<Registries>,
        in_use: bool,
    ) -> Result<Self, CompileError> {
        let limits = settings.limits.as_deref().map(Limits::new);
        Cluster::with_limits(settings, limits, hosts.clone()).assigned(cla, inline, in_use)
    }

    fn with_limits(settings: ClusterSettings, limits: Option<Arc<Limits>>, hosts: Arc<Registries>) -> Self {
        let trips = settings.outlier.is_some().then(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            Box::new(Trips { tx, rx: Mutex::new(Some(rx)) })
        });
        Cluster {
            trips,
            dns: None,
            settings,
            limits,
            set: Default::default(),
            endpoints_changed: tokio::sync::Notify::new(),
            pending: Mutex::new(None),
            hosts,
        }
    }

    pub fn name(&self) -> &Arc<str> {
        &self.settings.name
    }

    /// Hands a host that tripped an outlier detector to the cluster's
    /// outlier task: a send on an unbounded channel, no lock.
    pub fn trip(&self, host: &Arc<HostHealth>, reason: &'static str) {
        if let Some(t) = &self.trips {
            let _ = t.tx.send((host.clone(), reason));
        }
    }

    /// The hosts requests find tripping, for the one outlier task of this
    /// cluster version (None once taken, or without outlier detection).
    pub fn take_trips(&self) -> Option<mpsc::UnboundedReceiver<Trip>> {
        self.trips.as_ref()?.rx.lock().take()
    }

    /// A new version of this cluster, with the same settings and another
    /// assignment: what a compile makes of a cluster whose resource did not
    /// change (and whose bytes were let go) when its endpoints did.
    pub fn reassigned(&self, cla: Option<&Wire<ClusterLoadAssignment>>, in_use: bool) -> Result<Self, CompileError> {
        Cluster::with_limits(self.settings.clone(), self.limits.clone(), self.hosts.clone()).assigned(cla, None, in_use)
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
        let s = &self.settings;
        let eager = in_use || s.dns.is_some() || s.health_check.is_some() || s.policy.warmup.is_some();
        if s.dns.is_some() {
            self.dns = self.dns_hosts(cla, inline)?;
        }
        match (cla, inline) {
            (Some(wire), _) => {
                let cla = wire.decode().map_err(|e| CompileError::new(format!("cluster {}: {e}", s.name)))?;
                if eager {
                    self.install(self.endpoint_set(&cla)?);
                } else {
                    self.check_assignment(&cla)?;
                    *self.pending.get_mut() = Some(wire.clone());
                }
            }
            (None, Some(inline)) => self.install(self.endpoint_set(inline)?),
            (None, None) if eager => self.install(self.empty_set()),
            (None, None) => {}
        }
        Ok(self)
    }

    /// A DNS cluster's hosts, from its assignment; resolved from the start
    /// if every name has an answer already (an earlier version's).
    fn dns_hosts(
        &self,
        cla: Option<&Wire<ClusterLoadAssignment>>,
        inline: Option<&ClusterLoadAssignment>,
    ) -> Result<Option<Box<DnsHosts>>, CompileError> {
        let decoded;
        let cla = match (cla, inline) {
            (Some(w), _) => {
                decoded = w.decode()?;
                &decoded
            }
            (None, Some(inline)) => inline,
            (None, None) => return Ok(None),
        };
        let hosts = assignment::hosts(cla, &self.hosts.names, true)?;
        let known = hosts.iter().all(|h| match &h.addr {
            HostAddr::Name(n) => self.hosts.dns.get(n, h.port).is_some(),
            HostAddr::Ip(_) => true,
        });
        let resolved = tokio::sync::watch::Sender::new(known);
        Ok(Some(Box::new(DnsHosts { hosts, overprovisioning: overprovisioning(cla), resolved })))
    }

    /// Checks an assignment for this cluster without building anything.
    pub fn check_assignment(&self, cla: &ClusterLoadAssignment) -> Result<(), CompileError> {
        assignment::check(cla, self.settings.dns.is_some())
    }

    /// Takes a checked assignment (an EDS update): rebuilds the endpoint
    /// set now if the cluster is in use, else keeps it for the first use.
    pub fn assign(&self, cla: &ClusterLoadAssignment, wire: Wire<ClusterLoadAssignment>) {
        let mut pending = self.pending.lock();
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
        let pending = self.pending.lock();
        if let Some(set) = self.set.load_full() {
            return set;
        }
        self.build(pending.as_ref())
    }

    #[cold]
    fn first_use(&self) -> Arc<EndpointSet> {
        let mut pending = self.pending.lock();
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
            tracing::error!(cluster = %self.name(), error = %e.0, "an assignment checked on arrival failed to build");
            self.empty_set()
        })
    }

    fn empty_set(&self) -> Arc<EndpointSet> {
        Arc::new(EndpointSet::new(Vec::new(), &self.settings.policy, DEFAULT_OVERPROVISIONING, Instant::now()))
    }

    /// How this cluster's hosts get health state: the flags a host seen
    /// for the first time starts with, and those of checks it no longer has.
    fn health_keys(&self) -> Option<HealthKeys<'_>> {
        let s = &self.settings;
        // Slow start needs to know since when a host is available.
        let tracked = s.outlier.is_some() || s.health_check.is_some() || s.policy.warmup.is_some();
        tracked.then(|| {
            let checks = flag::FAILED_ACTIVE_HC | flag::PENDING_ACTIVE_HC;
            HealthKeys {
                cluster: &s.name,
                initial: if s.health_check.is_some() { flag::PENDING_ACTIVE_HC } else { 0 },
                stale: if s.health_check.is_some() { 0 } else { checks }
                    | if s.outlier.is_some() { 0 } else { flag::FAILED_OUTLIER_CHECK },
            }
        })
    }

    /// The runtime endpoints of an assignment: each host with its pool and
    /// health, names resolved for DNS clusters.
    fn endpoints_of(&self, hosts_of: &[Host]) -> Vec<Arc<Endpoint>> {
        let hosts = &*self.hosts;
        let dns = self.settings.dns;
        let health = self.health_keys();
        let mut out = Vec::new();
        for h in hosts_of {
            // A name is what it last resolved to, if it has yet (`dns`).
            let ips = match &h.addr {
                HostAddr::Ip(ip) => vec![*ip],
                HostAddr::Name(name) => hosts.dns.get(name, h.port).unwrap_or_default(),
            };
            for ip in ips {
                let addr = SocketAddr::new(ip, h.port);
                let pool = hosts.pools.get(addr, self.settings.tls.for_host(h.mesh));
                let mut e =
                    Endpoint::new(addr, h.weight, h.workload.clone(), h.namespace.clone(), h.locality.clone(), pool);
                e.priority = h.priority;
                e.locality_weight = h.locality_weight;
                e.mesh = h.mesh;
                e.meta = h.meta.clone();
                if let Some(k) = &health {
                    let hh = hosts.health.get(k.cluster, addr, k.initial);
                    hh.set(k.stale, false);
                    e.health = Some(hh);
                }
                out.push(Arc::new(e));
            }
        }
        // LOGICAL_DNS uses one address at a time.
        if dns == Some(Dns::Logical) {
            out.truncate(1);
        }
        out
    }

    /// The endpoint set (with its balancer) for an assignment, not yet
    /// installed.
    fn endpoint_set(&self, cla: &ClusterLoadAssignment) -> Result<Arc<EndpointSet>, CompileError> {
        let hosts = assignment::hosts(cla, &self.hosts.names, self.settings.dns.is_some())?;
        Ok(self.set_of(&hosts, overprovisioning(cla)))
    }

    fn set_of(&self, hosts: &[Host], overprovisioning: u32) -> Arc<EndpointSet> {
        Arc::new(EndpointSet::new(self.endpoints_of(hosts), &self.settings.policy, overprovisioning, Instant::now()))
    }

    /// A DNS cluster's names and ports, for its resolver task.
    pub fn dns_names(&self) -> Vec<(String, u16)> {
        let Some(d) = &self.dns else { return Vec::new() };
        let mut names: Vec<(String, u16)> = d
            .hosts
            .iter()
            .filter_map(|h| match &h.addr {
                HostAddr::Name(n) => Some((n.clone(), h.port)),
                HostAddr::Ip(_) => None,
            })
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// Ends a round of lookups of the cluster's names: the set is rebuilt
    /// from its hosts if an answer `changed`, and the cluster is resolved.
    pub fn dns_round_done(&self, changed: bool) {
        let Some(d) = &self.dns else { return };
        if changed {
            self.install(self.set_of(&d.hosts, d.overprovisioning));
        }
        d.resolved.send_if_modified(|r| !std::mem::replace(r, true));
    }

    /// The DNS cache shared by every cluster (`Registries::dns`).
    pub fn dns_cache(&self) -> &super::dns::DnsCache {
        &self.hosts.dns
    }

    /// False while a DNS cluster's names have not had their first answer.
    pub fn dns_ready(&self) -> bool {
        self.dns.as_ref().is_none_or(|d| *d.resolved.borrow())
    }

    /// Resolves once a DNS cluster's names have had their first answer.
    pub async fn dns_resolved(&self) {
        if let Some(d) = &self.dns {
            let _ = d.resolved.subscribe().wait_for(|r| *r).await;
        }
    }

    /// Installs a new endpoint set (an EDS update); requests in flight keep
    /// the set they started with. Health that changed since the set was
    /// built is caught up at once.
    fn install(&self, set: Arc<EndpointSet>) {
        let _w = self.pending.lock();
        self.set.store(Some(if set.health_changed() { Arc::new(self.rebuilt(&set)) } else { set }));
        self.endpoints_changed.notify_one();
    }

    /// Rebuilds the balancer if hosts changed availability since it was
    /// built, or some are warming up.
    pub fn refresh(&self) {
        let _w = self.pending.lock();
        let Some(cur) = self.set.load_full() else { return };
        if cur.stale() {
            let next = self.rebuilt(&cur);
            if next.panic && !cur.panic {
                tracing::warn!(cluster = %self.name(), available = next.available(), total = next.endpoints.len(), "too few healthy hosts: spreading over all of them (panic)");
            }
            self.set.store(Some(Arc::new(next)));
        }
    }

    /// Runs `f` (which may change host health) on the endpoint set with set
    /// writers held off, then rebuilds the balancer if availability
    /// changed. None for a cluster not used yet: it has no hosts to judge.
    pub fn with_set<R>(&self, f: impl FnOnce(&EndpointSet) -> R) -> Option<R> {
        let r = {
            let _w = self.pending.lock();
            f(&*self.set.load_full()?)
        };
        self.refresh();
        Some(r)
    }

    fn rebuilt(&self, set: &EndpointSet) -> EndpointSet {
        EndpointSet::new(set.endpoints.clone(), &self.settings.policy, set.overprovisioning, Instant::now())
    }
}

/// An assignment's overprovisioning factor, in percent (Envoy's 140 unless set).
fn overprovisioning(cla: &ClusterLoadAssignment) -> u32 {
    cla.policy
        .as_ref()
        .and_then(|p| p.overprovisioning_factor.as_ref())
        .map_or(DEFAULT_OVERPROVISIONING, |v| v.value.max(1))
}
