//! `Gateway`: the ports, protocols and hosts an edge proxy serves.

use super::Labels;
use serde::Deserialize;

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GatewaySpec {
    /// Labels of the gateway workloads this applies to; empty = all.
    #[serde(default)]
    pub selector: Labels,
    #[serde(default)]
    pub servers: Vec<Server>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Server {
    pub port: GatewayPort,
    pub bind: Option<String>,
    #[serde(default)]
    pub hosts: Vec<String>,
    pub tls: Option<ServerTlsSettings>,
    pub default_endpoint: Option<String>,
    pub name: Option<String>,
}

/// The server protocols a gateway serves with an HTTP listener.
pub const HTTP_PROTOCOLS: &[&str] = &["HTTP", "HTTP2", "GRPC", "GRPC-WEB"];
/// The server protocols a gateway serves with a TCP listener (`TLS` passed
/// through, routed by SNI, or ended then routed as TCP).
pub const TCP_PROTOCOLS: &[&str] = &["TCP", "MONGO", "TLS"];

impl Server {
    /// Whether a gateway serves this server: HTTP, or TCP (see [`Server::tcp`]).
    pub fn served(&self) -> bool {
        self.http() || self.tcp()
    }

    /// Served with an HTTP listener: an HTTP protocol, or HTTPS whose TLS
    /// the gateway terminates (`terminates`).
    pub fn http(&self) -> bool {
        HTTP_PROTOCOLS.contains(&self.port.protocol.to_ascii_uppercase().as_str()) || self.terminates().is_some()
    }

    /// The TLS mode of an HTTPS server the gateway terminates: `SIMPLE` (a
    /// server certificate), `MUTUAL` (and a client certificate of its CA),
    /// `OPTIONAL_MUTUAL` (one checked if shown), `ISTIO_MUTUAL` (the mesh's).
    pub fn terminates(&self) -> Option<TlsTermination> {
        if !self.port.protocol.eq_ignore_ascii_case("HTTPS") {
            return None;
        }
        self.termination()
    }

    /// The TLS mode of a TLS server the gateway terminates before routing
    /// its bytes by the VirtualServices' `tcp` rules (as `terminates`).
    pub fn terminates_tcp(&self) -> Option<TlsTermination> {
        // Named, never by default: Istio's default mode is PASSTHROUGH.
        if !self.port.protocol.eq_ignore_ascii_case("TLS") || self.tls.as_ref()?.mode.is_none() {
            return None;
        }
        self.termination()
    }

    /// The TLS a gateway ends on this server, HTTPS or TLS.
    pub fn terminates_any(&self) -> Option<TlsTermination> {
        self.terminates().or_else(|| self.terminates_tcp())
    }

    fn termination(&self) -> Option<TlsTermination> {
        match self.tls.as_ref()?.mode.as_deref().unwrap_or("SIMPLE").to_ascii_uppercase().as_str() {
            "SIMPLE" => Some(TlsTermination::Simple),
            "MUTUAL" => Some(TlsTermination::Mutual),
            "OPTIONAL_MUTUAL" => Some(TlsTermination::OptionalMutual),
            "ISTIO_MUTUAL" => Some(TlsTermination::IstioMutual),
            _ => None,
        }
    }

    /// Plain HTTP redirected to HTTPS (`tls.httpsRedirect`).
    pub fn https_redirect(&self) -> bool {
        self.tls.as_ref().is_some_and(|t| t.https_redirect)
    }

    /// Served with a TCP listener: TCP (and MONGO, proxied as TCP), TLS
    /// (or HTTPS, as Istio takes it) passed through, routed by SNI, or TLS
    /// ended then routed as TCP.
    pub fn tcp(&self) -> bool {
        match self.port.protocol.to_ascii_uppercase().as_str() {
            "TCP" | "MONGO" => true,
            "TLS" => self.passthrough() || self.auto_passthrough() || self.terminates_tcp().is_some(),
            "HTTPS" => self.passthrough() || self.auto_passthrough(),
            _ => false,
        }
    }

    /// TLS passed through (`tls.mode: PASSTHROUGH`) by the VirtualServices'
    /// `tls` rules.
    pub fn passthrough(&self) -> bool {
        self.tls_mode("PASSTHROUGH")
    }

    /// Mesh mutual TLS passed through by its server name alone
    /// (`AUTO_PASSTHROUGH`: `outbound_.<port>_.<subset>_.<host>`, the
    /// east-west gateway of Istio's multi-network meshes).
    pub fn auto_passthrough(&self) -> bool {
        self.tls_mode("AUTO_PASSTHROUGH")
    }

    fn tls_mode(&self, mode: &str) -> bool {
        self.tls.as_ref().and_then(|t| t.mode.as_deref()).is_some_and(|m| m.eq_ignore_ascii_case(mode))
    }
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GatewayPort {
    pub number: u16,
    #[serde(default)]
    pub protocol: String,
    #[serde(default)]
    pub name: String,
    pub target_port: Option<u16>,
}

/// How a gateway terminates an HTTPS server's TLS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsTermination {
    Simple,
    Mutual,
    /// A client certificate is checked when one is shown.
    OptionalMutual,
    /// The gateway's mesh certificate; clients show theirs (east-west).
    IstioMutual,
}

impl TlsTermination {
    /// Whether clients' certificates are checked against a CA the server names.
    pub fn needs_ca(self) -> bool {
        matches!(self, TlsTermination::Mutual | TlsTermination::OptionalMutual)
    }
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerTlsSettings {
    #[serde(default)]
    pub https_redirect: bool,
    /// `PASSTHROUGH`, `SIMPLE`, `MUTUAL`, `AUTO_PASSTHROUGH`, `ISTIO_MUTUAL`, `OPTIONAL_MUTUAL`.
    pub mode: Option<String>,
    pub server_certificate: Option<String>,
    pub private_key: Option<String>,
    pub ca_certificates: Option<String>,
    pub ca_crl: Option<String>,
    pub credential_name: Option<String>,
    #[serde(default)]
    pub credential_names: Vec<String>,
    #[serde(default)]
    pub subject_alt_names: Vec<String>,
    #[serde(default)]
    pub verify_certificate_spki: Vec<String>,
    #[serde(default)]
    pub verify_certificate_hash: Vec<String>,
    pub min_protocol_version: Option<String>,
    pub max_protocol_version: Option<String>,
    #[serde(default)]
    pub cipher_suites: Vec<String>,
}
