//! Route tables compiled from Envoy `RouteConfiguration`s: virtual hosts by
//! domain (Envoy's precedence: exact, longest `*.suffix`, longest `prefix*`,
//! then `*`), and per host an ordered list of routes, first match wins.

mod compile;
pub mod cors;
mod describe;
mod domains;
pub mod fault;

pub use super::matcher::RequestView;
use super::matcher::{HeaderMatch, StrMatch};
use super::{ClusterId, ClusterIndex, CompileError};
use bytes::Bytes;
use envoy_types::pb::envoy::config::core::v3::HeaderValueOption;
use envoy_types::pb::envoy::config::route::v3 as rt;
use http::{HeaderName, HeaderValue};
use regex::Regex;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct RouteTable {
    pub name: Arc<str>,
    hosts: Vec<VirtualHost>,
    domains: domains::DomainIndex,
}

#[derive(Debug, Clone)]
pub struct VirtualHost {
    pub name: Arc<str>,
    pub routes: Vec<Route>,
    /// Plaintext requests are redirected to https (Envoy's `require_tls`:
    /// a gateway server's `httpsRedirect`).
    pub require_tls: bool,
}

#[derive(Debug, Clone)]
pub struct Route {
    pub name: Arc<str>,
    path: PathMatch,
    case_sensitive: bool,
    /// Header and query conditions; boxed, and None for most routes.
    conditions: Option<Box<Conditions>>,
    pub action: Action,
    pub request_headers: HeaderOps,
    pub response_headers: HeaderOps,
    /// Boxed: most routes inject no faults.
    pub fault: Option<Box<fault::Fault>>,
    /// Boxed: most routes have no CORS policy.
    pub cors: Option<Box<cors::Cors>>,
}

#[derive(Debug, Clone)]
struct Conditions {
    headers: Vec<HeaderMatch>,
    query: Vec<QueryMatch>,
}

#[derive(Debug, Clone)]
enum PathMatch {
    Prefix(String),
    Exact(String),
    Regex(Regex),
    SeparatedPrefix(String),
}

#[derive(Debug, Clone)]
struct QueryMatch {
    name: String,
    matcher: Option<(StrMatch, bool)>,
}

/// Header additions and removals. Boxed, and `None` when there are none
/// (most routes): 8 bytes instead of 48, twice per route.
#[derive(Debug, Default, Clone)]
pub struct HeaderOps(Option<Box<Ops>>);

#[derive(Debug, Clone)]
struct Ops {
    /// (name, value, overwrite)
    add: Vec<(HeaderName, HeaderValue, bool)>,
    remove: Vec<HeaderName>,
}

impl HeaderOps {
    pub fn new(add: Vec<(HeaderName, HeaderValue, bool)>, remove: Vec<HeaderName>) -> Self {
        HeaderOps((!add.is_empty() || !remove.is_empty()).then(|| Box::new(Ops { add, remove })))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    pub fn apply(&self, headers: &mut http::HeaderMap) {
        let Some(ops) = &self.0 else { return };
        for name in &ops.remove {
            headers.remove(name);
        }
        for (name, value, overwrite) in &ops.add {
            if *overwrite {
                headers.insert(name.clone(), value.clone());
            } else {
                headers.append(name.clone(), value.clone());
            }
        }
    }
}

/// Each variant boxed: a sidecar holds a route per service, so the enum
/// stays two words.
#[derive(Debug, Clone)]
pub enum Action {
    Forward(Box<Forward>),
    Redirect(Box<Redirect>),
    Direct(Box<DirectResponse>),
}

#[derive(Debug, Clone)]
pub struct DirectResponse {
    pub status: u16,
    pub body: Bytes,
}

#[derive(Debug, Clone)]
pub struct Forward {
    pub target: Target,
    /// Boxed: most routes rewrite nothing, and a sidecar holds thousands.
    pub rewrite: Option<Box<Rewrite>>,
    /// None = no timeout (Istio's default).
    pub timeout: Option<Duration>,
    /// Shared by the routes of a table that retry alike (Istio gives
    /// every route the same default).
    pub retry: Option<Arc<RetryPolicy>>,
    pub hash: Vec<HashPolicy>,
    pub mirrors: Vec<Mirror>,
}

/// A cluster a route names, and its id in the config version the table is
/// linked to; `id` is None when this proxy does not have the cluster (the
/// request gets 503, flag NC).
#[derive(Debug, Clone)]
pub struct ClusterRef {
    pub name: Arc<str>,
    pub id: Option<ClusterId>,
}

impl ClusterRef {
    pub fn new(name: &str, clusters: &ClusterIndex) -> Self {
        match clusters.get_key_value(name) {
            Some((name, id)) => ClusterRef { name: name.clone(), id: Some(*id) },
            None => ClusterRef { name: name.into(), id: None },
        }
    }

