//! The request path's one error type. Retries, outlier detection, metrics
//! and the response all read the same `ProxyError` rather than re-deriving
//! what a failure meant: its status, its response flags, whether it says
//! anything about the host, whether a `retryOn` condition covers it, and
//! the answer the client gets (plain text, or a gRPC status for gRPC).

use super::body::ProxyBody;
use super::flags::Flags;
use crate::config::route::RetryOn;
use crate::upstream::health::Observation;
use crate::upstream::pool::UpstreamError;
use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use std::borrow::Cow;

/// Where a failure happened (pingora's error source).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The client: its request could not be read.
    Downstream,
    /// The upstream host: it refused, reset, or did not answer in time.
    Upstream,
    /// This proxy's own decision: no route, no host, a circuit breaker.
    Local,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// No route matches the request (404, NR).
    NoRoute,
    /// The route names a cluster this proxy does not have (503, NC).
    NoCluster,
    /// The cluster has no host to send to (503, UH).
    NoHealthyUpstream,
    /// A circuit breaker refused the request (503, UO).
    Overflow,
    /// Connecting to the host failed or timed out, TLS included (503, UF).
    ConnectFailure,
    /// The host reset or closed the connection before a response (503, UR).
    UpstreamReset,
    /// A pooled connection turned out closed before the request went out
    /// (the keep-alive race): the host never saw it, so it is safe to
    /// resend, and it says nothing about the host (503, UR).
    NotSent,
    /// An attempt's `perTryTimeout` ran out (504, UT).
    PerTryTimeout,
    /// The route's `timeout` ran out (504, UT).
    Timeout,
    /// The client's request body could not be read (400, DC).
    DownstreamBody,
    /// An authorization policy denied the request (403, no flag, as
    /// Envoy's RBAC filter).
    Denied,
    /// Its JSON Web Token failed verification, or one was required (401,
    /// no flag, as Envoy's JWT filter).
    Unauthenticated,
    /// A verified token not meant for this service: its audiences are not
    /// the rule's (403, no flag, as Envoy's JWT filter).
    WrongAudience,
}

#[derive(Debug, Clone)]
pub struct ProxyError {
    kind: ErrorKind,
    /// What a person reads: what failed and, where it helps, how to fix it.
    message: Cow<'static, str>,
}

impl ProxyError {
    pub fn new(kind: ErrorKind, message: impl Into<Cow<'static, str>>) -> Self {
        ProxyError { kind, message: message.into() }
    }

