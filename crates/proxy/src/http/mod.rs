//! The HTTP request path: find the route, then answer directly, redirect,
//! or forward to a cluster (see `forward`). Every request ends in exactly
//! one telemetry record.

mod body;
pub mod coalesce;
mod fault;
pub mod forward;
pub mod pool;
pub mod replay;
mod respond;

use crate::config::cluster::{ClusterCfg, Endpoint};
use crate::config::route::{Action, Forward, RequestView, Route};
use crate::config::{Direction, ListenerKind};
use crate::state::ProxyState;
use crate::telemetry::{Labels, Record};
use body::ProxyBody as Body;
use hyper::body::Incoming;
use hyper::{Request, Response};
pub use respond::{error_response, flags};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

/// Per connection: which listener accepted it and from whom.
pub struct ConnCtx {
    pub state: Arc<ProxyState>,
    pub listener: Arc<str>,
    pub peer: SocketAddr,
    pub activity: Activity,
    /// On a mutual-TLS connection, the `x-forwarded-client-cert` element
    /// that names the caller (`By=<us>;URI=<its SPIFFE ID>`), made once
    /// per connection.
    pub client_cert: Option<http::HeaderValue>,
}

/// What a connection has done, for its timeouts (`crate::idle`). Written
/// and read on the connection's own task only (hyper calls the service
/// there for both protocols), so a bump is a plain load and store.
#[derive(Default)]
pub struct Activity {
    /// Reads that brought bytes, on HTTP/1.1 (HTTP/2 has frames that are
    /// not requests: pings, window updates).
    pub reads: AtomicU32,
    /// Requests started.
    pub requests: AtomicU32,
}

impl Activity {
    pub fn bump(counter: &AtomicU32) {
        counter.store(counter.load(Ordering::Relaxed).wrapping_add(1), Ordering::Relaxed);
    }
}

impl replay::OnRead for Arc<ConnCtx> {
    fn on_read(&self) {
        Activity::bump(&self.activity.reads);
    }
}

/// True for `ppm` parts per million of calls (a fault's or mirror's share).
pub(crate) fn chance(ppm: u32) -> bool {
    use rand::Rng;
    ppm >= 1_000_000 || (ppm > 0 && rand::rng().random_range(0..1_000_000) < ppm)
}

/// Header the outbound side adds so the inbound side can name the caller in
/// its metrics (`workload.namespace`); removed before the application sees it.
/// A `HeaderName` constant: inserting a `&str` name converts (and allocates) per request.
pub const SOURCE_HEADER: http::HeaderName = http::HeaderName::from_static("x-weft-source");

/// Envoy's header naming the client certificates a request came through.
pub const XFCC: http::HeaderName = http::HeaderName::from_static("x-forwarded-client-cert");

/// An inbound request's headers as the application gets them: the caller's
/// certificate appended to `x-forwarded-client-cert` on mutual TLS, the
/// header removed on plaintext (a client cannot vouch for itself; Envoy's
/// `APPEND_FORWARD`, Istio's sidecar default). Returns the caller's name
/// header (`SOURCE_HEADER`), taken off.
fn inbound_headers(ctx: &ConnCtx, h: &mut http::HeaderMap) -> Option<http::HeaderValue> {
    match &ctx.client_cert {
        Some(ours) => {
            let joined = match h.get(&XFCC) {
                Some(prev) => {
                    let mut v = Vec::with_capacity(prev.len() + 1 + ours.len());
                    v.extend_from_slice(prev.as_bytes());
                    v.push(b',');
                    v.extend_from_slice(ours.as_bytes());
                    http::HeaderValue::from_bytes(&v).unwrap_or_else(|_| ours.clone())
                }
                None => ours.clone(),
            };
            h.insert(XFCC, joined);
        }
        None => {
            h.remove(&XFCC);
        }
    }
    h.remove(&SOURCE_HEADER)
}

