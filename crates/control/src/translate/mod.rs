//! Translation of the mesh's state into Envoy v3 resources for one proxy.
//!
//! Names follow Istio's so Envoy users feel at home: clusters are
//! `outbound|<port>|<subset>|<fqdn>`, the sidecar's outbound route table is
//! `outbound`, a gateway's route table for port P is `http.P`.

mod clusters;
mod fault;
mod listeners;
mod node;
mod policy;
mod routes;
mod shared;

pub use node::{ProxyNode, Role};
pub use shared::{Cache, Encoded, Res, encoded};

use crate::registry::Instance;
use std::sync::Arc;
use weft_api::resource::Resource;

/// Everything the control plane knows at one version.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub version: u64,
    pub resources: Arc<Vec<Resource>>,
    /// Static and registered instances together.
    pub instances: Vec<Instance>,
}

pub fn cluster_name(port: u16, subset: &str, fqdn: &str) -> String {
    format!("outbound|{port}|{subset}|{fqdn}")
}
