//! AuthorizationPolicies as Envoy RBAC HTTP filters, as Istio writes them:
//! per workload, the policies of the mesh (root namespace) and of its own
//! namespace whose selector picks it; one filter per action in Istio's
//! order (AUDIT, DENY, ALLOW), each policy rule a named RBAC policy whose
//! permissions are the rule's `to` and principals its `from`, the `when`
//! conditions joined to both. Dry-run policies go to shadow rules.
//!
//! Destination ports and addresses are known here (the sidecar's app port
//! and address, the gateway server's port), so conditions on them are
//! decided at translation: what a proxy sees as a connection's local port
//! is its own listener's, not the workload's.

use super::node::ProxyNode;
use envoy_types::pb::envoy::config::core::v3::CidrRange;
use envoy_types::pb::envoy::config::listener::v3::{Filter, filter};
use envoy_types::pb::envoy::config::rbac::v3::{Permission, Policy, Principal, Rbac, permission, principal, rbac};
use envoy_types::pb::envoy::config::route::v3::{HeaderMatcher, header_matcher};
use envoy_types::pb::envoy::extensions::filters::http::rbac::v3::Rbac as RbacFilter;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{HttpFilter, http_filter};
use envoy_types::pb::envoy::extensions::filters::network::rbac::v3::Rbac as NetworkRbac;
use envoy_types::pb::envoy::r#type::matcher::v3::{
    PathMatcher, RegexMatcher, StringMatcher, path_matcher, string_matcher::MatchPattern,
};
use envoy_types::pb::google::protobuf::UInt32Value;
use envoy_types::util::pack_any;
use weft_api::Resource;
use weft_api::index::Index;
use weft_api::types::*;

mod request_auth;
use request_auth::Dialect;

const FILTER: &str = "envoy.filters.http.rbac";
const NETWORK_FILTER: &str = "envoy.filters.network.rbac";

/// The workload an HTTP listener serves, as its policies see it.
pub struct Target<'a> {
    pub node: &'a ProxyNode,
    /// The port requests are for: the sidecar's app port, the gateway
    /// server's port.
    pub port: u16,
}

/// The RBAC filters for `target`, in chain order; none without a policy.
pub fn filters(index: &Index, target: &Target) -> Vec<HttpFilter> {
    rbacs(index, target, false)
        .into_iter()
        .map(|(rules, shadow_rules)| {
            let f = RbacFilter { rules, shadow_rules, ..Default::default() };
            HttpFilter {
                name: FILTER.into(),
                config_type: Some(http_filter::ConfigType::TypedConfig(pack_any(f))),
                ..Default::default()
            }
        })
        .collect()
}

/// The network RBAC filters for a TCP listener of `target`, in chain
/// order, as Istio writes them for TCP: a rule with HTTP-only fields is
/// dropped from an ALLOW policy (it allows nothing), and in DENY and AUDIT
/// policies loses those fields (it matches more), so a TCP port is never
/// opened by what only a request could show.
pub fn network_filters(index: &Index, target: &Target) -> Vec<Filter> {
    rbacs(index, target, true)
        .into_iter()
        .map(|(rules, shadow_rules)| {
            let f = NetworkRbac { rules, shadow_rules, stat_prefix: "tcp.".into(), ..Default::default() };
            Filter { name: NETWORK_FILTER.into(), config_type: Some(filter::ConfigType::TypedConfig(pack_any(f))) }
        })
        .collect()
}

/// Each action's enforced and dry-run rules, in Istio's order (AUDIT,
/// DENY, ALLOW); only actions some policy has. `tcp`: as a TCP port sees them.
fn rbacs(index: &Index, target: &Target, tcp: bool) -> Vec<(Option<Rbac>, Option<Rbac>)> {
    let mut by_action: [(Rbac, Rbac, bool, bool); 3] = Default::default();
    let auth = Dialect::of(index, target.node);
    for (r, p) in applicable(index, target.node) {
        let action = p.action();
        let slot = match action {
            Some(AuthzAction::Audit) => 0,
            Some(AuthzAction::Deny) => 1,
            Some(AuthzAction::Allow) => 2,
            _ => continue,
        };
        let dry_run = r.meta.annotations.get(DRY_RUN_ANNOTATION).is_some_and(|v| v == "true");
        let (rules, shadow, has_rules, has_shadow) = &mut by_action[slot];
        let (into, present) = if dry_run { (shadow, has_shadow) } else { (rules, has_rules) };
        *present = true;
        for (i, rule) in p.rules.iter().enumerate() {
            let name = format!("ns[{}]-policy[{}]-rule[{i}]", r.namespace(), r.name());
            if !tcp || !http_only(rule) {
                into.policies.insert(name, policy(rule, r.namespace(), target, &auth));
            } else if !matches!(action, Some(AuthzAction::Allow)) {
                into.policies.insert(name, policy(&without_http(rule), r.namespace(), target, &auth));
            }
        }
    }
    let actions = [rbac::Action::Log, rbac::Action::Deny, rbac::Action::Allow];
    by_action
        .into_iter()
        .zip(actions)
        .filter(|((_, _, rules, shadow), _)| *rules || *shadow)
        .map(|((mut rules, mut shadow, has_rules, has_shadow), action)| {
            rules.action = action as i32;
            shadow.action = action as i32;
            (has_rules.then_some(rules), has_shadow.then_some(shadow))
        })
        .collect()
}

