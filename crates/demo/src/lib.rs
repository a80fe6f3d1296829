//! The demo workload used by examples, tests and benchmarks: an HTTP
//! service (HTTP/1.1 and h2c) that says who it is, can call other services
//! through its sidecar, and can be told to fail or slow down.
//!
//! | request | answer |
//! | --- | --- |
//! | `GET /...` | JSON `{service, version, instance, method, path, host, calls, bodyBytes}` (`bodyBytes`: the request body's length, read whole) |
//! | `?status=503` / `?delay=200ms` | answer with that status / after that delay |
//! | `POST /admin/behavior` `{"failPercent": 50, "failStatus": 503, "delayMs": 100}` | change behaviour for every later request |
//! | `GET /health` | 200, or `failStatus` while `healthFail` is set |
//! | `GET /admin/stats` | `{"requests": N}`: requests (gRPC calls too) served so far, admin calls excluded |
//! | `GET /size/N` | N bytes of body (benchmarks) |
//! | `GET /ws` with `Upgrade: websocket` | a WebSocket that echoes each message prefixed with the service name |
//! | gRPC `weft.demo.v1.Demo/Hello` | see [`grpc`] |
//!
//! With `--tcp` it is a TCP service instead ([`run_tcp`]): each line sent
//! comes back prefixed with the service, version and instance.
//!
//! With `calls` set, `GET /` also calls each named service through the
//! sidecar (`$HTTP_PROXY`) and includes the answers: the bookinfo pattern.

pub mod grpc;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use parking_lot::Mutex;
use rand::Rng;
use serde::Deserialize;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};

#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub name: String,
    pub version: String,
    pub addr: SocketAddr,
    /// Services to call on `GET /`, e.g. `reviews:9080`.
    pub calls: Vec<String>,
    /// The sidecar's outbound listener (`host:port`) to call through.
    pub proxy: Option<String>,
    pub behavior: Behavior,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Behavior {
    pub fail_percent: f64,
    pub fail_status: Option<u16>,
    pub delay_ms: u64,
    pub health_fail: bool,
}

struct Demo {
    opts: DemoOptions,
    instance: String,
    behavior: Mutex<Behavior>,
    served: std::sync::atomic::AtomicU64,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Resp = Response<UnsyncBoxBody<Bytes, BoxError>>;

fn full(b: Bytes) -> UnsyncBoxBody<Bytes, BoxError> {
    Full::new(b).map_err(|never| match never {}).boxed_unsync()
}

fn json(status: StatusCode, v: &serde_json::Value) -> Resp {
    let mut r = Response::new(full(Bytes::from(serde_json::to_vec(v).unwrap_or_default())));
    *r.status_mut() = status;
    r.headers_mut().insert("content-type", http::HeaderValue::from_static("application/json"));
    r
}

fn query<'a>(req: &'a Request<Incoming>, key: &str) -> Option<&'a str> {
    req.uri().query()?.split('&').find_map(|kv| kv.split_once('=').filter(|(k, _)| *k == key).map(|(_, v)| v))
}

fn parse_ms(s: &str) -> Option<u64> {
    s.strip_suffix("ms")
        .and_then(|v| v.parse().ok())
        .or_else(|| s.strip_suffix('s').and_then(|v| v.parse::<f64>().ok()).map(|v| (v * 1000.0) as u64))
        .or_else(|| s.parse().ok())
}

/// Headers a service must pass on so a request can be traced across hops.
const PROPAGATE: &[&str] = &[
    "x-request-id",
    "traceparent",
    "tracestate",
    "x-b3-traceid",
    "x-b3-spanid",
    "x-b3-parentspanid",
    "x-b3-sampled",
    "b3",
    "end-user",
    "user-agent",
];

