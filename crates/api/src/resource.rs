//! A loaded resource: its kind, metadata, typed spec and where it came from.

use crate::diag::{Diagnostic, Severity};
use crate::tree::{Node, Pos, Seg};
use crate::types::gateway_api;
use crate::types::*;
use std::sync::Arc;

/// The namespace a resource without one lives in.
pub const DEFAULT_NAMESPACE: &str = "default";

// Resources are config-time data (thousands at most); boxing every variant
// would only add noise to the many matches on them.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
pub enum Spec {
    Service(ServiceSpec),
    Endpoints(Vec<EndpointSubset>),
    EndpointSlice(EndpointSliceData),
    Gateway(GatewaySpec),
    VirtualService(VirtualServiceSpec),
    DestinationRule(DestinationRuleSpec),
    ServiceEntry(ServiceEntrySpec),
    WorkloadEntry(WorkloadEntrySpec),
    Workload(WorkloadSpec),
    Sidecar(SidecarSpec),
    AuthorizationPolicy(AuthorizationPolicySpec),
    PeerAuthentication(PeerAuthenticationSpec),
    RequestAuthentication(RequestAuthenticationSpec),
    Telemetry(TelemetrySpec),
    /// The Gateway API's kinds, lowered into Istio's by `crate::gateway_api`.
    GatewayClass(gateway_api::GatewayClassSpec),
    KubeGateway(gateway_api::KubeGatewaySpec),
    KubeHttpRoute(gateway_api::KubeHttpRouteSpec),
    ReferenceGrant(gateway_api::ReferenceGrantSpec),
    KubeGrpcRoute(gateway_api::GrpcRouteSpec),
    KubeTcpRoute(gateway_api::TcpRouteSpec),
    KubeTlsRoute(gateway_api::TlsRouteSpec),
    /// The `istio` ConfigMap of `istio-system`: Istio's MeshConfig.
    MeshConfig(MeshConfig),
    /// A Kubernetes object that runs pods: its pods' labels, account, ports.
    Pods(PodsSpec),
    Secret(SecretSpec),
    /// A kind kept as information (ServiceAccount, ConfigMap...).
    Inert(&'static str),
}

#[derive(Clone, Debug, Default)]
pub struct EndpointSliceData {
    pub address_type: Option<String>,
    pub endpoints: Vec<SliceEndpoint>,
    pub ports: Vec<EndpointPort>,
}

/// Where a resource was read from, for diagnostics found after parsing.
#[derive(Clone, Debug)]
pub struct Origin {
    pub file: Arc<str>,
    pub node: Arc<Node>,
    /// For a resource lowered from another (an Istio VirtualService from an
    /// HTTPRoute), that one's key.
    pub derived_from: Option<Arc<str>>,
}

#[derive(Clone, Debug)]
pub struct Resource {
    pub api_version: String,
    pub meta: ObjectMeta,
    pub spec: Spec,
    pub origin: Origin,
}

impl Spec {
    pub fn kind(&self) -> &'static str {
        match self {
            Spec::Service(_) => "Service",
            Spec::Endpoints(_) => "Endpoints",
            Spec::EndpointSlice(_) => "EndpointSlice",
            Spec::Gateway(_) => "Gateway",
            Spec::VirtualService(_) => "VirtualService",
            Spec::DestinationRule(_) => "DestinationRule",
            Spec::ServiceEntry(_) => "ServiceEntry",
            Spec::WorkloadEntry(_) => "WorkloadEntry",
            Spec::Workload(_) => "Workload",
            Spec::Sidecar(_) => "Sidecar",
            Spec::AuthorizationPolicy(_) => "AuthorizationPolicy",
            Spec::PeerAuthentication(_) => "PeerAuthentication",
            Spec::RequestAuthentication(_) => "RequestAuthentication",
            Spec::Telemetry(_) => "Telemetry",
            Spec::GatewayClass(_) => "GatewayClass",
            Spec::KubeGateway(_) => crate::gateway_api::GATEWAY_KIND,
            Spec::KubeHttpRoute(_) => "HTTPRoute",
            Spec::ReferenceGrant(_) => "ReferenceGrant",
            Spec::KubeGrpcRoute(_) => "GRPCRoute",
            Spec::KubeTcpRoute(_) => "TCPRoute",
            Spec::KubeTlsRoute(_) => "TLSRoute",
            Spec::MeshConfig(_) => "ConfigMap",
            Spec::Pods(p) => p.kind,
            Spec::Secret(_) => "Secret",
            Spec::Inert(kind) => kind,
        }
    }
}

impl Resource {
    pub fn kind(&self) -> &'static str {
        self.spec.kind()
    }

    pub fn name(&self) -> &str {
        &self.meta.name
    }

    pub fn namespace(&self) -> &str {
        self.meta.namespace.as_deref().unwrap_or(DEFAULT_NAMESPACE)
    }

    /// `Kind/namespace/name`, unique within a config.
    pub fn key(&self) -> String {
        format!("{}/{}/{}", self.kind(), self.namespace(), self.name())
    }

    pub fn pos(&self, path: &[Seg]) -> Pos {
        self.origin.node.pos_of(path)
    }

    /// A diagnostic about the field at `path` (written `spec.http[0].route`).
    pub fn diag(
        &self,
        severity: Severity,
        code: &'static str,
        path: &str,
        message: impl Into<String>,
        hint: Option<String>,
    ) -> Diagnostic {
        let segs = parse_path(path);
        Diagnostic {
            severity,
            code,
            file: self.origin.file.clone(),
            pos: self.pos(&segs),
            resource: Some(self.key()),
            path: path.to_owned(),
            message: message.into(),
            hint,
        }
    }
}

/// Parses `spec.http[0].route` into segments; a key holding dots is
/// written quoted in brackets: `metadata.annotations["a.b/c"]`.
pub fn parse_path(path: &str) -> Vec<Seg> {
    let mut segs = Vec::new();
    let mut rest = path;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix("[\"") {
            let end = r.find("\"]").unwrap_or(r.len());
            segs.push(Seg::Key(r[..end].to_owned()));
            rest = r.get(end + 2..).unwrap_or("");
        } else if let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']').unwrap_or(r.len());
            if let Ok(n) = r[..end].parse() {
                segs.push(Seg::Index(n));
            }
            rest = r.get(end + 1..).unwrap_or("");
        } else if let Some(r) = rest.strip_prefix('.') {
            rest = r;
        } else {
            let end = rest.find(['.', '[']).unwrap_or(rest.len());
            segs.push(Seg::Key(rest[..end].to_owned()));
            rest = &rest[end..];
        }
    }
    segs
}

/// Hostnames a Kubernetes-style service answers to.
pub fn service_fqdn(name: &str, namespace: &str) -> String {
    format!("{name}.{namespace}.svc.cluster.local")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_paths() {
        assert_eq!(
            parse_path("spec.http[0].route[12].destination"),
            vec![
                Seg::Key("spec".into()),
                Seg::Key("http".into()),
                Seg::Index(0),
                Seg::Key("route".into()),
                Seg::Index(12),
                Seg::Key("destination".into())
            ]
        );
    }
}
