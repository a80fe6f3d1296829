//! Soak: the bookinfo example under steady mixed traffic (HTTP/1.1 through
//! the gateway, HTTP/2, gRPC, a TCP port, WebSocket) while its config is
//! edited every few seconds and one replica is restarted every minute. No
//! request may fail, and every process's resident memory is reported at
//! the end of warm-up and at the end.
//!
//! Not in the default suite (`.config/nextest.toml`): `scripts/soak
//! [SECONDS]` runs it (default 600 s); CI runs `scripts/soak 60`.
//! `WEFT_TEST_BIN=target/release/weft` soaks a release build.

mod common;
use common::*;
use futures::{SinkExt, StreamExt};
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use weft_demo::grpc::{HELLO_PATH, HelloReply, HelloRequest};

/// What the soak adds to bookinfo: `ratings` (HTTP, gRPC and WebSocket on
/// one app), `mongodb` (a TCP port to an echo server outside the mesh) and
/// `loadgen`, the workload whose sidecar the traffic enters through.
const EXTRA: &str = r#"apiVersion: v1
kind: Service
metadata: {name: ratings}
spec:
  selector: {app: ratings}
  ports: [{name: http, port: 9080}, {name: grpc, port: 9090}]
---
apiVersion: weft.dev/v1alpha1
kind: Workload
metadata: {name: ratings}
spec:
  command: ["weft", "demo", "--name", "ratings", "--port", "${PORT}"]
  labels: {app: ratings, version: v1}
  port: 9080
---
apiVersion: weft.dev/v1alpha1
kind: Workload
metadata: {name: loadgen}
spec:
  command: ["weft", "demo", "--name", "loadgen", "--port", "${PORT}"]
  labels: {app: loadgen}
  port: 9070
---
apiVersion: v1
kind: Service
metadata: {name: mongodb}
spec:
  selector: {app: mongodb}
  ports: [{name: mongo, port: MONGO_PORT}]
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: mongodb}
spec: {address: 127.0.0.1, ports: {mongo: ECHO_PORT}, labels: {app: mongodb}}
"#;

/// The replicas restarted in turn (one a minute): every single-replica
/// workload but `loadgen`, whose sidecar is where the traffic enters.
const RESTARTED: [&str; 4] = ["reviews-v2", "details", "productpage", "ratings"];

/// Successes and failures of one kind of traffic.
#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    failed: AtomicU64,
    errors: Mutex<Vec<String>>,
}

impl Tally {
    fn record(&self, r: Result<(), String>) {
        match r {
            Ok(()) => {
                self.ok.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                let mut errors = self.errors.lock();
                if errors.len() < 20 {
                    errors.push(e);
                }
            }
        }
    }
}

fn soak_seconds() -> u64 {
    std::env::var("WEFT_SOAK_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(60)
}

/// Resident memory of `pid` in MiB, if it runs.
fn rss_mib(pid: i64) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: f64 =
        status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?.trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kb / 1024.0)
}

/// Every process of the mesh by name, from the ready file (`weft up` itself
/// is the control plane).
fn processes(up_pid: u32, ready: &Path) -> BTreeMap<String, i64> {
    let info: serde_json::Value = serde_json::from_slice(&std::fs::read(ready).unwrap()).unwrap();
    let mut out = BTreeMap::from([("control plane (weft up)".to_owned(), up_pid as i64)]);
    for g in info["gateways"].as_array().unwrap() {
        out.insert(format!("gateway {}", g["name"].as_str().unwrap()), g["pid"].as_i64().unwrap());
    }
    for w in info["workloads"].as_array().unwrap() {
        let name = w["name"].as_str().unwrap();
        out.insert(format!("{name} app"), w["pid"].as_i64().unwrap());
        out.insert(format!("{name} sidecar"), w["sidecarPid"].as_i64().unwrap());
    }
    out
}