async fn call(proxy: &str, target: &str, incoming: &http::HeaderMap) -> serde_json::Value {
    let run = async {
        let stream = TcpStream::connect(proxy).await?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        let mut req = Request::builder().uri(format!("http://{target}/")).header("host", target);
        for h in PROPAGATE {
            if let Some(v) = incoming.get(*h) {
                req = req.header(*h, v);
            }
        }
        let resp = sender.send_request(req.body(Full::new(Bytes::new()))?).await?;
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await?.to_bytes();
        let body = serde_json::from_slice::<serde_json::Value>(&body)
            .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(&body).into_owned()));
        anyhow::Ok(serde_json::json!({"target": target, "status": status, "body": body}))
    };
    match tokio::time::timeout(Duration::from_secs(10), run).await {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => serde_json::json!({"target": target, "error": e.to_string()}),
        Err(_) => serde_json::json!({"target": target, "error": "timed out"}),
    }
}

/// Accepts a WebSocket and echoes every text or binary message back,
/// prefixed with the service name.
fn websocket(demo: Arc<Demo>, mut req: Request<Incoming>) -> Resp {
    let key = req
        .headers()
        .get("sec-websocket-key")
        .map(|k| tokio_tungstenite::tungstenite::handshake::derive_accept_key(k.as_bytes()));
    let Some(accept) = key else {
        return json(StatusCode::BAD_REQUEST, &serde_json::json!({"error": "missing sec-websocket-key"}));
    };
    let upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let Ok(io) = upgrade.await else { return };
        use tokio_tungstenite::tungstenite::{Message, protocol::Role};
        let mut ws = tokio_tungstenite::WebSocketStream::from_raw_socket(TokioIo::new(io), Role::Server, None).await;
        while let Some(Ok(msg)) = ws.next().await {
            let reply = match msg {
                Message::Text(t) => Message::text(format!("{}: {}", demo.opts.name, t.as_str())),
                Message::Binary(b) => Message::binary(b),
                Message::Close(_) => break,
                _ => continue,
            };
            if ws.send(reply).await.is_err() {
                break;
            }
        }
    });
    let mut r = Response::new(full(Bytes::new()));
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert("upgrade", http::HeaderValue::from_static("websocket"));
    h.insert("connection", http::HeaderValue::from_static("Upgrade"));
    if let Ok(v) = http::HeaderValue::from_str(&accept) {
        h.insert("sec-websocket-accept", v);
    }
    r
}

async fn handle(demo: Arc<Demo>, req: Request<Incoming>) -> Result<Resp, std::convert::Infallible> {
    let path = req.uri().path().to_owned();
    let is_grpc = req.headers().get("content-type").is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
    if is_grpc {
        demo.served.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let hello = grpc::Hello {
            service: demo.opts.name.clone(),
            version: demo.opts.version.clone(),
            instance: demo.instance.clone(),
        };
        let resp = grpc::serve(hello, req).await;
        return Ok(resp.map(|b| b.map_err(|s| Box::new(s) as BoxError).boxed_unsync()));
    }
    if path == "/ws" && req.headers().get("upgrade").is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket")) {
        return Ok(websocket(demo, req));
    }
    if path == "/admin/behavior" && req.method() == http::Method::POST {
        let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
        return Ok(match serde_json::from_slice::<Behavior>(&body) {
            Ok(b) => {
                *demo.behavior.lock() = b;
                json(StatusCode::OK, &serde_json::json!({"ok": true}))
            }
            Err(e) => json(StatusCode::BAD_REQUEST, &serde_json::json!({"error": e.to_string()})),
        });
    }
    if path == "/admin/stats" {
        let n = demo.served.load(std::sync::atomic::Ordering::Relaxed);
        return Ok(json(StatusCode::OK, &serde_json::json!({"requests": n})));
    }
    demo.served.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let b = demo.behavior.lock().clone();
    if path == "/health" {
        let status = if b.health_fail {
            StatusCode::from_u16(b.fail_status.unwrap_or(503)).unwrap_or(StatusCode::SERVICE_UNAVAILABLE)
        } else {
            StatusCode::OK
        };
        return Ok(json(status, &serde_json::json!({"healthy": status == StatusCode::OK})));
    }
    if let Some(n) = path.strip_prefix("/size/").and_then(|n| n.parse::<usize>().ok()) {
        let mut r = Response::new(full(Bytes::from(vec![b'x'; n.min(64 << 20)])));
        r.headers_mut().insert("content-type", http::HeaderValue::from_static("application/octet-stream"));
        return Ok(r);
    }
    let delay = query(&req, "delay").and_then(parse_ms).unwrap_or(b.delay_ms);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let mut status = query(&req, "status")
        .and_then(|s| s.parse().ok())
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::OK);
    if b.fail_percent > 0.0 && rand::rng().random_range(0.0..100.0) < b.fail_percent {
        status = StatusCode::from_u16(b.fail_status.unwrap_or(503)).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    }
    let mut calls = Vec::new();
    if let Some(proxy) = &demo.opts.proxy
        && path == "/"
    {
        let futs = demo.opts.calls.iter().map(|t| call(proxy, t, req.headers()));
        calls = futures_join(futs).await;
    }
    let host = req
        .headers()
        .get("host")
        .and_then(|v| v.to_str().ok())
        .or(req.uri().authority().map(|a| a.as_str()))
        .unwrap_or("")
        .to_owned();
    let headers: serde_json::Map<String, serde_json::Value> = req
        .headers()
        .iter()
        .filter(|(k, _)| k.as_str().starts_with("x-") || k.as_str() == "end-user")
        .map(|(k, v)| (k.to_string(), serde_json::Value::String(v.to_str().unwrap_or("").to_owned())))
        .collect();
    let (method, path, query, protocol) = (
        req.method().to_string(),
        req.uri().path().to_owned(),
        req.uri().query().map(str::to_owned),
        format!("{:?}", req.version()),
    );
    let body_bytes = req.into_body().collect().await.map_or(0, |b| b.to_bytes().len());
    Ok(json(
        status,
        &serde_json::json!({
            "service": demo.opts.name,
            "version": demo.opts.version,
            "instance": demo.instance,
            "method": method,
            "path": path,
            "query": query,
            "host": host,
            "protocol": protocol,
            "headers": headers,
            "calls": calls,
            "bodyBytes": body_bytes,
        }),
    ))
}