/// Whether a `when` key is one only a request has.
fn http_key(key: &str) -> bool {
    key.starts_with("request.")
}

/// Whether a rule names what only an HTTP request shows.
fn http_only(rule: &AuthzRule) -> bool {
    let source = |s: &AuthzSource| !s.request_principals.is_empty() || !s.not_request_principals.is_empty();
    let operation = |o: &AuthzOperation| {
        [&o.hosts, &o.not_hosts, &o.methods, &o.not_methods, &o.paths, &o.not_paths].iter().any(|v| !v.is_empty())
    };
    rule.from.iter().filter_map(|f| f.source.as_ref()).any(source)
        || rule.to.iter().filter_map(|t| t.operation.as_ref()).any(operation)
        || rule.when.iter().any(|c| http_key(&c.key))
}

/// The rule without its HTTP-only fields.
fn without_http(rule: &AuthzRule) -> AuthzRule {
    let mut r = rule.clone();
    for s in r.from.iter_mut().filter_map(|f| f.source.as_mut()) {
        s.request_principals.clear();
        s.not_request_principals.clear();
    }
    for o in r.to.iter_mut().filter_map(|t| t.operation.as_mut()) {
        for v in [&mut o.hosts, &mut o.not_hosts, &mut o.methods, &mut o.not_methods, &mut o.paths, &mut o.not_paths] {
            v.clear();
        }
    }
    r.when.retain(|c| !http_key(&c.key));
    r
}

/// The policies that apply to a proxy: in the root namespace (its
/// selector, if any, over every namespace) and in its own namespace, or
/// attached to the Gateway API gateway it is; not CUSTOM (validation warns).
pub fn applicable<'a>(
    index: &'a Index,
    node: &'a ProxyNode,
) -> impl Iterator<Item = (&'a Resource, &'a AuthorizationPolicySpec)> + 'a {
    index.resources.iter().filter_map(move |r| {
        let weft_api::Spec::AuthorizationPolicy(p) = &r.spec else { return None };
        let refs = (p.target_ref.as_ref(), &p.target_refs[..]);
        let applies = weft_api::gateway_api::policy_applies(
            p.selector.as_ref(),
            refs,
            r.namespace(),
            &node.namespace,
            &node.labels,
        );
        applies.then_some((r, p))
    })
}

fn policy(rule: &AuthzRule, ns: &str, t: &Target, auth: &Dialect) -> Policy {
    let (mut who, mut what) = (Vec::new(), Vec::new());
    for c in &rule.when {
        condition(c, ns, t, auth, &mut who, &mut what);
    }
    let principals = if rule.from.is_empty() {
        vec![and_ids(who)]
    } else {
        let from = rule.from.iter().filter_map(|f| f.source.as_ref());
        from.map(|s| and_ids(source(s, ns, auth).into_iter().chain(who.iter().cloned()).collect())).collect()
    };
    let permissions = if rule.to.is_empty() {
        vec![and_rules(what)]
    } else {
        let to = rule.to.iter().filter_map(|t| t.operation.as_ref());
        to.map(|o| and_rules(operation(o, t).into_iter().chain(what.iter().cloned()).collect())).collect()
    };
    Policy { permissions, principals, ..Default::default() }
}

/// Each field set is one condition: any of its values; a `not` field none.
fn source(s: &AuthzSource, ns: &str, auth: &Dialect) -> Vec<Principal> {
    let mut out = Vec::new();
    let mut field = |values: &[String], not: bool, one: &dyn Fn(&str) -> Principal| {
        if !values.is_empty() {
            let any = or_ids(values.iter().map(|v| one(v)).collect());
            out.push(if not { not_id(any) } else { any });
        }
    };
    field(&s.principals, false, &peer_principal);
    field(&s.not_principals, true, &peer_principal);
    field(&s.request_principals, false, &|v| auth.principal("request.auth.principal", v));
    field(&s.not_request_principals, true, &|v| auth.principal("request.auth.principal", v));
    field(&s.namespaces, false, &peer_namespace);
    field(&s.not_namespaces, true, &peer_namespace);
    field(&s.service_accounts, false, &|v| service_account(v, ns));
    field(&s.not_service_accounts, true, &|v| service_account(v, ns));
    field(&s.ip_blocks, false, &|v| ip(v, false));
    field(&s.not_ip_blocks, true, &|v| ip(v, false));
    field(&s.remote_ip_blocks, false, &|v| ip(v, true));
    field(&s.not_remote_ip_blocks, true, &|v| ip(v, true));
    out
}

