//! Istio match blocks as Envoy route matches: paths, headers, query
//! parameters, and which blocks apply where a rule is installed (port,
//! gateway, source labels and namespace).

use super::super::node::ProxyNode;
use envoy_types::pb::envoy::config::route::v3::{
    HeaderMatcher, QueryParameterMatcher, RouteMatch, header_matcher, query_parameter_matcher, route_match,
};
use envoy_types::pb::envoy::r#type::matcher::v3::{RegexMatcher, StringMatcher, string_matcher};
use envoy_types::pb::google::protobuf::BoolValue;
use weft_api::types::*;

pub(super) fn string_matcher(m: &StringMatch, ignore_case: bool) -> Option<StringMatcher> {
    let pattern = if let Some(e) = &m.exact {
        string_matcher::MatchPattern::Exact(e.clone())
    } else if let Some(p) = &m.prefix {
        string_matcher::MatchPattern::Prefix(p.clone())
    } else if let Some(r) = &m.regex {
        string_matcher::MatchPattern::SafeRegex(RegexMatcher { regex: r.clone(), engine_type: None })
    } else {
        return None;
    };
    Some(StringMatcher { match_pattern: Some(pattern), ignore_case })
}

pub(super) fn header(name: &str, m: &StringMatch, invert: bool) -> HeaderMatcher {
    let spec = match string_matcher(m, false) {
        Some(sm) => header_matcher::HeaderMatchSpecifier::StringMatch(sm),
        None => header_matcher::HeaderMatchSpecifier::PresentMatch(true),
    };
    HeaderMatcher {
        name: name.to_owned(),
        header_match_specifier: Some(spec),
        invert_match: invert,
        ..Default::default()
    }
}

pub(super) fn route_match(m: Option<&HttpMatchRequest>) -> RouteMatch {
    let Some(m) = m else {
        return RouteMatch {
            path_specifier: Some(route_match::PathSpecifier::Prefix("/".into())),
            ..Default::default()
        };
    };
    let path = match &m.uri {
        Some(StringMatch { exact: Some(e), .. }) => route_match::PathSpecifier::Path(e.clone()),
        Some(StringMatch { prefix: Some(p), .. }) => route_match::PathSpecifier::Prefix(p.clone()),
        Some(StringMatch { regex: Some(r), .. }) => {
            route_match::PathSpecifier::SafeRegex(RegexMatcher { regex: r.clone(), engine_type: None })
        }
        _ => route_match::PathSpecifier::Prefix("/".into()),
    };
    let mut headers: Vec<HeaderMatcher> = m.headers.iter().map(|(k, v)| header(k, v, false)).collect();
    for (name, sm) in [(":method", &m.method), (":authority", &m.authority), (":scheme", &m.scheme)] {
        if let Some(sm) = sm {
            headers.push(header(name, sm, false));
        }
    }
    headers.extend(m.without_headers.iter().map(|(k, v)| header(k, v, true)));
    let query_parameters = m
        .query_params
        .iter()
        .map(|(k, v)| QueryParameterMatcher {
            name: k.clone(),
            query_parameter_match_specifier: Some(match string_matcher(v, false) {
                Some(sm) => query_parameter_matcher::QueryParameterMatchSpecifier::StringMatch(sm),
                None => query_parameter_matcher::QueryParameterMatchSpecifier::PresentMatch(true),
            }),
        })
        .collect();
    RouteMatch {
        path_specifier: Some(path),
        case_sensitive: m.ignore_uri_case.then_some(BoolValue { value: false }),
        headers,
        query_parameters,
        ..Default::default()
    }
}

/// Where a rule is being installed, to filter match blocks by `port`,
/// `gateways`, `sourceLabels` and `sourceNamespace`.
pub(super) struct Place<'a> {
    pub gateway: Option<&'a str>,
    pub port: u16,
    pub node: &'a ProxyNode,
}

pub(super) fn applies(m: &HttpMatchRequest, place: &Place) -> bool {
    if m.port.is_some_and(|p| p != place.port) {
        return false;
    }
    if !m.gateways.is_empty() && !m.gateways.iter().any(|g| Some(g.as_str()) == place.gateway.or(Some("mesh"))) {
        return false;
    }
    if place.gateway.is_none() && !selects(&m.source_labels, &place.node.labels) {
        return false;
    }
    m.source_namespace.as_ref().is_none_or(|ns| place.gateway.is_some() || ns == &place.node.namespace)
}
