//! The request path's entry: find the route, then answer directly,
//! redirect, or forward to a cluster (`forward`). Every request ends in
//! exactly one telemetry record.

use super::body::ProxyBody as Body;
use super::error::{ErrorKind, ProxyError, is_grpc, text};
use super::flags::Flags;
use super::headers::client_headers;
use super::outcome::{Dest, Outcome, UNKNOWN};
use super::record;
use super::respond;
use super::{authz, cors, fault, forward, observe};
use crate::config::listener::{Direction, HttpListener, ListenerKind};
use crate::config::matcher::{authority_of, strip_port};
use crate::config::route::{Action, Forward, RequestView, Route};
use crate::conn::ConnCtx;
use crate::telemetry::tap;
use hyper::body::Incoming;
use hyper::{Request, Response};
use std::sync::Arc;

/// The request's JWT checked (RequestAuthentication), then the
/// authorization policies, which see what the token said. A plain fn: what
/// the token said is gone before the request path's first await.
fn authenticate_and_authorize(
    ctx: &ConnCtx,
    l: &crate::config::listener::ListenerCfg,
    hl: &HttpListener,
    req: &mut Request<Incoming>,
) -> Result<(), ProxyError> {
    let auth = match hl.jwt.as_deref() {
        Some(jwt) => super::jwt::authenticate(jwt, req)?,
        None => None,
    };
    if hl.authz.is_empty() { Ok(()) } else { authz::check(ctx, l, hl, req, auth.as_ref()) }
}

fn lowercase(s: &str) -> std::borrow::Cow<'_, str> {
    if s.bytes().any(|b| b.is_ascii_uppercase()) { s.to_ascii_lowercase().into() } else { s.into() }
}

/// What a request is, for its record.
#[derive(Clone, Copy, PartialEq)]
enum Traffic {
    /// The mesh's health probe: not recorded.
    Probe,
    Grpc,
    Http,
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
        // Wall time for the duration metric, not timing logic: std's clock
        // (tokio's asks its runtime whether time is paused).
        #[allow(clippy::disallowed_types)]
        let start = std::time::Instant::now();
        let state = &ctx.state;
        state.metrics.active_requests.inc();
        let _in_flight = InFlight(&state.metrics.active_requests);
        let cfg = state.config.load_full();
        let listener = cfg.listeners.iter().find(|l| *l.name == *ctx.listener);
        // Borrowed from `cfg`, which this future holds anyway.
        let hl = match listener.map(|l| &l.kind) {
            Some(ListenerKind::Http(hl)) => &**hl,
            _ => return Ok(text(503, "listener is being removed")),
        };
        // A byte held across the awaits; its names are made after them.
        let version = req.version();
        // The caller's identity on inbound requests; the labels borrow from it.
        let source = client_headers(&ctx, hl, req.headers_mut());
        // As the request goes on (`x-forwarded-for` appended at the edge),
        // its trace written for the next hop.
        let mut observed = observe::begin(hl, &mut req);
        // Boxed (one pointer in the future), and only while a tap is open.
        let tapped = state.taps.open().then(|| {
            Box::new(tap::Seen {
                method: req.method().to_string(),
                authority: authority_of(req.uri(), req.headers()).unwrap_or("").to_owned(),
                path: req.uri().path().to_owned(),
            })
        });
        // The mesh's own health probes are not service traffic: like Istio's
        // rewritten kubelet probes they stay out of the request metrics (the
        // health view shows what they find). gRPC is told by its content
        // type (Istio's `request_protocol`). One byte held across the awaits.
        let probe = hl.direction == Direction::Inbound
            && req
                .headers()
                .get(http::header::USER_AGENT)
                .is_some_and(|v| v == crate::upstream::health::PROBE_USER_AGENT);
        let traffic = match (probe, is_grpc(req.headers())) {
            (true, _) => Traffic::Probe,
            (false, true) => Traffic::Grpc,
            (false, false) => Traffic::Http,
        };
        // Istio's: the destination reports how its connection was secured;
        // the source cannot know, and says `unknown`.
        let security = match hl.direction {
            Direction::Outbound => UNKNOWN,
            Direction::Inbound if ctx.mtls_peer.is_some() => "mutual_tls",
            Direction::Inbound => "none",
        };
        // Routed here rather than in an async fn of its own: each async
        // layer keeps 264 bytes for the request after moving it on (an
        // upvar's room is never reused), and the future is moved per request.
        let mut outcome = 'routed: {
            if (hl.jwt.is_some() || !hl.authz.is_empty())
                && let Some(l) = listener
                && let Err(e) = authenticate_and_authorize(&ctx, l, hl, &mut req)
            {
                let (response, flags) = (e.response(is_grpc(req.headers())), e.flags());
                break 'routed Outcome { response, flags, dest: Dest::unknown(), request_bytes: 0 };
            }
            let (route, f, cors_origin) = match resolve(hl, &req, ctx.secure) {
                Ok(forward) => forward,
                Err(answered) => break 'routed answered,
            };
            if let Some(c) = observed.as_mut().and_then(|o| o.captured.as_mut()) {
                c.route = Some(route.name.clone());
            }
            let mut out = 'forwarded: {
                let delayed = match &route.fault {
                    Some(fault) => match fault::inject(fault, &f.target, &cfg.clusters).await {
                        Ok(delayed) => delayed,
                        Err(aborted) => break 'forwarded aborted,
                    },
                    None => false,
                };
                let mut out =
                    forward::forward(&ctx, &cfg.clusters, hl.direction, route, f, req, observed.as_deref()).await;
                if delayed {
                    out.flags |= Flags::FAULT_DELAY;
                }
                out
            };
            if let Some(origin) = cors_origin
                && let Some(policy) = &route.cors
            {
                cors::on_response(policy, *origin, out.response.headers_mut());
            }
            out
        };
        let response_flags = outcome.flags.as_static();
        let code = outcome.response.status().as_u16();
        let response_bytes = outcome
            .response
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        if traffic != Traffic::Probe {
            let facts = record::Facts {
                direction: hl.direction,
                source: source.as_ref(),
                security,
                protocol: if traffic == Traffic::Grpc { "grpc" } else { "http" },
                code,
                flags: response_flags,
                request_bytes: outcome.request_bytes,
            };
            record::on_response(&ctx, &facts, &outcome.dest, start, &mut outcome.response, response_bytes);
        }
        if let Some(seen) = tapped {
            let (caller, callee) = record::ends(&ctx, hl.direction, source.as_ref(), &outcome.dest);
            let (service, _, _) = outcome.dest.service();
            let duration_ms = start.elapsed().as_secs_f64() * 1000.0;
            state.taps.offer(tap::Event {
                unix_ms: std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as u64),
                direction: if hl.direction == Direction::Inbound { "inbound" } else { "outbound" },
                method: seen.method,
                authority: seen.authority,
                path: seen.path,
                status: outcome.response.status().as_u16(),
                flags: response_flags,
                duration_ms,
                source: format!("{}.{}", caller.workload, caller.namespace),
                destination_service: service.to_owned(),
                destination: format!("{}.{}", callee.workload, callee.namespace),
                upstream_host: outcome.dest.endpoint.as_ref().map(|e| e.addr.to_string()),
            });
        }
        if let (Some(o), Some(l)) = (&observed, listener) {
            let ending = observe::Ending {
                ctx: &ctx,
                hl,
                listener: l,
                version,
                duration: start.elapsed(),
                flags: response_flags,
                response_bytes,
            };
            observe::finish(o, &outcome, &ending);
        }
        Ok(outcome.response)
    }
}