/// The bookinfo files with the canary at `v1_weight` and each restarted
/// workload's `weft.dev/restartedAt` annotation at its count.
fn write_mesh(dir: &Path, extra: &str, v1_weight: u32, restarts: &BTreeMap<&str, u32>) {
    let bookinfo = repo().join("examples/bookinfo");
    let read = |f: &str| std::fs::read_to_string(bookinfo.join(f)).unwrap();
    let mesh = read("mesh.yaml")
        .replace("weight: 90", &format!("weight: {v1_weight}"))
        .replace("weight: 10", &format!("weight: {}", 100 - v1_weight));
    let mut workloads = read("workloads.yaml") + "---\n" + extra;
    for (name, n) in restarts {
        let plain = format!("metadata: {{name: {name}}}");
        assert!(workloads.contains(&plain), "no workload {name}");
        workloads = workloads
            .replace(&plain, &format!("metadata: {{name: {name}, annotations: {{weft.dev/restartedAt: \"{n}\"}}}}"));
    }
    for (file, text) in [("services.yaml", read("services.yaml")), ("mesh.yaml", mesh), ("workloads.yaml", workloads)] {
        // Written whole then renamed: the watcher never reads half a file.
        let tmp = dir.join(format!(".{file}.tmp"));
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, dir.join(file)).unwrap();
    }
}

/// HTTP/1.1 through the gateway to productpage, which calls details and reviews.
async fn bookinfo_page(gateway: &str) -> Result<(), String> {
    let r = try_request(gateway, "GET", "/", &[], Default::default()).await?;
    if r.status != 200 {
        return Err(format!("gateway: {} {}", r.status, r.instance()));
    }
    let body = r.json();
    let calls = body["calls"].as_array().ok_or_else(|| format!("no calls in {body}"))?;
    match calls.iter().find(|c| c["status"] != 200) {
        Some(c) if calls.len() == 2 => Err(format!("productpage's call: {c}")),
        _ if calls.len() != 2 => Err(format!("productpage made {} calls: {body}", calls.len())),
        _ => Ok(()),
    }
}

/// One GET of reviews on a kept HTTP/2 connection (made again if it closed).
async fn h2_reviews(
    outbound: &str,
    conn: &mut Option<hyper::client::conn::http2::SendRequest<http_body_util::Empty<bytes::Bytes>>>,
) -> Result<(), String> {
    if conn.as_ref().is_none_or(|s| s.is_closed()) {
        *conn = Some(h2_handshake(outbound).await.0);
    }
    let sender = conn.as_mut().unwrap();
    let req = http::Request::builder().uri("http://reviews:9080/").body(http_body_util::Empty::new()).unwrap();
    let resp = sender.send_request(req).await.map_err(|e| format!("h2: {e}"))?;
    match resp.status().as_u16() {
        200 => Ok(()),
        s => Err(format!("h2: {s}")),
    }
}

async fn grpc_hello(ch: tonic::transport::Channel, i: u64) -> Result<(), String> {
    let mut client = tonic::client::Grpc::new(ch);
    client.ready().await.map_err(|e| format!("grpc ready: {e}"))?;
    let codec = tonic_prost::ProstCodec::<HelloRequest, HelloReply>::default();
    let req = tonic::Request::new(HelloRequest { name: format!("n{i}") });
    let reply = client
        .unary(req, http::uri::PathAndQuery::from_static(HELLO_PATH), codec)
        .await
        .map_err(|e| format!("grpc: {e:?}"))?
        .into_inner();
    if reply.message == format!("hello n{i}") { Ok(()) } else { Err(format!("grpc reply: {reply:?}")) }
}

/// A connection to the TCP port: what is written comes back.
async fn tcp_echo(addr: &str, i: u64) -> Result<(), String> {
    let mut s = tokio::net::TcpStream::connect(addr).await.map_err(|e| format!("tcp connect: {e}"))?;
    let msg = format!("soak {i}\n").repeat(64);
    s.write_all(msg.as_bytes()).await.map_err(|e| format!("tcp write: {e}"))?;
    s.shutdown().await.map_err(|e| format!("tcp shutdown: {e}"))?;
    let mut back = String::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_string(&mut back))
        .await
        .map_err(|_| "tcp: no echo within 10 s".to_owned())?
        .map_err(|e| format!("tcp read: {e}"))?;
    if back == msg { Ok(()) } else { Err(format!("tcp: {} bytes back of {}", back.len(), msg.len())) }
}

