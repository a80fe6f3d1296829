//! An `HTTPRoute`'s rules as Istio http rules, each with its sort key: the
//! Gateway API's precedence (exact path, then the longest prefix, then a
//! method, more header matches, more query matches; then the older route,
//! then rule and match order).

use super::Lowered;
use crate::index::Index;
use crate::resource::Resource;
use crate::types::gateway_api::{
    BackendObjectRef, HeaderModifier, HttpCors, KubeHttpRouteSpec, PathModifier, RouteFilter, RouteRule,
};
use crate::types::*;
use std::cmp::Reverse;

/// Gateway API precedence, smallest first.
pub(crate) type SortKey = (u8, Reverse<usize>, bool, Reverse<usize>, Reverse<usize>, usize, usize, usize, usize);

/// One Istio http rule from one match of one rule.
#[derive(Clone)]
pub(crate) struct Entry {
    pub key: SortKey,
    pub route: HttpRoute,
}

/// The Istio rules of `r`; `rank` is its place among routes by age and name.
pub(crate) fn rules(
    index: &Index,
    r: &Resource,
    spec: &KubeHttpRouteSpec,
    rank: usize,
    out: &mut Lowered,
) -> Vec<Entry> {
    let mut entries = Vec::new();
    for (j, rule) in spec.rules.iter().enumerate() {
        let at = format!("spec.rules[{j}]");
        let Some(base) = base_rule(index, r, &at, j, rule, out) else { continue };
        let default_match = [Default::default()];
        let matches = if rule.matches.is_empty() { &default_match[..] } else { &rule.matches };
        for (k, m) in matches.iter().enumerate() {
            let path_type = m.path.as_ref().and_then(|p| p.type_.as_deref()).unwrap_or("PathPrefix");
            let value = m.path.as_ref().and_then(|p| p.value.as_deref()).unwrap_or("/");
            let (rank_of_type, shapes) = match path_type {
                "Exact" => (0, vec![(StringMatch { exact: Some(value.into()), ..Default::default() }, Shape::Whole)]),
                "RegularExpression" => {
                    (1, vec![(StringMatch { regex: Some(value.into()), ..Default::default() }, Shape::Regex)])
                }
                _ => (2, prefix_shapes(value)),
            };
            let mut headers = std::collections::BTreeMap::new();
            for h in &m.headers {
                headers.entry(h.name.to_ascii_lowercase()).or_insert_with(|| value_match(h.type_.as_deref(), &h.value));
            }
            let query_params: std::collections::BTreeMap<_, _> =
                m.query_params.iter().map(|q| (q.name.clone(), value_match(q.type_.as_deref(), &q.value))).collect();
            for (sub, (uri, shape)) in shapes.into_iter().enumerate() {
                let mut route = base.clone();
                route.match_ = vec![HttpMatchRequest {
                    uri: Some(uri),
                    method: m.method.as_ref().map(|v| StringMatch { exact: Some(v.clone()), ..Default::default() }),
                    headers: headers.clone(),
                    query_params: query_params.clone(),
                    ..Default::default()
                }];
                if !shape.modify(&mut route, rule) {
                    let msg = "`ReplacePrefixMatch` needs a `PathPrefix` match".to_owned();
                    out.condition(r, &format!("{at}.matches[{k}].path"), "Accepted", "UnsupportedValue", msg, "");
                    continue;
                }
                let key = (
                    rank_of_type,
                    Reverse(value.len()),
                    m.method.is_none(),
                    Reverse(m.headers.len()),
                    Reverse(m.query_params.len()),
                    rank,
                    j,
                    k,
                    sub,
                );
                entries.push(Entry { key, route });
            }
        }
    }
    entries
}

/// How one Istio match covers a Gateway API path match, for path rewrites.
#[derive(Clone, PartialEq)]
enum Shape {
    /// The match covers the whole path (exact, or the prefix itself).
    Whole,
    /// The match is the prefix followed by `/`: rewrites keep what follows.
    UnderPrefix,
    Regex,
}

