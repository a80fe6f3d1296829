//! The proxy's compiled configuration: everything a request reads, built
//! once per xDS update outside the request path and swapped in atomically.

pub mod cluster;
pub mod endpoints;
pub mod limits;
pub mod route;

use bytes::Bytes;
use cluster::ClusterCfg;
use envoy_types::pb::envoy::config::cluster::v3::{Cluster, cluster::ClusterDiscoveryType};
use envoy_types::pb::envoy::config::core::v3::{address, socket_address};
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::{Listener, filter};
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, http_connection_manager,
};
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::{TcpProxy, tcp_proxy};
use prost::Message;
use route::RouteTable;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::sync::Arc;

#[derive(Debug, Clone)]
pub struct CompileError(pub String);

impl CompileError {
    pub fn new(msg: impl Into<String>) -> Self {
        CompileError(msg.into())
    }
}

impl std::fmt::Display for CompileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

pub type Clusters = HashMap<Arc<str>, Arc<ClusterCfg>>;

/// A protobuf duration as a std one (negative parts count as zero).
pub fn duration(d: &envoy_types::pb::google::protobuf::Duration) -> std::time::Duration {
    std::time::Duration::new(d.seconds.max(0) as u64, d.nanos.max(0) as u32)
}

/// A fraction of requests in parts per million; unset means all of them.
pub fn parts_per_million(f: Option<&envoy_types::pb::envoy::r#type::v3::FractionalPercent>) -> u32 {
    use envoy_types::pb::envoy::r#type::v3::fractional_percent::DenominatorType as D;
    let Some(f) = f else { return 1_000_000 };
    let scale = match D::try_from(f.denominator).unwrap_or(D::Hundred) {
        D::Hundred => 10_000,
        D::TenThousand => 100,
        D::Million => 1,
    };
    f.numerator.saturating_mul(scale).min(1_000_000)
}

/// Per-host state that outlives config versions: connection pools and
/// health. Read at compile time, never per request.
#[derive(Default)]
pub struct Registries {
    pub pools: crate::http::pool::PoolRegistry,
    pub health: crate::health::HealthRegistry,
    pub names: Interner,
}

impl std::fmt::Debug for Registries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Registries")
    }
}

/// Whether a registry of `len` entries, `purged_at` after its last purge,
/// is due another: once it has doubled. Purging on every new entry made
/// filling it O(n²).
fn purge_due(len: usize, purged_at: usize) -> bool {
    len >= 2 * purged_at + 1024
}

/// Drops the entries of a registry whose value is gone, when due.
pub(crate) fn purge_dead<K, V>(map: &mut HashMap<K, std::sync::Weak<V>>, purged_at: &mut usize) {
    if purge_due(map.len(), *purged_at) {
        map.retain(|_, w| w.strong_count() > 0);
        *purged_at = map.len();
    }
}

/// One shared copy of each resource name, namespace and locality: a
/// cluster's name is otherwise held by the raw config, the compiled
/// cluster and the EDS subscription, each its own String.
#[derive(Default)]
pub struct Interner {
    set: std::sync::Mutex<(std::collections::HashSet<Arc<str>>, usize)>,
}

impl Interner {
    pub fn get(&self, s: &str) -> Arc<str> {
        let mut guard = self.set.lock().expect("interner");
        let (set, purged_at) = &mut *guard;
        if let Some(a) = set.get(s) {
            return a.clone();
        }
        // Names nothing else holds any more are dropped as the set doubles.
        if purge_due(set.len(), *purged_at) {
            set.retain(|a| Arc::strong_count(a) > 1);
            *purged_at = set.len();
        }
        let a: Arc<str> = s.into();
        set.insert(a.clone());
        a
    }
}

/// The last accepted resources of each type, as received.
#[derive(Debug, Default, Clone)]
pub struct Raw {
    pub listeners: Arc<RawMap<Listener>>,
    pub routes: Arc<RawMap<RouteConfiguration>>,
    pub clusters: Arc<RawMap<Cluster>>,
    pub endpoints: Arc<RawMap<ClusterLoadAssignment>>,
}

/// Resources by name; values shared, so merging an update copies pointers.
pub type RawMap<M> = BTreeMap<Arc<str>, Wire<M>>;

/// One resource kept in its wire form and decoded when a config compiles.
/// A decoded Envoy proto is mostly empty fields: a one-endpoint
/// `ClusterLoadAssignment` takes ~4 KB decoded against ~100 bytes on the
/// wire, which with 10,000 services was most of the proxy's memory.
///
/// Once compiled, clusters and route tables are kept in their compiled
/// form only, and their bytes give way to a digest (`spend`): enough to
/// tell whether a resend changed anything.
pub struct Wire<M> {
    form: Form,
    _type: PhantomData<fn() -> M>,
}

