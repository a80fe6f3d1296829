//! Envoy's RBAC filters, compiled: the HTTP one (`envoy.filters.http.rbac`),
//! evaluated per request in the filters' order (`http::authz`), and the
//! network one (`envoy.filters.network.rbac`), evaluated once per TCP
//! connection, where no request exists and request matchers never match.

use super::CompileError;
use super::matcher::{HeaderMatch, RequestView, StrMatch};
use envoy_types::pb::envoy::config::core::v3::CidrRange;
use envoy_types::pb::envoy::config::rbac::v3::{Permission, Policy, Principal, Rbac, permission, principal, rbac};
use envoy_types::pb::envoy::extensions::filters::http::rbac::v3::Rbac as RbacFilter;
use envoy_types::pb::envoy::extensions::filters::network::rbac::v3::Rbac as NetworkRbac;
use envoy_types::pb::envoy::r#type::matcher::v3::{
    MetadataMatcher, PathMatcher, metadata_matcher, path_matcher, value_matcher,
};
use std::net::IpAddr;
use std::sync::Arc;

/// The filter's name in an HTTP connection manager's chain.
pub const FILTER: &str = "envoy.filters.http.rbac";
/// Its name in a TCP listener's filter chain.
pub const NETWORK_FILTER: &str = "envoy.filters.network.rbac";

/// What a filter does when one of its policies matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Allows only requests some policy matches.
    Allow,
    /// Denies requests some policy matches.
    Deny,
    /// Allows every request; a match is logged and counted (Istio's AUDIT).
    Log,
}

/// One RBAC filter: enforced rules, and shadow rules (Istio's dry run)
/// whose decision is only counted.
#[derive(Debug)]
pub struct Filter {
    pub rules: Option<Rules>,
    pub shadow: Option<Rules>,
}

#[derive(Debug)]
pub struct Rules {
    pub action: Action,
    /// In name order, as Envoy evaluates them.
    pub policies: Vec<NamedPolicy>,
    /// Decisions no policy made (an ALLOW filter's default deny), counted.
    pub unmatched: Counts,
    /// Whether a policy looks at `remote_ip` (the request's
    /// `x-forwarded-for`), which is read only then.
    pub needs_remote_ip: bool,
}

#[derive(Debug)]
pub struct NamedPolicy {
    pub name: Arc<str>,
    /// Matches when any permission and any principal match.
    permissions: Vec<Perm>,
    principals: Vec<Princ>,
    /// Its decisions' counters, found once per config version.
    pub counts: Counts,
}

/// A policy's counter of each decision (`http::authz`), looked up in the
/// metrics family at first use: no label hashing per request.
#[derive(Debug, Default)]
pub struct Counts(pub [std::sync::OnceLock<prometheus_client::metrics::counter::Counter>; 5]);

#[derive(Debug)]
enum Perm {
    Any,
    And(Vec<Perm>),
    Or(Vec<Perm>),
    Not(Box<Perm>),
    Header(HeaderMatch),
    /// `:method` exactly this (AuthorizationPolicy `methods`): an enum
    /// compare for the standard methods.
    Method(http::Method),
    Path(StrMatch, bool),
    DestinationPort(u32),
    DestinationPorts(i32, i32),
    DestinationIp(Cidr),
    ServerName(StrMatch, bool),
    /// What weft's proxy has no data for (dynamic metadata: no filter sets
    /// any): never matches, as in Envoy without the filter that would.
    Never,
}

#[derive(Debug)]
enum Princ {
    Any,
    And(Vec<Princ>),
    Or(Vec<Princ>),
    Not(Box<Princ>),
    /// The verified peer certificate's URI SAN (or, with no matcher, any
    /// authenticated peer).
    Authenticated(Option<(StrMatch, bool)>),
    DirectRemoteIp(Cidr),
    RemoteIp(Cidr),
    Header(HeaderMatch),
    Path(StrMatch, bool),
    /// A value of the request's verified JWT (Istio's `istio_authn`
    /// metadata: its path's segments); a list matches when one item does.
    Auth(Vec<String>, StrMatch, bool),
    Never,
}

#[derive(Debug, Clone, Copy)]
struct Cidr {
    addr: IpAddr,
    len: u32,
}

impl Cidr {
    fn compile(c: &CidrRange) -> Result<Self, CompileError> {
        let addr: IpAddr = c
            .address_prefix
            .parse()
            .map_err(|_| CompileError::new(format!("bad CIDR address {:?}", c.address_prefix)))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let len = c.prefix_len.map_or(max, |l| l.value);
        if len > max {
            return Err(CompileError::new(format!("CIDR prefix length {len} is over {max}")));
        }
        Ok(Cidr { addr, len })
    }

