//! Envoy's JWT filter (`envoy.filters.http.jwt_authn`), compiled: each
//! provider's issuer, audiences, keys (its inline JSON Web Key Set, read by
//! `jsonwebtoken`), where its tokens are found and what a verified token
//! adds to the request; and the requirement every request is held to.
//! `http::jwt` checks requests against it.

use super::CompileError;
use envoy_types::pb::envoy::config::core::v3::data_source;
use envoy_types::pb::envoy::extensions::filters::http::jwt_authn::v3::{
    JwtAuthentication, JwtProvider, JwtRequirement, jwt_provider, jwt_requirement, requirement_rule,
};
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey};
use std::sync::Arc;

/// The filter's type, as a connection manager names it.
pub const TYPE: &str = "envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication";

#[derive(Debug)]
pub struct Jwt {
    pub providers: Vec<Provider>,
    pub requires: Requirement,
}

/// A verified token, as authorization sees it.
#[derive(Debug)]
pub struct Auth {
    /// `<iss>/<sub>`.
    pub principal: String,
    pub claims: serde_json::Value,
}

impl Auth {
    /// The value at `path` of Istio's `istio_authn` metadata:
    /// `request.auth.principal`, `.audiences`, `.presenter`, or
    /// `request.auth.claims` then a claim's name and nested names.
    pub fn lookup(&self, path: &[String]) -> Option<serde_json::Value> {
        let (first, rest) = path.split_first()?;
        match (first.as_str(), rest) {
            ("request.auth.principal", []) => Some(serde_json::Value::String(self.principal.clone())),
            ("request.auth.audiences", []) => self.claims.get("aud").cloned(),
            ("request.auth.presenter", []) => self.claims.get("azp").cloned(),
            ("request.auth.claims", names) if !names.is_empty() => {
                names.iter().try_fold(&self.claims, |v, n| v.get(n)).cloned()
            }
            _ => None,
        }
    }
}

/// Where a token may be: a header (its value after `prefix`), a query
/// parameter, a cookie.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Header(http::HeaderName, String),
    Param(String),
    Cookie(String),
}

pub struct Provider {
    pub name: Arc<str>,
    pub issuer: String,
    pub audiences: Vec<String>,
    pub keys: Vec<Key>,
    pub from: Vec<Location>,
    /// Whether the token goes on to the app (else its header is removed).
    pub forward: bool,
    pub payload_header: Option<http::HeaderName>,
    pub claim_headers: Vec<(String, http::HeaderName)>,
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provider").field("name", &self.name).field("issuer", &self.issuer).finish()
    }
}

/// One verification key of a provider's set.
pub struct Key {
    pub kid: Option<String>,
    /// The algorithms a token signed with this key may name.
    pub algorithms: Vec<Algorithm>,
    pub key: DecodingKey,
    /// The checks a token verified by it passes (these algorithms, the
    /// provider's issuer, audiences and clock skew), made once here.
    pub validation: jsonwebtoken::Validation,
}

/// Envoy's JWT requirement, as a tree over providers.
#[derive(Debug)]
pub enum Requirement {
    /// This provider's token, valid.
    Provider(usize),
    Any(Vec<Requirement>),
    All(Vec<Requirement>),
    /// No token at all (an invalid one still fails the request).
    AllowMissing,
    /// Anything: tokens are verified only for what they add.
    AllowMissingOrFailed,
}

impl Jwt {
    pub fn compile(bytes: &[u8]) -> Result<Jwt, CompileError> {
        use prost::Message;
        let f = JwtAuthentication::decode(bytes).map_err(|e| CompileError::new(e.to_string()))?;
        if !f.requirement_map.is_empty() || f.filter_state_rules.is_some() {
            return Err(CompileError::new("JWT `requirement_map` and `filter_state_rules` are not supported"));
        }
        let mut names: Vec<&String> = f.providers.keys().collect();
        names.sort();
        let providers = names.iter().map(|n| Provider::compile(n, &f.providers[*n])).collect::<Result<Vec<_>, _>>()?;
        let requires = match f.rules.as_slice() {
            [] => Requirement::AllowMissingOrFailed,
            [rule] => {
                let everything = rule.r#match.as_ref().is_some_and(|m| {
                    matches!(&m.path_specifier, Some(envoy_types::pb::envoy::config::route::v3::route_match::PathSpecifier::Prefix(p)) if p == "/")
                        && m.headers.is_empty()
                        && m.query_parameters.is_empty()
                });
                if !everything {
                    return Err(CompileError::new("a JWT rule must match every request (prefix `/`)"));
                }
                match &rule.requirement_type {
                    Some(requirement_rule::RequirementType::Requires(r)) => requirement(r, &names)?,
                    _ => return Err(CompileError::new("a JWT rule needs `requires`")),
                }
            }
            _ => return Err(CompileError::new("one JWT rule (prefix `/`) is supported")),
        };
        Ok(Jwt { providers, requires })
    }
}

