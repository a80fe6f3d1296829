//! The coverage table's rows for Istio's `AuthorizationPolicy` and
//! `PeerAuthentication` (see `table.rs`).

use super::Support::*;
use super::{Field, row};

const MATRIX: &str = "authz.rs::policies_decide_by_identity_request_and_conditions";
const JWT: &str = "jwt.rs::tokens_are_checked_and_their_claims_authorize";
const TARGET: &str = "gateway_api.rs::a_gateway_api_gateway_routes_by_httproutes";
/// What a target reference to anything but a Gateway API gateway does.
pub(super) const NOT_A_GATEWAY: &str = "only a Gateway API Gateway of the policy's namespace is a target here \
     (weft runs no waypoints): the policy applies to no workload";
const NO_CUSTOM: &str =
    "CUSTOM asks an external authorizer (ext_authz), which weft's proxies do not run: the policy is not applied";

pub static AUTHZ: &[Field] = &[
    row("AuthorizationPolicy", "spec", Applied(MATRIX)),
    row("AuthorizationPolicy", "spec.selector", Applied(MATRIX)),
    row("AuthorizationPolicy", "spec.selector.matchLabels", Applied(MATRIX)),
    row("AuthorizationPolicy", "spec.targetRef", Applied(TARGET)),
    row("AuthorizationPolicy", "spec.targetRef.kind", Values(&["Gateway"], NOT_A_GATEWAY)),
    row("AuthorizationPolicy", "spec.targetRef.group", Values(&[crate::gateway_api::GROUP], NOT_A_GATEWAY)),
    row("AuthorizationPolicy", "spec.targetRef.name", Applied(TARGET)),
    row("AuthorizationPolicy", "spec.targetRef.namespace", Applied(TARGET)),
    row("AuthorizationPolicy", "spec.targetRefs", Applied(TARGET)),
    row("AuthorizationPolicy", "spec.targetRefs[].kind", Values(&["Gateway"], NOT_A_GATEWAY)),
    row("AuthorizationPolicy", "spec.targetRefs[].group", Values(&[crate::gateway_api::GROUP], NOT_A_GATEWAY)),
    row("AuthorizationPolicy", "spec.targetRefs[].name", Applied(TARGET)),
    row("AuthorizationPolicy", "spec.targetRefs[].namespace", Applied(TARGET)),
    row("AuthorizationPolicy", "spec.action", Values(&["ALLOW", "DENY", "AUDIT"], NO_CUSTOM)),
    row("AuthorizationPolicy", "spec.provider", NotApplied(NO_CUSTOM)),
    row("AuthorizationPolicy", "spec.rules", Applied(MATRIX)),
    row("AuthorizationPolicy", "spec.rules[].from", Applied(MATRIX)),
    row("AuthorizationPolicy", "spec.rules[].from[].source", Applied(MATRIX)),
    row("AuthorizationPolicy", "spec.rules[].from[].source.principals", Applied(MATRIX)),
    row("AuthorizationPolicy", "spec.rules[].from[].source.notPrincipals", Applied(MATRIX)),
    row("AuthorizationPolicy", "spec.rules[].from[].source.requestPrincipals", Applied(JWT)),
    row("AuthorizationPolicy", "spec.rules[].from[].source.notRequestPrincipals", Applied(JWT)),
    row("AuthorizationPolicy", "spec.rules[].from[].source.namespaces", Applied(MATRIX)),
    row("AuthorizationPolicy", "spec.rules[].from[].source.notNamespaces", Applied(MATRIX)),
    row("AuthorizationPolicy", "spec.rules[].from[].source.serviceAccounts", Applied(MATRIX)),
    row("AuthorizationPolicy", "spec.rules[].from[].source.notServiceAccounts", Applied(MATRIX)),
    row("AuthorizationPolicy", "spec.rules[].from[].source.ipBlocks", Applied(MATRIX)),
    row("AuthorizationPolicy", "spec.rules[].from[].source.notIpBlocks", Applied(MATRIX)),
    row("AuthorizationPolicy", "spec.rules[].from[].source.remoteIpBlocks", Applied(MATRIX)),
    row("AuthorizationPolicy", "spec.rules[].from[].source.notRemoteIpBlocks", Applied(MATRIX)),
    row("AuthorizationPolicy", "spec.rules[].to", Applied(MATRIX)),
    row("AuthorizationPolicy", "spec.rules[].to[].operation", Applied(MATRIX)),
    row("AuthorizationPolicy", "spec.rules[].to[].operation.hosts", Applied(MATRIX)),
    row("AuthorizationPolicy", "spec.rules[].to[].operation.notHosts", Applied(MATRIX)),
    row("AuthorizationPolicy", "spec.rules[].to[].operation.ports", Applied(MATRIX)),
    row("AuthorizationPolicy", "spec.rules[].to[].operation.notPorts", Applied(MATRIX)),
    row("AuthorizationPolicy", "spec.rules[].to[].operation.methods", Applied(MATRIX)),
    row("AuthorizationPolicy", "spec.rules[].to[].operation.notMethods", Applied(MATRIX)),
    row("AuthorizationPolicy", "spec.rules[].to[].operation.paths", Applied(MATRIX)),
    row("AuthorizationPolicy", "spec.rules[].to[].operation.notPaths", Applied(MATRIX)),
    row("AuthorizationPolicy", "spec.rules[].when", Applied(MATRIX)),
    row("AuthorizationPolicy", "spec.rules[].when[].key", Applied(MATRIX)),
    row("AuthorizationPolicy", "spec.rules[].when[].values", Applied(MATRIX)),
    row("AuthorizationPolicy", "spec.rules[].when[].notValues", Applied(MATRIX)),
];

