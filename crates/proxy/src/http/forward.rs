//! Forwarding to a cluster: pick a destination (weighted split), rewrite,
//! pick an endpoint (balancer, consistent hash), send over a pooled
//! connection, retry by policy on a different host, time out.
//!
//! Retries need the body again: bodyless requests always qualify, bodies up
//! to `MAX_REPLAY_BODY` are buffered when the route retries, larger or
//! unsized streaming bodies are sent once.

use super::pool::{Body, UpstreamError};
use super::respond::{error_response, flags, full};
use super::{ConnCtx, Dest, Outcome, SOURCE_HEADER};
use crate::balancer::hash64;
use crate::config::Direction;
use crate::config::cluster::{ClusterCfg, Protocol};
use crate::config::route::{Forward, HashPolicy, HeaderOps, RetryPolicy, Route, Target};
use crate::health::{self, Observation};
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::uri::PathAndQuery;
use http::{Request, Response, Uri, Version};
use http_body::Body as _;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use rand::Rng;
use std::sync::Arc;
use std::time::Duration;

/// Largest request body buffered so the request can be retried.
pub const MAX_REPLAY_BODY: u64 = 64 * 1024;

/// The chosen cluster and the header operations of its weighted destination.
type Picked<'a> = (&'a Arc<ClusterCfg>, Option<&'a HeaderOps>, Option<&'a HeaderOps>);

/// Picks the destination cluster (by weight when split); Err names a
/// cluster this proxy does not have.
pub fn pick_target(target: &Target) -> Result<Picked<'_>, Arc<str>> {
    match target {
        Target::Cluster(c) => Ok((c, None, None)),
        Target::Missing(name) => Err(name.clone()),
        Target::Weighted { choices, total } => {
            let x = rand::rng().random_range(0..*total);
            let i = choices.partition_point(|c| c.upto <= x).min(choices.len() - 1);
            let c = &choices[i];
            match &c.cluster {
                Some(cl) => Ok((cl, Some(&c.request_headers), Some(&c.response_headers))),
                None => Err(c.name.clone()),
            }
        }
    }
}

fn hash_key(policies: &[HashPolicy], headers: &HeaderMap, uri: &Uri, peer: std::net::SocketAddr) -> Option<u64> {
    for p in policies {
        let key = match p {
            HashPolicy::Header(h) => headers.get(h).map(|v| hash64(v.as_bytes())),
            HashPolicy::SourceIp => Some(hash64(&peer.ip())),
            HashPolicy::Query(name) => uri.query().and_then(|q| {
                q.split('&').find_map(|kv| kv.split_once('=').filter(|(k, _)| k == name).map(|(_, v)| hash64(v)))
            }),
            HashPolicy::Cookie(name) => headers
                .get_all(header::COOKIE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(';'))
                .find_map(|c| c.trim().split_once('=').filter(|(k, _)| k == name).map(|(_, v)| hash64(v))),
        };
        if key.is_some() {
            return key;
        }
    }
    None
}

/// Hop-by-hop headers (RFC 9110 §7.6.1), in a static so that no copy is
/// built and dropped per message. The first two are kept when upgrading
/// (`UPGRADING`); `te` is kept when it is `trailers` (gRPC needs it).
static HOP_BY_HOP: [header::HeaderName; 8] = [
    header::CONNECTION,
    header::UPGRADE,
    header::TE,
    header::HeaderName::from_static("keep-alive"),
    header::HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TRANSFER_ENCODING,
];
const UPGRADING: u8 = 0b11;
const TE_AT: usize = 2;
/// The lengths of those names, as bits: most names are passed over on their
/// length alone.
const HOP_BY_HOP_LENGTHS: u32 = 1 << 10 | 1 << 7 | 1 << 2 | 1 << 16 | 1 << 18 | 1 << 19 | 1 << 17;