    fn contains(&self, ip: IpAddr) -> bool {
        let ip = match (self.addr, ip) {
            (IpAddr::V4(_), IpAddr::V6(v6)) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            _ => ip,
        };
        match (self.addr, ip) {
            (IpAddr::V4(a), IpAddr::V4(b)) => {
                let mask = u32::MAX.checked_shl(32 - self.len).unwrap_or(0);
                u32::from(a) & mask == u32::from(b) & mask
            }
            (IpAddr::V6(a), IpAddr::V6(b)) => {
                let mask = u128::MAX.checked_shl(128 - self.len).unwrap_or(0);
                u128::from(a) & mask == u128::from(b) & mask
            }
            _ => false,
        }
    }
}

/// What a request offers the policies: itself, and its connection.
pub struct Subject<'a> {
    /// None on a TCP connection (the network filter).
    pub request: Option<&'a RequestView<'a>>,
    /// The connection's peer, and the client as `x-forwarded-for` names it.
    pub direct_ip: IpAddr,
    pub remote_ip: IpAddr,
    /// The verified peer certificate's SPIFFE ID (mutual TLS only).
    pub principal: Option<&'a str>,
    /// What the request's verified JWT says (RequestAuthentication).
    pub auth: Option<&'a super::jwt::Auth>,
    pub server_name: Option<&'a str>,
    /// The listener's address: the destination as this proxy knows it.
    pub local: std::net::SocketAddr,
}

impl Filter {
    pub fn compile(f: &RbacFilter) -> Result<Self, CompileError> {
        let trees = f.matcher.is_some() || f.shadow_matcher.is_some();
        Filter::of(f.rules.as_ref(), f.shadow_rules.as_ref(), trees)
    }

    /// The network filter (a TCP connection's): the same rules.
    pub fn compile_network(f: &NetworkRbac) -> Result<Self, CompileError> {
        let trees = f.matcher.is_some() || f.shadow_matcher.is_some();
        Filter::of(f.rules.as_ref(), f.shadow_rules.as_ref(), trees)
    }

    fn of(rules: Option<&Rbac>, shadow: Option<&Rbac>, trees: bool) -> Result<Self, CompileError> {
        if trees {
            return Err(CompileError::new("RBAC `matcher` trees are not supported; use `rules`"));
        }
        Ok(Filter { rules: rules.map(Rules::compile).transpose()?, shadow: shadow.map(Rules::compile).transpose()? })
    }
}

impl Rules {
    fn compile(r: &Rbac) -> Result<Self, CompileError> {
        let action = match rbac::Action::try_from(r.action) {
            Ok(rbac::Action::Allow) => Action::Allow,
            Ok(rbac::Action::Deny) => Action::Deny,
            Ok(rbac::Action::Log) => Action::Log,
            Err(_) => return Err(CompileError::new(format!("unknown RBAC action {}", r.action))),
        };
        let mut policies =
            r.policies.iter().map(|(name, p)| NamedPolicy::compile(name, p)).collect::<Result<Vec<_>, _>>()?;
        policies.sort_by(|a, b| a.name.cmp(&b.name));
        let needs_remote_ip = policies.iter().any(|p| p.principals.iter().any(Princ::reads_remote_ip));
        Ok(Rules { action, policies, unmatched: Counts::default(), needs_remote_ip })
    }

    /// The first policy (in name order) that matches `s`.
    pub fn matched(&self, s: &Subject) -> Option<&NamedPolicy> {
        self.policies.iter().find(|p| p.matches(s))
    }

    /// Whether these rules deny `s`, and the policy that decided (none when
    /// an ALLOW filter matched nothing; for LOG, the one that matched).
    pub fn decide(&self, s: &Subject) -> (bool, Option<&NamedPolicy>) {
        let matched = self.matched(s);
        match self.action {
            Action::Allow => (matched.is_none(), matched),
            Action::Deny => (matched.is_some(), matched),
            Action::Log => (false, matched),
        }
    }
}

/// The client `x-forwarded-for` names last (Envoy's `remote_ip` with no
/// trusted hops), if it names one.
pub fn forwarded_client(headers: &http::HeaderMap) -> Option<IpAddr> {
    let v = headers.get_all("x-forwarded-for").iter().next_back()?.to_str().ok()?;
    v.rsplit(',').next()?.trim().parse().ok()
}

impl Filter {
    /// Whether a policy of the filter looks at `remote_ip`.
    pub fn reads_remote_ip(&self) -> bool {
        self.rules.iter().chain(&self.shadow).any(|r| r.needs_remote_ip)
    }
}

