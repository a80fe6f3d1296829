//! What a listener that logs or traces takes from a request as it arrives
//! (`begin`: its trace decided and written for the next hop, a request id
//! given when it has none, the values its access logs read) and writes
//! when it ends (`finish`: the access log lines and the span). A listener
//! that does neither pays one branch.

use super::outcome::Outcome;
use crate::config::access_log::{Captured, Entry};
use crate::config::listener::{Direction, HttpListener, ListenerCfg};
use crate::config::tracing::{TagValue, Tracing};
use crate::conn::ConnCtx;
use crate::telemetry::trace::{self, Attr, Span, context};
use http::HeaderValue;
use hyper::Request;
use hyper::body::Incoming;
use std::sync::Arc;
use std::time::SystemTime;

// Names made once: a `&str` key is parsed on every lookup.
const REQUEST_ID: http::HeaderName = http::HeaderName::from_static("x-request-id");

/// One request, observed.
pub struct Observed {
    /// When it arrived (its log line's start time, its span's); read only
    /// when it is logged or its span reported.
    start: Option<SystemTime>,
    pub captured: Option<Box<Captured>>,
    /// The trace it is part of, when the listener traces.
    pub trace_id: Option<u128>,
    /// Its span, when sampled and reported.
    span: Option<Started>,
    /// Its trace headers for the next hop, when not written to the request.
    pub next_hop: context::NextHop,
    /// Its attempts upstream, kept when its span is reported.
    /// (Locked only by the request's own task, only when its span is.)
    pub tried: Option<parking_lot::Mutex<Vec<trace::Tried>>>,
}

struct Started {
    trace_id: u128,
    span_id: u64,
    parent: Option<u64>,
    method: http::Method,
    url: String,
    user_agent: Option<HeaderValue>,
    request_id: Option<HeaderValue>,
    tags: Vec<(Arc<str>, String)>,
}

fn sampled(t: &Tracing, parent: Option<context::Parent>, seen: &context::Seen) -> bool {
    let decided = parent.and_then(|p| p.sampled).or_else(|| seen.decision_only());
    let wanted = match decided {
        Some(d) => d,
        None if seen.client_trace_id => crate::config::chance(t.client_ppm),
        None => crate::config::chance(t.random_ppm),
    };
    wanted && crate::config::chance(t.overall_ppm)
}

/// Decides the request's trace and writes it to its headers for the next
/// hop; the span to report when it is sampled.
fn trace(t: &Tracing, inbound: bool, req: &mut Request<Incoming>, out: &mut Observed) {
    let h = req.headers_mut();
    let seen = context::scan(h);
    let parent = seen.parent();
    let sampled = sampled(t, parent, &seen);
    // B3 goes to the app (its tracer may read only B3), or on where it came.
    let b3 = inbound || seen.has_b3();
    let request_id = (!seen.request_id).then(|| context::shared(trace::new_request_id()));
    let trace_id = parent.map_or_else(trace::new_trace_id, |p| p.trace_id);
    let span_id = trace::new_id();
    if b3 {
        if let Some(v) = request_id {
            h.insert(REQUEST_ID, v);
        }
        context::inject(h, trace_id, span_id, parent.map(|p| p.span_id), sampled, b3);
    } else {
        // W3C alone: written as each attempt is built (`NextHop`).
        out.next_hop.request_id = request_id;
        out.next_hop.traceparent = Some(context::traceparent_value(trace_id, span_id, sampled));
    }
    out.trace_id = Some(trace_id);
    if !sampled || t.exporter.is_none() {
        return;
    }
    out.start.get_or_insert_with(SystemTime::now);
    out.tried = Some(Default::default());
    let tags = t
        .tags
        .iter()
        .map(|(k, v)| {
            let value = match v {
                TagValue::Fixed(s) => s.clone(),
                TagValue::Header(n, default) => {
                    req.headers().get(n).and_then(|v| v.to_str().ok()).map_or_else(|| default.clone(), str::to_owned)
                }
            };
            (k.clone(), value)
        })
        .collect();
    let host = crate::config::matcher::authority_of(req.uri(), req.headers());
    out.span = Some(Started {
        trace_id,
        span_id,
        parent: parent.map(|p| p.span_id),
        method: req.method().clone(),
        url: format!("http://{}{}", host.unwrap_or(""), req.uri().path_and_query().map_or("/", |p| p.as_str())),
        user_agent: req.headers().get(http::header::USER_AGENT).cloned(),
        request_id: req.headers().get(&REQUEST_ID).or(out.next_hop.request_id.as_ref()).cloned(),
        tags,
    });
}

/// Takes what the listener's logs and span need; none when it neither
/// logs nor traces.
pub fn begin(hl: &HttpListener, req: &mut Request<Incoming>) -> Option<Box<Observed>> {
    if hl.access_log.is_none() && hl.tracing.is_none() {
        return None;
    }
    let start = hl.access_log.is_some().then(SystemTime::now);
    let mut out = Box::new(Observed {
        start,
        captured: None,
        trace_id: None,
        span: None,
        next_hop: Default::default(),
        tried: None,
    });
    if let Some(t) = &hl.tracing {
        trace(t, hl.direction == Direction::Inbound, req, &mut out);
    }
    if let Some(logs) = &hl.access_log {
        out.captured = Some(logs.capture(req.method(), req.uri(), req.headers(), &out.next_hop.pairs()));
    }
    Some(out)
}

/// The protocol as Envoy's `%PROTOCOL%` names it.
pub fn protocol(v: http::Version) -> &'static str {
    match v {
        http::Version::HTTP_2 => "HTTP/2",
        http::Version::HTTP_10 => "HTTP/1.0",
        _ => "HTTP/1.1",
    }
}

