//! The shape of each kind's document (`apiVersion`, `kind`, `metadata`,
//! then `spec` or the kind's own top-level fields), and every field path
//! each kind accepts, from those types.

pub use crate::schema::Structs;
use crate::types::*;
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Doc<S> {
    #[allow(dead_code)]
    pub(crate) api_version: String,
    #[allow(dead_code)]
    pub(crate) kind: String,
    #[serde(default)]
    pub(crate) metadata: ObjectMeta,
    pub(crate) spec: Option<S>,
    #[allow(dead_code)]
    pub(crate) status: Option<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct EndpointsDoc {
    #[allow(dead_code)]
    pub(crate) api_version: String,
    #[allow(dead_code)]
    pub(crate) kind: String,
    #[serde(default)]
    pub(crate) metadata: ObjectMeta,
    #[serde(default)]
    pub(crate) subsets: Vec<EndpointSubset>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct EndpointSliceDoc {
    #[allow(dead_code)]
    pub(crate) api_version: String,
    #[allow(dead_code)]
    pub(crate) kind: String,
    #[serde(default)]
    pub(crate) metadata: ObjectMeta,
    pub(crate) address_type: Option<String>,
    #[serde(default)]
    pub(crate) endpoints: Vec<SliceEndpoint>,
    #[serde(default)]
    pub(crate) ports: Vec<EndpointPort>,
}

/// Every struct of `kind`'s document by its path, with its field names;
/// None for a kind weft does not read.
pub fn structs(kind: &str) -> Option<Structs> {
    use crate::schema::structs as of;
    Some(match kind {
        "Service" => of::<Doc<ServiceSpec>>(),
        "Endpoints" => of::<EndpointsDoc>(),
        "EndpointSlice" => of::<EndpointSliceDoc>(),
        "Gateway" => of::<Doc<GatewaySpec>>(),
        "VirtualService" => of::<Doc<VirtualServiceSpec>>(),
        "DestinationRule" => of::<Doc<DestinationRuleSpec>>(),
        "ServiceEntry" => of::<Doc<ServiceEntrySpec>>(),
        "WorkloadEntry" => of::<Doc<WorkloadEntrySpec>>(),
        "Workload" => of::<Doc<WorkloadSpec>>(),
        "Sidecar" => of::<Doc<SidecarSpec>>(),
        "AuthorizationPolicy" => of::<Doc<AuthorizationPolicySpec>>(),
        "PeerAuthentication" => of::<Doc<PeerAuthenticationSpec>>(),
        "RequestAuthentication" => of::<Doc<RequestAuthenticationSpec>>(),
        "Telemetry" => of::<Doc<TelemetrySpec>>(),
        "GatewayClass" => of::<Doc<gateway_api::GatewayClassSpec>>(),
        crate::gateway_api::GATEWAY_KIND => of::<Doc<gateway_api::KubeGatewaySpec>>(),
        "HTTPRoute" => of::<Doc<gateway_api::KubeHttpRouteSpec>>(),
        "ReferenceGrant" => of::<Doc<gateway_api::ReferenceGrantSpec>>(),
        "GRPCRoute" => of::<Doc<gateway_api::GrpcRouteSpec>>(),
        "TCPRoute" => of::<Doc<gateway_api::TcpRouteSpec>>(),
        "TLSRoute" => of::<Doc<gateway_api::TlsRouteSpec>>(),
        _ => return None,
    })
}

/// Every field path `kind` accepts, from its types (`spec.http[].route[].weight`;
/// `[]` is any list index, `*` any map key); None for a kind weft does not read.
pub fn field_paths(kind: &str) -> Option<Vec<String>> {
    structs(kind).map(|s| crate::schema::field_paths(&s))
}
