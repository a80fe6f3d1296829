//! Translation of the mesh's state into Envoy v3 resources for one proxy.
//!
//! Names follow Istio's so Envoy users feel at home: clusters are
//! `outbound|<port>|<subset>|<fqdn>`, the sidecar's outbound route table is
//! `outbound`, a gateway's route table for port P is `http.P`.

mod access_log;
mod app_cluster;
mod authz;
mod clusters;
mod endpoint_meta;
mod fault;
mod gateway_tls;
mod grpc;
pub mod jwt;
mod listeners;
mod locality;
mod node;
mod passthrough;
mod policy;
mod routes;
mod shared;
mod tracing;
mod upstream_tls;

pub use authz::{Target as AuthzTarget, filters as authz_filters, network_filters as authz_network_filters};
pub use node::{ProxyNode, Role};
pub use shared::{Cache, Encoded, Res, encode_res, encoded, serves_tcp};
// What `describe` shows is what translation makes for a caller.
pub use authz::applicable as authorization_policies;
pub use clusters::build as clusters_for;
pub use routes::{sidecar_outbound, tcp_port, tcp_route};
pub use upstream_tls::SYSTEM_CA_BUNDLE;

use crate::registry::Instance;
use std::sync::Arc;
use weft_api::resource::Resource;

/// Everything the control plane knows at one version.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub version: u64,
    pub resources: Arc<Vec<Resource>>,
    /// Static and registered instances together, shared between
    /// snapshots (a publish copies pointers, not instances).
    pub instances: Vec<Arc<Instance>>,
    /// Some DestinationRule ranks endpoints by the caller's labels
    /// (`failoverPriority`) or applies by them (`workloadSelector`);
    /// computed on first use.
    pub label_failover: std::sync::OnceLock<bool>,
    /// Where the control plane's trace store takes spans (`weft` provider).
    pub trace_store: Option<std::net::SocketAddr>,
    /// Key sets fetched for RequestAuthentications, by URL (`crate::jwks`).
    pub jwks: Arc<std::collections::BTreeMap<String, String>>,
}

impl Snapshot {
    pub fn new<I: Into<Arc<Instance>>>(
        version: u64,
        resources: Arc<Vec<Resource>>,
        instances: impl IntoIterator<Item = I>,
    ) -> Self {
        let instances = instances.into_iter().map(Into::into).collect();
        Snapshot {
            version,
            resources,
            instances,
            label_failover: Default::default(),
            trace_store: None,
            jwks: Default::default(),
        }
    }

    /// True when a caller's labels can change the clusters or endpoints it is sent.
    pub fn label_failover(&self) -> bool {
        *self.label_failover.get_or_init(|| {
            self.resources.iter().any(|r| match &r.spec {
                weft_api::Spec::DestinationRule(d) if d.workload_selector.is_some() => true,
                weft_api::Spec::DestinationRule(d) => {
                    let tps = d.traffic_policy.iter().chain(d.subsets.iter().filter_map(|s| s.traffic_policy.as_ref()));
                    tps.flat_map(|tp| {
                        tp.load_balancer
                            .iter()
                            .chain(tp.port_level_settings.iter().filter_map(|p| p.load_balancer.as_ref()))
                    })
                    .any(|lb| lb.locality_lb_setting.as_ref().is_some_and(|l| !l.failover_priority.is_empty()))
                }
                _ => false,
            })
        })
    }
}

pub fn cluster_name(port: u16, subset: &str, fqdn: &str) -> String {
    format!("outbound|{port}|{subset}|{fqdn}")
}
