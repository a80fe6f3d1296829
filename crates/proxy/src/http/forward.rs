//! Forwarding to a cluster: pick a destination (weighted split), rewrite,
//! pick an endpoint (balancer, consistent hash), send over a pooled
//! connection, retry by policy on a different host, time out.
//!
//! Retries need the body again: bodyless requests always qualify, bodies up
//! to `MAX_REPLAY_BODY` are buffered when the route retries, larger or
//! unsized streaming bodies are sent once.

use super::attempt::{Attempt, send};
use super::body::ProxyBody;
use super::headers::{is_upgrade, strip_hop_by_hop};
use super::outcome::{Dest, Outcome};
use super::respond::{error_response, flags};
use crate::config::cluster::Protocol;
use crate::config::listener::Direction;
use crate::config::route::{Forward, HashPolicy, RetryPolicy, Route};
use crate::conn::ConnCtx;
use crate::snapshot::{Clusters, Picked};
use crate::upstream::balancer::hash64;
use crate::upstream::health::Observation;
use crate::upstream::pool::{Body, UpstreamError};
use crate::upstream::watch;
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::uri::PathAndQuery;
use http::{Request, Uri, Version};
use http_body::Body as _;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use rand::Rng;
use std::sync::Arc;
use std::time::Duration;

/// Largest request body buffered so the request can be retried.
pub const MAX_REPLAY_BODY: u64 = 64 * 1024;

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
) -> impl Future<Output = Outcome> + Send + 'a {
    let upgrading = is_upgrade(&req);
    let on_upgrade = upgrading.then(|| hyper::upgrade::on(&mut req));
    let downstream_h2 = req.version() == Version::HTTP_2;
    let hash = hash_key(&f.hash, req.headers(), req.uri(), ctx.peer);
    let (mut parts, body) = req.into_parts();
    async move {
        let Picked { cluster, request_headers: extra_req, response_headers: extra_resp } = match clusters
            .pick(&f.target)
        {
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
            super::mirror::mirror(clusters, f, &attempt, b, h2);
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
                        return Err((503, format!("upstream overflow on {}: {o}", cluster.name()), flags::OVERFLOW));
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
                            cluster.name()
                        ),
                        flags::NO_HEALTHY,
                    ));
                };
                tried.push(i);
                let ep = &set.endpoints[i];
                dest.endpoint = Some(ep.clone());
                let body: Body = match (&replay, stream_body.take()) {
                    (Some(b), _) => Body::full(b.clone()),
                    (None, Some(s)) => Body::Streamed(s, ctx.clone()),
                    (None, None) => Body::full(Bytes::new()),
                };
                let _active = ep.start();
                let sent = send(cluster, ep, attempt.build(body, h2, ep), h2);
                let result = match per_try {
                    Some(t) => tokio::time::timeout(t, sent).await.map_err(|_| ()),
                    None => Ok(sent.await),
                };
                let can_retry = retries < max_retries;
                if cluster.settings.outlier.is_some() {
                    let observed = match &result {
                        Ok(Ok(resp)) => Some(Observation::Status(resp.status().as_u16())),
                        // A pooled connection the upstream had already closed is
                        // not the host failing (the keep-alive race).
                        Ok(Err(UpstreamError::NotSent(..))) => None,
                        Ok(Err(_)) => Some(Observation::LocalFailure(503)),
                        Err(()) => Some(Observation::LocalFailure(504)),
                    };
                    if let Some(o) = observed {
                        watch::report(cluster, ep.health.as_deref(), o);
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
                Outcome { response: resp.map(ProxyBody::Upstream), flags: flags::NONE, dest, request_bytes }
            }
            Err((status, msg, flag)) => {
                Outcome { response: error_response(status, &msg), flags: flag, dest, request_bytes }
            }
        }
    }
}
