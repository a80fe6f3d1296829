//! Istio's `PeerAuthentication` (security.istio.io): whether a workload's
//! sidecar takes mutual TLS only (STRICT), both (PERMISSIVE) or plaintext
//! only (DISABLE), per workload, namespace or mesh, and per port.

use super::WorkloadSelector;
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PeerAuthenticationSpec {
    pub selector: Option<WorkloadSelector>,
    pub mtls: Option<PeerMtls>,
    /// Workload port to its mode; only with a selector.
    #[serde(default)]
    pub port_level_mtls: BTreeMap<String, PeerMtls>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PeerMtls {
    /// `UNSET` (inherit), `DISABLE`, `PERMISSIVE` or `STRICT`.
    pub mode: Option<String>,
}

/// What a sidecar's inbound listener takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MtlsMode {
    /// Mutual TLS and plaintext (Istio's default).
    Permissive,
    /// Mutual TLS only.
    Strict,
    /// Plaintext only.
    Disable,
}

impl PeerMtls {
    /// The mode; `None` for `UNSET` or no mode (inherit), `Err` for a value
    /// Istio does not know.
    pub fn mode(&self) -> Result<Option<MtlsMode>, &str> {
        match self.mode.as_deref().unwrap_or("UNSET") {
            "UNSET" => Ok(None),
            "PERMISSIVE" => Ok(Some(MtlsMode::Permissive)),
            "STRICT" => Ok(Some(MtlsMode::Strict)),
            "DISABLE" => Ok(Some(MtlsMode::Disable)),
            other => Err(other),
        }
    }
}

impl PeerAuthenticationSpec {
    /// The policy's own mode at `port` (a workload port): the port's, else
    /// the policy's; `None` when both inherit.
    pub fn mode_at(&self, port: Option<u16>) -> Option<MtlsMode> {
        let at_port = port.and_then(|p| self.port_level_mtls.get(&p.to_string())).and_then(|m| m.mode().ok().flatten());
        at_port.or_else(|| self.mtls.as_ref().and_then(|m| m.mode().ok().flatten()))
    }
}