#[derive(Clone)]
enum Form {
    Bytes(Bytes),
    /// SipHash-1-3 (128 bits) of bytes let go.
    Spent([u64; 2]),
}

fn digest(bytes: &[u8]) -> [u64; 2] {
    use siphasher::sip128::Hasher128;
    let mut h = siphasher::sip128::SipHasher13::new();
    std::hash::Hasher::write(&mut h, bytes);
    let d = h.finish128();
    [d.h1, d.h2]
}

impl<M: Message + Default> Wire<M> {
    pub fn new(bytes: impl Into<Bytes>) -> Self {
        Wire { form: Form::Bytes(bytes.into()), _type: PhantomData }
    }

    pub fn encode(m: &M) -> Self {
        Wire::new(m.encode_to_vec())
    }

    pub fn decode(&self) -> Result<M, CompileError> {
        // From a slice: a clone of the `Bytes` would allocate its shared
        // header (24 bytes a resource, kept while the resource is).
        M::decode(&self.held()?[..]).map_err(undecodable::<M>)
    }

    /// The wire bytes, shared (decoding from them borrows instead of copying).
    pub fn bytes(&self) -> Result<Bytes, CompileError> {
        self.held().cloned()
    }

    fn held(&self) -> Result<&Bytes, CompileError> {
        match &self.form {
            Form::Bytes(b) => Ok(b),
            Form::Spent(_) => Err(spent_error::<M>()),
        }
    }
}

impl<M> Wire<M> {
    /// The resource once compiled: its digest, equal to the `Wire` of the
    /// same bytes, so an unchanged resend is recognised.
    pub fn spend(&self) -> Self {
        let form = match &self.form {
            Form::Bytes(b) => Form::Spent(digest(b)),
            spent => spent.clone(),
        };
        Wire { form, _type: PhantomData }
    }

    pub fn is_spent(&self) -> bool {
        matches!(self.form, Form::Spent(_))
    }
}

/// Spends the bytes of every resource of `map`, unless all are spent already.
pub fn spend_all<M>(map: &mut Arc<RawMap<M>>) {
    if map.values().any(|w| !w.is_spent()) {
        *map = Arc::new(map.iter().map(|(k, w)| (k.clone(), w.spend())).collect());
    }
}

/// A spent resource asked to decode: the caller should have used what was
/// compiled from it. A bug, reported as a NACK rather than a panic.
fn spent_error<M>() -> CompileError {
    CompileError::new(format!(
        "{} was compiled earlier and only its digest is kept, but its compiled form is missing (a bug in weft; reconnecting to the control plane resends it)",
        type_name::<M>()
    ))
}

/// Bytes that are not an `M`: what failed and what to check.
pub(crate) fn undecodable<M>(e: prost::DecodeError) -> CompileError {
    CompileError::new(format!(
        "cannot decode {}: {e} (the control plane sent bytes that are not an Envoy v3 {0}; is it an xDS server of a compatible version?)",
        type_name::<M>()
    ))
}

/// The last segment of a proto type's Rust path (`Cluster`, `Listener`).
fn type_name<M>() -> &'static str {
    std::any::type_name::<M>().rsplit("::").next().unwrap_or("resource")
}

impl<M> Clone for Wire<M> {
    fn clone(&self) -> Self {
        Wire { form: self.form.clone(), _type: PhantomData }
    }
}

impl<M> PartialEq for Wire<M> {
    fn eq(&self, other: &Self) -> bool {
        match (&self.form, &other.form) {
            (Form::Bytes(a), Form::Bytes(b)) => a == b,
            (Form::Spent(a), Form::Spent(b)) => a == b,
            (Form::Bytes(b), Form::Spent(d)) | (Form::Spent(d), Form::Bytes(b)) => digest(b) == *d,
        }
    }
}

impl<M> std::fmt::Debug for Wire<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.form {
            Form::Bytes(b) => write!(f, "{} ({} bytes)", type_name::<M>(), b.len()),
            Form::Spent(_) => write!(f, "{} (compiled; digest kept)", type_name::<M>()),
        }
    }
}

/// The name of any of the four resource types: field 1 of each (Listener
/// and Cluster `name`, RouteConfiguration `name`, ClusterLoadAssignment
/// `cluster_name`); read without decoding the rest.
#[derive(Clone, PartialEq, prost::Message)]
struct NameOnly {
    #[prost(string, tag = "1")]
    name: String,
}

