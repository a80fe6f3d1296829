//! Forwarding to a cluster: pick a destination (weighted split), rewrite,
//! admit (circuit breakers), then run attempts: pick an endpoint
//! (balancer, consistent hash), send over a pooled connection, and let
//! `retry` say whether to go again; all under the route's timeout. Every
//! failure is one `ProxyError`.
//!
//! Retries need the body again: bodyless requests always qualify, bodies up
//! to `MAX_REPLAY_BODY` are buffered when the route retries, larger or
//! unsized streaming bodies are sent once.

use super::attempt::{Attempt, send};
use super::body::ProxyBody;
use super::error::{ErrorKind, ProxyError, is_grpc};
use super::headers::{is_upgrade, strip_hop_by_hop};
use super::observe::Observed;
use super::outcome::{Dest, Outcome};
use super::retry::{Attempted, Decision, Retries};
use crate::config::cluster::Protocol;
use crate::config::listener::Direction;
use crate::config::route::{CookiePolicy, Forward, HashPolicy, Route};
use crate::conn::ConnCtx;
use crate::snapshot::{Clusters, Picked};
use crate::telemetry::trace::Tried;
use crate::upstream::balancer::hash64;
use crate::upstream::health::Observation;
use crate::upstream::pool::{Body, Tee};
use crate::upstream::watch;
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::uri::PathAndQuery;
use http::{Request, Uri, Version};
use http_body::Body as _;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use std::sync::Arc;

const UPSTREAM_SERVICE_TIME: http::HeaderName = http::HeaderName::from_static("x-envoy-upstream-service-time");

/// `x-envoy-upstream-service-time`'s value. Under a second, a clone from a
/// table of static values made once: no allocation a response, where
/// `HeaderValue::from(u32)` allocates one.
fn service_time(ms: u32) -> HeaderValue {
    static SMALL: std::sync::LazyLock<Vec<HeaderValue>> = std::sync::LazyLock::new(|| {
        (0..1000u32).map(|i| HeaderValue::from_static(Box::leak(i.to_string().into_boxed_str()))).collect()
    });
    SMALL.get(ms as usize).cloned().unwrap_or_else(|| HeaderValue::from(ms))
}

/// Largest request body buffered so the request can be retried.
pub const MAX_REPLAY_BODY: u64 = 64 * 1024;

/// The request's hash for a consistent-hash cluster (the first policy that
/// yields one), and the `Set-Cookie` to answer with when a cookie policy
/// with a ttl made its cookie up (boxed: the request future holds it).
fn hash_key(
    policies: &[HashPolicy],
    headers: &HeaderMap,
    uri: &Uri,
    peer: std::net::SocketAddr,
) -> (Option<u64>, Option<Box<HeaderValue>>) {
    for p in policies {
        let key = match p {
            HashPolicy::Header(h) => headers.get(h).map(|v| hash64(v.as_bytes())),
            HashPolicy::SourceIp => Some(hash64(peer.ip().to_string().as_bytes())),
            HashPolicy::Query(name) => uri.query().and_then(|q| {
                q.split('&')
                    .find_map(|kv| kv.split_once('=').filter(|(k, _)| k == name).map(|(_, v)| hash64(v.as_bytes())))
            }),
            HashPolicy::Cookie(c) => match cookie(headers, &c.name) {
                Some(v) => Some(hash64(v.as_bytes())),
                None if c.ttl.is_some() => {
                    let (value, set) = made_up_cookie(c, peer);
                    return (Some(hash64(value.as_bytes())), set.map(Box::new));
                }
                None => None,
            },
        };
        if key.is_some() {
            return (key, None);
        }
    }
    (None, None)
}

/// The value of cookie `name`, its quotes taken off (Envoy sets it quoted).
fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().split_once('=').filter(|(k, _)| *k == name).map(|(_, v)| v.trim_matches('"')))
}