impl NamedPolicy {
    fn compile(name: &str, p: &Policy) -> Result<Self, CompileError> {
        let err = |e: CompileError| CompileError::new(format!("RBAC policy {name:?}: {e}"));
        if p.condition.is_some() || p.checked_condition.is_some() {
            return Err(err(CompileError::new("CEL conditions are not supported")));
        }
        Ok(NamedPolicy {
            name: name.into(),
            permissions: p.permissions.iter().map(Perm::compile).collect::<Result<_, _>>().map_err(err)?,
            principals: p.principals.iter().map(Princ::compile).collect::<Result<_, _>>().map_err(err)?,
            counts: Counts::default(),
        })
    }

    fn matches(&self, s: &Subject) -> bool {
        self.permissions.iter().any(|p| p.matches(s)) && self.principals.iter().any(|p| p.matches(s))
    }
}

/// Istio's `istio_authn` metadata matcher (the request's JWT) as a
/// principal; None for other metadata, which no filter of weft's sets.
fn auth_matcher(m: &MetadataMatcher) -> Result<Option<Princ>, CompileError> {
    use metadata_matcher::path_segment::Segment;
    if m.filter != "istio_authn" {
        return Ok(None);
    }
    let path: Vec<String> = m
        .path
        .iter()
        .map(|p| match &p.segment {
            Some(Segment::Key(k)) => Ok(k.clone()),
            None => Err(CompileError::new("a metadata path segment needs a key")),
        })
        .collect::<Result<_, _>>()?;
    let Some(value_matcher::MatchPattern::StringMatch(sm)) = m.value.as_ref().and_then(|v| v.match_pattern.as_ref())
    else {
        return Err(CompileError::new("istio_authn metadata is matched by a string matcher"));
    };
    let (sm, ic) = StrMatch::compile(sm)?;
    let p = Princ::Auth(path, sm, ic);
    Ok(Some(if m.invert { Princ::Not(Box::new(p)) } else { p }))
}

fn path(m: &PathMatcher) -> Result<(StrMatch, bool), CompileError> {
    match &m.rule {
        Some(path_matcher::Rule::Path(sm)) => StrMatch::compile(sm),
        None => Err(CompileError::new("a path matcher needs `path`")),
    }
}

impl Perm {
    fn compile(p: &Permission) -> Result<Self, CompileError> {
        use permission::Rule as R;
        let all = |s: &permission::Set| s.rules.iter().map(Perm::compile).collect::<Result<Vec<_>, _>>();
        Ok(match &p.rule {
            Some(R::Any(true)) => Perm::Any,
            Some(R::AndRules(s)) => Perm::And(all(s)?),
            Some(R::OrRules(s)) => Perm::Or(all(s)?),
            Some(R::NotRule(p)) => Perm::Not(Box::new(Perm::compile(p)?)),
            Some(R::Header(h)) => {
                let h = HeaderMatch::compile(h)?;
                h.exact_method().map_or(Perm::Header(h), Perm::Method)
            }
            Some(R::UrlPath(m)) => {
                let (m, ic) = path(m)?;
                Perm::Path(m, ic)
            }
            Some(R::DestinationPort(p)) => Perm::DestinationPort(*p),
            Some(R::DestinationPortRange(r)) => Perm::DestinationPorts(r.start, r.end),
            Some(R::DestinationIp(c)) => Perm::DestinationIp(Cidr::compile(c)?),
            Some(R::RequestedServerName(sm)) => {
                let (m, ic) = StrMatch::compile(sm)?;
                Perm::ServerName(m, ic)
            }
            Some(R::SourcedMetadata(_)) => Perm::Never,
            #[allow(deprecated)]
            Some(R::Metadata(_)) => Perm::Never,
            Some(R::Any(false)) | None => return Err(CompileError::new("a permission needs a rule")),
            Some(other) => return Err(CompileError::new(format!("unsupported RBAC permission {other:?}"))),
        })
    }

    fn matches(&self, s: &Subject) -> bool {
        match self {
            Perm::Any => true,
            Perm::And(v) => v.iter().all(|p| p.matches(s)),
            Perm::Or(v) => v.iter().any(|p| p.matches(s)),
            Perm::Not(p) => !p.matches(s),
            Perm::Header(h) => s.request.is_some_and(|r| h.matches(r)),
            Perm::Method(m) => s.request.is_some_and(|r| r.method == m),
            Perm::Path(m, ic) => s.request.is_some_and(|r| m.matches(r.path, *ic)),
            Perm::DestinationPort(p) => u32::from(s.local.port()) == *p,
            Perm::DestinationPorts(a, b) => (*a..*b).contains(&i32::from(s.local.port())),
            Perm::DestinationIp(c) => c.contains(s.local.ip()),
            Perm::ServerName(m, ic) => s.server_name.is_some_and(|n| m.matches(n, *ic)),
            Perm::Never => false,
        }
    }
}