    /// A failure of the pool's exchange with a host.
    pub fn upstream(e: &UpstreamError) -> Self {
        let kind = match e {
            UpstreamError::NotSent(..) => ErrorKind::NotSent,
            UpstreamError::Reset(..) => ErrorKind::UpstreamReset,
            UpstreamError::Connect(..)
            | UpstreamError::ConnectTimeout(_)
            | UpstreamError::Handshake(..)
            | UpstreamError::Tls(..) => ErrorKind::ConnectFailure,
        };
        ProxyError::new(kind, format!("upstream connect error or disconnect/reset before headers: {e}"))
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    pub fn origin(&self) -> Origin {
        use ErrorKind::*;
        match self.kind {
            DownstreamBody => Origin::Downstream,
            ConnectFailure | UpstreamReset | NotSent | PerTryTimeout | Timeout => Origin::Upstream,
            NoRoute | NoCluster | NoHealthyUpstream | Overflow | Denied | Unauthenticated | WrongAudience => {
                Origin::Local
            }
        }
    }

    pub fn status(&self) -> u16 {
        use ErrorKind::*;
        match self.kind {
            NoRoute => 404,
            Denied | WrongAudience => 403,
            Unauthenticated => 401,
            DownstreamBody => 400,
            PerTryTimeout | Timeout => 504,
            NoCluster | NoHealthyUpstream | Overflow | ConnectFailure | UpstreamReset | NotSent => 503,
        }
    }

    /// Envoy's response flags for it.
    pub fn flags(&self) -> Flags {
        use ErrorKind::*;
        match self.kind {
            NoRoute => Flags::NO_ROUTE,
            NoCluster => Flags::NO_CLUSTER,
            NoHealthyUpstream => Flags::NO_HEALTHY,
            Overflow => Flags::OVERFLOW,
            ConnectFailure => Flags::CONNECT_FAILURE,
            UpstreamReset | NotSent => Flags::RESET,
            PerTryTimeout | Timeout => Flags::TIMEOUT,
            DownstreamBody => Flags::DOWNSTREAM_TERMINATION,
            Denied | Unauthenticated | WrongAudience => Flags::NONE,
        }
    }

    /// What outlier detection learns about the host from it: connect
    /// failures, resets and per-try timeouts count as the 503 or 504 the
    /// proxy answers (local-origin failures); the rest is not the host's.
    pub fn observation(&self) -> Option<Observation> {
        match self.kind {
            ErrorKind::ConnectFailure | ErrorKind::UpstreamReset => Some(Observation::LocalFailure(503)),
            ErrorKind::PerTryTimeout => Some(Observation::LocalFailure(504)),
            _ => None,
        }
    }

    /// Whether `on` (a route's `retryOn`) asks for a retry after it. A
    /// request the host never saw (`NotSent`) may always be sent again.
    pub fn retriable(&self, on: &RetryOn) -> bool {
        match self.kind {
            ErrorKind::ConnectFailure => on.connect_failure,
            ErrorKind::UpstreamReset => on.reset || on.refused_stream,
            ErrorKind::NotSent => true,
            ErrorKind::PerTryTimeout => on.s5xx || on.gateway_error || on.reset,
            _ => false,
        }
    }

    /// The answer the client gets: plain text, or for a gRPC request a
    /// trailers-only gRPC status (HTTP 200, as Envoy's local replies to
    /// gRPC are: a 503 is `UNAVAILABLE`).
    pub fn response(&self, grpc: bool) -> Response<ProxyBody> {
        if grpc {
            return grpc_status(grpc_code(self.status()), &self.message);
        }
        let mut r = text(self.status(), &self.message);
        if matches!(self.kind, ErrorKind::Unauthenticated | ErrorKind::WrongAudience) {
            // RFC 6750's challenge, as Envoy's JWT filter answers.
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer error=\"invalid_token\""));
        }
        r
    }
}

impl std::fmt::Display for ProxyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ProxyError {}

/// Whether a request is gRPC (its content type says so).
pub fn is_grpc(headers: &http::HeaderMap) -> bool {
    headers.get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
}

/// gRPC's mapping of HTTP statuses to gRPC codes (grpc/doc/http-grpc-status-mapping.md).
pub(crate) fn grpc_code(status: u16) -> u32 {
    match status {
        400 => 13,             // INTERNAL
        401 => 16,             // UNAUTHENTICATED
        403 => 7,              // PERMISSION_DENIED
        404 => 12,             // UNIMPLEMENTED
        429 | 502..=504 => 14, // UNAVAILABLE
        _ => 2,                // UNKNOWN
    }
}

/// A plain-text error answer.
pub fn text(status: u16, msg: &str) -> Response<ProxyBody> {
    let body = Bytes::from(format!("{msg}\n"));
    let len = body.len();
    let mut r = Response::new(ProxyBody::full(body));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    r.headers_mut().insert(header::CONTENT_LENGTH, len.into());
    r
}

/// A trailers-only gRPC answer: the status in the headers, no body.
pub fn grpc_status(code: u32, msg: &str) -> Response<ProxyBody> {
    let mut r = Response::new(ProxyBody::empty());
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    h.insert("grpc-status", code.into());
    if let Ok(v) = HeaderValue::from_str(&percent_encode(msg)) {
        h.insert("grpc-message", v);
    }
    r
}