/// Removes hop-by-hop headers from a request or a response: those of
/// `HOP_BY_HOP` and those its `Connection` names.
fn strip_hop_by_hop(h: &mut HeaderMap, upgrading: bool) {
    // One pass over the message's few names finds which are present; only
    // those are removed, each removal being a hashed lookup. Most requests
    // carry none, most responses `connection` alone.
    let mut present = 0u8;
    for n in h.keys() {
        let len = n.as_str().len();
        if len < 32
            && HOP_BY_HOP_LENGTHS & (1 << len) != 0
            && let Some(i) = HOP_BY_HOP.iter().position(|x| x == n)
        {
            present |= 1 << i;
        }
    }
    if present == 0 {
        return;
    }
    if present & 1 != 0 {
        // Names `Connection` lists beyond the standard ones (`close` is an
        // option, not a name); parsed only when there are any.
        let mut named: smallvec::SmallVec<[header::HeaderName; 2]> = smallvec::SmallVec::new();
        let mut note = |v: &HeaderValue| {
            // What servers send nearly always, and names nothing.
            let b = v.as_bytes();
            if b.eq_ignore_ascii_case(b"keep-alive") || b.eq_ignore_ascii_case(b"close") {
                return;
            }
            for t in v.to_str().unwrap_or("").split(',').map(str::trim) {
                let known = t.is_empty()
                    || t.eq_ignore_ascii_case("close")
                    || HOP_BY_HOP.iter().any(|x| t.eq_ignore_ascii_case(x.as_str()));
                if !known && let Ok(n) = header::HeaderName::from_bytes(t.as_bytes()) {
                    named.push(n);
                }
            }
        };
        if upgrading {
            h.get_all(header::CONNECTION).iter().for_each(&mut note);
        } else if let header::Entry::Occupied(e) = h.entry(header::CONNECTION) {
            // Removed as it is read: one lookup.
            e.remove_entry_mult().1.for_each(|v| note(&v));
            present &= !1;
        }
        for n in named {
            h.remove(n);
        }
    }
    for (i, name) in HOP_BY_HOP.iter().enumerate() {
        if present & (1 << i) == 0 {
            continue;
        }
        let keep = match i {
            TE_AT => h.get(name).is_some_and(|v| v.as_bytes() == b"trailers"),
            _ => upgrading && UPGRADING & (1 << i) != 0,
        };
        if !keep {
            h.remove(name);
        }
    }
}

fn is_upgrade(req: &Request<Incoming>) -> bool {
    req.version() == Version::HTTP_11
        && req.headers().contains_key(header::UPGRADE)
        && req
            .headers()
            .get(header::CONNECTION)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.to_ascii_lowercase().contains("upgrade"))
}

fn should_retry_status(p: &RetryPolicy, status: u16, headers: &HeaderMap) -> bool {
    let on = &p.retry_on;
    if (on.s5xx && status >= 500)
        || (on.gateway_error && matches!(status, 502..=504))
        || (on.retriable_4xx && status == 409)
        || (on.retriable_status_codes && p.statuses.contains(&status))
    {
        return true;
    }
    const GRPC_STATUS: header::HeaderName = header::HeaderName::from_static("grpc-status");
    let grpc = headers.get(GRPC_STATUS).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u8>().ok());
    matches!(
        (grpc, on.grpc),
        (Some(1), [true, ..])
            | (Some(4), [_, true, ..])
            | (Some(8), [_, _, true, ..])
            | (Some(14), [_, _, _, true, _])
            | (Some(13), [.., true])
    )
}

/// Envoy's backoff: retry n waits a random time in [0, base·2^(n-1)], capped at 10·base.
fn backoff(base: Duration, retry: u32) -> Duration {
    let cap = base.saturating_mul(1 << retry.saturating_sub(1).min(10)).min(base * 10);
    Duration::from_micros(rand::rng().random_range(0..=cap.as_micros() as u64))
}

/// Room for a small response's headers (nginx sends five with a body:
/// server, date, content type and length, connection). Measured with
/// callgrind: room for 12 cost an HTTP/1.1 request 800 instructions more
/// than the regrowth it saves.
const TYPICAL_RESPONSE_HEADERS: usize = 6;

struct Attempt<'a> {
    parts: &'a http::request::Parts,
    pq: PathAndQuery,
    /// This proxy's identity, on outbound requests.
    source: Option<&'a HeaderValue>,
}

