//! Helpers for tests that run the real `weft` binary: start `weft up` on a
//! folder, wait for its ready file, send HTTP requests, stop it and check
//! that nothing is left behind.
#![allow(dead_code)]

pub mod authz;
mod control;
pub mod envoy;
pub mod https;
pub mod jwt;
pub mod l4;
pub mod lines;
pub mod load;
pub mod origin;
pub mod otlp;
pub mod tls;
pub use control::Control;
pub use lines::{Lines, spawn_logged};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The binary under test: this build's, or `WEFT_TEST_BIN` (e.g. a release
/// build for the soak).
pub fn weft() -> &'static str {
    static BIN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    BIN.get_or_init(|| std::env::var("WEFT_TEST_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_weft").to_owned()))
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

/// A port free now, for a process the test starts to bind. Taken below
/// Linux's ephemeral range (32768 up), so a port the kernel hands to
/// someone binding port 0 (another test's server, an outgoing connection)
/// is never one given here; and marked in a shared directory for a minute,
/// so two test processes running side by side are never given the same
/// port before either has bound it. Both were sources of `address in use`.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let marks = std::env::temp_dir().join("weft-test-ports");
    let _ = std::fs::create_dir_all(&marks);
    let seed = std::process::id() as u64 * 7919
        + std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos() as u64;
    for _ in 0..2000 {
        // An odd multiplier walks the range in a scrambled order.
        let n = seed.wrapping_add(NEXT.fetch_add(1, Ordering::Relaxed).wrapping_mul(2_654_435_761));
        let port = 20_000 + (n % 12_000) as u16;
        let mark = marks.join(port.to_string());
        let fresh = std::fs::metadata(&mark)
            .and_then(|m| m.modified())
            .is_ok_and(|t| t.elapsed().unwrap_or_default() < Duration::from_secs(60));
        if fresh {
            continue; // handed to another test process a moment ago
        }
        let _ = std::fs::remove_file(&mark);
        let claimed = std::fs::OpenOptions::new().write(true).create_new(true).open(&mark).is_ok();
        if claimed && std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A running `weft up`, stopped (SIGINT) and checked for leftovers on drop.
pub struct Up {
    pub child: Child,
    pub info: serde_json::Value,
    pub gateway_port: u16,
    ready: PathBuf,
    _dir: tempfile::TempDir,
}

impl Up {
    /// Starts `weft up dir` with a port offset that maps gateway port 80 to a free port.
    pub fn start(dir: &Path) -> Up {
        Up::start_env(dir, &[])
    }

    /// As `start`, with these environment variables.
    pub fn start_env(dir: &Path, env: &[(&str, &Path)]) -> Up {
        Up::start_with(dir, env, &[])
    }

    /// As `start`, with these environment variables and `weft up` flags.
    pub fn start_with(dir: &Path, env: &[(&str, &Path)], flags: &[&str]) -> Up {
        let tmp = tempfile::tempdir().unwrap();
        let ready = tmp.path().join("ready.json");
        let gateway_port = free_port();
        let offset = gateway_port - 80;
        let child = Command::new(weft())
            .args([
                "up",
                dir.to_str().unwrap(),
                "--free-ports",
                "--port-offset",
                &offset.to_string(),
                "--ready-file",
                ready.to_str().unwrap(),
            ])
            .args(flags)
            .envs(env.iter().map(|(k, v)| (*k, *v)))
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        let mut up = Up { child, info: serde_json::Value::Null, gateway_port, ready: ready.clone(), _dir: tmp };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !ready.exists() {
            if let Ok(Some(status)) = up.child.try_wait() {
                panic!("weft up exited before it was ready: {status}");
            }
            assert!(Instant::now() < deadline, "weft up not ready within 60s");
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(Duration::from_millis(20));
        up.info = serde_json::from_slice(&std::fs::read(&ready).unwrap()).unwrap();
        up
    }

    /// `Authorization` for the mesh's reads: its admin token.
    pub fn admin(&self) -> String {
        let f = self.info["control"]["adminToken"].as_str().unwrap();
        format!("Bearer {}", std::fs::read_to_string(f).unwrap().trim())
    }

    /// The ready file (`weft up` rewrites it after a rollout).
    pub fn ready_file(&self) -> PathBuf {
        self.ready.clone()
    }

    pub fn pids(&self) -> Vec<i32> {
        let mut pids = Vec::new();
        for w in self.info["workloads"].as_array().unwrap() {
            pids.extend([w["pid"].as_i64(), w["sidecarPid"].as_i64()].into_iter().flatten().map(|p| p as i32));
        }
        for g in self.info["gateways"].as_array().unwrap() {
            pids.extend(g["pid"].as_i64().map(|p| p as i32));
        }
        pids
    }

    /// SIGINT, wait for exit, and assert every child process is gone.
    pub fn stop(&mut self) {
        let pids = self.pids();
        let _ = Command::new("kill").args(["-INT", &self.child.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "weft up did not stop within 30s");
            std::thread::sleep(Duration::from_millis(50));
        }
        for pid in pids {
            let alive = Path::new(&format!("/proc/{pid}")).exists()
                && !std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default().contains(") Z ");
            assert!(!alive, "process {pid} outlived weft up");
        }
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub struct Resp {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Resp {
    /// The demo instance that answered, or the proxy's own message when none did.
    pub fn instance(&self) -> String {
        serde_json::from_slice::<serde_json::Value>(&self.body)
            .ok()
            .and_then(|v| v["instance"].as_str().map(str::to_owned))
            .unwrap_or_else(|| format!("proxy: {}", String::from_utf8_lossy(&self.body).trim()))
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
}

/// One HTTP/1.1 request on a fresh connection.
pub async fn get(addr: &str, path: &str, headers: &[(&str, &str)]) -> Resp {
    request(addr, "GET", path, headers, Bytes::new()).await
}

pub async fn request(addr: &str, method: &str, path: &str, headers: &[(&str, &str)], body: Bytes) -> Resp {
    try_request(addr, method, path, headers, body).await.unwrap_or_else(|e| panic!("{method} {path} via {addr}: {e}"))
}

/// `request` that reports failure instead of panicking (load under chaos).
pub async fn try_request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Bytes,
) -> Result<Resp, String> {
    let stream = tokio::net::TcpStream::connect(addr).await.map_err(|e| format!("connect: {e}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    tokio::spawn(conn);
    let mut req = http::Request::builder().method(method).uri(path);
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        req = req.header("host", addr);
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = tokio::time::timeout(Duration::from_secs(30), sender.send_request(req.body(Full::new(body)).unwrap()))
        .await
        .map_err(|_| "no answer within 30 s".to_owned())?
        .map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes();
    Ok(Resp { status, headers, body })
}

/// A TCP server on a free port of 127.0.0.1 that hands each connection to
/// `serve`, in a task of its own; returns the port.
pub async fn tcp_server<F, Fut>(serve: F) -> u16
where
    F: Fn(tokio::net::TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            tokio::spawn(serve(s));
        }
    });
    port
}

pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

/// A child process killed on drop.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn spawn(args: &[&str]) -> Proc {
    let child = Command::new(weft())
        .args(args)
        .env("WEFT_LOG", std::env::var("WEFT_LOG").unwrap_or_else(|_| "warn".into()))
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    Proc(child)
}

/// Waits until `f` is true, polling every 20 ms; panics with `what` after `secs`.
pub async fn eventually<F: std::future::Future<Output = bool>>(
    secs: u64,
    what: &str,
    mut f: impl FnMut() -> F,
) -> Duration {
    let start = Instant::now();
    while !f().await {
        assert!(start.elapsed() < Duration::from_secs(secs), "timed out after {secs}s waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    start.elapsed()
}

pub async fn up_at(addr: &str) -> bool {
    tokio::net::TcpStream::connect(addr).await.is_ok()
}

/// A sidecar with no local app (a pure client), on free ports.
pub struct Sidecar {
    pub proc: Proc,
    pub outbound: String,
    pub admin: String,
}

impl Sidecar {
    pub async fn start(xds: &str, workload: &str) -> Sidecar {
        Sidecar::start_with(xds, workload, &[]).await
    }

    /// A sidecar with `extra` arguments (e.g. `--locality r/z`).
    pub async fn start_with(xds: &str, workload: &str, extra: &[&str]) -> Sidecar {
        Sidecar::start_from(xds, workload, extra, spawn).await
    }

    /// A sidecar whose stdout (its access log) the test reads.
    pub async fn start_logged(xds: &str, workload: &str, extra: &[&str]) -> (Sidecar, Lines) {
        let lines = Lines::default();
        let l = lines.clone();
        let sc = Sidecar::start_from(xds, workload, extra, move |args| spawn_logged(args, &l)).await;
        (sc, lines)
    }

    async fn start_from(xds: &str, workload: &str, extra: &[&str], spawn: impl FnOnce(&[&str]) -> Proc) -> Sidecar {
        let (o, a) = (free_port(), free_port());
        let (os, as_) = (o.to_string(), a.to_string());
        let mut args = vec![
            "proxy",
            "--xds",
            xds,
            "--workload",
            workload,
            "--outbound-port",
            &os,
            "--admin-port",
            &as_,
            "--metrics-port",
            "0",
            "--health-port",
            "0",
        ];
        args.extend(extra);
        let proc = spawn(&args);
        let admin = format!("127.0.0.1:{a}");
        let ad = admin.clone();
        eventually(20, "sidecar ready", || {
            let a = ad.clone();
            async move { up_at(&a).await && get(&a, "/ready", &[]).await.status == 200 }
        })
        .await;
        Sidecar { proc, outbound: format!("127.0.0.1:{o}"), admin }
    }

    pub async fn config_dump(&self) -> serde_json::Value {
        get(&self.admin, "/config_dump", &[]).await.json()
    }

    /// What follows `prefix` on a line of `/clusters` (Envoy's
    /// `cluster::host::stat::value` lines).
    pub async fn clusters_line(&self, prefix: &str) -> Option<String> {
        let text = String::from_utf8(get(&self.admin, "/clusters", &[]).await.body.to_vec()).unwrap();
        text.lines().find_map(|l| l.strip_prefix(prefix).map(str::to_owned))
    }
}

/// Changes how a demo instance behaves (`POST /admin/behavior`).
/// A gateway of `labels` on `offset`, with `extra` arguments.
pub fn gateway(control: &Control, labels: &str, offset: u16, extra: &[&str]) -> Proc {
    let (admin, off) = (free_port().to_string(), offset.to_string());
    let args = ["gateway", "--xds", &control.xds, "--labels", labels, "--port-offset", &off];
    spawn(&[&args[..], extra, &["--admin-port", &admin, "--metrics-port", "0", "--health-port", "0"]].concat())
}

pub async fn behave(port: u16, json: &str) {
    let r = request(&format!("127.0.0.1:{port}"), "POST", "/admin/behavior", &[], json.to_owned().into()).await;
    assert_eq!(r.status, 200);
}

/// One request through the sidecar: (status, instance that answered, or
/// the proxy's own message when no instance did).
pub async fn call(out: &str, host: &str) -> (u16, String) {
    let r = request(out, "GET", &format!("http://{host}/"), &[], Default::default()).await;
    (r.status, r.instance())
}

/// The `health_flags` of endpoint `port` in the sidecar's `/clusters`.
pub async fn flags(sc: &Sidecar, cluster: &str, port: u16) -> String {
    let key = format!("{cluster}::127.0.0.1:{port}::health_flags::");
    sc.clusters_line(&key).await.unwrap_or_else(|| "absent".into())
}

/// A demo workload on a free port; returns it and its port.
pub async fn demo(name: &str, version: &str) -> (Proc, u16) {
    let port = free_port();
    let p = spawn(&["demo", "--name", name, "--version", version, "--port", &port.to_string()]);
    let addr = format!("127.0.0.1:{port}");
    eventually(20, "demo workload", || {
        let a = addr.clone();
        async move { up_at(&a).await }
    })
    .await;
    (p, port)
}

fn service_only(name: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}}}\nspec:\n  selector: {{app: {name}}}\n  ports: [{{name: http, port: 80}}]\n"
    )
}

fn entry(workload: &str, app: &str, port: u16) -> String {
    format!(
        "---\napiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {{name: {workload}}}\nspec: {{address: 127.0.0.1, ports: {{http: {port}}}, labels: {{app: {app}}}}}\n"
    )
}

/// A Service `name` (port 80, named `http`) selecting `app: name`, and one
/// WorkloadEntry for it at 127.0.0.1:`port`.
pub fn backend_yaml(name: &str, port: u16) -> String {
    service_only(name) + &entry(name, name, port)
}

/// A Service `name` with one WorkloadEntry (`name-port`) per port.
pub fn service_yaml(name: &str, ports: &[u16]) -> String {
    ports.iter().fold(service_only(name), |y, p| y + &entry(&format!("{name}-{p}"), name, *p))
}

/// A Service `name` with two versions: a DestinationRule with subsets v1
/// and v2, and one WorkloadEntry per version at 127.0.0.1.
pub fn two_versions_yaml(name: &str, v1_port: u16, v2_port: u16) -> String {
    let entry = |v: &str, port: u16| {
        format!(
            "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {{name: {name}-{v}}}\nspec: {{address: 127.0.0.1, ports: {{http: {port}}}, labels: {{app: {name}, version: {v}}}}}\n"
        )
    };
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}}}\nspec:\n  selector: {{app: {name}}}\n  ports: [{{name: http, port: 80}}]\n---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: {name}}}\nspec:\n  host: {name}\n  subsets:\n    - {{name: v1, labels: {{version: v1}}}}\n    - {{name: v2, labels: {{version: v2}}}}\n---\n{}---\n{}",
        entry("v1", v1_port),
        entry("v2", v2_port)
    )
}