/// `grpc-message` is percent-encoded UTF-8: bytes outside printable ASCII,
/// and `%` itself, become `%XX` (the gRPC HTTP/2 protocol).
fn percent_encode(msg: &str) -> Cow<'_, str> {
    let plain = |b: u8| (0x20..=0x7e).contains(&b) && b != b'%';
    if msg.bytes().all(plain) {
        return Cow::Borrowed(msg);
    }
    let mut out = String::with_capacity(msg.len() + 8);
    for b in msg.bytes() {
        if plain(b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ErrorKind::*;

    const ALL: [ErrorKind; 13] = [
        NoRoute,
        NoCluster,
        NoHealthyUpstream,
        Overflow,
        ConnectFailure,
        UpstreamReset,
        NotSent,
        PerTryTimeout,
        Timeout,
        DownstreamBody,
        Denied,
        Unauthenticated,
        WrongAudience,
    ];

    #[test]
    fn each_kind_has_envoys_status_flag_and_origin() {
        let expect = [
            (NoRoute, 404, "NR", Origin::Local),
            (NoCluster, 503, "NC", Origin::Local),
            (NoHealthyUpstream, 503, "UH", Origin::Local),
            (Overflow, 503, "UO", Origin::Local),
            (ConnectFailure, 503, "UF", Origin::Upstream),
            (UpstreamReset, 503, "UR", Origin::Upstream),
            (NotSent, 503, "UR", Origin::Upstream),
            (PerTryTimeout, 504, "UT", Origin::Upstream),
            (Timeout, 504, "UT", Origin::Upstream),
            (DownstreamBody, 400, "DC", Origin::Downstream),
            (Denied, 403, "-", Origin::Local),
            (Unauthenticated, 401, "-", Origin::Local),
            (WrongAudience, 403, "-", Origin::Local),
        ];
        assert_eq!(expect.len(), ALL.len());
        for (kind, status, flag, origin) in expect {
            let e = ProxyError::new(kind, "x");
            assert_eq!((e.status(), &*e.flags().as_str(), e.origin()), (status, flag, origin), "{kind:?}");
        }
    }

    #[test]
    fn only_the_hosts_own_failures_reach_outlier_detection() {
        for kind in ALL {
            let seen = ProxyError::new(kind, "x").observation();
            let want = match kind {
                ConnectFailure | UpstreamReset => Some(Observation::LocalFailure(503)),
                PerTryTimeout => Some(Observation::LocalFailure(504)),
                _ => None,
            };
            assert_eq!(seen, want, "{kind:?}");
        }
    }

    #[test]
    fn retry_on_conditions_cover_their_failures_only() {
        let on = |s: &str| RetryOn::parse(s).0;
        let e = |k| ProxyError::new(k, "x");
        assert!(e(ConnectFailure).retriable(&on("connect-failure")));
        assert!(!e(ConnectFailure).retriable(&on("5xx,reset")));
        assert!(e(UpstreamReset).retriable(&on("reset")));
        assert!(e(UpstreamReset).retriable(&on("refused-stream")));
        assert!(!e(UpstreamReset).retriable(&on("connect-failure")));
        assert!(e(NotSent).retriable(&on("")), "the host never saw it");
        for c in ["5xx", "gateway-error", "reset"] {
            assert!(e(PerTryTimeout).retriable(&on(c)), "{c}");
        }
        assert!(!e(PerTryTimeout).retriable(&on("connect-failure")));
        for k in [NoRoute, NoCluster, NoHealthyUpstream, Overflow, Timeout, DownstreamBody] {
            assert!(!e(k).retriable(&on("5xx,gateway-error,reset,connect-failure,refused-stream")), "{k:?}");
        }
    }

    #[test]
    fn a_grpc_request_gets_a_grpc_status_and_others_text() {
        let e = ProxyError::new(NoHealthyUpstream, "no healthy upstream for reviews: 100% down");
        let r = e.response(true);
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "application/grpc");
        assert_eq!(r.headers()["grpc-status"], "14", "503 is UNAVAILABLE");
        assert_eq!(r.headers()["grpc-message"], "no healthy upstream for reviews: 100%25 down");
        let r = ProxyError::new(NoRoute, "no route").response(true);
        assert_eq!(r.headers()["grpc-status"], "12", "404 is UNIMPLEMENTED");
        let r = ProxyError::new(Denied, "RBAC: access denied").response(true);
        assert_eq!(r.headers()["grpc-status"], "7", "403 is PERMISSION_DENIED");
        let r = e.response(false);
        assert_eq!(r.status(), 503);
        assert_eq!(r.headers()["content-type"], "text/plain");
    }

    #[test]
    fn grpc_is_told_by_its_content_type() {
        let mut h = http::HeaderMap::new();
        assert!(!is_grpc(&h));
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/grpc+proto"));
        assert!(is_grpc(&h));
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        assert!(!is_grpc(&h));
    }
}
