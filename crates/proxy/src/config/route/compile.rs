//! Compiling Envoy's route protos into the matchers and actions of the
//! parent module: once per config version, never per request.

use super::*;
use crate::config::matcher::full_regex;
use crate::config::wire::{Wire, undecodable};
use crate::names::Interner;

/// The retry priority that sends retries to levels not tried yet.
const PREVIOUS_PRIORITIES: &str = "envoy.retry_priorities.previous_priorities";

fn header_value(name: &str, v: &str) -> Result<(HeaderName, HeaderValue), CompileError> {
    let n =
        HeaderName::from_bytes(name.as_bytes()).map_err(|_| CompileError::new(format!("bad header name {name:?}")))?;
    let v = HeaderValue::from_str(v).map_err(|_| CompileError::new(format!("bad value for header {name}")))?;
    Ok((n, v))
}

fn header_ops(add: &[HeaderValueOption], remove: &[String]) -> Result<HeaderOps, CompileError> {
    let (mut adds, mut removes) = (Vec::new(), Vec::new());
    for a in add {
        let Some(h) = &a.header else { continue };
        let (n, v) = header_value(&h.key, &h.value)?;
        // append_action: 0 APPEND_IF_EXISTS_OR_ADD, 2/3 overwrite
        let overwrite = a.append_action >= 2;
        adds.push((n, v, overwrite));
    }
    for r in remove {
        removes.push(
            HeaderName::from_bytes(r.as_bytes()).map_err(|_| CompileError::new(format!("bad header name {r:?}")))?,
        );
    }
    Ok(HeaderOps::new(adds, removes))
}

pub(super) fn compile_route(
    r: &rt::Route,
    clusters: &ClusterIndex,
    names: &crate::names::Interner,
) -> Result<Route, CompileError> {
    use rt::route_match::PathSpecifier as PS;
    let m = r.r#match.as_ref().ok_or_else(|| CompileError::new(format!("route {:?} has no match", r.name)))?;
    let case_sensitive = m.case_sensitive.as_ref().is_none_or(|b| b.value);
    let low = |s: &String| if case_sensitive { s.clone() } else { s.to_ascii_lowercase() };
    let path = match &m.path_specifier {
        Some(PS::Prefix(p)) => PathMatch::Prefix(low(p)),
        Some(PS::Path(p)) => PathMatch::Exact(low(p)),
        Some(PS::SafeRegex(r)) => PathMatch::Regex(full_regex(&r.regex, !case_sensitive)?),
        Some(PS::PathSeparatedPrefix(p)) => PathMatch::SeparatedPrefix(low(p)),
        _ => return Err(CompileError::new(format!("route {:?}: unsupported path match", r.name))),
    };
    let mut headers = Vec::new();
    for h in &m.headers {
        headers.push(HeaderMatch::compile(h).map_err(|e| CompileError::new(format!("route {:?}: {e}", r.name)))?);
    }
    let mut query = Vec::new();
    for q in &m.query_parameters {
        use rt::query_parameter_matcher::QueryParameterMatchSpecifier as Q;
        let matcher = match &q.query_parameter_match_specifier {
            Some(Q::StringMatch(sm)) => Some(StrMatch::compile(sm)?),
            _ => None,
        };
        query.push(QueryMatch { name: q.name.clone(), matcher });
    }
    let action = compile_action(r, clusters)?;
    Ok(Route {
        name: names.get(&r.name),
        path,
        case_sensitive,
        conditions: (!headers.is_empty() || !query.is_empty()).then(|| Box::new(Conditions { headers, query })),
        action,
        request_headers: header_ops(&r.request_headers_to_add, &r.request_headers_to_remove)?,
        response_headers: header_ops(&r.response_headers_to_add, &r.response_headers_to_remove)?,
        fault: super::fault::compile(r)?.map(Box::new),
        cors: super::cors::compile(r)?.map(Box::new),
    })
}

