//! Envoy's CORS filter config on a route (`typed_per_filter_config`):
//! which origins may call, and the headers the answers carry. Values are
//! made header values here, once, so a request only compares and copies.

use super::CompileError;
use crate::config::matcher::StrMatch;
use envoy_types::pb::envoy::config::route::v3 as rt;
use envoy_types::pb::envoy::extensions::filters::http::cors::v3::CorsPolicy;
use http::HeaderValue;
use prost::Message;

pub const FILTER: &str = "envoy.filters.http.cors";

#[derive(Debug, Clone)]
pub struct Cors {
    /// (matcher, ignore case); an origin any of them matches is allowed.
    pub origins: Vec<(StrMatch, bool)>,
    pub allow_methods: Option<HeaderValue>,
    pub allow_headers: Option<HeaderValue>,
    pub expose_headers: Option<HeaderValue>,
    pub max_age: Option<HeaderValue>,
    pub allow_credentials: bool,
    /// A preflight from an origin not allowed goes on to the app (Envoy's
    /// default); otherwise the proxy answers it, without CORS headers.
    pub forward_not_matching_preflights: bool,
}

impl Cors {
    /// Envoy's rule: an origin is allowed when a matcher matches it, or
    /// matches `*` (so `exact: "*"` allows every origin).
    pub fn allows(&self, origin: &str) -> bool {
        self.origins.iter().any(|(m, ic)| m.matches("*", *ic) || m.matches(origin, *ic))
    }
}

/// The route's CORS policy, if it has one.
pub fn compile(r: &rt::Route) -> Result<Option<Cors>, CompileError> {
    let Some(any) = r.typed_per_filter_config.get(FILTER) else { return Ok(None) };
    let bad = |what: &str| CompileError::new(format!("route {}: bad CORS {what}", r.name));
    let p = CorsPolicy::decode(any.value.as_slice()).map_err(|e| bad(&format!("config: {e}")))?;
    let value = |s: &str, what: &str| -> Result<Option<HeaderValue>, CompileError> {
        if s.is_empty() { Ok(None) } else { HeaderValue::from_str(s).map(Some).map_err(|_| bad(what)) }
    };
    Ok(Some(Cors {
        origins: p.allow_origin_string_match.iter().map(StrMatch::compile).collect::<Result<_, _>>()?,
        allow_methods: value(&p.allow_methods, "allow_methods")?,
        allow_headers: value(&p.allow_headers, "allow_headers")?,
        expose_headers: value(&p.expose_headers, "expose_headers")?,
        max_age: value(&p.max_age, "max_age")?,
        allow_credentials: p.allow_credentials.is_some_and(|b| b.value),
        forward_not_matching_preflights: p.forward_not_matching_preflights.is_none_or(|b| b.value),
    }))
}