async fn futures_join<F: std::future::Future<Output = serde_json::Value>>(
    futs: impl Iterator<Item = F>,
) -> Vec<serde_json::Value> {
    let handles: Vec<_> = futs.collect();
    let mut out = Vec::with_capacity(handles.len());
    for f in handles {
        out.push(f.await);
    }
    out
}

/// Binds and serves until the process ends; returns the bound address via `on_bound`.
pub async fn run(opts: DemoOptions) -> anyhow::Result<()> {
    let sock = TcpListener::bind(opts.addr).await.map_err(|e| anyhow::anyhow!("cannot bind {}: {e}", opts.addr))?;
    let bound = sock.local_addr()?;
    let demo = Arc::new(Demo {
        instance: format!("{}-{}", opts.name, bound.port()),
        behavior: Mutex::new(opts.behavior.clone()),
        served: Default::default(),
        opts,
    });
    tracing::info!(%bound, service = %demo.opts.name, version = %demo.opts.version, "demo workload listening");
    loop {
        let (s, _) = sock.accept().await?;
        let _ = s.set_nodelay(true);
        let demo = demo.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| handle(demo.clone(), req));
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection_with_upgrades(TokioIo::new(s), svc)
                .await;
        });
    }
}

/// The demo as a TCP service (`weft demo --tcp`): each line a client sends
/// comes back prefixed with the instance that answered
/// (`<service> <version> <instance>: <line>`), until the client closes.
pub async fn run_tcp(opts: DemoOptions) -> anyhow::Result<()> {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    let sock = TcpListener::bind(opts.addr).await.map_err(|e| anyhow::anyhow!("cannot bind {}: {e}", opts.addr))?;
    let bound = sock.local_addr()?;
    let who: Arc<str> = format!("{} {} {}-{}", opts.name, opts.version, opts.name, bound.port()).into();
    tracing::info!(%bound, service = %opts.name, version = %opts.version, "demo TCP workload listening");
    loop {
        let (s, _) = sock.accept().await?;
        let who = who.clone();
        tokio::spawn(async move {
            let (r, mut w) = s.into_split();
            let mut lines = tokio::io::BufReader::new(r).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if w.write_all(format!("{who}: {line}\n").as_bytes()).await.is_err() {
                    break;
                }
            }
        });
    }
}
