//! Routes attached to their parents: a Gateway's listeners (by section name,
//! port, namespace, route kind and hostname), or a `Service`, for mesh
//! traffic to it (GAMMA). Each listener, hostname and route namespace gets
//! one VirtualService holding every rule attached there, in precedence order.

use super::listeners::Listener;
use super::routes::{self, Bucketed, Route};
use super::{GROUP, Lowered};
use crate::index::Index;
use crate::resource::{Resource, Spec};
use crate::types::VirtualServiceSpec;
use crate::types::gateway_api::ParentRef;
use std::collections::BTreeMap;

/// The rules bound to one listener (or Service) and hostname, from routes
/// of one namespace.
struct Bucket<'a> {
    from: &'a Resource,
    name: String,
    gateway: Option<String>,
    rules: Bucketed,
}

pub(crate) fn routes(index: &Index, listeners: &[Listener], out: &mut Lowered) {
    let mut resources: Vec<&Resource> = index.resources.iter().filter(|r| r.origin.derived_from.is_none()).collect();
    // Older routes first, then by name: the Gateway API's tie-break.
    let created = |r: &Resource| r.meta.creation_timestamp.as_ref().and_then(|t| t.as_str()).unwrap_or("~").to_owned();
    resources.sort_by_key(|r| (created(r), r.namespace().to_owned(), r.name().to_owned()));
    let mut buckets: BTreeMap<(String, String, String), Bucket> = BTreeMap::new();
    let mut rank = 0;
    for r in resources {
        let Some(route) = routes::lower(index, r, rank, out) else { continue };
        rank += 1;
        if route.parents.is_empty() {
            let msg = "the route names no `parentRefs`: it attaches to no Gateway or Service".to_owned();
            out.condition(r, "spec", "Accepted", "NoMatchingParent", msg, "add `parentRefs`");
        }
        for (i, p) in route.parents.iter().enumerate() {
            let at = format!("spec.parentRefs[{i}]");
            let group = p.group.as_deref().unwrap_or(GROUP);
            match (group, p.kind.as_deref().unwrap_or("Gateway")) {
                (GROUP, "Gateway") => {
                    for (l, host) in gateway_parent(index.resources, listeners, &route, &at, p, out) {
                        let key = (l.istio_ref.clone(), host.clone(), r.namespace().to_owned());
                        let name = format!("{}-{}.{}", l.gateway.name(), l.spec.name, host.replace('*', "wildcard"));
                        let gateway = Some(l.istio_ref.clone());
                        let b = buckets.entry(key).or_insert_with(|| Bucket {
                            from: r,
                            name,
                            gateway,
                            rules: Default::default(),
                        });
                        route.rules.add_to(&mut b.rules, std::slice::from_ref(&host), None);
                    }
                }
                ("" | "core", "Service") => {
                    let ns = p.namespace.as_deref().unwrap_or(r.namespace());
                    let Some(svc) = index.service(&crate::resource::service_fqdn(&p.name, ns), ns) else {
                        let msg = format!("no Service `{ns}/{}` for this mesh route", p.name);
                        out.condition(
                            r,
                            &at,
                            "Accepted",
                            "NoMatchingParent",
                            msg,
                            "check the Service's name and namespace",
                        );
                        continue;
                    };
                    let key = ("mesh".to_owned(), svc.fqdn.clone(), r.namespace().to_owned());
                    let name = format!("{}.mesh", svc.fqdn);
                    let b = buckets.entry(key).or_insert_with(|| Bucket {
                        from: r,
                        name,
                        gateway: None,
                        rules: Default::default(),
                    });
                    let sni = route
                        .hostnames
                        .filter(|h| !h.is_empty())
                        .map_or_else(|| vec![svc.fqdn.clone()], <[String]>::to_vec);
                    route.rules.add_to(&mut b.rules, &sni, p.port);
                }
                (group, kind) => {
                    let msg = format!("a parent of kind `{kind}` (group `{group}`) is not served");
                    out.condition(
                        r,
                        &at,
                        "Accepted",
                        "InvalidKind",
                        msg,
                        "attach to a Gateway, or to a Service for mesh traffic",
                    );
                }
            }
        }
    }
    for ((_, host, ns), mut b) in buckets {
        b.rules.http.sort_by_key(|e| e.key);
        let spec = VirtualServiceSpec {
            hosts: vec![host],
            gateways: b.gateway.into_iter().collect(),
            http: b.rules.http.into_iter().map(|e| e.route).collect(),
            tcp: b.rules.tcp,
            tls: b.rules.tls,
            ..Default::default()
        };
        out.derive(b.from, b.name, &ns, Spec::VirtualService(spec));
    }
}