fn operation(o: &AuthzOperation, t: &Target) -> Vec<Permission> {
    let mut out = Vec::new();
    let mut field = |values: &[String], not: bool, one: &dyn Fn(&str) -> Permission| {
        if !values.is_empty() {
            let any = or_rules(values.iter().map(|v| one(v)).collect());
            out.push(if not { not_rule(any) } else { any });
        }
    };
    let host = |v: &str| perm(permission::Rule::Header(header(":authority", v, true)));
    let method = |v: &str| perm(permission::Rule::Header(header(":method", v, false)));
    let port = |v: &str| known(v.parse::<u16>().is_ok_and(|p| p == t.port));
    field(&o.hosts, false, &host);
    field(&o.not_hosts, true, &host);
    field(&o.ports, false, &port);
    field(&o.not_ports, true, &port);
    field(&o.methods, false, &method);
    field(&o.not_methods, true, &method);
    field(&o.paths, false, &url_path);
    field(&o.not_paths, true, &url_path);
    out
}

/// A `when` condition, as a principal (who calls) or a permission (what is
/// called); values any, `notValues` none.
fn condition(
    c: &AuthzCondition,
    ns: &str,
    t: &Target,
    auth: &Dialect,
    who: &mut Vec<Principal>,
    what: &mut Vec<Permission>,
) {
    let key = c.key.as_str();
    let Some(shape) = condition_key(key) else { return };
    let who_one = |v: &str| -> Option<Principal> {
        Some(match shape {
            "request.headers[]" => pid(principal::Identifier::Header(header(bracketed(key), v, false))),
            "source.ip" => ip(v, false),
            "remote.ip" => ip(v, true),
            "source.namespace" => peer_namespace(v),
            "source.principal" => peer_principal(v),
            "source.serviceAccount" => service_account(v, ns),
            k if k.starts_with("request.auth.") => auth.principal(key, v),
            _ => return None,
        })
    };
    let what_one = |v: &str| -> Option<Permission> {
        Some(match shape {
            "destination.port" => known(v.parse::<u16>().is_ok_and(|p| p == t.port)),
            "destination.ip" => known(cidr_contains(v, &t.node.listen_ip)),
            "connection.sni" => perm(permission::Rule::RequestedServerName(string(v, false))),
            _ => return None,
        })
    };
    if who_one("x").is_some() {
        let any = |vs: &[String]| or_ids(vs.iter().filter_map(|v| who_one(v)).collect());
        if !c.values.is_empty() {
            who.push(any(&c.values));
        }
        if !c.not_values.is_empty() {
            who.push(not_id(any(&c.not_values)));
        }
    } else {
        let any = |vs: &[String]| or_rules(vs.iter().filter_map(|v| what_one(v)).collect());
        if !c.values.is_empty() {
            what.push(any(&c.values));
        }
        if !c.not_values.is_empty() {
            what.push(not_rule(any(&c.not_values)));
        }
    }
}

/// `x` of `request.headers[x]`.
fn bracketed(key: &str) -> &str {
    key.split_once('[').map_or("", |(_, r)| r.trim_end_matches(']'))
}

/// Istio's value forms as a string matcher: `*` any (non-empty), `x*`, `*x`, exact.
fn string(v: &str, ignore_case: bool) -> StringMatcher {
    let pattern = match value_match(v) {
        ValueMatch::Exact(x) => MatchPattern::Exact(x.into()),
        ValueMatch::Prefix(x) if !x.is_empty() => MatchPattern::Prefix(x.into()),
        ValueMatch::Suffix(x) if !x.is_empty() => MatchPattern::Suffix(x.into()),
        _ => MatchPattern::SafeRegex(regex(".+")),
    };
    StringMatcher { match_pattern: Some(pattern), ignore_case }
}

fn regex(r: &str) -> RegexMatcher {
    RegexMatcher { regex: r.into(), ..Default::default() }
}

fn regex_matcher(r: String) -> StringMatcher {
    StringMatcher { match_pattern: Some(MatchPattern::SafeRegex(regex(&r))), ignore_case: false }
}

