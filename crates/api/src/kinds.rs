//! Every kind weft accepts, under which apiVersions, and what it does with
//! it: read in full, read for its pods, kept as information, or accepted
//! with a warning that it is not applied.

/// What weft does with a kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Read field by field; every field is in the coverage table.
    Read,
    /// Runs pods (Deployment, Pod, ...): read for the pod labels, service
    /// account and container ports, so selector and subset checks know the
    /// instances a cluster will have. The rest of the manifest is not used.
    Pods,
    /// A `Secret`: one of type `kubernetes.io/tls` is read for its
    /// certificate and key.
    Secret,
    /// Kept and reported once, as information: nothing of it acts on traffic.
    Inert,
    /// Would act on traffic, and is not applied yet: a warning, with what
    /// happens instead.
    NotApplied(&'static str),
}

#[derive(Debug)]
pub struct Kind {
    pub name: &'static str,
    pub api_versions: &'static [&'static str],
    pub role: Role,
}

const CORE: &[&str] = &["v1"];
const APPS: &[&str] = &["apps/v1"];
const BATCH: &[&str] = &["batch/v1"];
const RBAC: &[&str] = &["rbac.authorization.k8s.io/v1"];
const NETWORKING: &[&str] = &["networking.istio.io/v1", "networking.istio.io/v1beta1", "networking.istio.io/v1alpha3"];
const SECURITY: &[&str] = &["security.istio.io/v1", "security.istio.io/v1beta1"];
const TELEMETRY: &[&str] = &["telemetry.istio.io/v1", "telemetry.istio.io/v1alpha1"];
const EXTENSIONS: &[&str] = &["extensions.istio.io/v1alpha1"];
const WEFT: &[&str] = &["weft.dev/v1alpha1"];

