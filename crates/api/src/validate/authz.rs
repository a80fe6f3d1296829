//! AuthorizationPolicy checks: what Istio refuses (an unknown action or
//! `when` key, a malformed address block, port or path), and a warning for
//! what weft evaluates differently from a mesh with request authentication.

use crate::diag::{Diagnostic, Severity::*, codes};
use crate::resource::Resource;
use crate::types::*;

const ACTIONS: &str = "ALLOW (the default), DENY, AUDIT or CUSTOM";

pub(super) fn check(r: &Resource, p: &AuthorizationPolicySpec, out: &mut Vec<Diagnostic>) {
    let mut err = |path: &str, msg: String, hint: Option<String>| {
        out.push(r.diag(Error, codes::INVALID_VALUE, path, msg, hint));
    };
    match p.action() {
        None => err(
            "spec.action",
            format!("unknown action `{}`", p.action.as_deref().unwrap_or_default()),
            Some(format!("use {ACTIONS}")),
        ),
        Some(AuthzAction::Custom) if p.provider.as_ref().and_then(|x| x.name.as_ref()).is_none() => {
            err("spec.provider", "a CUSTOM policy needs `provider.name`, the extension authorizer it asks".into(), None)
        }
        Some(a) if a != AuthzAction::Custom && p.provider.is_some() => err(
            "spec.provider",
            "`provider` is only for `action: CUSTOM`".into(),
            Some("remove it, or set `action: CUSTOM`".into()),
        ),
        _ => {}
    }
    if p.selector.is_some() && (p.target_ref.is_some() || !p.target_refs.is_empty()) {
        err(
            "spec.selector",
            "a policy takes `selector` or `targetRefs`, not both".into(),
            Some("keep one; `selector` picks workloads by their labels".into()),
        );
    }
    for (i, rule) in p.rules.iter().enumerate() {
        for (j, f) in rule.from.iter().enumerate() {
            let at = format!("spec.rules[{i}].from[{j}].source");
            match &f.source {
                Some(s) => source(&at, s, &mut err),
                None => err(&at, "`from` needs a `source`".into(), None),
            }
        }
        for (j, t) in rule.to.iter().enumerate() {
            let at = format!("spec.rules[{i}].to[{j}].operation");
            match &t.operation {
                Some(o) => operation(&at, o, &mut err),
                None => err(&at, "`to` needs an `operation`".into(), None),
            }
        }
        for (j, c) in rule.when.iter().enumerate() {
            let at = format!("spec.rules[{i}].when[{j}]");
            condition(&at, c, &mut err);
        }
    }
}

type Err<'a> = dyn FnMut(&str, String, Option<String>) + 'a;

fn source(at: &str, s: &AuthzSource, err: &mut Err) {
    let lists: [(&str, &[String]); 12] = [
        ("principals", &s.principals),
        ("notPrincipals", &s.not_principals),
        ("requestPrincipals", &s.request_principals),
        ("notRequestPrincipals", &s.not_request_principals),
        ("namespaces", &s.namespaces),
        ("notNamespaces", &s.not_namespaces),
        ("serviceAccounts", &s.service_accounts),
        ("notServiceAccounts", &s.not_service_accounts),
        ("ipBlocks", &s.ip_blocks),
        ("notIpBlocks", &s.not_ip_blocks),
        ("remoteIpBlocks", &s.remote_ip_blocks),
        ("notRemoteIpBlocks", &s.not_remote_ip_blocks),
    ];
    if lists.iter().all(|(_, l)| l.is_empty()) {
        err(
            at,
            "an empty `source` matches nothing Istio accepts".into(),
            Some("name principals, namespaces, IP blocks... or remove `from`".into()),
        );
    }
    for (name, list) in lists {
        for (k, v) in list.iter().enumerate() {
            let path = format!("{at}.{name}[{k}]");
            if name.to_ascii_lowercase().contains("ipblocks") {
                if let Err(e) = cidr(v) {
                    err(&path, e, Some("e.g. `10.0.0.0/8` or `192.168.1.7`".into()));
                }
            } else if misplaced_wildcard(v) {
                err(&path, format!("`{v}`: `*` may only start or end a value"), None);
            }
        }
    }
    if (!s.service_accounts.is_empty() || !s.not_service_accounts.is_empty())
        && (!s.principals.is_empty() || !s.not_principals.is_empty())
    {
        err(&format!("{at}.serviceAccounts"), "`serviceAccounts` cannot be used with `principals`".into(), None);
    }
}

