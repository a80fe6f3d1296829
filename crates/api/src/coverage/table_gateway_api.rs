//! The coverage table's rows for the Kubernetes Gateway API's kinds (see
//! `table.rs`); they are lowered into Istio's (`crate::gateway_api`).

use super::Support::*;
use super::{Field, row};
use crate::gateway_api::GATEWAY_KIND as GW;

const ROUTES: &str = "gateway_api.rs::a_gateway_api_gateway_routes_by_httproutes";
const HTTPS: &str = "gateway_api.rs::an_https_listener_terminates_with_its_certificate_refs";
const MESH: &str = "gateway_api.rs::an_httproute_on_a_service_routes_mesh_traffic";
const EXAMPLE: &str = "up_examples.rs::gateway_api_example_splits_by_weight_and_pins_by_header";
const OTHER_NAMESPACE_SECRET: &str = "a Secret of another namespace is not read, even with a ReferenceGrant: \
     the listener is not served (said as the Gateway's status)";
const NO_L4: &str = "TLS, TCP and UDP listeners take TLSRoutes, TCPRoutes or UDPRoutes, which weft does not read yet: \
     the listener is not served (an Istio Gateway with VirtualService `tls`/`tcp` rules is)";
const FILTERS: &[&str] =
    &["RequestHeaderModifier", "ResponseHeaderModifier", "RequestRedirect", "URLRewrite", "RequestMirror"];