/// The request as matchers see it, with its `authority` as routing reads it.
fn view<'a>(req: &'a Request<Incoming>, authority: &'a str) -> RequestView<'a> {
    RequestView {
        method: req.method(),
        authority,
        scheme: req.uri().scheme_str().unwrap_or("http"),
        path: req.uri().path(),
        query: req.uri().query(),
        headers: req.headers(),
    }
}

/// The routing decision, without waiting: the route, its forward action
/// and an allowed CORS origin, or the response itself (no route, a CORS
/// preflight, a direct response, a redirect). Its
/// borrows (authority, request view) end here, so they take no room in the
/// request's future while it waits. The answered `Outcome` is moved once;
/// boxing it would allocate per response.
#[allow(clippy::result_large_err)]
fn resolve<'a>(hl: &'a HttpListener, req: &Request<Incoming>, secure: bool) -> Result<Resolved<'a>, Outcome> {
    let no_route = |msg: String| {
        let e = ProxyError::new(ErrorKind::NoRoute, msg);
        Outcome {
            response: e.response(is_grpc(req.headers())),
            flags: e.flags(),
            dest: Dest::unknown(),
            request_bytes: 0,
        }
    };
    let Some(table) = &hl.routes else {
        return Err(no_route(format!("route table {:?} has not arrived from the control plane yet", hl.route_name)));
    };
    let authority = lowercase(authority_of(req.uri(), req.headers()).unwrap_or(""));
    let lookup = if hl.strip_port { strip_port(&authority) } else { &authority };
    let Some(vhost) = table.host(lookup) else {
        return Err(no_route(format!("no route for host {authority:?}: no service or VirtualService host matches it")));
    };
    let answered = |response| Outcome { response, flags: Flags::NONE, dest: Dest::unknown(), request_bytes: 0 };
    if vhost.require_tls && !secure {
        return Err(answered(respond::to_https(&authority, req.uri())));
    }
    let scheme = req.uri().scheme_str().unwrap_or("http");
    let Some(route) = vhost.route(&view(req, &authority)) else {
        return Err(no_route(format!("no route matches {} {} on host {authority:?}", req.method(), req.uri().path())));
    };
    let cors_origin = match route.cors.as_deref().map(|c| cors::on_request(c, req.method(), req.headers())) {
        Some(cors::Step::Answer(preflight)) => return Err(answered(preflight)),
        Some(cors::Step::Allow(origin)) => Some(origin),
        Some(cors::Step::Pass) | None => None,
    };
    let mut resp = match &route.action {
        Action::Forward(f) => return Ok((route, f, cors_origin)),
        Action::Direct(d) => {
            let mut resp = respond::direct(d.status, d.body.clone());
            route.response_headers.apply(resp.headers_mut());
            resp
        }
        Action::Redirect(rd) => respond::redirect(rd, route, scheme, &authority, req.uri()),
    };
    if let (Some(origin), Some(policy)) = (cors_origin, &route.cors) {
        cors::on_response(policy, *origin, resp.headers_mut());
    }
    Err(answered(resp))
}

/// A route to forward on, its action, and the origin of an allowed
/// cross-origin request.
type Resolved<'a> = (&'a Route, &'a Forward, Option<Box<http::HeaderValue>>);
