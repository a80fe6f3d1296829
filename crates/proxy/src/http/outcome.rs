//! What a request came to, for its telemetry record: the response, its
//! flags, and the cluster and endpoint it went to.

use super::body::ProxyBody as Body;
use super::flags::Flags;
use crate::upstream::cluster::Cluster;
use crate::upstream::endpoint::Endpoint;
use hyper::Response;
use std::sync::Arc;

/// What telemetry needs to know about a request's destination: the cluster
/// (its service) and the endpoint (its workload), where known. Two pointers
/// cloned per request, not five names.
#[derive(Clone)]
pub struct Dest {
    pub cluster: Option<Arc<Cluster>>,
    pub endpoint: Option<Arc<Endpoint>>,
}

pub use crate::telemetry::UNKNOWN;

impl Dest {
    pub fn unknown() -> Self {
        Dest { cluster: None, endpoint: None }
    }

    pub fn cluster(cluster: &Arc<Cluster>) -> Self {
        Dest { cluster: Some(cluster.clone()), endpoint: None }
    }

    /// The endpoint's names in metrics, as its metadata gives them.
    pub fn claimed(&self) -> crate::telemetry::peer::Claimed<'_> {
        use crate::telemetry::peer::Claimed;
        self.endpoint.as_deref().map_or(Claimed::UNKNOWN, |e| e.meta.claimed(&e.workload, &e.namespace))
    }

    /// The identity the endpoint proved with the mesh's mutual TLS, where
    /// the cluster accepts only one (Istio's `destination_principal` as
    /// the source reports it).
    pub fn principal(&self) -> Option<&str> {
        let (cluster, endpoint) = (self.cluster.as_deref()?, self.endpoint.as_deref()?);
        endpoint.mesh.then_some(cluster.settings.tls.mesh_principal.as_deref()).flatten()
    }

    /// Service FQDN, name and namespace.
    pub fn service(&self) -> (&str, &str, &str) {
        self.cluster.as_deref().map_or((UNKNOWN, UNKNOWN, UNKNOWN), |c| {
            (&*c.settings.service, &*c.settings.service_name, &*c.settings.service_namespace)
        })
    }
}

pub struct Outcome {
    pub response: Response<Body>,
    pub flags: Flags,
    pub dest: Dest,
    pub request_bytes: u64,
}