    fn relink(&mut self, clusters: &ClusterIndex) {
        self.id = clusters.get(&*self.name).copied();
    }
}

#[derive(Debug, Clone)]
pub enum Target {
    Cluster(ClusterRef),
    /// Cumulative weights, total, and per-destination header operations.
    Weighted {
        choices: Vec<WeightedChoice>,
        total: u32,
    },
}

impl Target {
    /// One cluster (which this proxy may not have).
    pub fn single(name: &str, clusters: &ClusterIndex) -> Target {
        Target::Cluster(ClusterRef::new(name, clusters))
    }

    /// Weighted destinations `(cluster, weight, request ops, response ops)`;
    /// weight 0 takes none. Err if no destination has any weight.
    pub fn weighted(
        items: impl IntoIterator<Item = (String, u32, HeaderOps, HeaderOps)>,
        clusters: &ClusterIndex,
    ) -> Result<Target, CompileError> {
        let mut total = 0u32;
        let mut choices = Vec::new();
        for (name, weight, request_headers, response_headers) in items.into_iter().filter(|i| i.1 > 0) {
            total += weight;
            let cluster = ClusterRef::new(&name, clusters);
            choices.push(WeightedChoice { cluster, upto: total, request_headers, response_headers });
        }
        if total == 0 {
            return Err(CompileError::new("weighted clusters with total weight 0: no destination would get traffic"));
        }
        Ok(Target::Weighted { choices, total })
    }

    /// The names of the clusters it may go to.
    pub fn names(&self) -> Vec<&str> {
        match self {
            Target::Cluster(c) => vec![&*c.name],
            Target::Weighted { choices, .. } => choices.iter().map(|c| &*c.cluster.name).collect(),
        }
    }

    fn relink(&mut self, clusters: &ClusterIndex) {
        match self {
            Target::Cluster(c) => c.relink(clusters),
            Target::Weighted { choices, .. } => choices.iter_mut().for_each(|c| c.cluster.relink(clusters)),
        }
    }
}

/// Istio's `rewrite`: path prefix or regex, and authority.
#[derive(Debug, Clone, Default)]
pub struct Rewrite {
    pub prefix: Option<String>,
    pub regex: Option<(Regex, String)>,
    pub host: Option<HeaderValue>,
}

/// A mirror destination.
#[derive(Debug, Clone)]
pub struct Mirror {
    pub cluster: ClusterRef,
    /// Parts per million of requests mirrored.
    pub ppm: u32,
}

#[derive(Debug, Clone)]
pub struct WeightedChoice {
    pub cluster: ClusterRef,
    pub upto: u32,
    pub request_headers: HeaderOps,
    pub response_headers: HeaderOps,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    pub retry_on: RetryOn,
    pub num_retries: u32,
    pub per_try_timeout: Option<Duration>,
    pub statuses: Vec<u16>,
    pub base_interval: Duration,
    /// Retries go to priority levels not tried yet (Envoy's
    /// `previous_priorities`: Istio's `retryRemoteLocalities`).
    pub other_priorities: bool,
    /// `retry_on` conditions weft does not know: kept (and warned of when
    /// the table compiles), never silently dropped.
    pub unsupported: Vec<String>,
}

/// Retry conditions, as Envoy's `x-envoy-retry-on` names them.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RetryOn {
    pub s5xx: bool,
    pub gateway_error: bool,
    pub reset: bool,
    pub connect_failure: bool,
    pub refused_stream: bool,
    pub retriable_4xx: bool,
    pub retriable_status_codes: bool,
    /// gRPC status names: cancelled, deadline-exceeded, resource-exhausted, unavailable, internal.
    pub grpc: [bool; 5],
}

impl RetryOn {
    /// The conditions of an `x-envoy-retry-on` list, and the names in it
    /// that are none of them.
    pub fn parse(s: &str) -> (Self, Vec<String>) {
        let mut r = RetryOn::default();
        let mut unknown = Vec::new();
        for c in s.split(',').map(str::trim).filter(|c| !c.is_empty()) {
            match c {
                "5xx" => r.s5xx = true,
                "gateway-error" => r.gateway_error = true,
                "reset" => r.reset = true,
                "connect-failure" => r.connect_failure = true,
                "refused-stream" => r.refused_stream = true,
                "retriable-4xx" => r.retriable_4xx = true,
                "retriable-status-codes" => r.retriable_status_codes = true,
                "cancelled" => r.grpc[0] = true,
                "deadline-exceeded" => r.grpc[1] = true,
                "resource-exhausted" => r.grpc[2] = true,
                "unavailable" => r.grpc[3] = true,
                "internal" => r.grpc[4] = true,
                _ => unknown.push(c.to_owned()),
            }
        }
        (r, unknown)
    }
}