/// What `finish` needs beyond the outcome.
pub struct Ending<'a> {
    pub ctx: &'a ConnCtx,
    pub hl: &'a HttpListener,
    pub listener: &'a ListenerCfg,
    pub version: http::Version,
    pub duration: std::time::Duration,
    pub flags: &'a str,
    pub response_bytes: u64,
}

/// Writes the access log lines and reports the span.
pub fn finish(o: &Observed, outcome: &Outcome, e: &Ending) {
    let upstream = outcome.dest.endpoint.as_deref();
    let cluster = outcome.dest.cluster.as_deref().map(|c| &**c.name());
    let peer = e.ctx.mtls_peer.as_ref();
    let code = outcome.response.status().as_u16();
    if let (Some(logs), Some(c)) = (&e.hl.access_log, &o.captured) {
        let mut trace_hex = [0u8; 32];
        let trace_id = o.trace_id.map(|id| {
            trace::context::hex(id, &mut trace_hex);
            std::str::from_utf8(&trace_hex).unwrap_or_default()
        });
        logs.log(&Entry {
            start: o.start.unwrap_or_else(SystemTime::now),
            duration: e.duration,
            protocol: Some(protocol(e.version)),
            code,
            details: (upstream.is_some() && outcome.flags.is_empty()).then_some("via_upstream"),
            flags: e.flags,
            bytes_received: outcome.request_bytes,
            bytes_sent: e.response_bytes,
            request: Some(c),
            response: Some(outcome.response.headers()),
            upstream_host: upstream.map(|u| u.addr),
            upstream_cluster: cluster,
            downstream_local: e.listener.addr,
            downstream_remote: e.ctx.peer,
            server_name: peer.and_then(|p| p.server_name.as_deref()),
            route_name: c.route.as_deref(),
            peer_identity: peer.and_then(|p| p.identity.as_deref()),
            trace_id,
        });
    }
    let (Some(s), Some(exporter)) = (&o.span, e.hl.tracing.as_ref().and_then(|t| t.exporter.as_ref())) else {
        return;
    };
    let (service, _, _) = outcome.dest.service();
    let port = cluster.and_then(|c| c.split('|').nth(1)).filter(|p| !p.is_empty());
    // Istio's decorator: the destination service and port; inbound, this
    // workload's canonical service and its app port.
    let name = match port {
        Some(port) if cluster.is_some_and(|c| c.starts_with("inbound|")) => {
            let node = &e.ctx.state.node;
            format!("{}.{}.svc.cluster.local:{port}/*", trace::canonical_service(node), node.namespace)
        }
        Some(port) if service != crate::telemetry::UNKNOWN => format!("{service}:{port}/*"),
        _ => s.url.split_once("://").map_or(s.url.clone(), |(_, rest)| rest.to_owned()),
    };
    let str_of = |v: &Option<HeaderValue>| v.as_ref().and_then(|v| v.to_str().ok()).unwrap_or("-").to_owned();
    let mut attributes = vec![
        ("http.method", Attr::Str(s.method.to_string())),
        ("http.url", Attr::Str(s.url.clone())),
        ("http.protocol", Attr::Str(protocol(e.version).into())),
        ("http.status_code", Attr::Int(i64::from(code))),
        ("response_flags", Attr::Str(e.flags.into())),
        ("response_size", Attr::Int(e.response_bytes as i64)),
        ("request_size", Attr::Int(outcome.request_bytes as i64)),
        ("guid:x-request-id", Attr::Str(str_of(&s.request_id))),
        ("user_agent", Attr::Str(str_of(&s.user_agent))),
        ("peer.address", Attr::Str(e.ctx.peer.ip().to_string())),
    ];
    if let Some(c) = cluster {
        attributes.push(("upstream_cluster", Attr::Str(c.to_owned())));
    }
    if let Some(u) = upstream {
        attributes.push(("upstream_address", Attr::Str(u.addr.to_string())));
    }
    if let Some(id) = peer.and_then(|p| p.identity.as_deref()) {
        attributes.push(("peer.identity", Attr::Str(id.to_owned())));
    }
    let error = code >= 500;
    if error {
        attributes.push(("error", Attr::Str("true".into())));
    }
    // A retried request: each attempt a child span, named for its place.
    let tried = o.tried.as_ref().map(|t| std::mem::take(&mut *t.lock())).unwrap_or_default();
    if tried.len() > 1 {
        for (i, t) in tried.iter().enumerate() {
            let mut attributes =
                vec![("retry.attempt", Attr::Int(i as i64)), ("upstream_address", Attr::Str(t.endpoint.to_string()))];
            match &t.answer {
                Ok(code) => attributes.push(("http.status_code", Attr::Int(i64::from(*code)))),
                Err(why) => attributes.push(("error.message", Attr::Str(why.clone()))),
            }
            exporter.offer(Span {
                trace_id: s.trace_id,
                span_id: trace::new_id(),
                parent: Some(s.span_id),
                name: format!("attempt {} {name}", i + 1),
                server: false,
                start: t.start,
                end: t.end,
                attributes,
                tags: Vec::new(),
                error: !matches!(t.answer, Ok(c) if c < 500),
            });
        }
    }
    exporter.offer(Span {
        trace_id: s.trace_id,
        span_id: s.span_id,
        parent: s.parent,
        name,
        server: e.hl.direction == Direction::Inbound || e.hl.remote_address,
        start: o.start.unwrap_or_else(SystemTime::now),
        end: SystemTime::now(),
        attributes,
        tags: s.tags.clone(),
        error,
    });
}
