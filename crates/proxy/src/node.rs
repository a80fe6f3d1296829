//! Who this proxy is.

use std::collections::BTreeMap;

/// Who this proxy is; sent to the control plane as node metadata.
#[derive(Debug, Clone, Default)]
pub struct NodeInfo {
    pub id: String,
    /// `sidecar` or `gateway`.
    pub role: String,
    pub namespace: String,
    pub workload: String,
    pub labels: BTreeMap<String, String>,
    pub listen_ip: String,
    /// Where outbound listeners bind, when not the control plane's default
    /// (the listen IP if loopback, else 127.0.0.1).
    pub outbound_ip: Option<String>,
    pub outbound_port: u16,
    pub inbound_port: u16,
    pub app_port: Option<u16>,
    pub port_offset: u16,
    /// `region/zone/subzone`, sent as the xDS node's locality.
    pub locality: Option<String>,
    /// The admin endpoint (`host:port`), so the control plane can gather
    /// what this proxy sees of its upstreams' health.
    pub admin: Option<String>,
    /// Its SPIFFE ID, when it asks the mesh CA for a certificate (metrics'
    /// principal labels).
    pub identity: Option<String>,
}
