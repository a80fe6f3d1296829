//! The ADS client: one stream to the control plane carrying clusters,
//! endpoints, listeners and routes (state of the world).
//!
//! Each response is decoded and the whole config compiled *outside* the
//! request path; only a config that compiles is swapped in and ACKed.
//! Anything else is NACKed with the reason and the last good config stays.
//! On disconnect the proxy keeps serving and reconnects with backoff.

mod tls;
pub mod transport;

use crate::config::wire::{Raw, RawMap, Wire, rds_names, spend_all, wire_name};
use crate::snapshot::Snapshot;
use crate::state::{NodeInfo, ProxyState};
use envoy_types::pb::envoy::config::core::v3::{Locality, Node};
use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use envoy_types::pb::google::protobuf::{Struct, Value, value::Kind};
use envoy_types::pb::google::rpc::Status;
use prost::Message;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

/// The largest xDS message accepted (a route table of ~500,000 services).
const MAX_MESSAGE: usize = 256 << 20;

/// A config this large (in wire bytes) leaves much of the heap free once
/// compiled: the decoded response, the replaced config.
const TRIM_AFTER: usize = 256 << 10;

/// Gives the allocator's free pages back to the kernel. glibc returns
/// only the top of its heap by itself; after a large config is compiled
/// the free space is spread through it (a 10,000-service config left ~0.5 KB
/// a service resident but unused). jemalloc, the binary's allocator,
/// returns free pages only while it is busy, which an idle proxy is not.
fn release_free_memory() {
    // Wall time for a log line, not timing logic.
    #[allow(clippy::disallowed_types)]
    let start = std::time::Instant::now();
    let release = RELEASE.get().copied().unwrap_or(glibc_trim);
    release();
    tracing::debug!(took_us = start.elapsed().as_micros() as u64, "free heap pages given back");
}

static RELEASE: std::sync::OnceLock<fn()> = std::sync::OnceLock::new();