/// An HTTP/2 (prior knowledge) connection to `addr`: its sender, and its
/// task, which ends when the peer closes the connection.
pub async fn h2_handshake(
    addr: &str,
) -> (hyper::client::conn::http2::SendRequest<http_body_util::Empty<Bytes>>, tokio::task::JoinHandle<hyper::Result<()>>)
{
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .unwrap();
    (sender, tokio::spawn(conn))
}

/// The value of the counter `name` (`..._total`) on `admin`'s
/// `/stats/prometheus`; panics if it is not there.
pub async fn counter(admin: &str, name: &str) -> u64 {
    let page = String::from_utf8(get(admin, "/stats/prometheus", &[]).await.body.to_vec()).unwrap();
    let prefix = format!("{name} ");
    let value = page.lines().find_map(|l| l.strip_prefix(&prefix)).unwrap_or_else(|| panic!("no counter {name}"));
    value.trim().parse().unwrap()
}

/// A gRPC channel whose :authority is `authority` but whose bytes go to
/// `via` (a sidecar's outbound listener).
pub async fn grpc_channel(authority: &str, via: String) -> tonic::transport::Channel {
    tonic::transport::Endpoint::from_shared(format!("http://{authority}"))
        .unwrap()
        .connect_with_connector(tower::service_fn(move |_: http::Uri| {
            let via = via.clone();
            async move { Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(tokio::net::TcpStream::connect(via).await?)) }
        }))
        .await
        .unwrap()
}