/// Envoy's made-up cookie: a hash of the client's address (one per
/// connection, so a connection's requests agree), and its `Set-Cookie`.
fn made_up_cookie(c: &CookiePolicy, peer: std::net::SocketAddr) -> (String, Option<HeaderValue>) {
    let value = format!("{:016x}", hash64(peer.to_string().as_bytes()));
    let mut set = format!("{}=\"{value}\"", c.name);
    if let Some(ttl) = c.ttl.filter(|t| !t.is_zero()) {
        set.push_str(&format!("; Max-Age={}", ttl.as_secs()));
    }
    if !c.path.is_empty() {
        set.push_str(&format!("; Path={}", c.path));
    }
    set.push_str("; HttpOnly");
    set.push_str(&c.attributes);
    let header = HeaderValue::from_str(&set).ok();
    (value, header)
}

/// A plain `fn` returning an `async move` block, not an `async fn`: an
/// `async fn` moves its arguments into locals and keeps both copies in its
/// state (rust-lang/rust#62958), here the 264-byte request, and the request
/// future is moved per request (into hyper's connection, or a task per
/// HTTP/2 stream). The request is taken apart before the block, which
/// captures its parts: an upvar keeps its room after it is moved out, so
/// capturing the request would keep 264 bytes for nothing all along.
#[allow(clippy::manual_async_fn)]
pub fn forward<'a>(
    ctx: &'a Arc<ConnCtx>,
    clusters: &'a Clusters,
    direction: Direction,
    route: &'a Route,
    f: &'a Forward,
    mut req: Request<Incoming>,
    observed: Option<&'a Observed>,
) -> impl Future<Output = Outcome> + Send + 'a {
    let upgrading = is_upgrade(&req);
    let on_upgrade = upgrading.then(|| hyper::upgrade::on(&mut req));
    let downstream_h2 = req.version() == Version::HTTP_2;
    let (hash, set_cookie) = hash_key(&f.hash, req.headers(), req.uri(), ctx.peer);
    let (mut parts, body) = req.into_parts();
    async move {
        let Picked { cluster, request_headers: extra_req, response_headers: extra_resp } = match clusters
            .pick(&f.target)
        {
            Ok(t) => t,
            Err(name) => {
                let e = ProxyError::new(
                    ErrorKind::NoCluster,
                    format!(
                        "cluster {name} is not known to this proxy; the route names a service port or subset the control plane did not send (check `weft validate` and this proxy's /config_dump)"
                    ),
                );
                return Outcome {
                    response: e.response(is_grpc(&parts.headers)),
                    flags: e.flags(),
                    dest: Dest::unknown(),
                    request_bytes: 0,
                };
            }
        };
        let mut dest = Dest::cluster(cluster);
        let h2 = match cluster.settings.protocol {
            Protocol::Http2 => !upgrading,
            Protocol::Http1 => false,
            Protocol::Downstream => downstream_h2,
        };

        // Rewrites and header operations, once for all attempts. Without a
        // rewrite the incoming path and query are reused as they are (a
        // reference-counted clone, no copy).
        let rewrite = f.rewrite.as_deref();
        let pq = if rewrite.is_none_or(|r| r.prefix.is_none() && r.regex.is_none()) {
            parts.uri.path_and_query().cloned().unwrap_or_else(|| PathAndQuery::from_static("/"))
        } else {
            let mut path = parts.uri.path().to_owned();
            if let Some(p) = rewrite.and_then(|r| r.prefix.as_ref()) {
                path = route.rewrite_prefix(&path, p);
            }
            if let Some((re, sub)) = rewrite.and_then(|r| r.regex.as_ref()) {
                path = re.replace_all(&path, sub.as_str()).into_owned();
            }
            if let Some(q) = parts.uri.query() {
                path.push('?');
                path.push_str(q);
            }
            PathAndQuery::try_from(path).unwrap_or_else(|_| PathAndQuery::from_static("/"))
        };
        strip_hop_by_hop(&mut parts.headers, upgrading);
        // Keep the client's Host unless the route rewrites it; HTTP/2 clients
        // send none, so it comes from :authority.
        if let Some(h) = rewrite.and_then(|r| r.host.as_ref()) {
            parts.headers.insert(header::HOST, h.clone());
        } else if !parts.headers.contains_key(header::HOST)
            && let Some(Ok(v)) = parts.uri.authority().map(|a| HeaderValue::from_str(a.as_str()))
        {
            parts.headers.insert(header::HOST, v);
        }
        route.request_headers.apply(&mut parts.headers);
        if let Some(ops) = extra_req {
            ops.apply(&mut parts.headers);
        }

        // Buffer the body if the route retries and it is small enough; one
        // of unknown length is streamed and copied as it goes (`Tee`).
        let mut request_bytes = body.size_hint().exact().unwrap_or(0);
        let mut replay: Option<Bytes>;
        let mut stream_body: Option<Incoming> = None;
        let mut tee: Option<Arc<Tee>> = None;
        // The body may be sent again: by a retry, or as a mirror's copy.
        let again = f.retry.is_some() || !f.mirrors.is_empty();
        if body.is_end_stream() {
            replay = Some(Bytes::new());
        } else if again && body.size_hint().upper().is_some_and(|u| u <= MAX_REPLAY_BODY) {
            match body.collect().await {
                Ok(c) => {
                    let b = c.to_bytes();
                    request_bytes = b.len() as u64;
                    replay = Some(b);
                }
                Err(e) => {
                    let e = ProxyError::new(ErrorKind::DownstreamBody, format!("reading the request body failed: {e}"));
                    let response = e.response(is_grpc(&parts.headers));
                    return Outcome { response, flags: e.flags(), dest, request_bytes: 0 };
                }
            }
        } else {
            replay = None;
            if again && body.size_hint().upper().is_none() {
                tee = Some(Tee::new(MAX_REPLAY_BODY, ctx.clone()));
            }
            stream_body = Some(body);
        }

        let source = ctx.state.source_header.as_ref().filter(|_| direction == Direction::Outbound);
        let attempt = Attempt { parts: &parts, pq, source, next_hop: observed.map(|o| &o.next_hop) };
        if !f.mirrors.is_empty() {
            use super::mirror::{Copied, mirror};
            match (&replay, &tee) {
                (Some(b), _) => mirror(clusters, f, &attempt, Copied::Now(b), h2),
                (None, Some(t)) => mirror(clusters, f, &attempt, Copied::Later(t), h2),
                (None, None) => {}
            }
        }
        let mut retries = Retries::new(f.retry.as_deref(), replay.is_some() || tee.is_some(), cluster.limits.as_ref());

        // The request's place in the cluster's circuit breakers, kept until
        // its response body ends.
        let mut admission = None;
        let run = async {
            if let Some(limits) = &cluster.limits {
                match limits.admit(!h2).await {
                    Ok(a) => admission = Some(a),
                    Err(o) => {
                        let msg = format!("upstream overflow on {}: {o}", cluster.name());
                        return Err(ProxyError::new(ErrorKind::Overflow, msg));
                    }
                }
            }
            // One endpoint set for all attempts, so the hosts tried stay valid.
            let set = cluster.endpoints();
            loop {
                let elsewhere = f.retry.as_ref().is_some_and(|r| r.other_priorities);
                let Some(i) = set.pick(hash, retries.tried(), elsewhere) else {
                    return Err(ProxyError::new(
                        ErrorKind::NoHealthyUpstream,
                        format!(
                            "no healthy upstream for {}: no instance is registered or selected (check the Service's selector and the instances' labels; this proxy's /clusters lists what it has)",
                            cluster.name()
                        ),
                    ));
                };
                retries.attempt(i);
                let ep = &set.endpoints[i];
                dest.endpoint = Some(ep.clone());
                let body: Body = match (&replay, stream_body.take()) {
                    (Some(b), _) => Body::full(b.clone()),
                    (None, Some(s)) => match &tee {
                        Some(t) => Body::Teed(s, t.clone()),
                        None => Body::Streamed(s, ctx.clone()),
                    },
                    (None, None) => Body::full(Bytes::new()),
                };
                let _active = ep.start();
                // Recorded as it starts: no more state held across the await.
                if let Some(t) = observed.and_then(|o| o.tried.as_ref()) {
                    let now = std::time::SystemTime::now();
                    t.lock().push(Tried { start: now, end: now, endpoint: ep.addr, answer: Ok(0) });
                }
                let sent = send(cluster, ep, attempt.build(body, h2, ep), h2);
                let result = match retries.per_try_timeout() {
                    Some(t) => match tokio::time::timeout(t, sent).await {
                        Ok(r) => r.map_err(|e| ProxyError::upstream(&e)),
                        Err(_) => Err(ProxyError::new(ErrorKind::PerTryTimeout, "upstream request timeout (per try)")),
                    },
                    None => sent.await.map_err(|e| ProxyError::upstream(&e)),
                };
                let outcome = match &result {
                    Ok(resp) => Attempted::Response { status: resp.status().as_u16(), headers: resp.headers() },
                    Err(e) => Attempted::Failed(e),
                };
                if let Some(t) = observed.and_then(|o| o.tried.as_ref())
                    && let Some(last) = t.lock().last_mut()
                {
                    last.end = std::time::SystemTime::now();
                    last.answer = match &outcome {
                        Attempted::Response { status, .. } => Ok(*status),
                        Attempted::Failed(e) => Err(e.to_string()),
                    };
                }
                if cluster.settings.outlier.is_some() {
                    let observed = match outcome {
                        Attempted::Response { status, .. } => Some(Observation::Status(status)),
                        Attempted::Failed(e) => e.observation(),
                    };
                    if let Some(o) = observed {
                        watch::report(cluster, ep.health.as_ref(), o);
                    }
                }
                match retries.decide(outcome) {
                    Decision::Done => return result,
                    // A streamed body not yet whole (or too big) cannot be sent again.
                    Decision::Retry(wait) => {
                        // A streamed body goes again once the tee holds it whole.
                        if replay.is_none() {
                            match tee.as_ref().and_then(|t| t.replay()) {
                                Some(whole) => replay = Some(whole),
                                None => return result,
                            }
                        }
                        tokio::time::sleep(wait).await
                    }
                }
            }
        };
        let result = match f.timeout {
            Some(t) => tokio::time::timeout(t, run)
                .await
                .unwrap_or_else(|_| Err(ProxyError::new(ErrorKind::Timeout, "upstream request timeout"))),
            None => run.await,
        };
        let flags = retries.flags();
        match result {
            Ok(mut resp) => {
                if let Some(a) = admission.take() {
                    resp.body_mut().hold(a);
                }
                // The upstream's hop-by-hop headers stay on its hop (RFC 9110
                // §7.6.1): its `Connection: close` must not close the client's
                // connection, nor its `Keep-Alive` reach the client.
                let switching = on_upgrade.is_some() && resp.status() == http::StatusCode::SWITCHING_PROTOCOLS;
                strip_hop_by_hop(resp.headers_mut(), switching);
                // From the first attempt to these headers, as Envoy reports it.
                resp.headers_mut().insert(UPSTREAM_SERVICE_TIME, service_time(retries.service_ms()));
                route.response_headers.apply(resp.headers_mut());
                if let Some(ops) = extra_resp {
                    ops.apply(resp.headers_mut());
                }
                if let Some(c) = set_cookie {
                    resp.headers_mut().append(header::SET_COOKIE, *c);
                }
                if let (Some(client_up), true) = (on_upgrade, switching) {
                    let tunnel = crate::telemetry::Held::new(&ctx.state.metrics.active_tunnels);
                    super::upgrade::splice(client_up, &mut resp, tunnel);
                }
                Outcome { response: resp.map(ProxyBody::Upstream), flags, dest, request_bytes }
            }
            Err(e) => {
                let response = e.response(is_grpc(&parts.headers));
                Outcome { response, flags: e.flags() | flags, dest, request_bytes }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_service_time_is_its_milliseconds_from_the_table_or_made() {
        for ms in [0, 7, 999, 1000, 123_456] {
            assert_eq!(super::service_time(ms), ms.to_string().as_str());
        }
    }
}