/// A path prefix matches whole path segments: `/foo` takes `/foo` and
/// `/foo/bar`, not `/foobar`. So it is two Istio matches: the path itself
/// and what is under it.
fn prefix_shapes(value: &str) -> Vec<(StringMatch, Shape)> {
    let p = value.trim_end_matches('/');
    let prefix = |s: String| StringMatch { prefix: Some(s), ..Default::default() };
    if p.is_empty() {
        return vec![(prefix("/".into()), Shape::UnderPrefix)];
    }
    vec![
        (StringMatch { exact: Some(p.into()), ..Default::default() }, Shape::Whole),
        (prefix(format!("{p}/")), Shape::UnderPrefix),
    ]
}

impl Shape {
    /// Applies the rule's path modifiers to `route` for a match of this
    /// shape; false when a prefix is to be replaced on a regex match.
    fn modify(&self, route: &mut HttpRoute, rule: &RouteRule) -> bool {
        for f in &rule.filters {
            if let Some(p) = f.request_redirect.as_ref().and_then(|x| x.path.as_ref()) {
                let Some(path) = self.replacement(p) else { return false };
                let redirect = route.redirect.get_or_insert_with(Default::default);
                match (p.type_.as_str(), self) {
                    ("ReplacePrefixMatch", Shape::UnderPrefix) => redirect.prefix_rewrite = Some(path),
                    _ => redirect.uri = Some(path),
                }
            }
            if let Some(p) = f.url_rewrite.as_ref().and_then(|x| x.path.as_ref()) {
                let rewrite = route.rewrite.get_or_insert_with(Default::default);
                if p.type_ == "ReplaceFullPath" {
                    let to = p.replace_full_path.clone().unwrap_or_default();
                    rewrite.uri_regex_rewrite = Some(RegexRewrite { match_: "^.*$".into(), rewrite: to });
                } else {
                    let Some(path) = self.replacement(p) else { return false };
                    rewrite.uri = Some(path);
                }
            }
        }
        true
    }

    /// What replaces the matched part of the path.
    fn replacement(&self, p: &PathModifier) -> Option<String> {
        if p.type_ == "ReplaceFullPath" {
            return Some(p.replace_full_path.clone().unwrap_or_else(|| "/".into()));
        }
        let to = p.replace_prefix_match.clone().unwrap_or_else(|| "/".into());
        match self {
            Shape::Whole if to.is_empty() => Some("/".into()),
            Shape::Whole => Some(to),
            Shape::UnderPrefix => Some(format!("{}/", to.trim_end_matches('/'))),
            Shape::Regex => None,
        }
    }
}

fn value_match(type_: Option<&str>, value: &str) -> StringMatch {
    match type_ {
        Some("RegularExpression") => StringMatch { regex: Some(value.into()), ..Default::default() },
        _ => StringMatch { exact: Some(value.into()), ..Default::default() },
    }
}

