//! Istio's `RequestAuthentication` (security.istio.io): the JSON Web Tokens
//! a workload accepts, from which issuers, found where. A request with an
//! invalid token is refused (401); one with none passes, and authorization
//! decides (`requestPrincipals`, `request.auth.*`).

use super::{Duration, PolicyTargetRef, WorkloadSelector};
use serde::Deserialize;

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestAuthenticationSpec {
    pub selector: Option<WorkloadSelector>,
    pub target_ref: Option<PolicyTargetRef>,
    #[serde(default)]
    pub target_refs: Vec<PolicyTargetRef>,
    #[serde(default)]
    pub jwt_rules: Vec<JwtRule>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JwtRule {
    #[serde(default)]
    pub issuer: String,
    /// Any of these in the token's `aud`; none: any audience.
    #[serde(default)]
    pub audiences: Vec<String>,
    /// Where the issuer's JSON Web Key Set is (else OpenID discovery from the issuer).
    pub jwks_uri: Option<String>,
    /// The key set itself, inline (wins over `jwksUri`).
    pub jwks: Option<String>,
    /// Headers the token may come in; with `fromParams` and `fromCookies`
    /// all empty: `Authorization: Bearer` and the `access_token` parameter.
    #[serde(default)]
    pub from_headers: Vec<JwtHeader>,
    #[serde(default)]
    pub from_params: Vec<String>,
    #[serde(default)]
    pub from_cookies: Vec<String>,
    /// A header to carry the verified token's payload (base64url JSON).
    pub output_payload_to_header: Option<String>,
    /// Whether the token goes on to the app (removed by default).
    #[serde(default)]
    pub forward_original_token: bool,
    #[serde(default)]
    pub output_claim_to_headers: Vec<ClaimToHeader>,
    /// How long fetching the key set may take (default 5 s).
    pub timeout: Option<Duration>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JwtHeader {
    #[serde(default)]
    pub name: String,
    /// Stripped from the value first (`Bearer `); the value must start with it.
    pub prefix: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClaimToHeader {
    #[serde(default)]
    pub header: String,
    #[serde(default)]
    pub claim: String,
}
