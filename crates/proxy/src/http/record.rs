//! A request's metrics record, with Istio's labels: made as its response
//! headers leave, or, for a gRPC call whose status comes in trailers, when
//! its response body ends (`Pending`, carried by the body), so that
//! `grpc_response_status` is the call's status and a streamed call's
//! duration and size are the whole stream's, as Istio's are.

use super::body::{Finish, ProxyBody, Watched};
use super::error::grpc_code;
use super::outcome::{Dest, UNKNOWN};
use crate::config::listener::Direction;
use crate::conn::ConnCtx;
use crate::telemetry::peer::{CLUSTER, Claimed};
use crate::telemetry::{Labels, Record};
use http::{HeaderMap, HeaderValue, Response};
use http_body::Body as _;
use std::sync::Arc;

/// What a request's record says beyond its destination and timing.
#[derive(Clone, Copy)]
pub struct Facts<'a> {
    pub direction: Direction,
    /// The caller's claimed names (`x-weft-source`), inbound.
    pub source: Option<&'a HeaderValue>,
    pub security: &'static str,
    /// `grpc` or `http`, as Istio's `request_protocol` (HTTP/2 is `http`).
    pub protocol: &'static str,
    pub code: u16,
    pub flags: &'static str,
    pub request_bytes: u64,
}

/// gRPC's status codes as label values.
const GRPC_CODES: [&str; 17] =
    ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "15", "16"];
const GRPC_UNKNOWN: &str = "2";
const GRPC_STATUS: http::HeaderName = http::HeaderName::from_static("grpc-status");

/// The `grpc-status` a header map carries (retries read it too).
pub fn grpc_code_in(h: &HeaderMap) -> Option<u8> {
    std::str::from_utf8(h.get(GRPC_STATUS)?.as_bytes()).ok()?.parse().ok()
}

/// The `grpc-status` a header map carries, as a label value.
pub fn grpc_status_in(h: &HeaderMap) -> Option<&'static str> {
    grpc_code_in(h).map(|n| GRPC_CODES.get(usize::from(n)).copied().unwrap_or(GRPC_UNKNOWN))
}

/// A call that ended without a status: Envoy infers one from the HTTP
/// status (the gRPC spec's HTTP-to-gRPC mapping).
pub fn grpc_status_of_http(code: u16) -> &'static str {
    GRPC_CODES.get(grpc_code(code) as usize).copied().unwrap_or(GRPC_UNKNOWN)
}

/// The caller's and the callee's names: the destination's own are this
/// proxy's inbound, the endpoint's outbound.
pub fn ends<'a>(
    ctx: &'a ConnCtx,
    direction: Direction,
    source: Option<&'a HeaderValue>,
    dest: &'a Dest,
) -> (Claimed<'a>, Claimed<'a>) {
    let m = &ctx.state.metrics;
    match direction {
        Direction::Outbound => (m.own.claimed(&m.workload, &m.namespace), dest.claimed()),
        Direction::Inbound => (ctx.caller(source), m.own.claimed(&m.workload, &m.namespace)),
    }
}

/// Records one request. `grpc` is `""` for plain HTTP.
pub fn record(ctx: &ConnCtx, f: &Facts, dest: &Dest, grpc: &'static str, duration_ms: f64, response_bytes: u64) {
    let m = &ctx.state.metrics;
    let (caller, callee) = ends(ctx, f.direction, f.source, dest);
    let (source_principal, destination_principal) = match (f.direction, &ctx.mtls_peer) {
        (Direction::Outbound, _) => (&*m.own.principal, dest.principal().unwrap_or(UNKNOWN)),
        (Direction::Inbound, Some(p)) => (p.identity.as_deref().unwrap_or(UNKNOWN), &*m.own.principal),
        (Direction::Inbound, None) => (UNKNOWN, UNKNOWN),
    };
    let (service, service_name, service_namespace) = dest.service();
    m.record(Record {
        labels: Labels {
            reporter: if f.direction == Direction::Inbound { "destination" } else { "source" },
            source_workload: caller.workload,
            source_workload_namespace: caller.namespace,
            destination_workload: callee.workload,
            destination_workload_namespace: callee.namespace,
            destination_service: service,
            destination_service_name: service_name,
            destination_service_namespace: service_namespace,
            request_protocol: f.protocol,
            response_code: f.code,
            grpc_response_status: grpc,
            response_flags: f.flags,
            connection_security_policy: f.security,
            source_principal,
            source_app: caller.app,
            source_version: caller.version,
            source_canonical_service: caller.canonical_service,
            source_canonical_revision: caller.canonical_revision,
            source_cluster: CLUSTER,
            destination_principal,
            destination_app: callee.app,
            destination_version: callee.version,
            destination_canonical_service: callee.canonical_service,
            destination_canonical_revision: callee.canonical_revision,
            destination_cluster: CLUSTER,
        },
        duration_ms,
        request_bytes: f.request_bytes,
        response_bytes,
    });
}