/// What telemetry needs to know about a request's destination: the cluster
/// (its service) and the endpoint (its workload), where known. Two pointers
/// cloned per request, not five names.
#[derive(Clone)]
pub struct Dest {
    pub cluster: Option<Arc<ClusterCfg>>,
    pub endpoint: Option<Arc<Endpoint>>,
}

/// The label value of what is not known (Istio's).
const UNKNOWN: &str = "unknown";

impl Dest {
    pub fn unknown() -> Self {
        Dest { cluster: None, endpoint: None }
    }

    pub fn cluster(cluster: &Arc<ClusterCfg>) -> Self {
        Dest { cluster: Some(cluster.clone()), endpoint: None }
    }

    /// Workload and namespace, `unknown` before an endpoint was picked.
    fn workload(&self) -> (&str, &str) {
        self.endpoint.as_deref().map_or((UNKNOWN, UNKNOWN), |e| (&*e.workload, &*e.namespace))
    }

    /// Service FQDN, name and namespace.
    fn service(&self) -> (&str, &str, &str) {
        self.cluster
            .as_deref()
            .map_or((UNKNOWN, UNKNOWN, UNKNOWN), |c| (&*c.service, &*c.service_name, &*c.service_namespace))
    }
}

pub struct Outcome {
    pub response: Response<Body>,
    pub flags: &'static str,
    pub dest: Dest,
    pub request_bytes: u64,
}

fn lowercase(s: &str) -> std::borrow::Cow<'_, str> {
    if s.bytes().any(|b| b.is_ascii_uppercase()) { s.to_ascii_lowercase().into() } else { s.into() }
}

fn strip_port(host: &str) -> &str {
    match host.rsplit_once(':') {
        Some((h, p)) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && !h.ends_with(':') => h,
        _ => host,
    }
}

/// Counts a request in flight (the drain on shutdown waits for zero).
struct InFlight<'a>(&'a prometheus_client::metrics::gauge::Gauge);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// A plain `fn` returning an `async move` block (see `forward::forward`):
/// an `async fn` would keep the request twice in the future's state.
#[allow(clippy::manual_async_fn)]
pub fn handle(
    ctx: Arc<ConnCtx>,
    mut req: Request<Incoming>,
) -> impl Future<Output = Result<Response<Body>, std::convert::Infallible>> + Send {
    async move {
        let start = Instant::now();
        let state = &ctx.state;
        state.metrics.active_requests.inc();
        let _in_flight = InFlight(&state.metrics.active_requests);
        let cfg = state.config.load_full();
        let listener = cfg.listeners.iter().find(|l| *l.name == *ctx.listener);
        // Borrowed from `cfg`, which this future holds anyway.
        let hl = match listener.map(|l| &l.kind) {
            Some(ListenerKind::Http(hl)) => &**hl,
            _ => return Ok(error_response(503, "listener is being removed")),
        };
        let protocol = if req.version() == http::Version::HTTP_2 { "http2" } else { "http" };
        // The caller's identity on inbound requests; the labels borrow from it.
        let source = match hl.direction {
            Direction::Outbound => None,
            Direction::Inbound => inbound_headers(&ctx, req.headers_mut()),
        };
        let (source_workload, source_ns) = match hl.direction {
            Direction::Outbound => (&*state.metrics.workload, &*state.metrics.namespace),
            Direction::Inbound => source
                .as_ref()
                .and_then(|v| v.to_str().ok())
                .and_then(|s| s.split_once('.'))
                .unwrap_or((UNKNOWN, UNKNOWN)),
        };
        // Routed here rather than in an async fn of its own: each async
        // layer keeps 264 bytes for the request after moving it on (an
        // upvar's room is never reused), and the future is moved per request.
        let outcome = 'routed: {
            let (route, f) = match resolve(hl, &req) {
                Ok(forward) => forward,
                Err(answered) => break 'routed answered,
            };
            let delayed = match &route.fault {
                Some(fault) => match fault::inject(fault, &f.target).await {
                    Ok(delayed) => delayed,
                    Err(aborted) => break 'routed aborted,
                },
                None => false,
            };
            let mut out = forward::forward(&ctx, hl.direction, route, f, req).await;
            if delayed && out.flags == flags::NONE {
                out.flags = flags::FAULT_DELAY;
            }
            out
        };
        let (dest_workload, dest_ns) = match hl.direction {
            Direction::Inbound => (&*state.metrics.workload, &*state.metrics.namespace),
            Direction::Outbound => outcome.dest.workload(),
        };
        let (service, service_name, service_namespace) = outcome.dest.service();
        let response_bytes = outcome
            .response
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        state.metrics.record(Record {
            labels: Labels {
                reporter: if hl.direction == Direction::Inbound { "destination" } else { "source" },
                source_workload,
                source_workload_namespace: source_ns,
                destination_workload: dest_workload,
                destination_workload_namespace: dest_ns,
                destination_service: service,
                destination_service_name: service_name,
                destination_service_namespace: service_namespace,
                request_protocol: protocol,
                response_code: outcome.response.status().as_u16(),
                response_flags: outcome.flags,
                connection_security_policy: "none",
            },
            duration_ms: start.elapsed().as_secs_f64() * 1000.0,
            request_bytes: outcome.request_bytes,
            response_bytes,
        });
        Ok(outcome.response)
    }
}