fn header(name: &str, v: &str, ignore_case: bool) -> HeaderMatcher {
    let spec = match value_match(v) {
        ValueMatch::Presence => header_matcher::HeaderMatchSpecifier::PresentMatch(true),
        _ => header_matcher::HeaderMatchSpecifier::StringMatch(string(v, ignore_case)),
    };
    HeaderMatcher { name: name.into(), header_match_specifier: Some(spec), ..Default::default() }
}

/// A principal is a SPIFFE ID without its scheme (`cluster.local/ns/x/sa/y`).
fn peer_principal(v: &str) -> Principal {
    let m = match value_match(v) {
        ValueMatch::Exact(x) => {
            StringMatcher { match_pattern: Some(MatchPattern::Exact(format!("spiffe://{x}"))), ignore_case: false }
        }
        ValueMatch::Prefix(x) => {
            StringMatcher { match_pattern: Some(MatchPattern::Prefix(format!("spiffe://{x}"))), ignore_case: false }
        }
        _ => string(v, false),
    };
    authenticated(m)
}

/// A namespace is the `ns/<namespace>` part of the peer's SPIFFE ID.
fn peer_namespace(v: &str) -> Principal {
    let part = match value_match(v) {
        ValueMatch::Exact(x) => regex::escape(x),
        ValueMatch::Prefix(x) => format!("{}[^/]*", regex::escape(x)),
        ValueMatch::Suffix(x) => format!("[^/]*{}", regex::escape(x)),
        ValueMatch::Presence => "[^/]+".into(),
    };
    authenticated(regex_matcher(format!("spiffe://[^/]+/ns/{part}/sa/[^/]+")))
}

/// `namespace/name`, or a name in the policy's namespace.
fn service_account(v: &str, ns: &str) -> Principal {
    let (n, sa) = v.split_once('/').unwrap_or((ns, v));
    let suffix = format!("/ns/{n}/sa/{sa}");
    authenticated(StringMatcher { match_pattern: Some(MatchPattern::Suffix(suffix)), ignore_case: false })
}

fn authenticated(m: StringMatcher) -> Principal {
    pid(principal::Identifier::Authenticated(principal::Authenticated { principal_name: Some(m) }))
}

fn ip(v: &str, remote: bool) -> Principal {
    let (addr, len) = cidr(v).unwrap_or((std::net::Ipv4Addr::UNSPECIFIED.into(), 32));
    let range = CidrRange { address_prefix: addr.to_string(), prefix_len: Some(UInt32Value { value: len }) };
    pid(if remote { principal::Identifier::RemoteIp(range) } else { principal::Identifier::DirectRemoteIp(range) })
}

fn url_path(v: &str) -> Permission {
    let m = match path_match(v) {
        Ok(PathMatch::Template(re)) => regex_matcher(re),
        _ => string(v, false),
    };
    perm(permission::Rule::UrlPath(PathMatcher { rule: Some(path_matcher::Rule::Path(m)) }))
}

/// A condition decided at translation: any request, or none.
fn known(yes: bool) -> Permission {
    let any = perm(permission::Rule::Any(true));
    if yes { any } else { not_rule(any) }
}

fn perm(rule: permission::Rule) -> Permission {
    Permission { rule: Some(rule) }
}

fn pid(id: principal::Identifier) -> Principal {
    Principal { identifier: Some(id) }
}

fn and_rules(mut v: Vec<Permission>) -> Permission {
    match v.len() {
        0 => perm(permission::Rule::Any(true)),
        1 => v.remove(0),
        _ => perm(permission::Rule::AndRules(permission::Set { rules: v })),
    }
}

fn or_rules(mut v: Vec<Permission>) -> Permission {
    match v.len() {
        0 => not_rule(perm(permission::Rule::Any(true))),
        1 => v.remove(0),
        _ => perm(permission::Rule::OrRules(permission::Set { rules: v })),
    }
}

fn not_rule(p: Permission) -> Permission {
    perm(permission::Rule::NotRule(Box::new(p)))
}

fn and_ids(mut v: Vec<Principal>) -> Principal {
    match v.len() {
        0 => pid(principal::Identifier::Any(true)),
        1 => v.remove(0),
        _ => pid(principal::Identifier::AndIds(principal::Set { ids: v })),
    }
}

fn or_ids(mut v: Vec<Principal>) -> Principal {
    match v.len() {
        0 => not_id(pid(principal::Identifier::Any(true))),
        1 => v.remove(0),
        _ => pid(principal::Identifier::OrIds(principal::Set { ids: v })),
    }
}

fn not_id(p: Principal) -> Principal {
    pid(principal::Identifier::NotId(Box::new(p)))
}