/// Records a request as its response leaves, or, for a gRPC call whose
/// status will come in trailers, makes its body record it as it ends.
/// `start`: when the request arrived (std's clock: wall time for a metric).
#[allow(clippy::disallowed_types)]
pub fn on_response(
    ctx: &Arc<ConnCtx>,
    facts: &Facts,
    dest: &Dest,
    start: std::time::Instant,
    response: &mut Response<ProxyBody>,
    response_bytes: u64,
) {
    let ms = || start.elapsed().as_secs_f64() * 1000.0;
    if facts.protocol != "grpc" {
        return record(ctx, facts, dest, "", ms(), response_bytes);
    }
    if let Some(status) = grpc_status_in(response.headers()) {
        return record(ctx, facts, dest, status, ms(), response_bytes);
    }
    match std::mem::replace(response.body_mut(), ProxyBody::empty()) {
        ProxyBody::Upstream(body) if !body.is_end_stream() => {
            let source = facts.source.cloned();
            let pending = Pending {
                ctx: ctx.clone(),
                facts: Facts { source: None, ..*facts },
                source,
                dest: dest.clone(),
                start,
            };
            *response.body_mut() = ProxyBody::Watched(Box::new(Watched::new(body, pending)));
        }
        body => {
            *response.body_mut() = body;
            record(ctx, facts, dest, grpc_status_of_http(facts.code), ms(), response_bytes);
        }
    }
}

/// A gRPC call's record, waiting for its status: owned, since the request's
/// future is gone by then. Boxed in the body, so plain HTTP pays nothing.
struct Pending {
    ctx: Arc<ConnCtx>,
    /// Its facts, but for the caller's names, kept beside them.
    facts: Facts<'static>,
    source: Option<HeaderValue>,
    dest: Dest,
    /// When the request arrived (std's clock: wall time for a metric).
    #[allow(clippy::disallowed_types)]
    start: std::time::Instant,
}

impl Finish for Pending {
    /// Records the call: with the status its trailers carry, else one
    /// inferred from the HTTP status (a stream cut short has none).
    fn finish(&mut self, trailers: Option<&HeaderMap>, body_bytes: u64) {
        let grpc = trailers.and_then(grpc_status_in).unwrap_or_else(|| grpc_status_of_http(self.facts.code));
        let facts = Facts { source: self.source.as_ref(), ..self.facts };
        let ms = self.start.elapsed().as_secs_f64() * 1000.0;
        record(&self.ctx, &facts, &self.dest, grpc, ms, body_bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_reads_from_its_header_or_from_the_http_status() {
        let mut h = HeaderMap::new();
        assert_eq!(grpc_status_in(&h), None);
        h.insert(GRPC_STATUS, HeaderValue::from_static("14"));
        assert_eq!(grpc_status_in(&h), Some("14"));
        h.insert(GRPC_STATUS, HeaderValue::from_static("99"));
        assert_eq!(grpc_status_in(&h), Some("2"), "past the known codes: UNKNOWN");
        h.insert(GRPC_STATUS, HeaderValue::from_static("x"));
        assert_eq!(grpc_status_in(&h), None);
        assert_eq!(grpc_status_of_http(503), "14");
        assert_eq!(grpc_status_of_http(403), "7");
        assert_eq!(grpc_status_of_http(200), "2");
    }
}
