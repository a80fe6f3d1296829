//! Istio's `AuthorizationPolicy` (security.istio.io): who may call a
//! workload, with what request, under which conditions.

use super::WorkloadSelector;
use serde::Deserialize;

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthorizationPolicySpec {
    pub selector: Option<WorkloadSelector>,
    pub target_ref: Option<PolicyTargetRef>,
    #[serde(default)]
    pub target_refs: Vec<PolicyTargetRef>,
    #[serde(default)]
    pub rules: Vec<AuthzRule>,
    /// `ALLOW` (the default), `DENY`, `AUDIT` or `CUSTOM`.
    pub action: Option<String>,
    pub provider: Option<ExtensionProvider>,
}

/// The action a policy takes when one of its rules matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthzAction {
    Allow,
    Deny,
    Audit,
    Custom,
}

impl AuthorizationPolicySpec {
    /// The action; `None` for a value Istio does not know (validation says so).
    pub fn action(&self) -> Option<AuthzAction> {
        match self.action.as_deref().unwrap_or("ALLOW") {
            "ALLOW" => Some(AuthzAction::Allow),
            "DENY" => Some(AuthzAction::Deny),
            "AUDIT" => Some(AuthzAction::Audit),
            "CUSTOM" => Some(AuthzAction::Custom),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyTargetRef {
    pub group: Option<String>,
    pub kind: Option<String>,
    pub name: Option<String>,
    pub namespace: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExtensionProvider {
    pub name: Option<String>,
}

/// Matches when any `from`, any `to` and every `when` match; a missing
/// list matches anything.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthzRule {
    #[serde(default)]
    pub from: Vec<AuthzFrom>,
    #[serde(default)]
    pub to: Vec<AuthzTo>,
    #[serde(default)]
    pub when: Vec<AuthzCondition>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthzFrom {
    pub source: Option<AuthzSource>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthzTo {
    pub operation: Option<AuthzOperation>,
}

/// Every field set must match (one of its values); each `not` list must
/// match none.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthzSource {
    #[serde(default)]
    pub principals: Vec<String>,
    #[serde(default)]
    pub not_principals: Vec<String>,
    #[serde(default)]
    pub request_principals: Vec<String>,
    #[serde(default)]
    pub not_request_principals: Vec<String>,
    #[serde(default)]
    pub namespaces: Vec<String>,
    #[serde(default)]
    pub not_namespaces: Vec<String>,
    #[serde(default)]
    pub service_accounts: Vec<String>,
    #[serde(default)]
    pub not_service_accounts: Vec<String>,
    #[serde(default)]
    pub ip_blocks: Vec<String>,
    #[serde(default)]
    pub not_ip_blocks: Vec<String>,
    #[serde(default)]
    pub remote_ip_blocks: Vec<String>,
    #[serde(default)]
    pub not_remote_ip_blocks: Vec<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthzOperation {
    #[serde(default)]
    pub hosts: Vec<String>,
    #[serde(default)]
    pub not_hosts: Vec<String>,
    #[serde(default)]
    pub ports: Vec<String>,
    #[serde(default)]
    pub not_ports: Vec<String>,
    #[serde(default)]
    pub methods: Vec<String>,
    #[serde(default)]
    pub not_methods: Vec<String>,
    #[serde(default)]
    pub paths: Vec<String>,
    #[serde(default)]
    pub not_paths: Vec<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthzCondition {
    #[serde(default)]
    pub key: String,
    #[serde(default)]
    pub values: Vec<String>,
    #[serde(default)]
    pub not_values: Vec<String>,
}

/// The `when` keys Istio documents, by how they are written: a key is one
/// of these exactly, or (for the bracketed ones) a prefix with `[name]`.
pub const CONDITION_KEYS: &[&str] = &[
    "request.headers[]",
    "source.ip",
    "remote.ip",
    "source.namespace",
    "source.principal",
    "source.serviceAccount",
    "request.auth.principal",
    "request.auth.audiences",
    "request.auth.presenter",
    "request.auth.claims[]",
    "destination.ip",
    "destination.port",
    "connection.sni",
    "experimental.envoy.filters.network.mysql_proxy[]",
];

/// A `when` key's documented form (`request.headers[x]` → `request.headers[]`),
/// or `None` when Istio does not know it.
pub fn condition_key(key: &str) -> Option<&'static str> {
    let shape = match key.split_once('[') {
        Some((head, rest)) if rest.ends_with(']') && rest.len() > 1 => format!("{head}[]"),
        _ => key.to_owned(),
    };
    CONDITION_KEYS.iter().copied().find(|k| *k == shape)
}

/// The annotation that makes a policy a dry run: evaluated, logged and
/// counted, not enforced.
pub const DRY_RUN_ANNOTATION: &str = "istio.io/dry-run";

/// How Istio reads a principal, namespace, host, method or header value:
/// `*` alone is presence, a leading or trailing `*` a suffix or prefix
/// match, anything else exact.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueMatch<'a> {
    Exact(&'a str),
    Prefix(&'a str),
    Suffix(&'a str),
    Presence,
}

pub fn value_match(v: &str) -> ValueMatch<'_> {
    if v == "*" {
        ValueMatch::Presence
    } else if let Some(s) = v.strip_prefix('*') {
        ValueMatch::Suffix(s)
    } else if let Some(p) = v.strip_suffix('*') {
        ValueMatch::Prefix(p)
    } else {
        ValueMatch::Exact(v)
    }
}

/// A value's `*` somewhere other than its start or end, which Istio refuses.
pub fn misplaced_wildcard(v: &str) -> bool {
    v.len() > 1 && v[1..v.len() - 1].contains('*')
}

/// A path in `to.operation.paths`: a `ValueMatch`, or (Istio 1.22+) a
/// template whose `{*}` matches one segment and a final `{**}` any number.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathMatch<'a> {
    Value(ValueMatch<'a>),
    /// The template as an anchored regex over the path.
    Template(String),
}

/// Reads a path of `to.operation.paths`, or says what is wrong with it.
pub fn path_match(p: &str) -> Result<PathMatch<'_>, String> {
    if !p.contains('{') {
        if misplaced_wildcard(p) {
            return Err(format!("`{p}`: `*` may only start or end a path (or use `{{*}}` for one segment)"));
        }
        return Ok(PathMatch::Value(value_match(p)));
    }
    if !p.starts_with('/') {
        return Err(format!("`{p}`: a path template starts with `/`"));
    }
    let segments: Vec<&str> = p[1..].split('/').collect();
    let mut re = String::from("^");
    for (i, s) in segments.iter().enumerate() {
        re.push('/');
        match *s {
            "{*}" => re.push_str("[^/]+"),
            "{**}" if i + 1 == segments.len() => re.push_str(".*"),
            "{**}" => return Err(format!("`{p}`: `{{**}}` may only be the last segment")),
            s if s.contains(['{', '}', '*']) => {
                return Err(format!(
                    "`{p}`: `{{*}}` and `{{**}}` must be whole segments, and `*` cannot mix with them"
                ));
            }
            s => re.push_str(&regex::escape(s)),
        }
    }
    re.push('$');
    Ok(PathMatch::Template(re))
}

/// An `ipBlocks` entry: an address or CIDR, as `(address, prefix length)`.
pub fn cidr(v: &str) -> Result<(std::net::IpAddr, u32), String> {
    let (addr, len) = match v.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (v, None),
    };
    let ip: std::net::IpAddr = addr.parse().map_err(|_| format!("`{v}` is not an IP address or CIDR"))?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let len = match len {
        None => max,
        Some(l) => {
            l.parse().ok().filter(|l| *l <= max).ok_or_else(|| format!("`{v}`: the prefix length must be 0-{max}"))?
        }
    };
    Ok((ip, len))
}

/// Whether `ip` is inside the block `block` (an `ipBlocks` entry); false
/// when either does not parse.
pub fn cidr_contains(block: &str, ip: &str) -> bool {
    use std::net::IpAddr::{V4, V6};
    let (Ok((net, len)), Ok(ip)) = (cidr(block), ip.parse::<std::net::IpAddr>()) else { return false };
    match (net, ip) {
        (V4(n), V4(i)) => {
            let mask = u32::MAX.checked_shl(32 - len).unwrap_or(0);
            u32::from(n) & mask == u32::from(i) & mask
        }
        (V6(n), V6(i)) => {
            let mask = u128::MAX.checked_shl(128 - len).unwrap_or(0);
            u128::from(n) & mask == u128::from(i) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_paths_and_blocks_read_as_istio_does() {
        assert_eq!(value_match("*"), ValueMatch::Presence);
        assert_eq!(value_match("/api*"), ValueMatch::Prefix("/api"));
        assert_eq!(value_match("*.svc"), ValueMatch::Suffix(".svc"));
        assert_eq!(value_match("GET"), ValueMatch::Exact("GET"));
        assert!(misplaced_wildcard("/a*b"));
        assert_eq!(path_match("/v1/{*}/items/{**}").unwrap(), PathMatch::Template("^/v1/[^/]+/items/.*$".into()));
        assert!(path_match("/v1/{**}/x").is_err());
        assert!(path_match("/v1/a{*}").is_err());
        assert_eq!(cidr("10.1.0.0/16").unwrap(), ("10.1.0.0".parse().unwrap(), 16));
        assert_eq!(cidr("::1").unwrap().1, 128);
        assert!(cidr("10.0.0.0/33").is_err());
        assert!(cidr_contains("127.0.0.0/8", "127.0.0.9") && !cidr_contains("10.0.0.0/8", "127.0.0.1"));
        assert_eq!(condition_key("request.headers[x-token]"), Some("request.headers[]"));
        assert_eq!(condition_key("request.auth.claims[groups]"), Some("request.auth.claims[]"));
        assert_eq!(condition_key("request.header[x]"), None);
    }
}
