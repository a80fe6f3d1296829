//! Authorization: a listener's RBAC filters (Istio's AuthorizationPolicies)
//! judge each request before it is routed, in chain order, as Envoy's do:
//! a DENY filter denies what one of its policies matches, an ALLOW filter
//! denies what none of its policies match, a LOG filter (AUDIT) only
//! counts; dry-run (shadow) rules are counted and never enforced. The
//! caller's principal is its verified certificate's SPIFFE ID, never a
//! header.

use super::error::{ErrorKind, ProxyError};
use crate::config::jwt::Auth;
use crate::config::listener::{HttpListener, ListenerCfg, ListenerKind};
use crate::config::matcher::RequestView;
use crate::config::rbac::{Action, Filter, NamedPolicy, Rules, Subject, forwarded_client};
use crate::conn::ConnCtx;
use crate::telemetry::AuthzLabels;
use std::net::IpAddr;
use std::sync::Arc;

/// Envoy's body for a denied request.
pub const DENIED: &str = "RBAC: access denied";

/// `Err` with the error to answer when one of the listener's filters
/// denies the request. `:authority` is seen as routing sees it (without
/// its port where the listener strips it).
pub fn check<B>(
    ctx: &ConnCtx,
    listener: &ListenerCfg,
    hl: &HttpListener,
    req: &http::Request<B>,
    auth: Option<&Auth>,
) -> Result<(), ProxyError> {
    let host = req.headers().get(http::header::HOST).and_then(|v| v.to_str().ok());
    let authority = req.uri().authority().map(|a| a.as_str()).or(host).unwrap_or("");
    let authority = if hl.strip_port { crate::config::matcher::strip_port(authority) } else { authority };
    let request = &RequestView {
        method: req.method(),
        authority,
        scheme: req.uri().scheme_str().unwrap_or("http"),
        path: req.uri().path(),
        query: req.uri().query(),
        headers: req.headers(),
    };
    judge(ctx, listener, &hl.authz, Some(request), auth)
}

/// Whether a TCP listener's network RBAC filters (`filters`) let the
/// connection through; a denial is counted per policy as a request's is.
pub fn admit_connection(ctx: &ConnCtx, listener: &ListenerCfg, filters: &[Filter]) -> bool {
    judge(ctx, listener, filters, None, None).is_ok()
}

fn judge(
    ctx: &ConnCtx,
    listener: &ListenerCfg,
    filters: &[Filter],
    request: Option<&RequestView>,
    auth: Option<&Auth>,
) -> Result<(), ProxyError> {
    let peer = ctx.mtls_peer.as_ref();
    let remote = request.map_or(ctx.peer.ip(), |r| remote_ip(ctx, listener, r.headers));
    let subject = Subject {
        request,
        direct_ip: ctx.peer.ip(),
        remote_ip: remote,
        principal: peer.and_then(|p| p.identity.as_deref()),
        auth,
        server_name: peer.and_then(|p| p.server_name.as_deref()),
        local: listener.addr,
    };
    let count = |rules: &Rules, decision: Decision, policy: Option<&NamedPolicy>| {
        let counts = policy.map_or(&rules.unmatched, |p| &p.counts);
        let counter = counts.0[decision as usize].get_or_init(|| {
            let policy = policy.map_or_else(|| Arc::from(""), |p| p.name.clone());
            ctx.state.metrics.authz.get_or_create(&AuthzLabels { decision: decision.label(), policy }).clone()
        });
        counter.inc();
    };
    for f in filters {
        if let Some(shadow) = &f.shadow {
            let (denied, policy) = shadow.decide(&subject);
            count(shadow, if denied { Decision::ShadowDenied } else { Decision::ShadowAllowed }, policy);
            if denied {
                let policy = policy.map(|p| &*p.name);
                let path = request.map(|r| r.path);
                tracing::info!(policy, path, "dry run: this request (or connection) would be denied");
            }
        }
        let Some(rules) = &f.rules else { continue };
        let (denied, policy) = rules.decide(&subject);
        if rules.action == Action::Log {
            if policy.is_some() {
                count(rules, Decision::Logged, policy);
            }
            continue;
        }
        if denied {
            count(rules, Decision::Denied, policy);
            return Err(ProxyError::new(ErrorKind::Denied, DENIED));
        }
        if rules.action == Action::Allow {
            count(rules, Decision::Allowed, policy);
        }
    }
    Ok(())
}

/// A decision, as counted: its index in `Counts`, and its label.
#[derive(Clone, Copy)]
enum Decision {
    Allowed,
    Denied,
    Logged,
    ShadowAllowed,
    ShadowDenied,
}

impl Decision {
    fn label(self) -> &'static str {
        match self {
            Decision::Allowed => "allowed",
            Decision::Denied => "denied",
            Decision::Logged => "logged",
            Decision::ShadowAllowed => "shadow_allowed",
            Decision::ShadowDenied => "shadow_denied",
        }
    }
}

/// The client's address as Envoy's RBAC sees it (`remote_ip`): behind a
/// listener that trusts no `x-forwarded-for` (the edge), the peer; else the
/// last address that header names, or the peer without one.
/// The header is read only when a policy looks at `remote_ip`
/// (`HttpListener::authz_reads_xff`, decided at config time).
fn remote_ip(ctx: &ConnCtx, listener: &ListenerCfg, headers: &http::HeaderMap) -> IpAddr {
    let reads = matches!(&listener.kind, ListenerKind::Http(h) if h.authz_reads_xff && !h.remote_address);
    reads.then(|| forwarded_client(headers)).flatten().unwrap_or(ctx.peer.ip())
}
