//! AUTO_PASSTHROUGH's clusters on a gateway (routes/l4.rs makes the
//! chains): a twin of a service's cluster under Istio's server name for it
//! (`outbound_.<port>_.<subset>_.<host>`), with the same endpoints and
//! balancing and no TLS of its own, since the caller's mutual TLS goes
//! through to the workload's sidecar still encrypted.

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;

/// `c` (with its endpoints `cla`, when they come over EDS) as the
/// passthrough cluster `name`.
pub fn twin(
    c: &Cluster,
    cla: Option<&ClusterLoadAssignment>,
    name: String,
) -> (Cluster, Option<ClusterLoadAssignment>) {
    let mut t = c.clone();
    t.transport_socket = None;
    t.transport_socket_matches.clear();
    // Connections pass through as bytes: no HTTP options apply.
    t.typed_extension_protocol_options.clear();
    if let Some(eds) = t.eds_cluster_config.as_mut() {
        eds.service_name = name.clone();
    }
    if let Some(inline) = t.load_assignment.as_mut() {
        inline.cluster_name = name.clone();
    }
    let cla = cla.map(|a| ClusterLoadAssignment { cluster_name: name.clone(), ..a.clone() });
    t.name = name;
    (t, cla)
}