impl Attempt<'_> {
    /// The request for one attempt: origin-form for HTTP/1.1; for HTTP/2 an
    /// absolute URI whose authority (from Host) becomes `:authority`. Only
    /// an endpoint in the mesh learns who calls (as Istio keeps its peer
    /// metadata from services outside the mesh).
    fn build(&self, body: Body, h2: bool, ep: &crate::config::cluster::Endpoint) -> Request<Body> {
        let mut req = Request::new(body);
        *req.method_mut() = self.parts.method.clone();
        // hyper's HTTP/1.1 connection parses the response's headers into the
        // map its request went out with; one with room for a small
        // response's headers saves reallocations there (a clone has room
        // for exactly the request's).
        let headers = req.headers_mut();
        headers.reserve(self.parts.headers.len().max(TYPICAL_RESPONSE_HEADERS));
        for (name, value) in &self.parts.headers {
            headers.append(name.clone(), value.clone());
        }
        if ep.mesh
            && let Some(v) = self.source
        {
            headers.insert(SOURCE_HEADER, v.clone());
        }
        let mut uri = http::uri::Parts::default();
        uri.path_and_query = Some(self.pq.clone());
        if h2 {
            let host = req.headers_mut().remove(header::HOST);
            uri.scheme = Some(http::uri::Scheme::HTTP);
            uri.authority = host
                .and_then(|h| http::uri::Authority::try_from(h.as_bytes()).ok())
                .or_else(|| Some(http::uri::Authority::from_static("localhost")));
        }
        *req.uri_mut() = Uri::from_parts(uri).unwrap_or_else(|_| Uri::from_static("/"));
        *req.version_mut() = if h2 { Version::HTTP_2 } else { Version::HTTP_11 };
        req
    }
}

