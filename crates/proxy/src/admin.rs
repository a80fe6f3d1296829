//! Admin (15000), metrics (15090) and health (15021) endpoints:
//!
//! | path | what |
//! | --- | --- |
//! | `/ready`, `/healthz/ready` | 200 once listeners of a complete config are bound |
//! | `/config_dump` | JSON of the running config, with its version |
//! | `/certs` | the workload certificate: identity, expiry, last failed renewal |
//! | `/clusters` | endpoints and their state, one line per fact (Envoy's format); `?format=json[&service=HOST]` as JSON |
//! | `/stats/prometheus` | Istio-standard request metrics |
//! | `/stats?format=json` | request series with their counts and duration buckets (the control plane's `weft stat`) |
//! | `/tap?seconds=1&limit=100&path=&method=&authority=` | the requests that finish meanwhile, matching (`weft tap`) |
//! | `POST /quitquitquit` | drain and exit |

use crate::config::listener::ListenerKind;
use crate::state::ProxyState;
use crate::upstream::set::EndpointSet;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::json;
use std::fmt::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

fn reply(status: StatusCode, ctype: &'static str, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut().insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static(ctype));
    r
}

fn config_dump(state: &ProxyState) -> serde_json::Value {
    let cfg = state.config.load();
    let listeners: Vec<_> = cfg
        .listeners
        .iter()
        .map(|l| match &l.kind {
            ListenerKind::Http(h) => {
                json!({"name": &*l.name, "address": l.addr.to_string(), "http": {"routeConfig": h.route_name, "direction": format!("{:?}", h.direction), "transport": format!("{:?}", h.transport), "authz": authz_json(&h.authz)}})
            }
            ListenerKind::Tcp(t) => {
                let clusters: Vec<&str> = t.targets().flat_map(|t| t.names()).collect();
                // `transport` only on a sidecar's inbound listener, which terminates mutual TLS.
                let transport = t.inbound.map(|t| format!("{t:?}"));
                json!({"name": &*l.name, "address": l.addr.to_string(), "tcp": {"clusters": clusters, "transport": transport, "authz": authz_json(&t.authz)}})
            }
        })
        .collect();
    let mut routes: Vec<_> =
        cfg.routes.values().map(|t| json!({"name": &*t.name, "virtualHosts": t.describe()})).collect();
    routes.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    let mut clusters: Vec<_> = cfg
        .clusters
        .iter()
        .map(|c| {
            let (set, s) = (c.view(), &c.settings);
            let eps: Vec<_> = (0..set.endpoints.len()).map(|i| endpoint_json(&set, i)).collect();
            let loads: Vec<_> = set.loads().iter().map(|(p, pct)| json!({"priority": p, "percent": pct})).collect();
            json!({"name": &*s.name, "service": &*s.service, "lb": format!("{:?}", s.policy.kind), "protocol": format!("{:?}", s.protocol), "outlierDetection": s.outlier.is_some(), "healthCheck": s.health_check.is_some(), "slowStart": s.policy.warmup.map(|w| w.window.as_secs_f64()), "panic": set.panic, "warming": set.warming, "priorityLoads": loads, "tls": s.tls.describe(), "endpoints": eps})
        })
        .collect();
    clusters.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    json!({
        "version": cfg.version,
        "node": {"id": state.node.id, "role": state.node.role, "namespace": state.node.namespace, "workload": state.node.workload, "labels": state.node.labels},
        "ready": state.ready(),
        // The workload certificate (`crate::mtls`): who this proxy is to its peers.
        "mtls": certs(state),
        "lastNack": state.last_nack.lock().clone(),
        // Seconds; null when off (`crate::idle`).
        "downstreamTimeouts": {
            "idle": state.timeouts.idle.map(|d| d.as_secs_f64()),
            "requestHead": state.timeouts.head.map(|d| d.as_secs_f64()),
        },
        "listeners": listeners,
        "routes": routes,
        "clusters": clusters,
    })
}

/// The workload certificate, its expiry and the last failed renewal
/// (`/certs`; null when this proxy has none and asks for none).
/// A listener's RBAC filters: each one's action and policies, in order.
fn authz_json(filters: &[crate::config::rbac::Filter]) -> Vec<serde_json::Value> {
    let rules = |r: &crate::config::rbac::Rules| {
        let names: Vec<&str> = r.policies.iter().map(|p| &*p.name).collect();
        json!({"action": format!("{:?}", r.action), "policies": names})
    };
    filters
        .iter()
        .map(|f| json!({"rules": f.rules.as_ref().map(rules), "shadowRules": f.shadow.as_ref().map(rules)}))
        .collect()
}