fn compile_action(r: &rt::Route, clusters: &ClusterIndex) -> Result<Action, CompileError> {
    use rt::route::Action as A;
    use rt::route_action::ClusterSpecifier as CS;
    match &r.action {
        Some(A::DirectResponse(d)) => {
            use envoy_types::pb::envoy::config::core::v3::data_source::Specifier as DS;
            let body = match d.body.as_ref().and_then(|b| b.specifier.as_ref()) {
                Some(DS::InlineString(s)) => Bytes::from(s.clone()),
                Some(DS::InlineBytes(b)) => Bytes::from(b.clone()),
                _ => Bytes::new(),
            };
            Ok(Action::Direct(Box::new(DirectResponse { status: d.status as u16, body })))
        }
        Some(A::Redirect(rd)) => {
            use rt::redirect_action::{PathRewriteSpecifier as PR, SchemeRewriteSpecifier as S};
            let code = match rd.response_code {
                1 => 302,
                2 => 303,
                3 => 307,
                4 => 308,
                _ => 301,
            };
            Ok(Action::Redirect(Box::new(Redirect {
                scheme: match &rd.scheme_rewrite_specifier {
                    Some(S::SchemeRedirect(s)) => Some(s.clone()),
                    Some(S::HttpsRedirect(true)) => Some("https".into()),
                    _ => None,
                },
                host: (!rd.host_redirect.is_empty()).then(|| rd.host_redirect.clone()),
                port: (rd.port_redirect != 0).then_some(rd.port_redirect as u16),
                path: match &rd.path_rewrite_specifier {
                    Some(PR::PathRedirect(p)) => Some(p.clone()),
                    _ => None,
                },
                prefix_rewrite: match &rd.path_rewrite_specifier {
                    Some(PR::PrefixRewrite(p)) => Some(p.clone()),
                    _ => None,
                },
                code,
            })))
        }
        Some(A::Route(ra)) => {
            let target = match &ra.cluster_specifier {
                Some(CS::Cluster(name)) => Target::single(name, clusters),
                Some(CS::WeightedClusters(w)) => {
                    let mut items = Vec::with_capacity(w.clusters.len());
                    for c in &w.clusters {
                        let weight = c.weight.as_ref().map_or(0, |w| w.value);
                        let req = header_ops(&c.request_headers_to_add, &c.request_headers_to_remove)?;
                        let resp = header_ops(&c.response_headers_to_add, &c.response_headers_to_remove)?;
                        items.push((c.name.clone(), weight, req, resp));
                    }
                    Target::weighted(items, clusters)
                        .map_err(|e| CompileError::new(format!("route {:?}: {e}", r.name)))?
                }
                _ => return Err(CompileError::new(format!("route {:?}: unsupported cluster specifier", r.name))),
            };
            let retry = ra.retry_policy.as_ref().map(|p| {
                let (retry_on, unsupported) = RetryOn::parse(&p.retry_on);
                if !unsupported.is_empty() {
                    tracing::warn!(route = %r.name, ?unsupported, "retry_on conditions weft does not know are not applied");
                }
                let other_priorities = match p.retry_priority.as_ref().map(|rp| rp.name.as_str()) {
                    None => false,
                    Some(PREVIOUS_PRIORITIES) => true,
                    Some(other) => {
                        tracing::warn!(route = %r.name, priority = other, "a retry priority weft does not know is not applied");
                        false
                    }
                };
                Arc::new(RetryPolicy {
                    other_priorities,
                    retry_on,
                    unsupported,
                    num_retries: p.num_retries.as_ref().map_or(1, |n| n.value),
                    per_try_timeout: p.per_try_timeout.as_ref().map(crate::config::duration).filter(|d| !d.is_zero()),
                    statuses: p.retriable_status_codes.iter().map(|c| *c as u16).collect(),
                    base_interval: p
                        .retry_back_off
                        .as_ref()
                        .and_then(|b| b.base_interval.as_ref())
                        .map_or(Duration::from_millis(25), crate::config::duration),
                })
            });
            let hash = ra
                .hash_policy
                .iter()
                .filter_map(|h| {
                    use rt::route_action::hash_policy::PolicySpecifier as P;
                    match &h.policy_specifier {
                        Some(P::Header(h)) => {
                            HeaderName::from_bytes(h.header_name.as_bytes()).ok().map(HashPolicy::Header)
                        }
                        Some(P::Cookie(c)) => Some(HashPolicy::Cookie(Box::new(CookiePolicy {
                            name: c.name.clone(),
                            ttl: c.ttl.as_ref().map(crate::config::duration),
                            path: c.path.clone(),
                            attributes: c
                                .attributes
                                .iter()
                                .map(|a| match a.value.as_str() {
                                    "" => format!("; {}", a.name),
                                    v => format!("; {}={v}", a.name),
                                })
                                .collect(),
                        }))),
                        Some(P::ConnectionProperties(c)) if c.source_ip => Some(HashPolicy::SourceIp),
                        Some(P::QueryParameter(q)) => Some(HashPolicy::Query(q.name.clone())),
                        _ => None,
                    }
                })
                .collect();
            let mirrors = ra
                .request_mirror_policies
                .iter()
                .map(|m| Mirror {
                    cluster: ClusterRef::new(&m.cluster, clusters),
                    ppm: crate::config::parts_per_million(
                        m.runtime_fraction.as_ref().and_then(|f| f.default_value.as_ref()),
                    ),
                })
                .collect();
            let (prefix_rewrite, regex_rewrite) = (
                (!ra.prefix_rewrite.is_empty()).then(|| ra.prefix_rewrite.clone()),
                match &ra.regex_rewrite {
                    Some(rr) => {
                        let pat = rr.pattern.as_ref().map_or("", |p| p.regex.as_str());
                        Some((
                            Regex::new(pat).map_err(|e| CompileError::new(format!("bad rewrite regex: {e}")))?,
                            rr.substitution.replace("\\", "$"),
                        ))
                    }
                    None => None,
                },
            );
            let host_rewrite = match &ra.host_rewrite_specifier {
                Some(rt::route_action::HostRewriteSpecifier::HostRewriteLiteral(h)) => {
                    Some(HeaderValue::from_str(h).map_err(|_| CompileError::new("bad host rewrite"))?)
                }
                _ => None,
            };
            let rewrite = (prefix_rewrite.is_some() || regex_rewrite.is_some() || host_rewrite.is_some())
                .then(|| Box::new(Rewrite { prefix: prefix_rewrite, regex: regex_rewrite, host: host_rewrite }));
            Ok(Action::Forward(Box::new(Forward {
                target,
                rewrite,
                timeout: ra.timeout.as_ref().map(crate::config::duration).filter(|d| !d.is_zero()),
                retry,
                hash,
                mirrors,
            })))
        }
        _ => Err(CompileError::new(format!("route {:?}: unsupported action", r.name))),
    }
}

