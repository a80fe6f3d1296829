//! Translation of the mesh's state into Envoy v3 resources for one proxy.
//!
//! Names follow Istio's so Envoy users feel at home: clusters are
//! `outbound|<port>|<subset>|<fqdn>`, the sidecar's outbound route table is
//! `outbound`, a gateway's route table for port P is `http.P`.

mod clusters;
mod listeners;
mod node;
mod routes;

pub use node::{ProxyNode, Role};

use crate::registry::Instance;
use envoy_types::pb::envoy::config::{
    cluster::v3::Cluster, endpoint::v3::ClusterLoadAssignment, listener::v3::Listener, route::v3::RouteConfiguration,
};
use std::sync::Arc;
use weft_api::index::Index;
use weft_api::resource::Resource;

/// Everything the control plane knows at one version.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub version: u64,
    pub resources: Arc<Vec<Resource>>,
    /// Static and registered instances together.
    pub instances: Vec<Instance>,
}

/// What one proxy receives.
#[derive(Debug, Default)]
pub struct ProxyConfig {
    pub listeners: Vec<Listener>,
    pub routes: Vec<RouteConfiguration>,
    pub clusters: Vec<Cluster>,
    pub endpoints: Vec<ClusterLoadAssignment>,
}

pub fn cluster_name(port: u16, subset: &str, fqdn: &str) -> String {
    format!("outbound|{port}|{subset}|{fqdn}")
}

pub fn translate(snap: &Snapshot, node: &ProxyNode) -> ProxyConfig {
    let index = Index::new(&snap.resources);
    let mut out = ProxyConfig::default();
    match node.role {
        Role::Sidecar => {
            out.listeners = listeners::sidecar(&index, node);
            out.routes.push(routes::sidecar_outbound(&index, node));
            if let Some(inbound) = routes::sidecar_inbound(node) {
                out.routes.push(inbound);
            }
        }
        Role::Gateway => {
            let (ls, rs) = listeners::gateway(&index, node);
            out.listeners = ls;
            out.routes = rs.into_iter().map(|port| routes::gateway(&index, node, port)).collect();
        }
    }
    let referenced = (node.role == Role::Gateway).then(|| routes::referenced_clusters(&out.routes));
    let (clusters, endpoints) = clusters::build(&index, &snap.instances, node, referenced.as_ref());
    out.clusters = clusters;
    out.endpoints = endpoints;
    if let Some(c) = clusters::inbound(node) {
        out.clusters.push(c);
    }
    out
}