/// Everything of a rule but its matches: backends, filters, timeouts, retries.
fn base_rule(
    index: &Index,
    r: &Resource,
    at: &str,
    j: usize,
    rule: &RouteRule,
    out: &mut Lowered,
) -> Option<HttpRoute> {
    let name = rule.name.clone().unwrap_or_else(|| j.to_string());
    let mut route = HttpRoute { name: Some(format!("{}.{}.{name}", r.namespace(), r.name())), ..Default::default() };
    let mut request = HeaderOperations::default();
    let mut response = HeaderOperations::default();
    for (f_i, f) in rule.filters.iter().enumerate() {
        let path = format!("{at}.filters[{f_i}]");
        match f.type_.as_str() {
            "RequestHeaderModifier" => modify(&mut request, f.request_header_modifier.as_ref()),
            "ResponseHeaderModifier" => modify(&mut response, f.response_header_modifier.as_ref()),
            "RequestRedirect" => {
                let Some(rd) = &f.request_redirect else { continue };
                let redirect = route.redirect.get_or_insert_with(Default::default);
                redirect.scheme = rd.scheme.clone();
                redirect.authority = rd.hostname.clone();
                redirect.port = rd.port;
                redirect.redirect_code = Some(rd.status_code.unwrap_or(302));
                if rd.scheme.is_some() && rd.port.is_none() {
                    redirect.derive_port = Some("FROM_PROTOCOL_DEFAULT".into());
                }
            }
            "URLRewrite" => {
                if let Some(host) = f.url_rewrite.as_ref().and_then(|u| u.hostname.clone()) {
                    route.rewrite.get_or_insert_with(Default::default).authority = Some(host);
                }
            }
            "RequestMirror" => {
                let Some(m) = &f.request_mirror else { continue };
                let Some(destination) =
                    destination(index, r, &format!("{path}.requestMirror.backendRef"), &m.backend_ref, out)
                else {
                    continue;
                };
                let percent = match (&m.percent, &m.fraction) {
                    (Some(p), _) => Some(*p as f64),
                    (None, Some(f)) => Some(f.numerator as f64 * 100.0 / f.denominator.unwrap_or(100).max(1) as f64),
                    _ => None,
                };
                route
                    .mirrors
                    .push(HttpMirrorPolicy { destination, percentage: percent.map(|value| Percent { value }) });
            }
            "CORS" => route.cors_policy = f.cors.as_ref().map(cors),
            // Any other is warned of by the coverage table.
            _ => {}
        }
    }
    let headers = Headers { request: some_ops(request), response: some_ops(response) };
    if headers.request.is_some() || headers.response.is_some() {
        route.headers = Some(headers);
    }
    if route.redirect.is_none() {
        for (b, backend) in rule.backend_refs.iter().enumerate() {
            let path = format!("{at}.backendRefs[{b}]");
            let Some(dest) = destination(index, r, &path, &backend.object(), out) else { continue };
            let headers = backend_headers(&backend.filters);
            route.route.push(HttpRouteDestination {
                destination: dest,
                weight: Some(backend.weight.unwrap_or(1) as i64),
                headers,
            });
        }
        if route.route.iter().all(|d| d.weight == Some(0)) {
            // The Gateway API's answer for a rule with no backend to send to.
            route.route.clear();
            route.direct_response = Some(HttpDirectResponse { status: 500, body: None });
        } else if route.route.len() == 1 {
            route.route[0].weight = None;
        }
    }
    if let Some(t) = &rule.timeouts {
        route.timeout = t.request;
        if let Some(per_try) = t.backend_request {
            route.retries.get_or_insert_with(|| HttpRetry { attempts: 2, ..Default::default() }).per_try_timeout =
                Some(per_try);
        }
    }
    if let Some(retry) = &rule.retry {
        let retries = route.retries.get_or_insert_with(Default::default);
        retries.attempts = retry.attempts.unwrap_or(2);
        if !retry.codes.is_empty() {
            retries.retry_on = Some(retry.codes.iter().map(u16::to_string).collect::<Vec<_>>().join(","));
        }
    }
    Some(route)
}

fn modify(ops: &mut HeaderOperations, m: Option<&HeaderModifier>) {
    let Some(m) = m else { return };
    ops.set.extend(m.set.iter().map(|h| (h.name.to_ascii_lowercase(), h.value.clone())));
    ops.add.extend(m.add.iter().map(|h| (h.name.to_ascii_lowercase(), h.value.clone())));
    ops.remove.extend(m.remove.iter().map(|h| h.to_ascii_lowercase()));
}

fn some_ops(ops: HeaderOperations) -> Option<HeaderOperations> {
    (!ops.set.is_empty() || !ops.add.is_empty() || !ops.remove.is_empty()).then_some(ops)
}