/// Sends over the endpoint's pool in the upstream protocol: a choice
/// between the two sends, not an `async` wrapper around them, which would
/// hold the request once more in the request future (see `forward`).
fn send<'a>(
    cluster: &'a ClusterCfg,
    ep: &'a crate::config::cluster::Endpoint,
    req: Request<Body>,
    h2: bool,
) -> impl Future<Output = Result<Response<super::pool::PooledBody>, UpstreamError>> + Send + 'a {
    use futures::future::{Either, FutureExt};
    let (timeout, policy) = (cluster.connect_timeout, &cluster.conn_policy);
    let sent = if h2 {
        Either::Left(ep.pool.send_h2(req, timeout, policy))
    } else {
        Either::Right(ep.pool.send_h1(req, timeout, policy))
    };
    sent.map(|r| r.map(|(resp, _reused)| resp))
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
    direction: Direction,
    route: &'a Route,
    f: &'a Forward,
    mut req: Request<Incoming>,
) -> impl Future<Output = Outcome> + Send + 'a {
    let upgrading = is_upgrade(&req);
    let on_upgrade = upgrading.then(|| hyper::upgrade::on(&mut req));
    let downstream_h2 = req.version() == Version::HTTP_2;
    let hash = hash_key(&f.hash, req.headers(), req.uri(), ctx.peer);
    let (mut parts, body) = req.into_parts();
    async move {
        let (cluster, extra_req, extra_resp) = match pick_target(&f.target) {
            Ok(t) => t,
            Err(name) => {
                return Outcome {
                    response: error_response(
                        503,
                        &format!(
                            "cluster {name} is not known to this proxy; the route names a service port or subset the control plane did not send (check `weft validate` and this proxy's /config_dump)"
                        ),
                    ),
                    flags: flags::NO_CLUSTER,
                    dest: Dest::unknown(),
                    request_bytes: 0,
                };
            }
        };
        let mut dest = Dest::cluster(cluster);
        let h2 = match cluster.protocol {
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

        // Buffer the body if the route retries and it is small enough.
        let mut request_bytes = body.size_hint().exact().unwrap_or(0);
        let replay: Option<Bytes>;
        let mut stream_body: Option<Incoming> = None;
        if body.is_end_stream() {
            replay = Some(Bytes::new());
        } else if f.retry.is_some() && body.size_hint().upper().is_some_and(|u| u <= MAX_REPLAY_BODY) {
            match body.collect().await {
                Ok(c) => {
                    let b = c.to_bytes();
                    request_bytes = b.len() as u64;
                    replay = Some(b);
                }
                Err(e) => {
                    return Outcome {
                        response: error_response(400, &format!("reading the request body failed: {e}")),
                        flags: flags::RESET,
                        dest,
                        request_bytes: 0,
                    };
                }
            }
        } else {
            replay = None;
            stream_body = Some(body);
        }

        let source = ctx.state.source_header.as_ref().filter(|_| direction == Direction::Outbound);
        let attempt = Attempt { parts: &parts, pq, source };
        if let Some(b) = &replay {
            mirror(f, &attempt, b, h2);
        }
        let retry = f.retry.as_ref().filter(|_| replay.is_some());
        let max_retries = retry.map_or(0, |r| r.num_retries);
        let per_try = retry.and_then(|r| r.per_try_timeout);

        // The request's place in the cluster's circuit breakers, kept until
        // its response body ends.
        let mut admission = None;
        let run = async {
            if let Some(limits) = &cluster.limits {
                match limits.admit(!h2).await {
                    Ok(a) => admission = Some(a),
                    Err(o) => {
                        return Err((503, format!("upstream overflow on {}: {o}", cluster.name), flags::OVERFLOW));
                    }
                }
            }
            let mut retry_token = None;
            // A retry needs a place under the cluster's retry limit or budget.
            let mut may_retry = || match &cluster.limits {
                None => true,
                Some(l) => {
                    retry_token = l.retry();
                    retry_token.is_some()
                }
            };
            // One endpoint set for all attempts, so `tried` indexes stay valid.
            let set = cluster.endpoints();
            // Hosts tried so far; on the stack unless a route retries more than thrice.
            let mut tried: smallvec::SmallVec<[usize; 4]> = smallvec::SmallVec::new();
            let mut last_err: Option<(u16, String, &'static str)>;
            let mut retries = 0;
            loop {
                let Some(i) = set.pick(hash, &tried) else {
                    return Err((
                        503,
                        format!(
                            "no healthy upstream for {}: no instance is registered or selected (check the Service's selector and the instances' labels; this proxy's /clusters lists what it has)",
                            cluster.name
                        ),
                        flags::NO_HEALTHY,
                    ));
                };
                tried.push(i);
                let ep = &set.endpoints[i];
                dest.endpoint = Some(ep.clone());
                let body: Body = match (&replay, stream_body.take()) {
                    (Some(b), _) => full(b.clone()),
                    (None, Some(s)) => Body::Incoming(s, ctx.clone()),
                    (None, None) => full(Bytes::new()),
                };
                let _active = ep.start();
                let sent = send(cluster, ep, attempt.build(body, h2, ep), h2);
                let result = match per_try {
                    Some(t) => tokio::time::timeout(t, sent).await.map_err(|_| ()),
                    None => Ok(sent.await),
                };
                let can_retry = retries < max_retries;
                if cluster.outlier.is_some() {
                    let observed = match &result {
                        Ok(Ok(resp)) => Some(Observation::Status(resp.status().as_u16())),
                        // A pooled connection the upstream had already closed is
                        // not the host failing (the keep-alive race).
                        Ok(Err(UpstreamError::NotSent(..))) => None,
                        Ok(Err(_)) => Some(Observation::LocalFailure(503)),
                        Err(()) => Some(Observation::LocalFailure(504)),
                    };
                    if let Some(o) = observed {
                        health::report(cluster, ep.health.as_deref(), o);
                    }
                }
                match result {
                    Ok(Ok(resp)) => {
                        if can_retry
                            && retry.is_some_and(|p| should_retry_status(p, resp.status().as_u16(), resp.headers()))
                            && may_retry()
                        {
                            last_err = Some((resp.status().as_u16(), String::new(), flags::NONE));
                        } else {
                            return Ok(resp);
                        }
                    }
                    Ok(Err(e)) => {
                        let on = retry.map(|p| p.retry_on).unwrap_or_default();
                        let (status, flag) =
                            if e.is_connect() { (503, flags::CONNECT_FAILURE) } else { (503, flags::RESET) };
                        // A request that never reached the upstream (a pooled
                        // connection the upstream had closed) is always safe to resend.
                        let not_sent = matches!(e, UpstreamError::NotSent(..)) && replay.is_some();
                        let retryable = (e.is_connect() && on.connect_failure)
                            || (matches!(e, UpstreamError::Reset(..)) && (on.reset || on.refused_stream))
                            || not_sent;
                        // The keep-alive race's one free resend is not a retry.
                        let free = not_sent && retries == 0;
                        if !(retryable && (free || (can_retry && may_retry()))) {
                            return Err((
                                status,
                                format!("upstream connect error or disconnect/reset before headers: {e}"),
                                flag,
                            ));
                        }
                        last_err = Some((status, e.to_string(), flag));
                    }
                    Err(()) => {
                        let on = retry.map(|p| p.retry_on).unwrap_or_default();
                        if !(can_retry && (on.s5xx || on.gateway_error || on.reset) && may_retry()) {
                            return Err((504, "upstream request timeout (per try)".to_owned(), flags::TIMEOUT));
                        }
                        last_err = Some((504, "per-try timeout".into(), flags::TIMEOUT));
                    }
                }
                retries += 1;
                if retries > max_retries.max(1) {
                    let (s, m, fl) = last_err.unwrap_or((503, String::new(), flags::RETRY_LIMIT));
                    return Err((s, m, fl));
                }
                tokio::time::sleep(backoff(retry.map_or(Duration::from_millis(25), |p| p.base_interval), retries))
                    .await;
            }
        };
        let result = match f.timeout {
            Some(t) => tokio::time::timeout(t, run)
                .await
                .unwrap_or_else(|_| Err((504, "upstream request timeout".into(), flags::TIMEOUT))),
            None => run.await,
        };
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
                route.response_headers.apply(resp.headers_mut());
                if let Some(ops) = extra_resp {
                    ops.apply(resp.headers_mut());
                }
                if let (Some(client_up), true) = (on_upgrade, switching) {
                    let upstream_up = hyper::upgrade::on(&mut resp);
                    tokio::spawn(async move {
                        if let (Ok(a), Ok(b)) = (client_up.await, upstream_up.await) {
                            let (mut a, mut b) = (hyper_util::rt::TokioIo::new(a), hyper_util::rt::TokioIo::new(b));
                            let _ = tokio::io::copy_bidirectional(&mut a, &mut b).await;
                        }
                    });
                }
                Outcome { response: resp.map(Body::Upstream), flags: flags::NONE, dest, request_bytes }
            }
            Err((status, msg, flag)) => {
                Outcome { response: error_response(status, &msg), flags: flag, dest, request_bytes }
            }
        }
    }
}