fn requirement(r: &JwtRequirement, names: &[&String]) -> Result<Requirement, CompileError> {
    use jwt_requirement::RequiresType as R;
    let all = |v: &[JwtRequirement]| v.iter().map(|r| requirement(r, names)).collect::<Result<Vec<_>, _>>();
    Ok(match &r.requires_type {
        Some(R::ProviderName(n)) => Requirement::Provider(
            names.iter().position(|x| *x == n).ok_or_else(|| CompileError::new(format!("no JWT provider {n:?}")))?,
        ),
        Some(R::RequiresAny(l)) => Requirement::Any(all(&l.requirements)?),
        Some(R::RequiresAll(l)) => Requirement::All(all(&l.requirements)?),
        Some(R::AllowMissing(_)) => Requirement::AllowMissing,
        Some(R::AllowMissingOrFailed(_)) | None => Requirement::AllowMissingOrFailed,
        Some(other) => return Err(CompileError::new(format!("unsupported JWT requirement {other:?}"))),
    })
}

impl Provider {
    fn compile(name: &str, p: &JwtProvider) -> Result<Provider, CompileError> {
        let err = |e: &dyn std::fmt::Display| CompileError::new(format!("JWT provider {name}: {e}"));
        let jwks = match &p.jwks_source_specifier {
            Some(jwt_provider::JwksSourceSpecifier::LocalJwks(ds)) => match &ds.specifier {
                Some(data_source::Specifier::InlineString(s)) => s.clone(),
                Some(data_source::Specifier::InlineBytes(b)) => String::from_utf8_lossy(b).into_owned(),
                _ => return Err(err(&"the key set must be inline (`local_jwks.inline_string`)")),
            },
            _ => {
                return Err(err(
                    &"weft's proxy takes key sets inline (`local_jwks`); its control plane fetches remote ones",
                ));
            }
        };
        let set: JwkSet = serde_json::from_str(&jwks).map_err(|e| err(&format!("key set: {e}")))?;
        let leeway = u64::from(if p.clock_skew_seconds == 0 { 60 } else { p.clock_skew_seconds });
        let keys = set.keys.iter().filter_map(|k| key(k, p, leeway)).collect();
        let header =
            |n: &str| http::HeaderName::from_bytes(n.as_bytes()).map_err(|_| err(&format!("bad header name {n:?}")));
        let mut from = Vec::new();
        for h in &p.from_headers {
            from.push(Location::Header(header(&h.name)?, h.value_prefix.clone()));
        }
        from.extend(p.from_params.iter().cloned().map(Location::Param));
        from.extend(p.from_cookies.iter().cloned().map(Location::Cookie));
        if from.is_empty() {
            // Envoy's defaults.
            from.push(Location::Header(http::header::AUTHORIZATION, "Bearer ".into()));
            from.push(Location::Param("access_token".into()));
        }
        let claim_headers = p
            .claim_to_headers
            .iter()
            .map(|c| Ok((c.claim_name.clone(), header(&c.header_name)?)))
            .collect::<Result<_, CompileError>>()?;
        Ok(Provider {
            name: name.into(),
            issuer: p.issuer.clone(),
            audiences: p.audiences.clone(),
            keys,
            from,
            forward: p.forward,
            payload_header: (!p.forward_payload_header.is_empty())
                .then(|| header(&p.forward_payload_header))
                .transpose()?,
            claim_headers,
        })
    }
}

/// A JWK as a verification key with the algorithms it takes; None for a
/// key it cannot verify with (skipped, as Envoy skips them).
fn key(jwk: &jsonwebtoken::jwk::Jwk, p: &JwtProvider, leeway: u64) -> Option<Key> {
    use Algorithm::*;
    let algorithms = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => vec![RS256, RS384, RS512, PS256, PS384, PS512],
        AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
            EllipticCurve::P256 => vec![ES256],
            EllipticCurve::P384 => vec![ES384],
            _ => return None,
        },
        AlgorithmParameters::OctetKeyPair(_) => vec![EdDSA],
        AlgorithmParameters::OctetKey(_) => vec![HS256, HS384, HS512],
    };
    // A key that names its algorithm takes that one only.
    let named = jwk.common.key_algorithm.and_then(|a| a.to_string().parse::<Algorithm>().ok());
    let algorithms = match named {
        Some(a) if algorithms.contains(&a) => vec![a],
        Some(_) => return None,
        None => algorithms,
    };
    let mut v = jsonwebtoken::Validation::new(algorithms[0]);
    v.algorithms = algorithms.clone();
    v.leeway = leeway;
    v.validate_nbf = true;
    v.required_spec_claims.clear();
    if !p.issuer.is_empty() {
        v.set_issuer(&[&p.issuer]);
    }
    if p.audiences.is_empty() {
        v.validate_aud = false;
    } else {
        v.set_audience(&p.audiences);
        v.set_required_spec_claims(&["aud"]);
    }
    Some(Key { kid: jwk.common.key_id.clone(), algorithms, key: DecodingKey::from_jwk(jwk).ok()?, validation: v })
}