fn certs(state: &ProxyState) -> serde_json::Value {
    let tls = state.tls().load_full();
    let error = state.cert_error.lock().clone();
    if tls.is_none() && error.is_none() && !state.awaiting_cert() {
        return serde_json::Value::Null;
    }
    let secs = |t: std::time::SystemTime| t.duration_since(std::time::SystemTime::now()).map_or(0, |d| d.as_secs());
    json!({
        "identity": tls.as_ref().map(|t| t.identity.clone()),
        "expiresInSeconds": tls.as_ref().map(|t| secs(t.expires)),
        "lastRenewalError": error,
        // How many roots it trusts (two during a rotation), and who signed it.
        "roots": tls.as_ref().map(|t| t.root_pem.matches("-----BEGIN CERTIFICATE-----").count()),
        "signer": tls.as_ref().map(|t| t.signer.clone()),
    })
}

/// `/tap`: opens a tap for `seconds` (at most 30) or until `limit`
/// requests (at most 1000) matched, and answers with them.
async fn tap(state: &ProxyState, query: &str) -> serde_json::Value {
    use crate::telemetry::tap::Filter;
    let (mut seconds, mut limit, mut filter) = (1.0f64, 100usize, Filter::default());
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let v = percent_encoding::percent_decode_str(v).decode_utf8_lossy().into_owned();
        match k {
            "seconds" => seconds = v.parse().unwrap_or(1.0f64).clamp(0.05, 30.0),
            "limit" => limit = v.parse().unwrap_or(100usize).clamp(1, 1000),
            "path" if !v.is_empty() => filter.path = Some(v),
            "method" if !v.is_empty() => filter.method = Some(v),
            "authority" if !v.is_empty() => filter.authority = Some(v),
            _ => {}
        }
    }
    let mut opened = state.taps.tap(filter, limit);
    let mut events = Vec::new();
    let until = tokio::time::Instant::now() + std::time::Duration::from_secs_f64(seconds);
    while events.len() < limit {
        match tokio::time::timeout_at(until, opened.rx.recv()).await {
            Ok(Some(e)) => events.push(e),
            _ => break,
        }
    }
    json!({"proxy": state.node.id, "events": events, "dropped": opened.dropped()})
}

/// One endpoint of a set, for `/config_dump` and `/clusters?format=json`.
fn endpoint_json(set: &EndpointSet, i: usize) -> serde_json::Value {
    let e = &set.endpoints[i];
    let h = e.health.as_deref();
    json!({"address": e.addr.to_string(), "weight": e.weight, "lbWeight": set.weight(i), "priority": e.priority, "workload": &*e.workload, "namespace": &*e.namespace, "locality": &*e.locality, "mesh": e.mesh, "activeRequests": e.active(), "health": e.health_text(), "ejections": h.map_or(0, |h| h.ejection_count()), "lastFailure": h.map(|h| h.reason()).filter(|r| !r.is_empty())})
}

/// Upstream health as this proxy sees it, per cluster and host (what the
/// control plane's `/debug/health` gathers from every proxy); with
/// `service`, only that host's clusters (`outbound|port|subset|host`).
fn clusters_json(state: &ProxyState, service: Option<&str>) -> serde_json::Value {
    let cfg = state.config.load();
    let clusters: Vec<_> = cfg
        .clusters
        .iter()
        .filter(|c| service.is_none_or(|s| c.name().rsplit('|').next() == Some(s)))
        .map(|c| {
            let set = c.view();
            let hosts: Vec<_> = (0..set.endpoints.len()).map(|i| endpoint_json(&set, i)).collect();
            json!({"name": &**c.name(), "panic": set.panic, "hosts": hosts})
        })
        .collect();
    json!({"proxy": state.node.id, "clusters": clusters})
}