/// Sets how free heap pages are given back to the kernel after a large
/// config: the binary chooses the allocator, so it knows how. Without
/// this, glibc's `malloc_trim`.
pub fn set_memory_release(release: fn()) {
    let _ = RELEASE.set(release);
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn glibc_trim() {
    // SAFETY: malloc_trim has no preconditions; it only walks the
    // allocator's own free lists under its own locks.
    unsafe { libc::malloc_trim(0) };
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn glibc_trim() {}

pub const LISTENER: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";
pub const ROUTE: &str = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration";
pub const CLUSTER: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
pub const ENDPOINT: &str = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment";

fn s(v: impl Into<String>) -> Value {
    Value { kind: Some(Kind::StringValue(v.into())) }
}

pub fn node(info: &NodeInfo) -> Node {
    let mut f: BTreeMap<String, Value> = BTreeMap::new();
    f.insert("ROLE".into(), s(&info.role));
    f.insert("NAMESPACE".into(), s(&info.namespace));
    f.insert("WORKLOAD_NAME".into(), s(&info.workload));
    f.insert("LISTEN_IP".into(), s(&info.listen_ip));
    if let Some(ip) = &info.outbound_ip {
        f.insert("OUTBOUND_IP".into(), s(ip));
    }
    f.insert("OUTBOUND_PORT".into(), s(info.outbound_port.to_string()));
    f.insert("INBOUND_PORT".into(), s(info.inbound_port.to_string()));
    f.insert("PORT_OFFSET".into(), s(info.port_offset.to_string()));
    if let Some(p) = info.app_port {
        f.insert("APP_PORT".into(), s(p.to_string()));
    }
    if let Some(a) = &info.admin {
        f.insert("ADMIN_ADDR".into(), s(a));
    }
    let labels = Struct { fields: info.labels.iter().map(|(k, v)| (k.clone(), s(v))).collect() };
    f.insert("LABELS".into(), Value { kind: Some(Kind::StructValue(labels)) });
    let locality = info.locality.as_deref().map(|l| {
        let mut parts = l.splitn(3, '/').map(str::to_owned);
        Locality {
            region: parts.next().unwrap_or_default(),
            zone: parts.next().unwrap_or_default(),
            sub_zone: parts.next().unwrap_or_default(),
        }
    });
    Node {
        id: info.id.clone(),
        cluster: info.workload.clone(),
        locality,
        metadata: Some(Struct { fields: f.into_iter().collect() }),
        user_agent_name: "weft".into(),
        ..Default::default()
    }
}

/// What a proxy keeps across reconnects: a new stream starts from what it
/// has, and says so (the versions in its first requests, as Envoy does):
/// a control plane that just started holds its answer to such a proxy
/// until its instances have registered again.
#[derive(Default)]
struct Kept {
    raw: Raw,
    versions: HashMap<&'static str, String>,
    /// The last stream got at least one response.
    established: bool,
}

/// The wait before a reconnect: doubling from 100 ms up to 5 s, and back
/// to the start once a stream got a response, so that each outage starts
/// with quick retries however long the last one was.
struct Backoff(Duration);

impl Backoff {
    const FIRST: Duration = Duration::from_millis(100);
    const CAP: Duration = Duration::from_secs(5);

    fn next(&mut self, established: bool) -> Duration {
        if established {
            self.0 = Self::FIRST;
        }
        let wait = self.0;
        self.0 = (self.0 * 2).min(Self::CAP);
        wait
    }
}

/// Runs forever: connect, stream, reconnect with backoff (`Backoff`).
pub async fn run(addr: String, state: Arc<ProxyState>) {
    let mut backoff = Backoff(Backoff::FIRST);
    let mut kept = Kept::default();
    loop {
        kept.established = false;
        let result = stream_once(&addr, &state, &mut kept).await;
        if state.is_draining() {
            return; // shutting down: the control plane going away is expected
        }
        match result {
            Ok(()) => tracing::warn!(%addr, "xDS stream closed by the control plane; reconnecting"),
            Err(e) => {
                tracing::warn!(%addr, error = %e, "xDS stream failed; keeping the last good config and reconnecting")
            }
        }
        tokio::time::sleep(backoff.next(kept.established)).await;
    }
}

#[derive(Default)]
struct TypeState {
    names: BTreeSet<Arc<str>>,
    version: String,
    nonce: String,
}

struct Session<'a> {
    state: &'a ProxyState,
    tx: mpsc::Sender<DiscoveryRequest>,
    types: HashMap<&'static str, TypeState>,
    raw: Raw,
    first: bool,
    /// EDS name to cluster name where they differ (rarely: Istio names a
    /// cluster's endpoints after it), rebuilt when clusters change.
    eds_aliases: HashMap<Arc<str>, Arc<str>>,
    /// The route tables the listeners ask for, rebuilt when listeners change.
    rds: BTreeSet<Arc<str>>,
}

/// EDS name to cluster name, for the clusters of a compiled config whose
/// endpoints go by another name than theirs.
fn eds_aliases(cfg: &Snapshot) -> HashMap<Arc<str>, Arc<str>> {
    let names = cfg.clusters.iter().map(|c| &c.settings);
    names.filter_map(|c| Some((c.eds.clone().filter(|e| *e != c.name)?, c.name.clone()))).collect()
}

/// Drops the resources of `map` not in `names` (copying the map only if
/// some are).
fn keep_only<M>(map: &mut Arc<RawMap<M>>, names: &BTreeSet<Arc<str>>) {
    if map.keys().any(|k| !names.contains(k)) {
        *map = Arc::new(map.iter().filter(|(k, _)| names.contains(*k)).map(|(k, v)| (k.clone(), v.clone())).collect());
    }
}

/// The cluster that takes the endpoints named `eds`, if any.
fn cluster_for_eds<'a>(
    cfg: &'a Snapshot,
    aliases: &HashMap<Arc<str>, Arc<str>>,
    eds: &str,
) -> Option<&'a Arc<crate::upstream::cluster::Cluster>> {
    let name = aliases.get(eds).map_or(eds, |c| &**c);
    cfg.clusters.get(name).filter(|c| c.settings.eds.as_deref() == Some(eds))
}