impl Princ {
    fn compile(p: &Principal) -> Result<Self, CompileError> {
        use principal::Identifier as I;
        let all = |s: &principal::Set| s.ids.iter().map(Princ::compile).collect::<Result<Vec<_>, _>>();
        Ok(match &p.identifier {
            Some(I::Any(true)) => Princ::Any,
            Some(I::AndIds(s)) => Princ::And(all(s)?),
            Some(I::OrIds(s)) => Princ::Or(all(s)?),
            Some(I::NotId(p)) => Princ::Not(Box::new(Princ::compile(p)?)),
            Some(I::Authenticated(a)) => {
                Princ::Authenticated(a.principal_name.as_ref().map(StrMatch::compile).transpose()?)
            }
            Some(I::DirectRemoteIp(c)) => Princ::DirectRemoteIp(Cidr::compile(c)?),
            #[allow(deprecated)]
            Some(I::SourceIp(c)) => Princ::DirectRemoteIp(Cidr::compile(c)?),
            Some(I::RemoteIp(c)) => Princ::RemoteIp(Cidr::compile(c)?),
            Some(I::Header(h)) => Princ::Header(HeaderMatch::compile(h)?),
            Some(I::UrlPath(m)) => {
                let (m, ic) = path(m)?;
                Princ::Path(m, ic)
            }
            Some(I::SourcedMetadata(sm)) => match sm.metadata_matcher.as_ref().map(auth_matcher).transpose()? {
                Some(Some(p)) => p,
                _ => Princ::Never,
            },
            #[allow(deprecated)]
            Some(I::Metadata(m)) => auth_matcher(m)?.unwrap_or(Princ::Never),
            Some(I::Any(false)) | None => return Err(CompileError::new("a principal needs an identifier")),
            Some(other) => return Err(CompileError::new(format!("unsupported RBAC principal {other:?}"))),
        })
    }

    fn reads_remote_ip(&self) -> bool {
        match self {
            Princ::RemoteIp(_) => true,
            Princ::And(v) | Princ::Or(v) => v.iter().any(Princ::reads_remote_ip),
            Princ::Not(p) => p.reads_remote_ip(),
            _ => false,
        }
    }

    fn matches(&self, s: &Subject) -> bool {
        match self {
            Princ::Any => true,
            Princ::And(v) => v.iter().all(|p| p.matches(s)),
            Princ::Or(v) => v.iter().any(|p| p.matches(s)),
            Princ::Not(p) => !p.matches(s),
            Princ::Authenticated(None) => s.principal.is_some(),
            Princ::Authenticated(Some((m, ic))) => s.principal.is_some_and(|id| m.matches(id, *ic)),
            Princ::DirectRemoteIp(c) => c.contains(s.direct_ip),
            Princ::RemoteIp(c) => c.contains(s.remote_ip),
            Princ::Header(h) => s.request.is_some_and(|r| h.matches(r)),
            Princ::Path(m, ic) => s.request.is_some_and(|r| m.matches(r.path, *ic)),
            Princ::Auth(path, m, ic) => s.auth.and_then(|a| a.lookup(path)).is_some_and(|v| match v {
                serde_json::Value::String(x) => m.matches(&x, *ic),
                serde_json::Value::Array(items) => items.iter().any(|i| i.as_str().is_some_and(|x| m.matches(x, *ic))),
                serde_json::Value::Bool(b) => m.matches(if b { "true" } else { "false" }, *ic),
                serde_json::Value::Number(n) => m.matches(&n.to_string(), *ic),
                _ => false,
            }),
            Princ::Never => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::google::protobuf::UInt32Value;

    #[test]
    fn cidrs_contain_what_their_prefix_covers() {
        let c = |a: &str, l: u32| {
            Cidr::compile(&CidrRange { address_prefix: a.into(), prefix_len: Some(UInt32Value { value: l }) }).unwrap()
        };
        assert!(c("10.1.0.0", 16).contains("10.1.200.3".parse().unwrap()));
        assert!(!c("10.1.0.0", 16).contains("10.2.0.1".parse().unwrap()));
        assert!(c("0.0.0.0", 0).contains("192.168.1.1".parse().unwrap()));
        assert!(c("127.0.0.1", 32).contains("::ffff:127.0.0.1".parse().unwrap()));
        assert!(c("fd00::", 8).contains("fd12::1".parse().unwrap()));
        assert!(!c("fd00::", 8).contains("10.0.0.1".parse().unwrap()));
    }
}