fn clusters_text(state: &ProxyState) -> String {
    let cfg = state.config.load();
    let mut out = String::new();
    // In name order, as they were compiled.
    for c in cfg.clusters.iter() {
        let set = c.view();
        if let Some(l) = &c.limits {
            let _ = writeln!(out, "{}::circuit_breakers::rq_active::{}", c.name(), l.active());
            let _ = writeln!(out, "{}::circuit_breakers::rq_pending::{}", c.name(), l.pending());
            let _ = writeln!(
                out,
                "{}::circuit_breakers::overflows::{}",
                c.name(),
                l.overflows.load(std::sync::atomic::Ordering::Relaxed)
            );
        }
        if set.panic {
            let _ = writeln!(out, "{}::panic::true", c.name());
        }
        for (p, pct) in set.loads() {
            let _ = writeln!(out, "{}::priority_load::{p}::{pct}", c.name());
        }
        for (i, e) in set.endpoints.iter().enumerate() {
            let p = format!("{}::{}", c.name(), e.addr);
            let _ = writeln!(out, "{p}::health_flags::{}", e.health_text());
            if let Some(h) = e.health.as_deref().filter(|h| h.ejection_count() > 0 || !h.available()) {
                let _ = writeln!(out, "{p}::ejections::{}", h.ejection_count());
                let _ = writeln!(out, "{p}::last_failure::{}", h.reason());
            }
            let _ = writeln!(out, "{p}::weight::{}", e.weight);
            let _ = writeln!(out, "{p}::lb_weight::{}", set.weight(i));
            let _ = writeln!(out, "{p}::priority::{}", e.priority);
            let _ = writeln!(out, "{p}::rq_active::{}", e.active());
            let _ = writeln!(out, "{p}::cx_active::{}", e.pool.connections.load(std::sync::atomic::Ordering::Relaxed));
            let _ = writeln!(out, "{p}::cx_idle::{}", e.pool.idle());
            let _ = writeln!(out, "{p}::cx_total::{}", e.pool.opened.load(std::sync::atomic::Ordering::Relaxed));
            let _ = writeln!(out, "{p}::zone::{}", e.locality);
        }
    }
    out
}

async fn handle(
    state: Arc<ProxyState>,
    quit: mpsc::Sender<()>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
    let r = match (req.method(), req.uri().path()) {
        (&Method::GET, "/ready" | "/healthz/ready") => {
            if state.ready() {
                reply(StatusCode::OK, "text/plain", "LIVE\n")
            } else if state.awaiting_cert() {
                let why = "not ready: waiting for a workload certificate from the mesh CA (see this proxy's log)\n";
                reply(StatusCode::SERVICE_UNAVAILABLE, "text/plain", why)
            } else {
                reply(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "text/plain",
                    "not ready: waiting for config from the control plane\n",
                )
            }
        }
        (&Method::GET, "/config_dump") => reply(
            StatusCode::OK,
            "application/json",
            serde_json::to_vec_pretty(&config_dump(&state)).unwrap_or_default(),
        ),
        (&Method::GET, "/certs") => reply(
            StatusCode::OK,
            "application/json",
            serde_json::to_vec(&json!({"proxy": state.node.id, "mtls": certs(&state)})).unwrap_or_default(),
        ),
        (&Method::GET, "/clusters") if req.uri().query().is_some_and(|q| q.split('&').any(|p| p == "format=json")) => {
            let service = req.uri().query().and_then(|q| q.split('&').find_map(|p| p.strip_prefix("service=")));
            let service = service.map(|s| percent_encoding::percent_decode_str(s).decode_utf8_lossy());
            let json = clusters_json(&state, service.as_deref());
            reply(StatusCode::OK, "application/json", serde_json::to_vec(&json).unwrap_or_default())
        }
        (&Method::GET, "/clusters") => reply(StatusCode::OK, "text/plain", clusters_text(&state)),
        (&Method::GET, "/stats") if req.uri().query() == Some("format=json") => {
            let mut v = state.metrics.requests_json();
            v["proxy"] = state.node.id.clone().into();
            v["uptimeSeconds"] = state.started.elapsed().as_secs_f64().into();
            reply(StatusCode::OK, "application/json", serde_json::to_vec(&v).unwrap_or_default())
        }
        (&Method::GET, "/tap") => {
            let v = tap(&state, req.uri().query().unwrap_or_default()).await;
            reply(StatusCode::OK, "application/json", serde_json::to_vec(&v).unwrap_or_default())
        }
        (&Method::GET, "/stats/prometheus" | "/metrics") => {
            reply(StatusCode::OK, "application/openmetrics-text; version=1.0.0; charset=utf-8", state.metrics.encode())
        }
        (&Method::POST, "/quitquitquit") => {
            let _ = quit.try_send(());
            reply(StatusCode::OK, "text/plain", "draining\n")
        }
        _ => reply(
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found; try /ready, /config_dump, /certs, /clusters, /stats/prometheus\n",
        ),
    };
    Ok(r)
}

/// Serves the admin endpoints on `addr`; returns the bound address.
pub async fn serve(addr: SocketAddr, state: Arc<ProxyState>, quit: mpsc::Sender<()>) -> anyhow::Result<SocketAddr> {
    let sock = TcpListener::bind(addr).await.map_err(|e| anyhow::anyhow!("cannot bind admin address {addr}: {e}"))?;
    let bound = sock.local_addr()?;
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = sock.accept().await else { continue };
            let (state, quit) = (state.clone(), quit.clone());
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| handle(state.clone(), quit.clone(), req));
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(s), svc)
                    .await;
            });
        }
    });
    Ok(bound)
}