/// The EDS names the clusters of a compiled config take endpoints from.
fn eds_names(cfg: &Snapshot) -> impl Iterator<Item = &Arc<str>> {
    cfg.clusters.iter().filter_map(|c| c.settings.eds.as_ref())
}

impl Session<'_> {
    async fn request(&mut self, type_url: &'static str, error: Option<String>) {
        let t = self.types.entry(type_url).or_default();
        let req = DiscoveryRequest {
            version_info: t.version.clone(),
            node: self.first.then(|| node(&self.state.node)),
            resource_names: t.names.iter().map(|n| n.to_string()).collect(),
            type_url: type_url.to_owned(),
            response_nonce: t.nonce.clone(),
            error_detail: error.map(|m| Status { code: 3, message: m, details: Vec::new() }),
            ..Default::default()
        };
        self.first = false;
        let _ = self.tx.send(req).await;
    }

    /// The resources of a response by name, kept in wire form (they are
    /// decoded when the config compiles).
    fn wires<M: Message + Default>(&self, resp: &mut DiscoveryResponse) -> Result<RawMap<M>, String> {
        let mut out = BTreeMap::new();
        for any in std::mem::take(&mut resp.resources) {
            let name = wire_name::<M>(&any.value).map_err(|e| e.0)?;
            out.insert(self.state.hosts.names.get(&name), Wire::new(any.value));
        }
        Ok(out)
    }

    /// Applies one response to a copy of the raw config; Err is the NACK reason.
    /// Listeners and clusters are replaced whole; route tables and endpoint
    /// sets are merged in (a response may carry only those that changed),
    /// keeping only the names this proxy still asks for.
    fn apply(&self, resp: &mut DiscoveryResponse) -> Result<Raw, String> {
        use envoy_types::pb::envoy::config::{cluster::v3::Cluster, endpoint::v3::ClusterLoadAssignment};
        use envoy_types::pb::envoy::config::{listener::v3::Listener, route::v3::RouteConfiguration};
        fn merge<M>(old: &mut Arc<RawMap<M>>, new: RawMap<M>, keep: Option<&BTreeSet<Arc<str>>>) {
            if let Some(names) = keep {
                keep_only(old, names);
            }
            Arc::make_mut(old).extend(new);
        }
        let names = self.types.get(resp.type_url.as_str()).map(|t| &t.names);
        let mut raw = self.raw.clone();
        match resp.type_url.as_str() {
            LISTENER => raw.listeners = Arc::new(self.wires::<Listener>(resp)?),
            CLUSTER => raw.clusters = Arc::new(self.wires::<Cluster>(resp)?),
            ROUTE => {
                merge(&mut raw.routes, self.wires::<RouteConfiguration>(resp)?, names);
            }
            ENDPOINT => {
                merge(&mut raw.endpoints, self.wires::<ClusterLoadAssignment>(resp)?, names);
            }
            other => return Err(format!("unexpected type {other}")),
        }
        Ok(raw)
    }

    async fn on_response(&mut self, mut resp: DiscoveryResponse) {
        let type_url: &'static str = match resp.type_url.as_str() {
            LISTENER => LISTENER,
            ROUTE => ROUTE,
            CLUSTER => CLUSTER,
            ENDPOINT => ENDPOINT,
            _ => return,
        };
        self.types.entry(type_url).or_default().nonce = resp.nonce.clone();
        if type_url == ENDPOINT && self.state.xds_complete.load(Ordering::Acquire) {
            match self.update_endpoints(&mut resp) {
                Ok(()) => {
                    self.types.entry(type_url).or_default().version = resp.version_info.clone();
                    self.state.metrics.config_updates.inc();
                    self.request(type_url, None).await; // ACK
                }
                Err(reason) => self.nack(type_url, &resp.version_info, reason).await,
            }
            return;
        }
        let size: usize = resp.resources.iter().map(|a| a.value.len()).sum();
        let old = self.state.config.load_full();
        let compiled = self.apply(&mut resp).and_then(|raw| {
            let cfg = Snapshot::compile(&raw, Some((&self.raw, &old)), resp.version_info.clone(), &self.state.hosts)
                .map_err(|(_, e)| e.0)?;
            Ok((raw, cfg))
        });
        match compiled {
            Ok((mut raw, cfg)) => {
                // Compiled clusters and route tables are kept (route tables
                // relinked, clusters reassigned when their endpoints change);
                // their resources (a route table is the largest a sidecar
                // gets) are let go, and only a digest of each kept.
                spend_all(&mut raw.clusters);
                spend_all(&mut raw.routes);
                self.raw = raw;
                self.types.entry(type_url).or_default().version = resp.version_info.clone();
                match type_url {
                    CLUSTER => self.eds_aliases = eds_aliases(&cfg),
                    LISTENER => self.rds = rds_names(&self.raw.listeners),
                    _ => {}
                }
                let complete = self.complete(&cfg);
                let cfg = Arc::new(cfg);
                // Clusters kept from the last config already have their watchers.
                for c in cfg.clusters.iter() {
                    if !old.clusters.get(c.name()).is_some_and(|o| Arc::ptr_eq(o, c)) {
                        crate::upstream::watch::watch(c);
                    }
                }
                self.state.config.store(cfg);
                if complete {
                    self.state.xds_complete.store(true, Ordering::Release);
                }
                self.state.updates.send_modify(|v| *v += 1);
                self.state.metrics.config_updates.inc();
                tracing::debug!(r#type = type_url.rsplit('.').next(), version = %resp.version_info, "config applied");
                drop(old);
                if size >= TRIM_AFTER {
                    release_free_memory();
                }
                self.request(type_url, None).await; // ACK
                self.follow_names().await;
            }
            Err(reason) => self.nack(type_url, &resp.version_info, reason).await,
        }
    }

    /// Refuses a response: the last good config stays, and the reason goes
    /// to the control plane, the log and the admin's `lastNack`.
    async fn nack(&mut self, type_url: &'static str, version: &str, reason: String) {
        tracing::warn!(r#type = type_url.rsplit('.').next(), %version, %reason, "rejecting config (NACK); keeping the last good one");
        *self.state.last_nack.lock() = Some(reason.clone());
        self.state.metrics.xds_nacks.inc();
        self.request(type_url, Some(reason)).await;
    }

    /// An endpoint update once the config is complete: only the clusters it
    /// names take their new assignments (no full compile, no config swap).
    /// Every assignment is checked before any is taken, so a bad one
    /// changes nothing.
    fn update_endpoints(&mut self, resp: &mut DiscoveryResponse) -> Result<(), String> {
        use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
        let cfg = self.state.config.load_full();
        let mut wires = Vec::with_capacity(resp.resources.len());
        let mut checked = Vec::new();
        for any in std::mem::take(&mut resp.resources) {
            let wire = Wire::<ClusterLoadAssignment>::new(any.value);
            let cla = wire.decode().map_err(|e| e.0)?;
            let name = self.state.hosts.names.get(&cla.cluster_name);
            if let Some(cluster) = cluster_for_eds(&cfg, &self.eds_aliases, &cla.cluster_name) {
                cluster.check_assignment(&cla).map_err(|e| e.0)?;
                checked.push((cluster.clone(), cla, wire.clone()));
            }
            wires.push((name, wire));
        }
        for (cluster, cla, wire) in checked {
            cluster.assign(&cla, wire);
        }
        // Into the session's own copy, in place.
        Arc::make_mut(&mut self.raw.endpoints).extend(wires);
        Ok(())
    }

    /// Subscribes to the route tables and endpoint sets the config refers to.
    async fn follow_names(&mut self) {
        let rds = self.rds.clone();
        let eds: BTreeSet<Arc<str>> = eds_names(&self.state.config.load()).cloned().collect();
        for (t, names) in [(ROUTE, rds), (ENDPOINT, eds)] {
            let cur = self.types.entry(t).or_default();
            if cur.names != names {
                // What is no longer asked for is no longer kept.
                match t {
                    ROUTE => keep_only(&mut self.raw.routes, &names),
                    _ => keep_only(&mut self.raw.endpoints, &names),
                }
                cur.names = names;
                self.request(t, None).await;
            }
        }
    }

    fn complete(&self, cfg: &Snapshot) -> bool {
        let rds = &self.rds;
        self.types.get(CLUSTER).is_some_and(|t| !t.version.is_empty())
            && self.types.get(LISTENER).is_some_and(|t| !t.version.is_empty())
            && rds.iter().all(|n| self.raw.routes.contains_key(n))
            && eds_names(cfg).all(|n| self.raw.endpoints.contains_key(n))
    }
}

