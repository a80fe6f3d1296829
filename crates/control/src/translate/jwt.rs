//! RequestAuthentications as Envoy's JWT filter (`envoy.filters.http.jwt_authn`),
//! as Istio writes it: per workload, the policies of the mesh (root
//! namespace) and of its namespace whose selector picks it; each JWT rule a
//! provider `origins-<n>` with its key set inline (the control plane
//! fetched any `jwksUri`, as istiod does), and one requirement: every
//! provider's token valid or missing. A request with an invalid token is
//! refused; one with none goes on, and authorization decides.

use super::node::ProxyNode;
use envoy_types::pb::envoy::config::core::v3::{DataSource, data_source};
use envoy_types::pb::envoy::config::route::v3::{RouteMatch, route_match};
use envoy_types::pb::envoy::extensions::filters::http::jwt_authn::v3::{
    JwtAuthentication, JwtClaimToHeader, JwtHeader, JwtProvider, JwtRequirement, JwtRequirementAndList,
    JwtRequirementOrList, RequirementRule, jwt_provider, jwt_requirement, requirement_rule,
};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{HttpFilter, http_filter};
use envoy_types::util::pack_any;
use std::collections::BTreeMap;
use weft_api::index::Index;
use weft_api::types::{JwtRule, RequestAuthenticationSpec};
use weft_api::{Resource, Spec};

pub const FILTER: &str = "envoy.filters.http.jwt_authn";

/// A key set no token verifies with: what a provider gets while its
/// `jwksUri` has not been fetched, or could not be (Istio's answer too:
/// tokens of that issuer are refused, requests without one go on).
pub const UNUSABLE_JWKS: &str = r#"{"keys":[{"kty":"EC","crv":"P-256","x":"RYIa4xv8iJAjPqdQzYIBZiAuvLhyAyZ4wMcjRFc4pYY","y":"IAGKVtZLRdtG76ftcNgu6y3vXe3LRVY5kTBHjrLuW7c","kid":"weft-unusable"}]}"#;

/// The JWT filter for `node`, if a RequestAuthentication applies to it.
/// `fetched` holds the key sets fetched for `jwksUri`s (and discovered
/// from issuers), by URL or issuer.
pub fn filter(index: &Index, node: &ProxyNode, fetched: &BTreeMap<String, String>) -> Option<HttpFilter> {
    let rules: Vec<&JwtRule> = applicable(index, node).flat_map(|(_, p)| &p.jwt_rules).collect();
    if rules.is_empty() {
        return None;
    }
    let mut providers = std::collections::HashMap::new();
    let mut each = Vec::new();
    for (i, rule) in rules.into_iter().enumerate() {
        let name = format!("origins-{i}");
        providers.insert(name.clone(), provider(rule, fetched));
        // Valid, or absent: an invalid token is refused.
        each.push(JwtRequirement {
            requires_type: Some(jwt_requirement::RequiresType::RequiresAny(JwtRequirementOrList {
                requirements: vec![
                    JwtRequirement { requires_type: Some(jwt_requirement::RequiresType::ProviderName(name)) },
                    JwtRequirement {
                        requires_type: Some(jwt_requirement::RequiresType::AllowMissing(Default::default())),
                    },
                ],
            })),
        });
    }
    let requires = if each.len() == 1 {
        each.remove(0)
    } else {
        JwtRequirement {
            requires_type: Some(jwt_requirement::RequiresType::RequiresAll(JwtRequirementAndList {
                requirements: each,
            })),
        }
    };
    let config = JwtAuthentication {
        providers,
        rules: vec![RequirementRule {
            r#match: Some(RouteMatch {
                path_specifier: Some(route_match::PathSpecifier::Prefix("/".into())),
                ..Default::default()
            }),
            requirement_type: Some(requirement_rule::RequirementType::Requires(requires)),
        }],
        ..Default::default()
    };
    Some(HttpFilter {
        name: FILTER.into(),
        config_type: Some(http_filter::ConfigType::TypedConfig(pack_any(config))),
        ..Default::default()
    })
}

