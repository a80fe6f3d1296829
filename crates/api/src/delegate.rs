//! VirtualService delegation with Istio's merge rules: a root's rule that
//! names a `delegate` is replaced by the delegate's rules, each match
//! narrowed by the root's, each unset setting taken from the root's rule.
//! A delegate is a VirtualService without `hosts`; its short host names
//! are its own namespace's.

use crate::index::Index;
use crate::resource::{Resource, Spec};
use crate::types::*;
use std::borrow::Cow;

/// One http rule of a VirtualService as it applies, after delegation.
pub struct Rule<'a> {
    pub rule: Cow<'a, HttpRoute>,
    /// The namespace its short host names resolve in.
    pub namespace: &'a str,
    /// Its name when it has none: `vs.ns/i`, or `vs.ns/i/delegate.ns/j`.
    pub default_name: String,
}

/// Why a root's rule has no delegate to take rules from.
pub enum Missing {
    /// No VirtualService of that name and namespace.
    NotFound,
    /// It has `hosts`, so it is a VirtualService of its own, not a delegate.
    HasHosts,
    /// Its `exportTo` hides it from the root's namespace.
    NotExported,
}

/// The delegate `d` names for a root in namespace `root_ns`.
pub fn find<'a>(
    index: &Index<'a>,
    root_ns: &str,
    d: &Delegate,
) -> Result<(&'a Resource, &'a VirtualServiceSpec), Missing> {
    let ns = d.namespace.as_deref().unwrap_or(root_ns);
    let found = index.resources.iter().find_map(|r| match &r.spec {
        Spec::VirtualService(vs) if r.name() == d.name && r.namespace() == ns => Some((r, vs)),
        _ => None,
    });
    match found {
        None => Err(Missing::NotFound),
        Some((_, vs)) if !vs.hosts.is_empty() => Err(Missing::HasHosts),
        Some((r, _)) if !index.exported(r, root_ns) => Err(Missing::NotExported),
        Some(found) => Ok(found),
    }
}

/// Whether some VirtualService delegates to `r`.
pub fn is_delegate(index: &Index, r: &Resource) -> bool {
    index.resources.iter().any(|root| match &root.spec {
        Spec::VirtualService(vs) => vs
            .http
            .iter()
            .filter_map(|h| h.delegate.as_ref())
            .any(|d| d.name == r.name() && d.namespace.as_deref().unwrap_or(root.namespace()) == r.namespace()),
        _ => false,
    })
}

/// `vs`'s http rules as they apply: delegating rules replaced by their
/// delegate's merged rules; a rule whose delegate is missing, and a
/// delegate's rule whose match conflicts with the root's, are left out
/// (Istio's behaviour; validation says so).
pub fn rules<'a>(index: &Index<'a>, vs: &'a Resource, spec: &'a VirtualServiceSpec) -> Vec<Rule<'a>> {
    let mut out = Vec::with_capacity(spec.http.len());
    let root_name = format!("{}.{}", vs.name(), vs.namespace());
    for (i, rule) in spec.http.iter().enumerate() {
        let Some(d) = &rule.delegate else {
            let default_name = format!("{root_name}/{i}");
            out.push(Rule { rule: Cow::Borrowed(rule), namespace: vs.namespace(), default_name });
            continue;
        };
        let Ok((child, child_spec)) = find(index, vs.namespace(), d) else { continue };
        for (j, sub) in child_spec.http.iter().enumerate() {
            // Delegation is one level deep, as in Istio.
            if sub.delegate.is_some() {
                continue;
            }
            if let Some(merged) = merge(rule, sub) {
                let default_name = format!("{root_name}/{i}/{}.{}/{j}", child.name(), child.namespace());
                out.push(Rule { rule: Cow::Owned(merged), namespace: child.namespace(), default_name });
            }
        }
    }
    out
}

/// A delegate's rule under its root's, or None when their matches conflict.
pub fn merge(root: &HttpRoute, sub: &HttpRoute) -> Option<HttpRoute> {
    let mut out = sub.clone();
    out.match_ = merge_matches(&root.match_, &sub.match_)?;
    out.name = match (&root.name, &sub.name) {
        (Some(r), Some(s)) => Some(format!("{r}-{s}")),
        (r, s) => s.clone().or(r.clone()),
    };
    fn inherit<T: Clone>(field: &mut Option<T>, root: &Option<T>) {
        if field.is_none() {
            field.clone_from(root);
        }
    }
    inherit(&mut out.rewrite, &root.rewrite);
    inherit(&mut out.timeout, &root.timeout);
    inherit(&mut out.retries, &root.retries);
    inherit(&mut out.fault, &root.fault);
    inherit(&mut out.mirror, &root.mirror);
    inherit(&mut out.mirror_percent, &root.mirror_percent);
    inherit(&mut out.mirror_percentage, &root.mirror_percentage);
    inherit(&mut out.cors_policy, &root.cors_policy);
    inherit(&mut out.headers, &root.headers);
    if out.mirrors.is_empty() {
        out.mirrors.clone_from(&root.mirrors);
    }
    Some(out)
}

/// Each of the delegate's matches merged with every root match it does not
/// conflict with; None when one finds none.
fn merge_matches(root: &[HttpMatchRequest], sub: &[HttpMatchRequest]) -> Option<Vec<HttpMatchRequest>> {
    if root.is_empty() {
        return Some(sub.to_vec());
    }
    if sub.is_empty() {
        return Some(root.to_vec());
    }
    let mut out = Vec::new();
    for s in sub {
        let before = out.len();
        out.extend(root.iter().filter(|r| !conflicts(r, s)).map(|r| merge_match(r, s)));
        if out.len() == before {
            return None;
        }
    }
    Some(out)
}