/// A `RouteConfiguration` with its virtual hosts left undecoded, so a table
/// of thousands of hosts is compiled one host at a time instead of being
/// decoded whole first (field numbers as in Envoy's proto; the table uses
/// no other field).
#[derive(Clone, PartialEq, prost::Message)]
struct LazyRouteConfiguration {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(bytes = "bytes", repeated, tag = "2")]
    virtual_hosts: Vec<Bytes>,
}

/// Points `retry` at an equal policy met earlier in the table. Only the
/// first few distinct policies are remembered: tables repeat a handful.
fn share(retry: &mut Option<Arc<RetryPolicy>>, seen: &mut Vec<Arc<RetryPolicy>>) {
    let Some(r) = retry else { return };
    if let Some(same) = seen.iter().find(|s| ***s == **r) {
        *r = same.clone();
    } else if seen.len() < 8 {
        seen.push(r.clone());
    }
}

impl RouteTable {
    /// `names` shares route names across hosts (`default` in every one).
    pub fn compile(
        rc: &rt::RouteConfiguration,
        clusters: &ClusterIndex,
        names: &Interner,
    ) -> Result<Self, CompileError> {
        Self::build(&rc.name, rc.virtual_hosts.len(), rc.virtual_hosts.iter().map(Ok), clusters, names)
    }

    /// Compiles a table received over RDS, decoding one virtual host at a time.
    pub fn compile_wire(
        wire: &Wire<rt::RouteConfiguration>,
        clusters: &ClusterIndex,
        names: &Interner,
    ) -> Result<Self, CompileError> {
        use prost::Message;
        let rc = LazyRouteConfiguration::decode(wire.bytes()?).map_err(undecodable::<rt::RouteConfiguration>)?;
        let hosts =
            rc.virtual_hosts.iter().map(|b| rt::VirtualHost::decode(b.clone()).map_err(undecodable::<rt::VirtualHost>));
        Self::build(&rc.name, rc.virtual_hosts.len(), hosts, clusters, names)
    }

    fn build<V: std::borrow::Borrow<rt::VirtualHost>>(
        name: &str,
        count: usize,
        vhosts: impl Iterator<Item = Result<V, CompileError>>,
        clusters: &ClusterIndex,
        names: &Interner,
    ) -> Result<Self, CompileError> {
        let mut t = RouteTable { name: name.into(), hosts: Vec::with_capacity(count), domains: Default::default() };
        let mut retries = Vec::new();
        for (i, vh) in vhosts.enumerate() {
            let vh = vh?;
            let vh = vh.borrow();
            let mut routes =
                vh.routes.iter().map(|r| compile_route(r, clusters, names)).collect::<Result<Vec<_>, _>>()?;
            // Collected through a Result, a one-route Vec would keep room for four.
            routes.shrink_to_fit();
            for r in &mut routes {
                if let Action::Forward(f) = &mut r.action {
                    share(&mut f.retry, &mut retries);
                }
            }
            let require_tls = vh.require_tls != 0;
            t.hosts.push(VirtualHost { name: vh.name.as_str().into(), routes, require_tls });
            // Longest first, so shorter forms are found in the text of longer ones.
            let mut domains: Vec<String> = vh.domains.iter().map(|d| d.to_ascii_lowercase()).collect();
            domains.sort_unstable_by_key(|d| std::cmp::Reverse(d.len()));
            for d in domains {
                if !t.domains.insert(&d, i as u32) {
                    return Err(CompileError::new(format!(
                        "domain {d:?} appears in more than one virtual host; Envoy requires each domain in one only"
                    )));
                }
            }
        }
        t.domains.finish();
        Ok(t)
    }
}