/// Sends a copy to each mirror cluster its percentage of the time; the
/// response is discarded and the main request never waits for it.
fn mirror(f: &Forward, attempt: &Attempt, body: &Bytes, h2: bool) {
    for m in &f.mirrors {
        let Some(cluster) = &m.cluster else { continue };
        if !super::chance(m.ppm) {
            continue;
        }
        let set = cluster.endpoints();
        let Some(i) = set.pick(None, &[]) else { continue };
        let ep = &set.endpoints[i];
        let mut req = attempt.build(full(body.clone()), h2 && cluster.protocol == Protocol::Http2, ep);
        if let Some(h) = req.headers().get(header::HOST).and_then(|h| h.to_str().ok()).map(|h| format!("{h}-shadow"))
            && let Ok(v) = HeaderValue::from_str(&h)
        {
            req.headers_mut().insert(header::HOST, v);
        }
        let (cluster, ep) = (cluster.clone(), ep.clone());
        tokio::spawn(async move {
            let h2 = cluster.protocol == Protocol::Http2;
            if let Ok(resp) = send(&cluster, &ep, req, h2).await {
                let _ = resp.into_body().collect().await;
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        pairs.iter().map(|(k, v)| (k.parse().unwrap(), HeaderValue::from_str(v).unwrap())).collect()
    }

    #[test]
    fn every_hop_by_hop_name_passes_the_length_filter() {
        for n in &HOP_BY_HOP {
            assert_ne!(HOP_BY_HOP_LENGTHS & (1 << n.as_str().len()), 0, "{n}");
        }
    }

    #[test]
    fn hop_by_hop_headers_and_those_connection_names_are_removed() {
        let mut h = headers(&[
            ("connection", "keep-alive, x-hop"),
            ("keep-alive", "timeout=5"),
            ("x-hop", "1"),
            ("proxy-connection", "keep-alive"),
            ("te", "gzip"),
            ("x-end", "kept"),
            ("host", "a"),
        ]);
        strip_hop_by_hop(&mut h, false);
        assert_eq!(h, headers(&[("x-end", "kept"), ("host", "a")]));

        let mut h = headers(&[("te", "trailers"), ("upgrade", "websocket"), ("connection", "upgrade")]);
        strip_hop_by_hop(&mut h, true);
        assert_eq!(h, headers(&[("te", "trailers"), ("upgrade", "websocket"), ("connection", "upgrade")]));

        // HTTP/1.1 senders of `te` list it in `Connection`; `trailers` stays.
        let mut h = headers(&[("connection", "TE, close"), ("te", "trailers"), ("x-end", "kept")]);
        strip_hop_by_hop(&mut h, false);
        assert_eq!(h, headers(&[("te", "trailers"), ("x-end", "kept")]));

        let plain = headers(&[("host", "a"), ("accept", "*/*"), ("user-agent", "t")]);
        let mut h = plain.clone();
        strip_hop_by_hop(&mut h, false);
        assert_eq!(h, plain);
    }
}