/// A resource's name, read from its wire form.
pub fn wire_name<M>(bytes: &[u8]) -> Result<String, CompileError> {
    NameOnly::decode(bytes).map(|n| n.name).map_err(undecodable::<M>)
}

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
}

#[derive(Debug)]
pub enum ListenerKind {
    Http(Arc<HttpListener>),
    Tcp(route::Target),
}

#[derive(Debug)]
pub struct ListenerCfg {
    pub name: Arc<str>,
    pub addr: SocketAddr,
    pub kind: ListenerKind,
}

#[derive(Debug, Default)]
pub struct Config {
    pub version: String,
    pub listeners: Vec<ListenerCfg>,
    pub clusters: Clusters,
    pub routes: HashMap<Arc<str>, Arc<RouteTable>>,
}

/// Which type a compile error belongs to, so the right one is NACKed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Listener,
    Route,
    Cluster,
}

/// EDS name of a cluster (its `service_name`, else its name), if it uses EDS.
pub fn eds_name(c: &Cluster) -> Option<String> {
    let eds = matches!(c.cluster_discovery_type, Some(ClusterDiscoveryType::Type(3)));
    eds.then(|| {
        c.eds_cluster_config
            .as_ref()
            .map(|e| e.service_name.clone())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| c.name.clone())
    })
}

/// The route table names the listeners ask for over RDS.
pub fn rds_names(listeners: &RawMap<Listener>) -> BTreeSet<Arc<str>> {
    let mut out = BTreeSet::new();
    for l in listeners.values().filter_map(|w| w.decode().ok()) {
        for fc in &l.filter_chains {
            for f in &fc.filters {
                if let Some(filter::ConfigType::TypedConfig(any)) = &f.config_type
                    && any.type_url.ends_with("HttpConnectionManager")
                    && let Ok(hcm) = HttpConnectionManager::decode(any.value.as_slice())
                    && let Some(http_connection_manager::RouteSpecifier::Rds(rds)) = hcm.route_specifier
                {
                    out.insert(rds.route_config_name.into());
                }
            }
        }
    }
    out
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

fn tcp_target(spec: Option<tcp_proxy::ClusterSpecifier>, clusters: &Clusters) -> Result<route::Target, CompileError> {
    match spec {
        Some(tcp_proxy::ClusterSpecifier::Cluster(c)) => Ok(route::Target::single(&c, clusters)),
        Some(tcp_proxy::ClusterSpecifier::WeightedClusters(w)) => route::Target::weighted(
            w.clusters.into_iter().map(|c| (c.name, c.weight, Default::default(), Default::default())),
            clusters,
        ),
        None => Err(CompileError::new("tcp_proxy needs a cluster")),
    }
}

/// The cluster compiled last time from the same resource, with the raw
/// config it was compiled from.
fn same_cluster<'a>(
    name: &str,
    wire: &Wire<Cluster>,
    prev: Option<(&'a Raw, &'a Config)>,
) -> Option<(&'a Raw, &'a Arc<ClusterCfg>)> {
    let (old_raw, old) = prev?;
    let kept = old.clusters.get(name)?;
    (old_raw.clusters.get(name) == Some(wire)).then_some((old_raw, kept))
}