const MODES: &str = "authz.rs::peer_authentication_decides_what_a_sidecar_takes";

pub static PEER_AUTH: &[Field] = &[
    row("PeerAuthentication", "spec", Applied(MODES)),
    row("PeerAuthentication", "spec.selector", Applied(MODES)),
    row("PeerAuthentication", "spec.selector.matchLabels", Applied(MODES)),
    row("PeerAuthentication", "spec.mtls", Applied(MODES)),
    row("PeerAuthentication", "spec.mtls.mode", Applied(MODES)),
    row("PeerAuthentication", "spec.portLevelMtls", Applied(MODES)),
    row("PeerAuthentication", "spec.portLevelMtls.*.mode", Applied(MODES)),
];

pub static REQUEST_AUTH: &[Field] = &[
    row("RequestAuthentication", "spec", Applied(JWT)),
    row("RequestAuthentication", "spec.selector", Applied(JWT)),
    row("RequestAuthentication", "spec.selector.matchLabels", Applied(JWT)),
    row("RequestAuthentication", "spec.targetRef", Untested),
    row("RequestAuthentication", "spec.targetRef.kind", Values(&["Gateway"], NOT_A_GATEWAY)),
    row("RequestAuthentication", "spec.targetRef.group", Values(&[crate::gateway_api::GROUP], NOT_A_GATEWAY)),
    row("RequestAuthentication", "spec.targetRef.name", Untested),
    row("RequestAuthentication", "spec.targetRef.namespace", Untested),
    row("RequestAuthentication", "spec.targetRefs", Untested),
    row("RequestAuthentication", "spec.targetRefs[].kind", Values(&["Gateway"], NOT_A_GATEWAY)),
    row("RequestAuthentication", "spec.targetRefs[].group", Values(&[crate::gateway_api::GROUP], NOT_A_GATEWAY)),
    row("RequestAuthentication", "spec.targetRefs[].name", Untested),
    row("RequestAuthentication", "spec.targetRefs[].namespace", Untested),
    row("RequestAuthentication", "spec.jwtRules", Applied(JWT)),
    row("RequestAuthentication", "spec.jwtRules[].issuer", Applied(JWT)),
    row("RequestAuthentication", "spec.jwtRules[].audiences", Applied(JWT)),
    row("RequestAuthentication", "spec.jwtRules[].jwksUri", Applied(JWT)),
    row("RequestAuthentication", "spec.jwtRules[].jwks", Applied(JWT)),
    row("RequestAuthentication", "spec.jwtRules[].fromHeaders", Applied(JWT)),
    row("RequestAuthentication", "spec.jwtRules[].fromHeaders[].name", Applied(JWT)),
    row("RequestAuthentication", "spec.jwtRules[].fromHeaders[].prefix", Applied(JWT)),
    row("RequestAuthentication", "spec.jwtRules[].fromParams", Applied(JWT)),
    row("RequestAuthentication", "spec.jwtRules[].fromCookies", Applied(JWT)),
    row("RequestAuthentication", "spec.jwtRules[].outputPayloadToHeader", Applied(JWT)),
    row("RequestAuthentication", "spec.jwtRules[].forwardOriginalToken", Applied(JWT)),
    row("RequestAuthentication", "spec.jwtRules[].outputClaimToHeaders", Applied(JWT)),
    row("RequestAuthentication", "spec.jwtRules[].outputClaimToHeaders[].header", Applied(JWT)),
    row("RequestAuthentication", "spec.jwtRules[].outputClaimToHeaders[].claim", Applied(JWT)),
    row("RequestAuthentication", "spec.jwtRules[].timeout", Applied(JWT)),
];
