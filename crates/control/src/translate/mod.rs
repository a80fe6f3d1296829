//! Translation of the mesh's state into Envoy v3 resources for one proxy.
//!
//! Names follow Istio's so Envoy users feel at home: clusters are
//! `outbound|<port>|<subset>|<fqdn>`, the sidecar's outbound route table is
//! `outbound`, a gateway's route table for port P is `http.P`.

mod clusters;
mod listeners;
mod node;
mod routes;
mod shared;

pub use node::{ProxyNode, Role};
pub use shared::{Cache, Encoded, Res, encoded};

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

/// Everything one proxy receives, as plain Envoy messages (tests, debugging).
pub fn translate(snap: &Snapshot, node: &ProxyNode) -> ProxyConfig {
    let index = Index::new(&snap.resources);
    let mut out = ProxyConfig::default();
    match node.role {
        Role::Sidecar => {
            out.listeners = listeners::sidecar(node, &listeners::tcp_specs(&index, node));
            out.routes.push(routes::sidecar_outbound(&index, node));
            out.routes.extend(routes::sidecar_inbound(node));
        }
        Role::Gateway => {
            let ports = listeners::gateway_ports(&index, node);
            out.listeners = listeners::gateway(node, &ports);
            out.routes = ports.iter().map(|port| routes::gateway(&index, node, *port)).collect();
        }
    }
    let referenced = (node.role == Role::Gateway).then(|| routes::referenced_clusters(&out.routes));
    let (clusters, endpoints) = clusters::build(&index, &snap.instances, node, referenced.as_ref());
    out.clusters = clusters;
    out.endpoints = endpoints;
    out.clusters.extend(clusters::inbound(node));
    out
}