/// A WebSocket session with ratings: five messages, each echoed.
async fn websocket(outbound: &str) -> Result<(), String> {
    use tokio_tungstenite::tungstenite::Message;
    let stream = tokio::net::TcpStream::connect(outbound).await.map_err(|e| format!("ws connect: {e}"))?;
    let (mut ws, _) = tokio_tungstenite::client_async("ws://ratings:9080/ws", stream)
        .await
        .map_err(|e| format!("ws upgrade: {e}"))?;
    for i in 0..5 {
        ws.send(Message::text(format!("ping {i}"))).await.map_err(|e| format!("ws send: {e}"))?;
        let msg = ws.next().await.ok_or("ws closed")?.map_err(|e| format!("ws read: {e}"))?;
        let text = msg.into_text().map_err(|e| format!("ws: {e}"))?;
        if text.as_str() != format!("ratings: ping {i}") {
            return Err(format!("ws echo: {text}"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    ws.close(None).await.map_err(|e| format!("ws close: {e}"))
}

#[test]
fn bookinfo_under_mixed_traffic_edits_and_restarts_fails_no_request() {
    let secs = soak_seconds();
    let dir = tempfile::tempdir().unwrap();
    let echo = rt();
    let echo_port = echo.block_on(tcp_server(|mut s| async move {
        let (mut r, mut w) = s.split();
        let _ = tokio::io::copy(&mut r, &mut w).await;
    }));
    let mongo_port = free_port();
    let extra = EXTRA.replace("MONGO_PORT", &mongo_port.to_string()).replace("ECHO_PORT", &echo_port.to_string());
    let mut restarts: BTreeMap<&str, u32> = RESTARTED.iter().map(|w| (*w, 0)).collect();
    write_mesh(dir.path(), &extra, 90, &restarts);
    let mut up = Up::start(dir.path());
    let ready = up.ready_file();
    let loadgen = up.info["workloads"].as_array().unwrap().iter().find(|w| w["name"] == "loadgen").unwrap().clone();
    let ip = loadgen["ip"].as_str().unwrap().to_owned();
    let outbound = format!("{ip}:{}", loadgen["outboundPort"]);
    let tcp = format!("{ip}:{mongo_port}");
    let gateway = format!("127.0.0.1:{}", up.gateway_port);
    let admin = format!("127.0.0.1:{}", loadgen["admin"]);
    let kinds = ["HTTP/1.1 via gateway", "HTTP/2", "gRPC", "TCP", "WebSocket"];
    let tallies: Arc<BTreeMap<&str, Tally>> = Arc::new(kinds.iter().map(|k| (*k, Tally::default())).collect());

    let (baseline, end_rss, restarted) = rt().block_on(async {
        // Every kind of traffic gets through once before the clock starts.
        let ch = grpc_channel("ratings:9090", outbound.clone()).await;
        eventually(60, "every kind of traffic through the mesh", || {
            let (g, o, t, ch) = (gateway.clone(), outbound.clone(), tcp.clone(), ch.clone());
            async move {
                bookinfo_page(&g).await.is_ok()
                    && h2_reviews(&o, &mut None).await.is_ok()
                    && grpc_hello(ch, 0).await.is_ok()
                    && tcp_echo(&t, 0).await.is_ok()
                    && websocket(&o).await.is_ok()
            }
        })
        .await;
        let version = get(&admin, "/config_dump", &[]).await.json()["version"].clone();
        let start = Instant::now();
        let end = start + Duration::from_secs(secs);
        // Each kind at a steady pace, until `end`.
        let every = |ms| {
            let mut t = tokio::time::interval(Duration::from_millis(ms));
            t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            t
        };
        let mut load = Vec::new();
        for _ in 0..2 {
            let (g, tl) = (gateway.clone(), tallies.clone());
            load.push(tokio::spawn(async move {
                let mut tick = every(100);
                while Instant::now() < end {
                    tick.tick().await;
                    tl["HTTP/1.1 via gateway"].record(bookinfo_page(&g).await);
                }
            }));
        }
        let (o, tl) = (outbound.clone(), tallies.clone());
        load.push(tokio::spawn(async move {
            let (mut tick, mut conn) = (every(50), None);
            while Instant::now() < end {
                tick.tick().await;
                tl["HTTP/2"].record(h2_reviews(&o, &mut conn).await);
            }
        }));
        let (c, tl) = (ch.clone(), tallies.clone());
        load.push(tokio::spawn(async move {
            let mut tick = every(50);
            for i in 1.. {
                if Instant::now() >= end {
                    break;
                }
                tick.tick().await;
                tl["gRPC"].record(grpc_hello(c.clone(), i).await);
            }
        }));
        let (t, tl) = (tcp.clone(), tallies.clone());
        load.push(tokio::spawn(async move {
            let mut tick = every(100);
            for i in 1.. {
                if Instant::now() >= end {
                    break;
                }
                tick.tick().await;
                tl["TCP"].record(tcp_echo(&t, i).await);
            }
        }));
        for _ in 0..2 {
            let (o, tl) = (outbound.clone(), tallies.clone());
            load.push(tokio::spawn(async move {
                while Instant::now() < end {
                    tl["WebSocket"].record(websocket(&o).await);
                }
            }));
        }

        // The operator: a config edit every 3 s, a replica restarted every
        // minute (every half run when shorter), memory read after warm-up.
        let restart_every = Duration::from_secs(60.min(secs / 2).max(1));
        let warm_up = Duration::from_secs(60.min(secs / 4));
        let (mut edits, mut next_restart, mut baseline) = (0u32, start + restart_every, None);
        let mut restarted = Vec::new();
        while Instant::now() + Duration::from_secs(3) < end {
            tokio::time::sleep(Duration::from_secs(3)).await;
            edits += 1;
            if Instant::now() >= next_restart {
                let name = RESTARTED[restarted.len() % RESTARTED.len()];
                *restarts.get_mut(name).unwrap() += 1;
                let pid = processes(up.child.id(), &ready)[&format!("{name} app")];
                restarted.push((name, pid));
                next_restart += restart_every;
            }
            write_mesh(dir.path(), &extra, [90, 80, 70, 60, 50][edits as usize % 5], &restarts);
            if baseline.is_none() && start.elapsed() >= warm_up {
                let procs = processes(up.child.id(), &ready);
                baseline = Some(procs.iter().map(|(n, p)| (n.clone(), (*p, rss_mib(*p)))).collect::<Vec<_>>());
            }
        }
        for l in load {
            l.await.unwrap();
        }
        // The edits reached the proxies, and none was refused.
        let dump = get(&admin, "/config_dump", &[]).await.json();
        assert_ne!(dump["version"], version, "loadgen's sidecar never got an edit");
        assert!(dump["lastNack"].is_null(), "an edit was refused: {}", dump["lastNack"]);
        eprintln!("soak: {secs} s, {edits} config edits, {} replicas restarted", restarted.len());
        let procs = processes(up.child.id(), &ready);
        let end_rss: BTreeMap<String, (i64, Option<f64>)> =
            procs.iter().map(|(n, p)| (n.clone(), (*p, rss_mib(*p)))).collect();
        (baseline.expect("a baseline after warm-up"), end_rss, restarted)
    });

    // Every restart happened: the app that ran before it is gone.
    let now = processes(up.child.id(), &ready);
    for (name, old) in &restarted {
        assert_ne!(now[&format!("{name} app")], *old, "{name} was not restarted");
    }
    report(&baseline, &end_rss);
    let mut failed = 0;
    for (kind, t) in tallies.iter() {
        let (ok, bad) = (t.ok.load(Ordering::Relaxed), t.failed.load(Ordering::Relaxed));
        eprintln!("soak: {kind:<22} {ok:>7} ok {bad:>4} failed {:?}", t.errors.lock());
        assert!(ok > 0, "no {kind} traffic got through");
        failed += bad;
    }
    assert_eq!(failed, 0, "requests failed during the soak");
    // A process that ran the whole soak holds no more than it did after
    // warm-up, with room for allocator noise; the figures above are the record.
    for (name, pid, before) in baseline.iter().filter_map(|(n, (p, b))| Some((n, p, (*b)?))) {
        if let Some((_, Some(after))) = end_rss.get(name).filter(|(p, _)| p == pid) {
            assert!(*after <= before * 1.5 + 16.0, "{name}: resident memory grew from {before:.1} to {after:.1} MiB");
        }
    }
    drop(echo);
    up.stop();
}

/// Resident memory per process, after warm-up and at the end; a process
/// restarted in between is shown with its successor's figure.
fn report(baseline: &[(String, (i64, Option<f64>))], end: &BTreeMap<String, (i64, Option<f64>)>) {
    let mib = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.1}"));
    eprintln!("soak: {:<26} {:>12} {:>10}", "process", "warm MiB", "end MiB");
    for (name, (pid, before)) in baseline {
        let (end_pid, after) = end.get(name).copied().unwrap_or((0, None));
        let note = if end_pid == *pid { "" } else { " (restarted)" };
        eprintln!("soak: {name:<26} {:>12} {:>10}{note}", mib(*before), mib(after));
    }
}