const fn kind(name: &'static str, api_versions: &'static [&'static str], role: Role) -> Kind {
    Kind { name, api_versions, role }
}

pub const KINDS: &[Kind] = &[
    kind("Service", CORE, Role::Read),
    kind("Endpoints", CORE, Role::Read),
    kind("EndpointSlice", &["discovery.k8s.io/v1"], Role::Read),
    kind("Gateway", NETWORKING, Role::Read),
    kind("VirtualService", NETWORKING, Role::Read),
    kind("DestinationRule", NETWORKING, Role::Read),
    kind("ServiceEntry", NETWORKING, Role::Read),
    kind("WorkloadEntry", NETWORKING, Role::Read),
    kind("Workload", WEFT, Role::Read),
    kind("Deployment", APPS, Role::Pods),
    kind("StatefulSet", APPS, Role::Pods),
    kind("DaemonSet", APPS, Role::Pods),
    kind("ReplicaSet", APPS, Role::Pods),
    kind("ReplicationController", CORE, Role::Pods),
    kind("Job", BATCH, Role::Pods),
    kind("CronJob", BATCH, Role::Pods),
    kind("Pod", CORE, Role::Pods),
    kind("Secret", CORE, Role::Secret),
    kind("ServiceAccount", CORE, Role::Inert),
    kind("ConfigMap", CORE, Role::Inert),
    kind("Namespace", CORE, Role::Inert),
    kind("PersistentVolumeClaim", CORE, Role::Inert),
    kind("PersistentVolume", CORE, Role::Inert),
    kind("LimitRange", CORE, Role::Inert),
    kind("ResourceQuota", CORE, Role::Inert),
    kind("Role", RBAC, Role::Inert),
    kind("RoleBinding", RBAC, Role::Inert),
    kind("ClusterRole", RBAC, Role::Inert),
    kind("ClusterRoleBinding", RBAC, Role::Inert),
    kind("HorizontalPodAutoscaler", &["autoscaling/v2", "autoscaling/v1"], Role::Inert),
    kind("PodDisruptionBudget", &["policy/v1"], Role::Inert),
    kind("PriorityClass", &["scheduling.k8s.io/v1"], Role::Inert),
    kind("StorageClass", &["storage.k8s.io/v1"], Role::Inert),
    kind("CustomResourceDefinition", &["apiextensions.k8s.io/v1"], Role::Inert),
    kind(
        "NetworkPolicy",
        &["networking.k8s.io/v1"],
        Role::NotApplied("weft does not filter traffic by NetworkPolicy; every connection it is asked to make is made"),
    ),
    kind(
        "Ingress",
        &["networking.k8s.io/v1"],
        Role::NotApplied("weft's gateways route by Istio Gateway and VirtualService; write the Ingress rules as those"),
    ),
    kind("PeerAuthentication", SECURITY, Role::Read),
    kind("AuthorizationPolicy", SECURITY, Role::Read),
    kind("RequestAuthentication", SECURITY, Role::Read),
    kind("Sidecar", NETWORKING, Role::Read),
    kind(
        "WorkloadGroup",
        NETWORKING,
        Role::NotApplied(
            "no instance is made from its template; register instances with WorkloadEntry or `weft proxy`",
        ),
    ),
    kind(
        "ProxyConfig",
        NETWORKING,
        Role::NotApplied("proxies keep their defaults (`weft proxy --help` lists the settings)"),
    ),
    kind("EnvoyFilter", NETWORKING, Role::NotApplied("weft's proxies are not Envoy; no filter is patched in")),
    kind("Telemetry", TELEMETRY, Role::Read),
    kind("WasmPlugin", EXTENSIONS, Role::NotApplied("weft's proxies do not run Wasm plugins")),
];

const GW_V1: &[&str] = &["gateway.networking.k8s.io/v1", "gateway.networking.k8s.io/v1beta1"];
const GW_ALPHA: &[&str] = &["gateway.networking.k8s.io/v1alpha2", "gateway.networking.k8s.io/v1alpha3"];

/// The Kubernetes Gateway API's kinds (`gateway.networking.k8s.io`), by
/// their names in documents; weft names its `Gateway` `Gateway.gateway.networking.k8s.io`.
pub const GATEWAY_API: &[Kind] = &[
    kind("GatewayClass", GW_V1, Role::Read),
    kind("Gateway", GW_V1, Role::Read),
    kind("HTTPRoute", GW_V1, Role::Read),
    kind("GRPCRoute", &["gateway.networking.k8s.io/v1", "gateway.networking.k8s.io/v1alpha2"], Role::Read),
    kind("TCPRoute", GW_ALPHA, Role::Read),
    kind("TLSRoute", GW_ALPHA, Role::Read),
    kind("UDPRoute", GW_ALPHA, Role::NotApplied("weft does not proxy UDP")),
    kind(
        "ReferenceGrant",
        &["gateway.networking.k8s.io/v1beta1", "gateway.networking.k8s.io/v1", "gateway.networking.k8s.io/v1alpha2"],
        Role::Read,
    ),
    kind(
        "BackendTLSPolicy",
        &["gateway.networking.k8s.io/v1", "gateway.networking.k8s.io/v1alpha3"],
        Role::NotApplied("connections to the backend use the mesh's TLS or a DestinationRule's `tls`"),
    ),
];

/// Whether `api_version` is one of the Gateway API's.
pub fn is_gateway_api(api_version: &str) -> bool {
    api_version.starts_with("gateway.networking.k8s.io/")
}

/// The kind a document of `api_version` names `name`.
pub fn lookup_in(api_version: &str, name: &str) -> Option<&'static Kind> {
    if is_gateway_api(api_version) { GATEWAY_API.iter().find(|k| k.name == name) } else { lookup(name) }
}

/// The kind named `name`.
pub fn lookup(name: &str) -> Option<&'static Kind> {
    KINDS.iter().find(|k| k.name == name)
}

/// The kind a misspelt `name` was most likely meant to be.
pub fn closest(name: &str) -> Option<&'static str> {
    let names: Vec<&'static str> = KINDS.iter().map(|k| k.name).collect();
    crate::fields::closest(&names, name)
}

/// The kinds weft reads field by field, for the unknown-kind hint.
pub fn read_kinds() -> impl Iterator<Item = &'static str> {
    KINDS.iter().filter(|k| k.role == Role::Read).map(|k| k.name)
}
