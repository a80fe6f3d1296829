//! Request authentication's results as RBAC principals, in each data
//! plane's dialect. Istio's proxy keeps them as `istio_authn` metadata
//! (`request.auth.principal` is `<iss>/<sub>`); weft's proxy reads that
//! form. Upstream Envoy has no `istio_authn` filter: its JWT filter writes
//! each verified payload under `envoy.filters.http.jwt_authn`, keyed by the
//! issuer (translate/jwt.rs sets `payload_in_metadata` so), and a rule
//! there names the issuer and the claim.

use super::{ProxyNode, or_ids, pid, string};
use envoy_types::pb::envoy::config::rbac::v3::{MetadataSource, Principal, SourcedMetadata, principal};
use envoy_types::pb::envoy::r#type::matcher::v3::{
    ListMatcher, MetadataMatcher, StringMatcher, ValueMatcher, list_matcher, metadata_matcher,
    string_matcher::MatchPattern, value_matcher,
};
use weft_api::index::Index;
use weft_api::types::{ValueMatch, value_match};

/// How a proxy's policies see a verified token.
pub enum Dialect {
    /// weft's proxy: `istio_authn` metadata, as Istio's proxy.
    Istio,
    /// Upstream Envoy: the JWT filter's payloads, by issuer; the issuers
    /// of the RequestAuthentications that apply to it.
    Envoy(Vec<String>),
}

impl Dialect {
    pub fn of(index: &Index, node: &ProxyNode) -> Dialect {
        if node.weft {
            return Dialect::Istio;
        }
        let mut issuers: Vec<String> = crate::translate::jwt::applicable(index, node)
            .flat_map(|(_, p)| p.jwt_rules.iter().map(|r| r.issuer.clone()))
            .collect();
        issuers.sort();
        issuers.dedup();
        Dialect::Envoy(issuers)
    }

    /// `key` (`request.auth.principal`, `.audiences`, `.presenter`,
    /// `.claims[a][b]`) matching `v` in Istio's value forms. A list value
    /// (audiences, a claim) matches when one item does.
    pub fn principal(&self, key: &str, v: &str) -> Principal {
        let claim: Vec<String> = match key.strip_prefix("request.auth.claims[") {
            Some(rest) => rest.trim_end_matches(']').split("][").map(str::to_owned).collect(),
            None => Vec::new(),
        };
        match self {
            Dialect::Istio => {
                let path = if claim.is_empty() {
                    vec![key.to_owned()]
                } else {
                    std::iter::once("request.auth.claims".to_owned()).chain(claim).collect()
                };
                metadata("istio_authn", path, value(string(v, false)))
            }
            Dialect::Envoy(issuers) => {
                let field = |f: &str| vec![f.to_owned()];
                let each = issuers.iter().flat_map(|iss| match key {
                    "request.auth.principal" => subject(iss, v),
                    "request.auth.audiences" => vec![jwt(iss, field("aud"), v)],
                    "request.auth.presenter" => vec![jwt(iss, field("azp"), v)],
                    _ if !claim.is_empty() => vec![jwt(iss, claim.clone(), v)],
                    _ => Vec::new(),
                });
                or_ids(each.collect())
            }
        }
    }
}

/// The tokens of issuer `iss` whose principal `<iss>/<sub>` matches `v`:
/// the match moved onto `sub` where the issuer's part decides it.
fn subject(iss: &str, v: &str) -> Vec<Principal> {
    let sub = |m: MatchPattern| {
        let m = StringMatcher { match_pattern: Some(m), ignore_case: false };
        metadata(crate::translate::jwt::FILTER, vec![iss.to_owned(), "sub".to_owned()], value(m))
    };
    let head = format!("{iss}/");
    let any = || sub(MatchPattern::SafeRegex(super::regex(".+")));
    match value_match(v) {
        ValueMatch::Exact(x) => x.strip_prefix(&head).map(|s| sub(MatchPattern::Exact(s.into()))).into_iter().collect(),
        ValueMatch::Presence => vec![any()],
        ValueMatch::Prefix(p) if head.starts_with(p) => vec![any()],
        ValueMatch::Prefix(p) => {
            p.strip_prefix(&head).map(|s| sub(MatchPattern::Prefix(s.into()))).into_iter().collect()
        }
        ValueMatch::Suffix(x) => {
            // The suffix lies in `sub`, or reaches back into `<iss>/`.
            let mut out = vec![sub(MatchPattern::Suffix(x.into()))];
            for (i, _) in x.match_indices('/') {
                if head[..head.len() - 1].ends_with(&x[..i]) {
                    out.push(sub(MatchPattern::Exact(x[i + 1..].into())));
                }
            }
            out
        }
    }
}

/// A claim (at `path` in issuer `iss`'s payload) that is `v`, or a list
/// holding it.
fn jwt(iss: &str, path: Vec<String>, v: &str) -> Principal {
    let path: Vec<String> = std::iter::once(iss.to_owned()).chain(path).collect();
    let one = |m: ValueMatcher| metadata(crate::translate::jwt::FILTER, path.clone(), m);
    let list = ValueMatcher {
        match_pattern: Some(value_matcher::MatchPattern::ListMatch(Box::new(ListMatcher {
            match_pattern: Some(list_matcher::MatchPattern::OneOf(Box::new(value(string(v, false))))),
        }))),
    };
    or_ids(vec![one(value(string(v, false))), one(list)])
}

fn value(m: StringMatcher) -> ValueMatcher {
    ValueMatcher { match_pattern: Some(value_matcher::MatchPattern::StringMatch(m)) }
}

fn metadata(filter: &str, path: Vec<String>, value: ValueMatcher) -> Principal {
    let matcher = MetadataMatcher {
        filter: filter.into(),
        path: path
            .into_iter()
            .map(|k| metadata_matcher::PathSegment { segment: Some(metadata_matcher::path_segment::Segment::Key(k)) })
            .collect(),
        value: Some(value),
        invert: false,
    };
    let sourced = SourcedMetadata { metadata_matcher: Some(matcher), metadata_source: MetadataSource::Dynamic as i32 };
    pid(principal::Identifier::SourcedMetadata(sourced))
}
