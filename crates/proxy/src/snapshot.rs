//! One config version as the request path reads it: the compiled listeners
//! and route tables of `crate::config`, linked by `ClusterId` to the
//! runtime clusters of `crate::upstream`. Built by the xDS task outside the
//! request path and swapped in whole (`ProxyState::config`).

use crate::config::cluster::ClusterSettings;
use crate::config::listener::ListenerCfg;
use crate::config::route::{ClusterRef, HeaderOps, RouteTable, Target};
use crate::config::wire::{Raw, Wire, eds_name};
use crate::config::{ClusterId, ClusterIndex, CompileError, Kind};
use crate::upstream::Registries;
use crate::upstream::cluster::Cluster;
use envoy_types::pb::envoy::config::cluster::v3::Cluster as ClusterProto;
use std::collections::HashMap;
use std::sync::Arc;

/// A version's clusters, by id (what routes hold) and by name.
#[derive(Debug, Default)]
pub struct Clusters {
    list: Vec<Arc<Cluster>>,
    index: ClusterIndex,
}

impl Clusters {
    fn with_capacity(n: usize) -> Self {
        Clusters { list: Vec::with_capacity(n), index: ClusterIndex::with_capacity(n) }
    }

    fn push(&mut self, c: Arc<Cluster>) {
        self.index.insert(c.name().clone(), ClusterId(self.list.len() as u32));
        self.list.push(c);
    }

    /// The cluster a route's reference points at, if this proxy has it.
    #[inline]
    pub fn linked(&self, r: &ClusterRef) -> Option<&Arc<Cluster>> {
        r.id.and_then(|id| self.list.get(id.0 as usize))
    }

    pub fn get(&self, name: &str) -> Option<&Arc<Cluster>> {
        self.index.get(name).and_then(|id| self.list.get(id.0 as usize))
    }

    pub fn index(&self) -> &ClusterIndex {
        &self.index
    }

    pub fn len(&self) -> usize {
        self.list.len()
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The cluster a request to `target` goes to (by weight when split),
    /// with the header operations of its weighted destination; Err names a
    /// cluster this proxy does not have.
    pub fn pick<'a>(&'a self, target: &'a Target) -> Result<Picked<'a>, &'a Arc<str>> {
        match target {
            Target::Cluster(c) => match self.linked(c) {
                Some(cluster) => Ok(Picked { cluster, request_headers: None, response_headers: None }),
                None => Err(&c.name),
            },
            Target::Weighted { choices, total } => {
                use rand::Rng;
                let x = rand::rng().random_range(0..*total);
                let i = choices.partition_point(|c| c.upto <= x).min(choices.len() - 1);
                let c = &choices[i];
                match self.linked(&c.cluster) {
                    Some(cluster) => Ok(Picked {
                        cluster,
                        request_headers: Some(&c.request_headers),
                        response_headers: Some(&c.response_headers),
                    }),
                    None => Err(&c.cluster.name),
                }
            }
        }
    }

    /// In name order (the order of the raw config they were compiled from).
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Cluster>> {
        self.list.iter()
    }
}

/// The cluster picked for a request, and its weighted destination's header
/// operations.
pub struct Picked<'a> {
    pub cluster: &'a Arc<Cluster>,
    pub request_headers: Option<&'a HeaderOps>,
    pub response_headers: Option<&'a HeaderOps>,
}

impl std::ops::Index<&str> for Clusters {
    type Output = Arc<Cluster>;

    /// The cluster named so; panics if there is none (tests, and names
    /// just read from the same version).
    fn index(&self, name: &str) -> &Arc<Cluster> {
        self.get(name).unwrap_or_else(|| panic!("no cluster {name}"))
    }
}

#[derive(Debug, Default)]
pub struct Snapshot {
    pub version: String,
    pub listeners: Vec<ListenerCfg>,
    pub clusters: Clusters,
    pub routes: HashMap<Arc<str>, Arc<RouteTable>>,
}

/// The cluster compiled last time from the same resource, with the raw
/// config it was compiled from.
fn same_cluster<'a>(
    name: &str,
    wire: &Wire<ClusterProto>,
    prev: Option<(&'a Raw, &'a Snapshot)>,
) -> Option<(&'a Raw, &'a Arc<Cluster>)> {
    let (old_raw, old) = prev?;
    let kept = old.clusters.get(name)?;
    (old_raw.clusters.get(name) == Some(wire)).then_some((old_raw, kept))
}

impl Snapshot {
    /// Compiles `raw`. With `prev` (the raw config and the snapshot compiled
    /// from it last time), a cluster whose resource and endpoints did not
    /// change is kept as it is (endpoint set, health watchers and all), and
    /// so is a route table when its resource and every cluster are.
    pub fn compile(
        raw: &Raw,
        prev: Option<(&Raw, &Snapshot)>,
        version: String,
        hosts: &Arc<Registries>,
    ) -> Result<Snapshot, (Kind, CompileError)> {
        let mut clusters = Clusters::with_capacity(raw.clusters.len());
        let mut all_kept = prev.is_some_and(|(_, cfg)| cfg.clusters.len() == raw.clusters.len());
        for (name, wire) in raw.clusters.iter() {
            let cerr = |e: CompileError| (Kind::Cluster, e);
            if let Some((old_raw, kept)) = same_cluster(name, wire, prev) {
                let eds = kept.settings.eds.as_deref();
                if eds.is_none_or(|n| raw.endpoints.get(n) == old_raw.endpoints.get(n)) {
                    clusters.push(kept.clone());
                    continue;
                }
                // Only its endpoints changed: its settings are taken from
                // the compiled cluster (its resource's bytes are let go).
                all_kept = false;
                let cla = eds.and_then(|n| raw.endpoints.get(n));
                // Its errors name the cluster, as `ClusterSettings::from_proto`'s do.
                let compiled = kept.reassigned(cla, kept.built().is_some()).map_err(cerr)?;
                clusters.push(Arc::new(compiled));
                continue;
            }
            all_kept = false;
            let c = wire.decode().map_err(|e| cerr(CompileError::new(format!("cluster {name}: {e}"))))?;
            let cla = eds_name(&c).and_then(|n| raw.endpoints.get(n.as_str()));
            let in_use = prev.and_then(|(_, cfg)| cfg.clusters.get(name)).is_some_and(|old| old.built().is_some());
            let settings = ClusterSettings::from_proto(&c, &hosts.names).map_err(cerr)?;
            let compiled = Cluster::new(settings, cla, c.load_assignment.as_ref(), hosts, in_use).map_err(cerr)?;
            clusters.push(Arc::new(compiled));
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
                Some(t) => Arc::new(t.relinked(clusters.index())),
                None if wire.is_spent() => {
                    return Err((
                        Kind::Route,
                        CompileError::new(format!(
                            "route table {name} was not sent again and this proxy has no compiled copy of it; reconnecting to the control plane resends it"
                        )),
                    ));
                }
                None => {
                    let t = RouteTable::compile_wire(wire, clusters.index(), &hosts.names)
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
            listeners.push(
                ListenerCfg::compile(&l, &routes, clusters.index(), &hosts.names, &hosts.logs, &hosts.spans)
                    .map_err(lerr)?,
            );
        }
        Ok(Snapshot { version, listeners, clusters, routes })
    }
}

#[cfg(test)]
#[path = "snapshot_tests.rs"]
mod tests;