/// The routing decision, without waiting: the route and forward action, or
/// the response itself (no route, a direct response, a redirect). Its
/// borrows (authority, request view) end here, so they take no room in the
/// request's future while it waits. The answered `Outcome` is moved once;
/// boxing it would allocate per response.
#[allow(clippy::result_large_err)]
fn resolve<'a>(
    hl: &'a crate::config::HttpListener,
    req: &Request<Incoming>,
) -> Result<(&'a Route, &'a Forward), Outcome> {
    let simple = |status: u16, msg: &str, flags: &'static str| Outcome {
        response: error_response(status, msg),
        flags,
        dest: Dest::unknown(),
        request_bytes: 0,
    };
    let Some(table) = &hl.routes else {
        return Err(simple(
            404,
            &format!("route table {:?} has not arrived from the control plane yet", hl.route_name),
            flags::NO_ROUTE,
        ));
    };
    let host_header = req.headers().get(http::header::HOST).and_then(|v| v.to_str().ok());
    let authority = lowercase(req.uri().authority().map(|a| a.as_str()).or(host_header).unwrap_or(""));
    let lookup = if hl.strip_port { strip_port(&authority) } else { &authority };
    let Some(vhost) = table.host(lookup) else {
        return Err(simple(
            404,
            &format!("no route for host {authority:?}: no service or VirtualService host matches it"),
            flags::NO_ROUTE,
        ));
    };
    let scheme = req.uri().scheme_str().unwrap_or("http");
    let view = RequestView {
        method: req.method(),
        authority: &authority,
        scheme,
        path: req.uri().path(),
        query: req.uri().query(),
        headers: req.headers(),
    };
    let Some(route) = vhost.route(&view) else {
        return Err(simple(
            404,
            &format!("no route matches {} {} on host {authority:?}", req.method(), req.uri().path()),
            flags::NO_ROUTE,
        ));
    };
    match &route.action {
        Action::Forward(f) => Ok((route, f)),
        Action::Direct(d) => {
            let mut resp = respond::direct(d.status, d.body.clone());
            route.response_headers.apply(resp.headers_mut());
            Err(Outcome { response: resp, flags: flags::NONE, dest: Dest::unknown(), request_bytes: 0 })
        }
        Action::Redirect(rd) => {
            let resp = respond::redirect(rd, route, scheme, &authority, req.uri());
            Err(Outcome { response: resp, flags: flags::NONE, dest: Dest::unknown(), request_bytes: 0 })
        }
    }
}