async fn stream_once(addr: &str, state: &Arc<ProxyState>, kept: &mut Kept) -> anyhow::Result<()> {
    let mut channel = match addr.strip_prefix("https://") {
        Some(tls_addr) => tls::connect(tls_addr, state).await?,
        None => {
            let endpoint = if addr.starts_with("http") { addr.to_owned() } else { format!("http://{addr}") };
            tonic::transport::Endpoint::from_shared(endpoint)?.connect().await?
        }
    };
    let (tx, rx) = mpsc::channel(16);
    let eds_aliases = eds_aliases(&state.config.load());
    let rds = rds_names(&kept.raw.listeners);
    let types =
        kept.versions.iter().map(|(t, v)| (*t, TypeState { version: v.clone(), ..Default::default() })).collect();
    let mut session = Session { state, tx, types, raw: std::mem::take(&mut kept.raw), first: true, eds_aliases, rds };
    let result = async {
        session.request(CLUSTER, None).await;
        session.request(LISTENER, None).await;
        let mut stream = transport::open(&mut channel, ReceiverStream::new(rx), MAX_MESSAGE).await?;
        tracing::info!(%addr, "xDS stream open");
        while let Some(resp) = stream.message().await? {
            kept.established = true;
            session.on_response(resp).await;
        }
        anyhow::Ok(())
    }
    .await;
    kept.raw = session.raw;
    kept.versions = session.types.into_iter().map(|(t, s)| (t, s.version)).collect();
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::Registries;
    use envoy_types::pb::envoy::config::cluster::v3::{Cluster, cluster};

    #[test]
    fn the_backoff_starts_over_once_a_stream_was_healthy() {
        let mut b = Backoff(Backoff::FIRST);
        let waits: Vec<u128> = (0..8).map(|_| b.next(false).as_millis()).collect();
        assert_eq!(waits, [100, 200, 400, 800, 1600, 3200, 5000, 5000]);
        assert_eq!(b.next(true).as_millis(), 100, "a stream got a response: the next outage starts quick");
        assert_eq!(b.next(false).as_millis(), 200);
    }

    #[test]
    fn endpoints_find_their_cluster_by_its_name_or_its_eds_service_name() {
        let eds = |name: &str, service: &str| Cluster {
            name: name.into(),
            cluster_discovery_type: Some(cluster::ClusterDiscoveryType::Type(cluster::DiscoveryType::Eds as i32)),
            eds_cluster_config: Some(cluster::EdsClusterConfig { service_name: service.into(), eds_config: None }),
            ..Default::default()
        };
        let raw = Raw {
            clusters: Arc::new(
                [
                    ("a", eds("a", "")),
                    ("b", eds("b", "b-endpoints")),
                    ("c", Cluster { name: "c".into(), ..Default::default() }),
                ]
                .into_iter()
                .map(|(n, c)| (n.into(), Wire::encode(&c)))
                .collect(),
            ),
            ..Default::default()
        };
        let cfg = Snapshot::compile(&raw, None, "1".into(), &Arc::new(Registries::default())).unwrap();
        let aliases = eds_aliases(&cfg);
        assert_eq!(aliases.len(), 1, "only b's endpoints go by another name");
        let found = |eds: &str| cluster_for_eds(&cfg, &aliases, eds).map(|c| c.name().to_string());
        assert_eq!(found("a").as_deref(), Some("a"));
        assert_eq!(found("b-endpoints").as_deref(), Some("b"));
        assert_eq!(found("b"), None, "b takes its endpoints under its EDS name only");
        assert_eq!(found("c"), None, "c does not use EDS");
        let mut names: Vec<_> = eds_names(&cfg).map(|n| n.to_string()).collect();
        names.sort();
        assert_eq!(names, ["a", "b-endpoints"]);
    }
}