/// The listeners of the Gateway `p` names that take the route, each with a
/// hostname the two share; says why when there is none.
fn gateway_parent<'l>(
    resources: &[Resource],
    listeners: &'l [Listener],
    route: &Route,
    at: &str,
    p: &ParentRef,
    out: &mut Lowered,
) -> Vec<(&'l Listener<'l>, String)> {
    let r = route.resource;
    let ns = p.namespace.as_deref().unwrap_or(r.namespace());
    let of_gateway: Vec<&Listener> =
        listeners.iter().filter(|l| l.gateway.name() == p.name && l.gateway.namespace() == ns).collect();
    if of_gateway.is_empty() {
        let msg = format!("no Gateway `{ns}/{}` that weft serves", p.name);
        out.condition(r, at, "Accepted", "NoMatchingParent", msg, "check the Gateway's name, namespace and class");
        return Vec::new();
    }
    let named: Vec<&Listener> = of_gateway
        .into_iter()
        .filter(|l| p.section_name.as_ref().is_none_or(|s| *s == l.spec.name))
        .filter(|l| p.port.is_none_or(|port| port == l.spec.port))
        .collect();
    if named.is_empty() {
        let msg = format!("Gateway `{ns}/{}` has no listener of that sectionName and port", p.name);
        out.condition(r, at, "Accepted", "NoMatchingParent", msg, "check `sectionName` and `port`");
        return Vec::new();
    }
    let allowed: Vec<&Listener> =
        named.into_iter().filter(|l| l.admits(resources, r.namespace()) && l.takes(route.kind())).collect();
    if allowed.is_empty() {
        let msg = format!(
            "the listeners of Gateway `{ns}/{}` do not allow {}s of namespace `{}`",
            p.name,
            route.kind(),
            r.namespace()
        );
        out.condition(r, at, "Accepted", "NotAllowedByListeners", msg, "set the listener's `allowedRoutes`");
        return Vec::new();
    }
    let attached: Vec<(&Listener, String)> = allowed
        .into_iter()
        .flat_map(|l| {
            let hosts = match route.hostnames {
                Some(names) => shared_hostnames(l.spec.hostname.as_deref(), names),
                None => vec!["*".to_owned()],
            };
            hosts.into_iter().map(move |h| (l, h))
        })
        .collect();
    if attached.is_empty() {
        let msg = format!("no hostname of the route is one the listeners of Gateway `{ns}/{}` serve", p.name);
        out.condition(r, at, "Accepted", "NoMatchingListenerHostname", msg, "");
    }
    attached
}

/// The hostnames a listener and a route share; `*` when neither names any.
fn shared_hostnames(listener: Option<&str>, route: &[String]) -> Vec<String> {
    match listener {
        None if route.is_empty() => vec!["*".into()],
        None => route.to_vec(),
        Some(l) if route.is_empty() => vec![l.to_owned()],
        Some(l) => route
            .iter()
            .filter_map(|h| {
                if h == l || covers(l, h) {
                    Some(h.clone())
                } else if covers(h, l) {
                    Some(l.to_owned())
                } else {
                    None
                }
            })
            .collect(),
    }
}

/// Whether the wildcard `pattern` (`*.example.com`) takes `host`: one or
/// more labels in front of its suffix.
fn covers(pattern: &str, host: &str) -> bool {
    pattern
        .strip_prefix("*.")
        .is_some_and(|suffix| host.strip_suffix(suffix).is_some_and(|front| front.len() > 1 && front.ends_with('.')))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostnames_intersect_as_the_gateway_api_says() {
        let h = |l: Option<&str>, r: &[&str]| shared_hostnames(l, &r.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(h(None, &[]), ["*"]);
        assert_eq!(h(Some("a.example.com"), &[]), ["a.example.com"]);
        assert_eq!(h(Some("*.example.com"), &["a.example.com", "example.com", "b.other.org"]), ["a.example.com"]);
        assert_eq!(h(Some("a.example.com"), &["*.example.com"]), ["a.example.com"]);
        assert_eq!(h(Some("*.example.com"), &["*.a.example.com"]), ["*.a.example.com"]);
        assert!(h(Some("a.example.com"), &["b.example.com"]).is_empty());
    }
}