/// A backend's own header filters; any other filter is said not applied.
fn backend_headers(filters: &[RouteFilter]) -> Option<Headers> {
    let (mut request, mut response) = (HeaderOperations::default(), HeaderOperations::default());
    for f in filters {
        match f.type_.as_str() {
            "RequestHeaderModifier" => modify(&mut request, f.request_header_modifier.as_ref()),
            "ResponseHeaderModifier" => modify(&mut response, f.response_header_modifier.as_ref()),
            // Any other is warned of by the coverage table.
            _ => {}
        }
    }
    let headers = Headers { request: some_ops(request), response: some_ops(response) };
    (headers.request.is_some() || headers.response.is_some()).then_some(headers)
}

/// The Istio destination a backend names, or None (said why): a `Service`
/// of the route's namespace with its port, or an Istio `Hostname`.
pub(crate) fn destination(
    index: &Index,
    r: &Resource,
    at: &str,
    b: &BackendObjectRef,
    out: &mut Lowered,
) -> Option<Destination> {
    let group = b.group.as_deref().unwrap_or("");
    let kind = b.kind.as_deref().unwrap_or("Service");
    let host = match (group, kind) {
        ("" | "core", "Service") => {
            let ns = b.namespace.as_deref().unwrap_or(r.namespace());
            let from = super::grants::From { kind: r.kind(), namespace: r.namespace() };
            if ns != r.namespace() && !super::grants::permits(index.resources, &from, "Service", ns, &b.name) {
                let msg = format!(
                    "backend `{ns}/{}` is in another namespace, and no ReferenceGrant there lets {}s of `{}` refer to it: it gets no requests",
                    b.name,
                    r.kind(),
                    r.namespace()
                );
                let hint = "add a ReferenceGrant in the backend's namespace";
                out.condition(r, at, "ResolvedRefs", "RefNotPermitted", msg, hint);
                return None;
            }
            let Some(svc) = index.service(&crate::resource::service_fqdn(&b.name, ns), ns) else {
                let msg =
                    format!("no Service `{ns}/{}`: it gets no requests (a rule left with none answers 500)", b.name);
                out.condition(r, at, "ResolvedRefs", "BackendNotFound", msg, "check the name, or add the Service");
                return None;
            };
            let Some(port) = b.port else {
                let msg = format!("backend `{}` has no `port`: a Service backend needs one", b.name);
                out.condition(r, at, "ResolvedRefs", "BackendNotFound", msg, "add `port:`");
                return None;
            };
            if !svc.ports.iter().any(|p| p.port == port) {
                let ports: Vec<String> = svc.ports.iter().map(|p| p.port.to_string()).collect();
                let msg = format!(
                    "Service `{}` has no port {port} (it has {}): it gets no requests",
                    b.name,
                    ports.join(", ")
                );
                out.condition(r, at, "ResolvedRefs", "BackendNotFound", msg, "");
                return None;
            }
            svc.fqdn.clone()
        }
        ("networking.istio.io", "Hostname") => b.name.clone(),
        _ => {
            let msg = format!("backends of kind `{kind}` (group `{group}`) are not served: it gets no requests");
            out.condition(r, at, "ResolvedRefs", "InvalidKind", msg, "use a Service");
            return None;
        }
    };
    let port = b.port.map(|number| PortSelector { number });
    Some(Destination { host, subset: None, port })
}

/// The `CORS` filter as Istio's `corsPolicy`: an origin with `*` matches
/// as a pattern (`*` alone: any origin).
fn cors(c: &HttpCors) -> CorsPolicy {
    let origin = |o: &String| {
        if o.contains('*') {
            let pattern = regex::escape(o).replace(r"\*", ".+");
            StringMatch { regex: Some(pattern), ..Default::default() }
        } else {
            StringMatch { exact: Some(o.clone()), ..Default::default() }
        }
    };
    CorsPolicy {
        allow_origins: c.allow_origins.iter().map(origin).collect(),
        allow_methods: c.allow_methods.clone(),
        allow_headers: c.allow_headers.clone(),
        expose_headers: c.expose_headers.clone(),
        max_age: Some(Duration(std::time::Duration::from_secs(u64::from(c.max_age.unwrap_or(5))))),
        allow_credentials: c.allow_credentials,
        ..Default::default()
    }
}
