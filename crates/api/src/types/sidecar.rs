//! Istio's `Sidecar`: what a sidecar may reach (`egress[].hosts`), for the
//! workloads it selects, else its namespace, else the mesh (a Sidecar
//! without selector in the root namespace).

use super::{Destination, Labels};
use serde::Deserialize;

/// The namespace whose selector-less Sidecar is the mesh's default (Istio's).
pub const ROOT_NAMESPACE: &str = "istio-system";

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SidecarSpec {
    pub workload_selector: Option<SidecarSelector>,
    #[serde(default)]
    pub ingress: Vec<IstioIngressListener>,
    #[serde(default)]
    pub egress: Vec<IstioEgressListener>,
    pub inbound_connection_pool: Option<serde_json::Value>,
    pub outbound_traffic_policy: Option<OutboundTrafficPolicy>,
}

/// A Sidecar's selector is `{labels: {...}}` (not `matchLabels`).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SidecarSelector {
    #[serde(default)]
    pub labels: Labels,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IstioEgressListener {
    pub port: Option<SidecarPort>,
    pub bind: Option<String>,
    pub capture_mode: Option<String>,
    /// `namespace/dnsName`: namespace `*` (any), `.` (the Sidecar's own) or
    /// `~` (none); dnsName a FQDN, `*`, or `*.suffix`.
    #[serde(default)]
    pub hosts: Vec<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IstioIngressListener {
    pub port: Option<SidecarPort>,
    pub bind: Option<String>,
    pub capture_mode: Option<String>,
    pub default_endpoint: Option<String>,
    pub tls: Option<serde_json::Value>,
    pub connection_pool: Option<serde_json::Value>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SidecarPort {
    pub number: Option<u32>,
    pub protocol: Option<String>,
    pub name: Option<String>,
    pub target_port: Option<u32>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OutboundTrafficPolicy {
    /// `REGISTRY_ONLY` or `ALLOW_ANY`.
    pub mode: Option<String>,
    pub egress_proxy: Option<Destination>,
}

impl SidecarSpec {
    /// Whether egress host `pattern` (`ns/host`), written in a Sidecar in
    /// namespace `own`, lets a proxy see service `fqdn` of namespace `ns`.
    pub fn host_allows(pattern: &str, own: &str, ns: &str, fqdn: &str) -> bool {
        let Some((pns, host)) = pattern.split_once('/') else { return false };
        let ns_ok = match pns {
            "*" => true,
            "." => ns == own,
            "~" => false,
            other => other == ns,
        };
        ns_ok && crate::index::host_matches(host, fqdn)
    }

    /// Whether this Sidecar (in namespace `own`) lets its proxies see `fqdn`
    /// of namespace `ns`; one without egress listeners lets them see all.
    pub fn allows(&self, own: &str, ns: &str, fqdn: &str) -> bool {
        self.egress.is_empty()
            || self.egress.iter().flat_map(|e| e.hosts.iter()).any(|h| Self::host_allows(h, own, ns, fqdn))
    }
}
