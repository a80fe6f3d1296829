//! Every kind of route as what it adds to a VirtualService: an HTTPRoute's
//! or GRPCRoute's http rules (a GRPCRoute is an HTTPRoute whose paths are
//! `/service/method`, as Istio lowers it), a TCPRoute's `tcp` rule or a
//! TLSRoute's `tls` rule.

use super::Lowered;
use super::http::{self, Entry};
use crate::index::Index;
use crate::resource::{Resource, Spec};
use crate::types::gateway_api::*;
use crate::types::{RouteDestination, TcpRoute, TlsMatchAttributes, TlsRoute};

/// A route of any kind, with what it lowers to.
pub(crate) struct Route<'a> {
    pub resource: &'a Resource,
    pub parents: &'a [ParentRef],
    /// None for a TCPRoute, which has no hostnames.
    pub hostnames: Option<&'a [String]>,
    pub rules: Rules,
}

pub(crate) enum Rules {
    Http(Vec<Entry>),
    Tcp(Option<TcpRoute>),
    /// The backends; the server names to match are the bucket's.
    Tls(Option<Vec<RouteDestination>>),
}

impl Route<'_> {
    /// The Gateway API kind, as listeners' `allowedRoutes.kinds` name it.
    pub fn kind(&self) -> &'static str {
        self.resource.kind()
    }
}

/// The route `r` is, lowered, or None if `r` is no route. `rank` is its
/// place among routes by age and name.
pub(crate) fn lower<'a>(index: &Index, r: &'a Resource, rank: usize, out: &mut Lowered) -> Option<Route<'a>> {
    let route = |parents, hostnames, rules| Route { resource: r, parents, hostnames, rules };
    Some(match &r.spec {
        Spec::KubeHttpRoute(s) => {
            route(&s.parent_refs, Some(&s.hostnames[..]), Rules::Http(http::rules(index, r, s, rank, out)))
        }
        Spec::KubeGrpcRoute(s) => {
            let rules = Rules::Http(http::rules(index, r, &grpc_as_http(s), rank, out));
            route(&s.parent_refs, Some(&s.hostnames[..]), rules)
        }
        Spec::KubeTcpRoute(s) => {
            let rules = backends(index, r, &s.rules, out).map(|route| TcpRoute { match_: Vec::new(), route });
            route(&s.parent_refs, None, Rules::Tcp(rules))
        }
        Spec::KubeTlsRoute(s) => {
            route(&s.parent_refs, Some(&s.hostnames[..]), Rules::Tls(backends(index, r, &s.rules, out)))
        }
        _ => return None,
    })
}

impl Rules {
    /// This route's rules for one VirtualService: the TLS rule matches
    /// `sni` (the bucket's hostname); mesh rules match the Service's `port`.
    pub fn add_to(&self, bucket: &mut Bucketed, sni: &[String], port: Option<u16>) {
        match self {
            Rules::Http(entries) => bucket.http.extend(entries.iter().cloned().map(|mut e| {
                for m in &mut e.route.match_ {
                    m.port = port.or(m.port);
                }
                e
            })),
            Rules::Tcp(Some(rule)) => {
                let mut rule = rule.clone();
                if let Some(port) = port {
                    rule.match_ = vec![crate::types::L4MatchAttributes { port: Some(port), ..Default::default() }];
                }
                bucket.tcp.push(rule);
            }
            Rules::Tls(Some(route)) => {
                let m = TlsMatchAttributes { sni_hosts: sni.to_vec(), port, ..Default::default() };
                bucket.tls.push(TlsRoute { match_: vec![m], route: route.clone() });
            }
            Rules::Tcp(None) | Rules::Tls(None) => {}
        }
    }
}

/// The rules a VirtualService gathers.
#[derive(Default)]
pub(crate) struct Bucketed {
    pub http: Vec<Entry>,
    pub tcp: Vec<TcpRoute>,
    pub tls: Vec<TlsRoute>,
}

/// A TCP or TLS route's backends, every rule's together (the Gateway API
/// has no matches on them), or None when none resolves.
fn backends(index: &Index, r: &Resource, rules: &[L4RouteRule], out: &mut Lowered) -> Option<Vec<RouteDestination>> {
    let mut route = Vec::new();
    for (j, rule) in rules.iter().enumerate() {
        for (b, backend) in rule.backend_refs.iter().enumerate() {
            let at = format!("spec.rules[{j}].backendRefs[{b}]");
            let Some(destination) = http::destination(index, r, &at, &backend.object(), out) else { continue };
            route.push(RouteDestination { destination, weight: Some(backend.weight.unwrap_or(1) as i64) });
        }
    }
    if route.iter().all(|d| d.weight == Some(0)) {
        return None;
    }
    if route.len() == 1 {
        route[0].weight = None;
    }
    Some(route)
}

/// The filter types of a GRPCRoute's rules (the Gateway API's).
const GRPC_FILTERS: &[&str] = &["RequestHeaderModifier", "ResponseHeaderModifier", "RequestMirror"];

/// A GRPCRoute as the HTTPRoute it means: a method match is a path match.
fn grpc_as_http(s: &GrpcRouteSpec) -> KubeHttpRouteSpec {
    let rules = s
        .rules
        .iter()
        .map(|rule| RouteRule {
            name: rule.name.clone(),
            matches: rule
                .matches
                .iter()
                .map(|m| RouteMatch {
                    path: m.method.as_ref().map(method_path),
                    headers: m.headers.clone(),
                    ..Default::default()
                })
                .collect(),
            // The filters a GRPCRoute has; another is warned of by the
            // coverage table, and the rule served without it.
            filters: rule.filters.iter().filter(|f| GRPC_FILTERS.contains(&f.type_.as_str())).cloned().collect(),
            backend_refs: rule.backend_refs.clone(),
            ..Default::default()
        })
        .collect();
    KubeHttpRouteSpec { parent_refs: s.parent_refs.clone(), hostnames: s.hostnames.clone(), rules }
}

/// The path match of a gRPC method match (`/service/method`).
fn method_path(m: &GrpcMethodMatch) -> PathMatch {
    let path = |type_: &str, value: String| PathMatch { type_: Some(type_.into()), value: Some(value) };
    let any = "[^/]+";
    if m.type_.as_deref() == Some("RegularExpression") {
        let (s, m) = (m.service.as_deref().unwrap_or(any), m.method.as_deref().unwrap_or(any));
        return path("RegularExpression", format!("/{s}/{m}"));
    }
    match (m.service.as_deref(), m.method.as_deref()) {
        (Some(s), Some(m)) => path("Exact", format!("/{s}/{m}")),
        (Some(s), None) => path("PathPrefix", format!("/{s}")),
        (None, Some(m)) => path("RegularExpression", format!("/{any}/{}", regex::escape(m))),
        (None, None) => path("PathPrefix", "/".into()),
    }
}
