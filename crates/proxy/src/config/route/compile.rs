//! Compiling Envoy's route protos into the matchers and actions of the
//! parent module: once per config version, never per request.

use super::*;

/// Envoy's regexes must match the whole value.
pub(super) fn full_regex(re: &str, ignore_case: bool) -> Result<Regex, CompileError> {
    let flags = if ignore_case { "(?i)" } else { "" };
    Regex::new(&format!("{flags}^(?:{re})$")).map_err(|e| CompileError::new(format!("bad regex {re:?}: {e}")))
}

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
    clusters: &Clusters,
    names: &crate::config::Interner,
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
        use rt::header_matcher::HeaderMatchSpecifier as H;
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
            _ => return Err(CompileError::new(format!("route {:?}: unsupported header match on {}", r.name, h.name))),
        };
        headers.push(HeaderMatch { name, matcher, invert: h.invert_match });
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
    })
}

fn compile_action(r: &rt::Route, clusters: &Clusters) -> Result<Action, CompileError> {
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
                Arc::new(RetryPolicy {
                    retry_on: RetryOn::parse(&p.retry_on),
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
                        Some(P::Cookie(c)) => Some(HashPolicy::Cookie(c.name.clone())),
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
                    name: m.cluster.as_str().into(),
                    cluster: clusters.get(m.cluster.as_str()).cloned(),
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