impl Config {
    /// Compiles `raw`. With `prev` (the raw config and the config compiled
    /// from it last time), a cluster whose resource and endpoints did not
    /// change is kept as it is (endpoint set, health watchers and all), and
    /// so is a route table when its resource and every cluster are.
    pub fn compile(
        raw: &Raw,
        prev: Option<(&Raw, &Config)>,
        version: String,
        hosts: &Arc<Registries>,
    ) -> Result<Config, (Kind, CompileError)> {
        let mut clusters = Clusters::with_capacity(raw.clusters.len());
        let mut all_kept = prev.is_some_and(|(_, cfg)| cfg.clusters.len() == raw.clusters.len());
        for (name, wire) in raw.clusters.iter() {
            let cerr = |e: CompileError| (Kind::Cluster, e);
            if let Some((old_raw, kept)) = same_cluster(name, wire, prev) {
                let eds = kept.eds.as_deref();
                if eds.is_none_or(|n| raw.endpoints.get(n) == old_raw.endpoints.get(n)) {
                    clusters.insert(kept.name.clone(), kept.clone());
                    continue;
                }
                // Only its endpoints changed: its settings are taken from
                // the compiled cluster (its resource's bytes are let go).
                all_kept = false;
                let cla = eds.and_then(|n| raw.endpoints.get(n));
                // Its errors name the cluster, as `ClusterCfg::compile`'s do.
                let compiled = kept.reassigned(cla, kept.built().is_some()).map_err(cerr)?;
                clusters.insert(compiled.name.clone(), Arc::new(compiled));
                continue;
            }
            all_kept = false;
            let c = wire.decode().map_err(|e| cerr(CompileError::new(format!("cluster {name}: {e}"))))?;
            let cla = eds_name(&c).and_then(|n| raw.endpoints.get(n.as_str()));
            let in_use = prev.and_then(|(_, cfg)| cfg.clusters.get(&**name)).is_some_and(|old| old.built().is_some());
            let compiled = Arc::new(ClusterCfg::compile(&c, cla, hosts, in_use).map_err(cerr)?);
            clusters.insert(compiled.name.clone(), compiled);
        }
        let mut routes = HashMap::new();
        for (name, wire) in raw.routes.iter() {
            // A table that did not arrive again is kept, pointed at the new
            // clusters if any changed.
            let before = prev
                .filter(|(old_raw, _)| wire.is_spent() || old_raw.routes.get(name) == Some(wire))
                .and_then(|(_, cfg)| cfg.routes.get(&**name));
            let t = match before {
                Some(t) if all_kept => t.clone(),
                Some(t) => Arc::new(t.relinked(&clusters)),
                None if wire.is_spent() => {
                    return Err((
                        Kind::Route,
                        CompileError::new(format!(
                            "route table {name} was not sent again and this proxy has no compiled copy of it; reconnecting to the control plane resends it"
                        )),
                    ));
                }
                None => {
                    let t = RouteTable::compile_wire(wire, &clusters, &hosts.names)
                        .map_err(|e| (Kind::Route, CompileError::new(format!("route table {name}: {e}"))))?;
                    Arc::new(t)
                }
            };
            routes.insert(name.clone(), t);
        }
        let mut listeners = Vec::new();
        for (name, wire) in raw.listeners.iter() {
            let lerr = |e: CompileError| (Kind::Listener, e);
            let l = wire.decode().map_err(|e| lerr(CompileError::new(format!("listener {name}: {e}"))))?;
            let l = &l;
            let addr = listener_addr(l).map_err(lerr)?;
            let filter = l.filter_chains.first().and_then(|fc| fc.filters.first());
            let any = match filter.and_then(|f| f.config_type.as_ref()) {
                Some(filter::ConfigType::TypedConfig(a)) => a,
                _ => {
                    return Err(lerr(CompileError::new(format!(
                        "listener {}: needs an http_connection_manager or tcp_proxy filter",
                        l.name
                    ))));
                }
            };
            let kind = if any.type_url.ends_with("HttpConnectionManager") {
                let hcm = HttpConnectionManager::decode(any.value.as_slice())
                    .map_err(|e| lerr(CompileError::new(format!("listener {}: {e}", l.name))))?;
                let (route_name, table) = match hcm.route_specifier {
                    Some(http_connection_manager::RouteSpecifier::Rds(rds)) => {
                        let t = routes.get(rds.route_config_name.as_str()).cloned();
                        (rds.route_config_name, t)
                    }
                    Some(http_connection_manager::RouteSpecifier::RouteConfig(rc)) => {
                        let t = RouteTable::compile(&rc, &clusters, &hosts.names).map_err(|e| {
                            lerr(CompileError::new(format!("listener {name}: route table {}: {e}", rc.name)))
                        })?;
                        (rc.name.clone(), Some(Arc::new(t)))
                    }
                    _ => {
                        return Err(lerr(CompileError::new(format!(
                            "listener {}: unsupported route specifier",
                            l.name
                        ))));
                    }
                };
                let direction = if hcm.stat_prefix.starts_with("inbound") || l.name.starts_with("inbound") {
                    Direction::Inbound
                } else {
                    Direction::Outbound
                };
                let strip_port =
                    matches!(hcm.strip_port_mode, Some(http_connection_manager::StripPortMode::StripAnyHostPort(true)));
                ListenerKind::Http(Arc::new(HttpListener { route_name, routes: table, strip_port, direction }))
            } else if any.type_url.ends_with("TcpProxy") {
                let tp = TcpProxy::decode(any.value.as_slice())
                    .map_err(|e| lerr(CompileError::new(format!("listener {}: {e}", l.name))))?;
                ListenerKind::Tcp(
                    tcp_target(tp.cluster_specifier, &clusters)
                        .map_err(|e| lerr(CompileError::new(format!("listener {}: {e}", l.name))))?,
                )
            } else {
                return Err(lerr(CompileError::new(format!(
                    "listener {}: unsupported filter {}",
                    l.name, any.type_url
                ))));
            };
            listeners.push(ListenerCfg { name: l.name.as_str().into(), addr, kind });
        }
        Ok(Config { version, listeners, clusters, routes })
    }
}

#[cfg(test)]
mod tests;
