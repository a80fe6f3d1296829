//! Envoy's string and header matchers, compiled once and evaluated per
//! request: routes match on them, and so do authorization policies.

use super::CompileError;
use envoy_types::pb::envoy::config::route::v3::{HeaderMatcher, header_matcher};
use envoy_types::pb::envoy::r#type::matcher::v3::{StringMatcher, string_matcher::MatchPattern};
use http::{HeaderName, Method};
use regex::Regex;

/// A host without its `:port` (an IPv6 literal's colons are kept).
pub fn strip_port(host: &str) -> &str {
    match host.rsplit_once(':') {
        Some((h, p)) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && !h.ends_with(':') => h,
        _ => host,
    }
}

/// A request's authority: its URI's (absolute form, HTTP/2's
/// `:authority`), else its `Host` header.
pub fn authority_of<'a>(uri: &'a http::Uri, headers: &'a http::HeaderMap) -> Option<&'a str> {
    uri.authority().map(|a| a.as_str()).or_else(|| headers.get(http::header::HOST).and_then(|v| v.to_str().ok()))
}

/// What a request looks like to the matchers; built once per request.
pub struct RequestView<'a> {
    pub method: &'a Method,
    pub authority: &'a str,
    pub scheme: &'a str,
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub headers: &'a http::HeaderMap,
}

#[derive(Debug, Clone)]
pub enum StrMatch {
    Exact(String),
    Prefix(String),
    Suffix(String),
    Contains(String),
    Regex(Regex),
}

/// A regex that must match the whole value, as Envoy's `safe_regex`.
pub fn full_regex(re: &str, ignore_case: bool) -> Result<Regex, CompileError> {
    let flags = if ignore_case { "(?i)" } else { "" };
    Regex::new(&format!("{flags}^(?:{re})$")).map_err(|e| CompileError::new(format!("bad regex {re:?}: {e}")))
}

impl StrMatch {
    /// The matcher and whether it ignores case.
    pub fn compile(m: &StringMatcher) -> Result<(Self, bool), CompileError> {
        let ic = m.ignore_case;
        let low = |s: &String| if ic { s.to_ascii_lowercase() } else { s.clone() };
        let sm = match &m.match_pattern {
            Some(MatchPattern::Exact(s)) => StrMatch::Exact(low(s)),
            Some(MatchPattern::Prefix(s)) => StrMatch::Prefix(low(s)),
            Some(MatchPattern::Suffix(s)) => StrMatch::Suffix(low(s)),
            Some(MatchPattern::Contains(s)) => StrMatch::Contains(low(s)),
            Some(MatchPattern::SafeRegex(r)) => StrMatch::Regex(full_regex(&r.regex, ic)?),
            _ => return Err(CompileError::new("unsupported string matcher")),
        };
        Ok((sm, ic))
    }

    pub fn matches(&self, v: &str, ignore_case: bool) -> bool {
        let owned;
        let v = if ignore_case && !matches!(self, StrMatch::Regex(_)) {
            owned = v.to_ascii_lowercase();
            owned.as_str()
        } else {
            v
        };
        match self {
            StrMatch::Exact(s) => v == s,
            StrMatch::Prefix(s) => v.starts_with(s.as_str()),
            StrMatch::Suffix(s) => v.ends_with(s.as_str()),
            StrMatch::Contains(s) => v.contains(s.as_str()),
            StrMatch::Regex(r) => r.is_match(v),
        }
    }
}

/// One header's condition: present (no matcher) or matching, or inverted.
#[derive(Debug, Clone)]
pub struct HeaderMatch {
    name: HeaderOrPseudo,
    matcher: Option<(StrMatch, bool)>,
    invert: bool,
}

#[derive(Debug, Clone)]
enum HeaderOrPseudo {
    Method,
    Authority,
    Scheme,
    Path,
    Header(HeaderName),
}

impl HeaderMatch {
    pub fn compile(h: &HeaderMatcher) -> Result<Self, CompileError> {
        use header_matcher::HeaderMatchSpecifier as H;
        let name = match h.name.as_str() {
            ":method" => HeaderOrPseudo::Method,
            ":authority" | "host" => HeaderOrPseudo::Authority,
            ":scheme" => HeaderOrPseudo::Scheme,
            ":path" => HeaderOrPseudo::Path,
            n => HeaderOrPseudo::Header(
                HeaderName::from_bytes(n.as_bytes())
                    .map_err(|_| CompileError::new(format!("bad header name {n:?}")))?,
            ),
        };
        let matcher = match &h.header_match_specifier {
            Some(H::StringMatch(sm)) => Some(StrMatch::compile(sm)?),
            Some(H::PresentMatch(true)) | None => None,
            #[allow(deprecated)]
            Some(H::ExactMatch(s)) => Some((StrMatch::Exact(s.clone()), false)),
            #[allow(deprecated)]
            Some(H::PrefixMatch(s)) => Some((StrMatch::Prefix(s.clone()), false)),
            _ => return Err(CompileError::new(format!("unsupported header match on {}", h.name))),
        };
        Ok(HeaderMatch { name, matcher, invert: h.invert_match })
    }

    /// The method this matches exactly (`:method` equal to it, case kept),
    /// if that is all it asks: compared as a method, not as text.
    pub fn exact_method(&self) -> Option<http::Method> {
        match (&self.name, &self.matcher, self.invert) {
            (HeaderOrPseudo::Method, Some((StrMatch::Exact(m), false)), false) => {
                http::Method::from_bytes(m.as_bytes()).ok()
            }
            _ => None,
        }
    }

    pub fn matches(&self, req: &RequestView) -> bool {
        let value: Option<&str> = match &self.name {
            HeaderOrPseudo::Method => Some(req.method.as_str()),
            HeaderOrPseudo::Authority => Some(req.authority),
            HeaderOrPseudo::Scheme => Some(req.scheme),
            HeaderOrPseudo::Path => Some(req.path),
            HeaderOrPseudo::Header(n) => req.headers.get(n).and_then(|v| v.to_str().ok()),
        };
        let hit = match (&self.matcher, value) {
            (_, None) => false,
            (None, Some(_)) => true,
            (Some((m, ic)), Some(v)) => m.matches(v, *ic),
        };
        hit != self.invert
    }
}
