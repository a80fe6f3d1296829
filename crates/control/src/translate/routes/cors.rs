//! VirtualService `corsPolicy` as Envoy's CORS filter config on the route,
//! as Istio writes it: origins as string matchers, lists joined with `,`,
//! `maxAge` in seconds. The listener carries the filter; the route's config
//! is what takes effect.

use super::matchers::string_matcher;
use envoy_types::pb::envoy::extensions::filters::http::cors::v3::{Cors, CorsPolicy as EnvoyCors};
use envoy_types::pb::envoy::r#type::matcher::v3::{StringMatcher, string_matcher::MatchPattern};
use envoy_types::pb::google::protobuf::{Any, BoolValue};
use envoy_types::util::pack_any;
use weft_api::types::CorsPolicy;

pub const FILTER: &str = "envoy.filters.http.cors";

/// The empty filter config the HTTP connection manager carries.
pub fn filter_config() -> Any {
    pack_any(Cors::default())
}

/// The route's CORS config, if the rule has a policy.
pub fn per_route(c: Option<&CorsPolicy>) -> Option<(String, Any)> {
    let c = c?;
    let exact = |o: &String| StringMatcher { match_pattern: Some(MatchPattern::Exact(o.clone())), ignore_case: false };
    // `allowOrigin` is the deprecated list of exact origins.
    let origins =
        c.allow_origins.iter().filter_map(|m| string_matcher(m, false)).chain(c.allow_origin.iter().map(exact));
    let policy = EnvoyCors {
        allow_origin_string_match: origins.collect(),
        allow_methods: c.allow_methods.join(","),
        allow_headers: c.allow_headers.join(","),
        expose_headers: c.expose_headers.join(","),
        max_age: c.max_age.map(|d| d.0.as_secs().to_string()).unwrap_or_default(),
        allow_credentials: c.allow_credentials.map(|value| BoolValue { value }),
        // Istio's default (and Envoy's) forwards a preflight from an origin
        // the policy does not allow, for the app to answer.
        forward_not_matching_preflights: Some(BoolValue {
            value: !c.unmatched_preflights.as_deref().is_some_and(|u| u.eq_ignore_ascii_case("IGNORE")),
        }),
        ..Default::default()
    };
    Some((FILTER.to_owned(), pack_any(policy)))
}