#[derive(Debug, Clone)]
pub enum HashPolicy {
    Header(HeaderName),
    Cookie(Box<CookiePolicy>),
    SourceIp,
    Query(String),
}

/// Envoy's cookie hash: with a `ttl`, a request without the cookie gets
/// one made up (from its connection's address), hashed as the request
/// carrying it will be, and set on the response, so a session sticks from
/// its first request.
#[derive(Debug, Clone)]
pub struct CookiePolicy {
    pub name: String,
    pub ttl: Option<Duration>,
    pub path: String,
    /// `; name=value` (`; name` when the value is empty) each, written once.
    pub attributes: String,
}

#[derive(Debug, Clone)]
pub struct Redirect {
    pub scheme: Option<String>,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub path: Option<String>,
    pub prefix_rewrite: Option<String>,
    pub code: u16,
}

impl RouteTable {
    /// The virtual host for `authority` (lowercase expected).
    pub fn host(&self, authority: &str) -> Option<&VirtualHost> {
        self.hosts.get(self.domains.lookup(authority)? as usize)
    }

    /// The same table pointing at `clusters` (after a cluster update), so
    /// a table need not be compiled again, nor its resource kept to be.
    pub fn relinked(&self, clusters: &ClusterIndex) -> RouteTable {
        let mut t = self.clone();
        for r in t.hosts.iter_mut().flat_map(|h| h.routes.iter_mut()) {
            let Action::Forward(f) = &mut r.action else { continue };
            f.target.relink(clusters);
            for m in &mut f.mirrors {
                m.cluster.relink(clusters);
            }
        }
        t
    }
}

impl VirtualHost {
    pub fn route(&self, req: &RequestView) -> Option<&Route> {
        self.routes.iter().find(|r| r.matches(req))
    }
}

fn query_param<'a>(query: Option<&'a str>, name: &str) -> Option<&'a str> {
    query?.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k == name).then_some(v)
    })
}

impl Route {
    /// The path with the matched prefix replaced by `new` (for exact and
    /// regex matches, the whole path), as Istio's `rewrite.uri` does.
    pub fn rewrite_prefix(&self, path: &str, new: &str) -> String {
        match &self.path {
            PathMatch::Prefix(p) | PathMatch::SeparatedPrefix(p) if path.len() >= p.len() => {
                let rest = &path[p.len()..];
                if new.ends_with('/') && rest.starts_with('/') {
                    format!("{new}{}", &rest[1..])
                } else {
                    format!("{new}{rest}")
                }
            }
            _ => new.to_owned(),
        }
    }

    fn matches(&self, req: &RequestView) -> bool {
        let lowered;
        let path = if self.case_sensitive {
            req.path
        } else {
            lowered = req.path.to_ascii_lowercase();
            lowered.as_str()
        };
        let path_ok = match &self.path {
            PathMatch::Prefix(p) => path.starts_with(p.as_str()),
            PathMatch::Exact(p) => path == p,
            PathMatch::Regex(r) => r.is_match(req.path),
            PathMatch::SeparatedPrefix(p) => {
                path == p || (path.starts_with(p.as_str()) && path.as_bytes().get(p.len()) == Some(&b'/'))
            }
        };
        if !path_ok {
            return false;
        }
        let Some(c) = &self.conditions else { return true };
        if !c.headers.iter().all(|h| h.matches(req)) {
            return false;
        }
        c.query.iter().all(|q| match (query_param(req.query, &q.name), &q.matcher) {
            (None, _) => false,
            (Some(_), None) => true,
            (Some(v), Some((m, ic))) => m.matches(v, *ic),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::wire::Wire;

    #[test]
    fn the_route_fuzzers_seed_is_a_table() {
        // fuzz/seeds/route_table, written by hand in protobuf's wire format.
        let seed = include_bytes!("../../../../../fuzz/seeds/route_table/two-hosts.pb");
        let index: ClusterIndex = [("a".into(), ClusterId(0))].into_iter().collect();
        let t = RouteTable::compile_wire(&Wire::new(seed.to_vec()), &index, &Default::default()).unwrap();
        assert_eq!(&*t.name, "outbound");
        let Action::Forward(f) = &t.host("a:80").unwrap().routes[0].action else { panic!("forwards") };
        assert!(matches!(&f.target, Target::Cluster(c) if c.id == Some(ClusterId(0))));
        assert!(t.host("x.b.svc").is_some());
    }

    #[test]
    fn retry_on_keeps_the_conditions_it_does_not_know() {
        let (on, unknown) = RetryOn::parse("5xx, reset-before-request,connect-failure,,retriable-headers");
        assert!(on.s5xx && on.connect_failure && !on.reset);
        assert_eq!(unknown, vec!["reset-before-request".to_owned(), "retriable-headers".to_owned()]);
    }
}