fn merge_match(root: &HttpMatchRequest, sub: &HttpMatchRequest) -> HttpMatchRequest {
    let mut out = sub.clone();
    out.name = match (&root.name, &sub.name) {
        (Some(r), Some(s)) => Some(format!("{r}-{s}")),
        (r, s) => s.clone().or(r.clone()),
    };
    for (field, from) in [
        (&mut out.uri, &root.uri),
        (&mut out.scheme, &root.scheme),
        (&mut out.method, &root.method),
        (&mut out.authority, &root.authority),
    ] {
        if field.is_none() {
            field.clone_from(from);
        }
    }
    for (field, from) in [
        (&mut out.headers, &root.headers),
        (&mut out.without_headers, &root.without_headers),
        (&mut out.query_params, &root.query_params),
    ] {
        for (k, v) in from {
            field.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    out.port = out.port.or(root.port);
    // Where a root's rule applies (gateways, callers) still bounds its
    // delegate's: a delegate cannot widen it.
    if out.gateways.is_empty() {
        out.gateways.clone_from(&root.gateways);
    }
    if out.source_labels.is_empty() {
        out.source_labels.clone_from(&root.source_labels);
    }
    if out.source_namespace.is_none() {
        out.source_namespace.clone_from(&root.source_namespace);
    }
    out
}

/// Istio's test: a delegate's match must be within the root's.
fn conflicts(root: &HttpMatchRequest, sub: &HttpMatchRequest) -> bool {
    let pairs = [
        (&root.uri, &sub.uri),
        (&root.scheme, &sub.scheme),
        (&root.method, &sub.method),
        (&root.authority, &sub.authority),
    ];
    pairs.iter().any(|(r, s)| string_conflict(r.as_ref(), s.as_ref()))
        || sub.headers.iter().any(|(k, s)| string_conflict(root.headers.get(k), Some(s)))
        || sub.without_headers.iter().any(|(k, s)| string_conflict(root.without_headers.get(k), Some(s)))
        || sub.query_params.iter().any(|(k, s)| string_conflict(root.query_params.get(k), Some(s)))
        || root.ignore_uri_case != sub.ignore_uri_case
        || matches!((root.port, sub.port), (Some(a), Some(b)) if a != b)
}

/// Whether `sub` can match what `root` cannot: no conflict when either is
/// unset; a regex on either side always conflicts (containment is not
/// decidable); an exact root takes only the same exact; a prefix root takes
/// an exact or prefix that starts with it.
fn string_conflict(root: Option<&StringMatch>, sub: Option<&StringMatch>) -> bool {
    let (Some(r), Some(s)) = (root, sub) else { return false };
    if r.regex.is_some() || s.regex.is_some() {
        return true;
    }
    if let Some(e) = &r.exact {
        return s.exact.as_ref() != Some(e);
    }
    if let Some(p) = &r.prefix {
        return !s.exact.as_ref().or(s.prefix.as_ref()).is_some_and(|v| v.starts_with(p.as_str()));
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefix(p: &str) -> Option<StringMatch> {
        Some(StringMatch { prefix: Some(p.into()), ..Default::default() })
    }
    fn exact(p: &str) -> Option<StringMatch> {
        Some(StringMatch { exact: Some(p.into()), ..Default::default() })
    }

    #[test]
    fn a_delegates_match_must_lie_within_its_roots() {
        let root = HttpMatchRequest { uri: prefix("/team"), ..Default::default() };
        let within = [prefix("/team/a"), exact("/team/b"), None];
        for uri in within {
            assert!(!conflicts(&root, &HttpMatchRequest { uri, ..Default::default() }));
        }
        let outside = [
            prefix("/other"),
            prefix("/tea"),
            Some(StringMatch { regex: Some("/team/.*".into()), ..Default::default() }),
        ];
        for uri in outside {
            assert!(conflicts(&root, &HttpMatchRequest { uri, ..Default::default() }));
        }
        let exact_root = HttpMatchRequest { uri: exact("/x"), ..Default::default() };
        assert!(conflicts(&exact_root, &HttpMatchRequest { uri: prefix("/x"), ..Default::default() }));
        assert!(!conflicts(&exact_root, &HttpMatchRequest { uri: exact("/x"), ..Default::default() }));
    }

    #[test]
    fn a_merged_rule_takes_the_roots_conditions_and_settings() {
        let mut root = HttpRoute {
            match_: vec![HttpMatchRequest { uri: prefix("/team"), gateways: vec!["gw".into()], ..Default::default() }],
            timeout: Some(Duration(std::time::Duration::from_secs(2))),
            ..Default::default()
        };
        root.match_[0].headers.insert("x-team".into(), exact("a").unwrap());
        let sub = HttpRoute {
            match_: vec![HttpMatchRequest { uri: prefix("/team/a"), ..Default::default() }],
            ..Default::default()
        };
        let m = merge(&root, &sub).expect("no conflict");
        assert_eq!(m.match_[0].uri, prefix("/team/a"));
        assert_eq!((m.match_[0].headers.len(), m.match_[0].gateways.len()), (1, 1));
        assert_eq!(m.timeout, root.timeout);
        let outside = HttpRoute {
            match_: vec![HttpMatchRequest { uri: prefix("/x"), ..Default::default() }],
            ..Default::default()
        };
        assert!(merge(&root, &outside).is_none());
    }
}