fn operation(at: &str, o: &AuthzOperation, err: &mut Err) {
    let lists: [(&str, &[String]); 8] = [
        ("hosts", &o.hosts),
        ("notHosts", &o.not_hosts),
        ("ports", &o.ports),
        ("notPorts", &o.not_ports),
        ("methods", &o.methods),
        ("notMethods", &o.not_methods),
        ("paths", &o.paths),
        ("notPaths", &o.not_paths),
    ];
    if lists.iter().all(|(_, l)| l.is_empty()) {
        err(
            at,
            "an empty `operation` matches nothing Istio accepts".into(),
            Some("name hosts, ports, methods or paths, or remove `to`".into()),
        );
    }
    for (name, list) in lists {
        for (k, v) in list.iter().enumerate() {
            let path = format!("{at}.{name}[{k}]");
            let problem = match name {
                "ports" | "notPorts" => {
                    v.parse::<u16>().ok().filter(|p| *p > 0).is_none().then(|| format!("`{v}` is not a port (1-65535)"))
                }
                "paths" | "notPaths" => path_match(v).err(),
                _ => misplaced_wildcard(v).then(|| format!("`{v}`: `*` may only start or end a value")),
            };
            if let Some(p) = problem {
                err(&path, p, None);
            }
        }
    }
}

/// Checks a `when` condition.
fn condition(at: &str, c: &AuthzCondition, err: &mut Err) {
    let key = condition_key(&c.key);
    match key {
        None => err(
            &format!("{at}.key"),
            format!("unknown condition key `{}`", c.key),
            Some("see Istio's authorization conditions: e.g. `request.headers[x-token]`, `source.ip`, `source.namespace`, `destination.port`".into()),
        ),
        Some("experimental.envoy.filters.network.mysql_proxy[]") => err(
            &format!("{at}.key"),
            "MySQL conditions need Envoy's MySQL filter, which weft's proxies do not run".into(),
            None,
        ),
        Some(k) => {
            for (name, list) in [("values", &c.values), ("notValues", &c.not_values)] {
                for (i, v) in list.iter().enumerate() {
                    let path = format!("{at}.{name}[{i}]");
                    let bad = match k {
                        "source.ip" | "remote.ip" | "destination.ip" => cidr(v).err(),
                        "destination.port" => v.parse::<u16>().is_err().then(|| format!("`{v}` is not a port")),
                        _ => None,
                    };
                    if let Some(b) = bad {
                        err(&path, b, None);
                    }
                }
            }
        }
    }
    if c.values.is_empty() && c.not_values.is_empty() {
        err(at, "a condition needs `values` or `notValues`".into(), None);
    }
}

/// PeerAuthentication: known modes; ports only under a selector (Istio's rule).
pub(super) fn peer_authentication(r: &Resource, p: &PeerAuthenticationSpec, out: &mut Vec<Diagnostic>) {
    let modes = "use UNSET (inherit), PERMISSIVE, STRICT or DISABLE";
    let mut mode = |path: &str, m: &PeerMtls| {
        if let Err(v) = m.mode() {
            out.push(r.diag(Error, codes::INVALID_VALUE, path, format!("unknown mTLS mode `{v}`"), Some(modes.into())));
        }
    };
    if let Some(m) = &p.mtls {
        mode("spec.mtls.mode", m);
    }
    for (port, m) in &p.port_level_mtls {
        mode(&format!("spec.portLevelMtls.{port}.mode"), m);
    }
    for port in p.port_level_mtls.keys() {
        if port.parse::<u16>().ok().filter(|p| *p > 0).is_none() {
            let at = format!("spec.portLevelMtls.{port}");
            out.push(r.diag(Error, codes::INVALID_VALUE, &at, format!("`{port}` is not a port (1-65535)"), None));
        }
    }
    if !p.port_level_mtls.is_empty() && p.selector.is_none() {
        out.push(r.diag(
            Error,
            codes::MISSING_FIELD,
            "spec.portLevelMtls",
            "`portLevelMtls` needs a `selector`: ports are a workload's",
            Some("add `selector.matchLabels` for the workloads whose ports these are".into()),
        ));
    }
}