pub static GATEWAY_API: &[Field] = &[
    row("GatewayClass", "spec", Applied(ROUTES)),
    row("GatewayClass", "spec.controllerName", Applied(ROUTES)),
    row("GatewayClass", "spec.description", Bookkeeping),
    row("GatewayClass", "spec.parametersRef", NotApplied("weft up runs the gateway with its own settings")),
    row(GW, "spec", Applied(ROUTES)),
    row(GW, "spec.gatewayClassName", Applied(ROUTES)),
    row(GW, "spec.addresses", NotApplied("the gateway listens where weft up (or `weft gateway --listen-ip`) puts it")),
    row(GW, "spec.infrastructure", NotApplied("weft up names and labels the gateway after the Gateway")),
    row(GW, "spec.backendTls", NotApplied("connections to backends use the mesh's mutual TLS")),
    row(GW, "spec.listeners", Applied(ROUTES)),
    row(GW, "spec.listeners[].name", Applied(ROUTES)),
    row(GW, "spec.listeners[].port", Applied(ROUTES)),
    row(GW, "spec.listeners[].protocol", Values(&["HTTP", "HTTPS"], NO_L4)),
    row(GW, "spec.listeners[].hostname", Applied(ROUTES)),
    row(GW, "spec.listeners[].allowedRoutes", Applied(ROUTES)),
    row(GW, "spec.listeners[].allowedRoutes.namespaces", Applied(ROUTES)),
    row(
        GW,
        "spec.listeners[].allowedRoutes.namespaces.from",
        Values(&["Same", "All"], "namespace selectors are not read yet: only routes of the Gateway's namespace attach"),
    ),
    // Used only with `from: Selector`, which is warned of.
    row(GW, "spec.listeners[].allowedRoutes.namespaces.selector", Bookkeeping),
    row(GW, "spec.listeners[].allowedRoutes.kinds", Applied(ROUTES)),
    row(GW, "spec.listeners[].allowedRoutes.kinds[].kind", Applied(ROUTES)),
    row(GW, "spec.listeners[].allowedRoutes.kinds[].group", Bookkeeping),
    row(GW, "spec.listeners[].tls", Applied(HTTPS)),
    row(
        GW,
        "spec.listeners[].tls.mode",
        Values(&["Terminate"], "Passthrough needs TLSRoutes, which weft does not read yet: the listener is not served"),
    ),
    row(GW, "spec.listeners[].tls.certificateRefs", Applied(HTTPS)),
    row(GW, "spec.listeners[].tls.certificateRefs[].name", Applied(HTTPS)),
    row(GW, "spec.listeners[].tls.certificateRefs[].namespace", Partial(HTTPS, OTHER_NAMESPACE_SECRET)),
    row(GW, "spec.listeners[].tls.certificateRefs[].group", Values(&["", "core"], "only Secrets are read")),
    row(
        GW,
        "spec.listeners[].tls.certificateRefs[].kind",
        Values(&["Secret"], "only Secrets are read: the listener is not served"),
    ),
    row(
        GW,
        "spec.listeners[].tls.frontendValidation",
        NotApplied("clients are not asked for certificates; an Istio Gateway with `tls.mode: MUTUAL` asks"),
    ),
    row(GW, "spec.listeners[].tls.options", NotApplied("weft's TLS defaults apply")),
    row("HTTPRoute", "spec", Applied(ROUTES)),
    row("HTTPRoute", "spec.hostnames", Applied(ROUTES)),
    row("HTTPRoute", "spec.parentRefs", Applied(ROUTES)),
    row("HTTPRoute", "spec.parentRefs[].name", Applied(ROUTES)),
    row("HTTPRoute", "spec.parentRefs[].namespace", Applied(ROUTES)),
    row("HTTPRoute", "spec.parentRefs[].sectionName", Applied(ROUTES)),
    row("HTTPRoute", "spec.parentRefs[].group", Applied(MESH)),
    row("HTTPRoute", "spec.parentRefs[].kind", Applied(MESH)),
    row("HTTPRoute", "spec.parentRefs[].port", Applied(MESH)),
    row("HTTPRoute", "spec.rules", Applied(ROUTES)),
    row("HTTPRoute", "spec.rules[].name", Bookkeeping),
    row("HTTPRoute", "spec.rules[].matches", Applied(ROUTES)),
    row("HTTPRoute", "spec.rules[].matches[].path", Applied(ROUTES)),
    row(
        "HTTPRoute",
        "spec.rules[].matches[].path.type",
        Values(&["Exact", "PathPrefix", "RegularExpression"], "it is taken as PathPrefix"),
    ),
    row("HTTPRoute", "spec.rules[].matches[].path.value", Applied(ROUTES)),
    row("HTTPRoute", "spec.rules[].matches[].method", Applied(ROUTES)),
    row("HTTPRoute", "spec.rules[].matches[].headers", Applied(ROUTES)),
    row("HTTPRoute", "spec.rules[].matches[].queryParams", Applied(ROUTES)),
    // A path modifier's fields, before the rows of headers' and query
    // parameters' fields, which would take them.
    row("HTTPRoute", "**.path.type", Applied(ROUTES)),
    row("HTTPRoute", "**.path.replaceFullPath", Applied(ROUTES)),
    row("HTTPRoute", "**.path.replacePrefixMatch", Applied(ROUTES)),
    row("HTTPRoute", "**.name", Applied(ROUTES)),
    row("HTTPRoute", "**.value", Applied(ROUTES)),
    row("HTTPRoute", "**.type", Values(&["Exact", "RegularExpression"], "it is taken as Exact")),
    row("HTTPRoute", "spec.rules[].filters", Applied(ROUTES)),
    row("HTTPRoute", "spec.rules[].filters[].type", Values(FILTERS, "the rule is served without it")),
    row("HTTPRoute", "**.requestHeaderModifier", Applied(ROUTES)),
    row("HTTPRoute", "**.responseHeaderModifier", Applied(ROUTES)),
    row("HTTPRoute", "**.set", Applied(ROUTES)),
    row("HTTPRoute", "**.add", Applied(ROUTES)),
    row("HTTPRoute", "**.remove", Applied(ROUTES)),
    row("HTTPRoute", "spec.rules[].filters[].requestRedirect", Applied(ROUTES)),
    row("HTTPRoute", "spec.rules[].filters[].requestRedirect.scheme", Applied(ROUTES)),
    row("HTTPRoute", "spec.rules[].filters[].requestRedirect.hostname", Applied(ROUTES)),
    row("HTTPRoute", "spec.rules[].filters[].requestRedirect.port", Applied(ROUTES)),
    row("HTTPRoute", "spec.rules[].filters[].requestRedirect.statusCode", Applied(ROUTES)),
    row("HTTPRoute", "spec.rules[].filters[].requestRedirect.path", Applied(ROUTES)),
    row("HTTPRoute", "spec.rules[].filters[].urlRewrite", Applied(ROUTES)),
    row("HTTPRoute", "spec.rules[].filters[].urlRewrite.hostname", Applied(ROUTES)),
    row("HTTPRoute", "spec.rules[].filters[].urlRewrite.path", Applied(ROUTES)),
    row("HTTPRoute", "spec.rules[].filters[].requestMirror", Applied(MESH)),
    row("HTTPRoute", "spec.rules[].filters[].requestMirror.backendRef", Applied(MESH)),
    row("HTTPRoute", "spec.rules[].filters[].requestMirror.backendRef.group", Applied(MESH)),
    row("HTTPRoute", "spec.rules[].filters[].requestMirror.backendRef.kind", Applied(MESH)),
    row("HTTPRoute", "spec.rules[].filters[].requestMirror.backendRef.namespace", Untested),
    row("HTTPRoute", "spec.rules[].filters[].requestMirror.backendRef.port", Applied(MESH)),
    row("HTTPRoute", "spec.rules[].filters[].requestMirror.percent", Applied(MESH)),
    row("HTTPRoute", "spec.rules[].filters[].requestMirror.fraction", Applied(MESH)),
    row("HTTPRoute", "spec.rules[].filters[].requestMirror.fraction.numerator", Applied(MESH)),
    row("HTTPRoute", "spec.rules[].filters[].requestMirror.fraction.denominator", Applied(MESH)),
    row(
        "HTTPRoute",
        "spec.rules[].filters[].extensionRef",
        NotApplied("weft has no extension filters: the rule is served without it"),
    ),
    row(
        "HTTPRoute",
        "spec.rules[].filters[].cors",
        NotApplied(
            "an HTTPRoute's CORS filter is not read: the rule is served without it (a VirtualService `corsPolicy` is)",
        ),
    ),
    row("HTTPRoute", "spec.rules[].backendRefs", Applied(ROUTES)),
    row("HTTPRoute", "spec.rules[].backendRefs[].group", Applied(ROUTES)),
    row("HTTPRoute", "spec.rules[].backendRefs[].kind", Applied(ROUTES)),
    row("HTTPRoute", "spec.rules[].backendRefs[].namespace", Applied(ROUTES)),
    row("HTTPRoute", "spec.rules[].backendRefs[].port", Applied(ROUTES)),
    row("HTTPRoute", "spec.rules[].backendRefs[].weight", Applied(EXAMPLE)),
    row("HTTPRoute", "spec.rules[].backendRefs[].filters", Applied(ROUTES)),
    row(
        "HTTPRoute",
        "spec.rules[].backendRefs[].filters[].type",
        Values(&["RequestHeaderModifier", "ResponseHeaderModifier"], "a single backend takes only header filters"),
    ),
    row("HTTPRoute", "spec.rules[].backendRefs[].filters[].requestRedirect", NotApplied(ON_A_BACKEND)),
    row("HTTPRoute", "spec.rules[].backendRefs[].filters[].urlRewrite", NotApplied(ON_A_BACKEND)),
    row("HTTPRoute", "spec.rules[].backendRefs[].filters[].requestMirror", NotApplied(ON_A_BACKEND)),
    row("HTTPRoute", "spec.rules[].backendRefs[].filters[].extensionRef", NotApplied(ON_A_BACKEND)),
    row("HTTPRoute", "spec.rules[].backendRefs[].filters[].cors", NotApplied(ON_A_BACKEND)),
    row("HTTPRoute", "spec.rules[].timeouts", Applied(ROUTES)),
    row("HTTPRoute", "spec.rules[].timeouts.request", Applied(ROUTES)),
    row("HTTPRoute", "spec.rules[].timeouts.backendRequest", Applied(MESH)),
    row("HTTPRoute", "spec.rules[].retry", Applied(MESH)),
    row("HTTPRoute", "spec.rules[].retry.attempts", Applied(MESH)),
    row("HTTPRoute", "spec.rules[].retry.codes", Applied(MESH)),
    row("HTTPRoute", "spec.rules[].retry.backoff", NotApplied("retries back off as weft's proxies do by default")),
    row(
        "HTTPRoute",
        "spec.rules[].sessionPersistence",
        NotApplied("requests are balanced without it; a DestinationRule `consistentHash` keeps sessions"),
    ),
    row("ReferenceGrant", "spec", Applied(ROUTES)),
    row("ReferenceGrant", "spec.from", Applied(ROUTES)),
    row("ReferenceGrant", "spec.from[].group", Applied(ROUTES)),
    row("ReferenceGrant", "spec.from[].kind", Applied(ROUTES)),
    row("ReferenceGrant", "spec.from[].namespace", Applied(ROUTES)),
    row("ReferenceGrant", "spec.to", Applied(ROUTES)),
    row("ReferenceGrant", "spec.to[].group", Applied(ROUTES)),
    row("ReferenceGrant", "spec.to[].kind", Applied(ROUTES)),
    row("ReferenceGrant", "spec.to[].name", Applied(ROUTES)),
];

const ON_A_BACKEND: &str = "on a single backend only header filters apply: the backend is served without it";