/// Where a rule's key set comes from: inline, else its `jwksUri`, else the
/// issuer's OpenID discovery (the fetcher's key for both).
pub fn source(rule: &JwtRule) -> Option<String> {
    if rule.jwks.is_some() {
        return None;
    }
    Some(rule.jwks_uri.clone().unwrap_or_else(|| discovery(&rule.issuer)))
}

/// The OpenID discovery document of an issuer.
pub fn discovery(issuer: &str) -> String {
    format!("{}/.well-known/openid-configuration", issuer.trim_end_matches('/'))
}

fn provider(rule: &JwtRule, fetched: &BTreeMap<String, String>) -> JwtProvider {
    let jwks = match (&rule.jwks, source(rule)) {
        (Some(inline), _) => inline.clone(),
        (None, Some(key)) => fetched.get(&key).cloned().unwrap_or_else(|| UNUSABLE_JWKS.into()),
        (None, None) => UNUSABLE_JWKS.into(),
    };
    let default_places = rule.from_headers.is_empty() && rule.from_params.is_empty() && rule.from_cookies.is_empty();
    let (from_headers, from_params) = if default_places {
        // Istio's defaults: `Authorization: Bearer <token>` and `?access_token=`.
        (vec![JwtHeader { name: "Authorization".into(), value_prefix: "Bearer ".into() }], vec!["access_token".into()])
    } else {
        let headers = rule
            .from_headers
            .iter()
            .map(|h| JwtHeader { name: h.name.clone(), value_prefix: h.prefix.clone().unwrap_or_default() });
        (headers.collect(), rule.from_params.clone())
    };
    JwtProvider {
        issuer: rule.issuer.clone(),
        audiences: rule.audiences.clone(),
        forward: rule.forward_original_token,
        from_headers,
        from_params,
        from_cookies: rule.from_cookies.clone(),
        forward_payload_header: rule.output_payload_to_header.clone().unwrap_or_default(),
        payload_in_metadata: rule.issuer.clone(),
        claim_to_headers: rule
            .output_claim_to_headers
            .iter()
            .map(|c| JwtClaimToHeader {
                header_name: c.header.clone(),
                claim_name: c.claim.clone(),
                ..Default::default()
            })
            .collect(),
        clock_skew_seconds: 60,
        jwks_source_specifier: Some(jwt_provider::JwksSourceSpecifier::LocalJwks(DataSource {
            specifier: Some(data_source::Specifier::InlineString(jwks)),
            ..Default::default()
        })),
        ..Default::default()
    }
}

/// The RequestAuthentications that apply to a proxy: in the root namespace
/// and its own, selecting it, or attached to the Gateway API gateway it is.
pub fn applicable<'a>(
    index: &'a Index,
    node: &'a ProxyNode,
) -> impl Iterator<Item = (&'a Resource, &'a RequestAuthenticationSpec)> + 'a {
    index.resources.iter().filter_map(move |r| {
        let Spec::RequestAuthentication(p) = &r.spec else { return None };
        let refs = (p.target_ref.as_ref(), &p.target_refs[..]);
        let applies = weft_api::gateway_api::policy_applies(
            p.selector.as_ref(),
            refs,
            r.namespace(),
            &node.namespace,
            &node.labels,
        );
        applies.then_some((r, p))
    })
}

/// Every key set source the config names (to fetch).
pub fn sources(resources: &[Resource]) -> std::collections::BTreeSet<String> {
    resources
        .iter()
        .filter_map(|r| match &r.spec {
            Spec::RequestAuthentication(p) => Some(p.jwt_rules.iter().filter_map(source)),
            _ => None,
        })
        .flatten()
        .collect()
}

/// Each fetched source's time limit (its rule's `timeout`; the shortest
/// when rules share a source).
pub fn timeouts(resources: &[Resource]) -> BTreeMap<String, std::time::Duration> {
    let mut out = BTreeMap::new();
    for r in resources {
        let Spec::RequestAuthentication(p) = &r.spec else { continue };
        for rule in &p.jwt_rules {
            if let (Some(key), Some(t)) = (source(rule), &rule.timeout) {
                let e = out.entry(key).or_insert(t.0);
                *e = (*e).min(t.0);
            }
        }
    }
    out
}
