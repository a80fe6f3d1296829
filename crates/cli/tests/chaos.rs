//! Chaos under steady load, with real processes: instances killed (-9),
//! frozen (SIGSTOP) and brought back while a client keeps calling; and an
//! upstream closing idle keep-alive connections at the moment requests
//! arrive. With retries and outlier detection, the client sees no error.

mod common;
use common::*;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One GET through the sidecar: (status, who answered); Err says what went wrong.
async fn try_call(out: &str, host: &str) -> Result<(u16, String), String> {
    let r = try_request(out, "GET", &format!("http://{host}/"), &[], Default::default()).await?;
    Ok((r.status, r.instance()))
}

fn signal(pid: u32, sig: &str) {
    let ok = std::process::Command::new("kill").args([sig, &pid.to_string()]).status().unwrap().success();
    assert!(ok, "kill {sig} {pid}");
}

#[derive(Default)]
struct Tally {
    ok: u64,
    failed: Vec<String>,
    /// Requests answered by each instance, per second of the run.
    by_second: HashMap<u64, HashMap<String, u64>>,
}

#[test]
fn kill_freeze_and_return_under_load_loses_no_request() {
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let (a, pa) = demo("chaos", "v1").await;
        let (b, pb) = demo("chaos", "v1").await;
        let (_c, pc) = demo("chaos", "v1").await;
        let mut yaml = service_yaml("chaos", &[pa, pb, pc]);
        yaml.push_str(
            r#"---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: chaos}
spec:
  hosts: [chaos]
  http:
    - route: [{destination: {host: chaos}}]
      retries: {attempts: 3, perTryTimeout: 300ms, retryOn: "connect-failure,reset,5xx"}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: chaos}
spec:
  host: chaos
  trafficPolicy:
    loadBalancer: {simple: ROUND_ROBIN, warmup: {duration: 3s, minimumPercent: 10}}
    outlierDetection: {consecutive5xxErrors: 2, interval: 500ms, baseEjectionTime: 2s, maxEjectionPercent: 67}
"#,
        );
        std::fs::write(dir.path().join("mesh.yaml"), yaml).unwrap();
        let control = Control::start(dir.path()).await;
        let sc = Sidecar::start(&control.xds, "client").await;
        let out = sc.outbound.clone();

        // 200 requests a second for 16 s.
        let tally = Arc::new(Mutex::new(Tally::default()));
        let start = Instant::now();
        let load = {
            let tally = tally.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_millis(5));
                let mut calls = Vec::new();
                for _ in 0..3200 {
                    tick.tick().await;
                    let (out, tally) = (out.clone(), tally.clone());
                    calls.push(tokio::spawn(async move {
                        let r = try_call(&out, "chaos").await;
                        let mut t = tally.lock().unwrap();
                        match r {
                            Ok((200, who)) => {
                                t.ok += 1;
                                let s = start.elapsed().as_secs();
                                *t.by_second.entry(s).or_default().entry(who).or_default() += 1;
                            }
                            Ok((status, who)) => t.failed.push(format!("{status} {who}")),
                            Err(e) => t.failed.push(e),
                        }
                    }));
                }
                for c in calls {
                    c.await.unwrap();
                }
            })
        };
        let at = |s: u64| tokio::time::sleep_until((start + Duration::from_secs(s)).into());
        at(2).await;
        let mut a = a;
        a.0.kill().unwrap(); // kill -9
        let _ = a.0.wait();
        at(5).await;
        signal(b.0.id(), "-STOP");
        at(8).await;
        let a2 = spawn(&["demo", "--name", "chaos", "--version", "v1", "--port", &pa.to_string()]);
        at(10).await;
        signal(b.0.id(), "-CONT");
        load.await.unwrap();

        let t = tally.lock().unwrap();
        eprintln!("chaos: {} requests ok, {} failed: {:?}", t.ok, t.failed.len(), &t.failed[..t.failed.len().min(5)]);
        assert!(t.failed.is_empty(), "{} requests failed: {:?}", t.failed.len(), &t.failed[..t.failed.len().min(10)]);
        assert_eq!(t.ok, 3200);
        // The instances that came back serve again by the end of the run.
        let late: HashMap<String, u64> = t
            .by_second
            .iter()
            .filter(|(s, _)| **s >= 14)
            .flat_map(|(_, m)| m.iter().map(|(k, v)| (k.clone(), *v)))
            .fold(HashMap::new(), |mut acc, (k, v)| {
                *acc.entry(k).or_default() += v;
                acc
            });
        eprintln!("last seconds by instance: {late:?}");
        for p in [pa, pb, pc] {
            assert!(late.get(&format!("chaos-{p}")).copied().unwrap_or(0) > 0, "chaos-{p} not back: {late:?}");
        }
        // The restarted instance ramped up (slow start) rather than taking a
        // full share at once: its share of its first second back is well
        // under the full third it has at the end.
        let share = |s: u64, p: u16| {
            let m = t.by_second.get(&s).cloned().unwrap_or_default();
            let total: u64 = m.values().sum();
            m.get(&format!("chaos-{p}")).copied().unwrap_or(0) as f64 / total.max(1) as f64
        };
        let back = (8..16).find(|s| share(*s, pa) > 0.0).expect("a came back");
        let ramp: Vec<f64> = (back..16).map(|s| share(s, pa)).collect();
        eprintln!("restarted instance's share per second from {back} s: {ramp:.2?}");
        assert!(ramp[0] < 0.25, "a started with a small share: {ramp:?}");
        let total_late: u64 = late.values().sum();
        let late_a = late[&format!("chaos-{pa}")] as f64 / total_late as f64;
        assert!(late_a > 0.25, "a ended with its full share: {late_a}");
        drop(a2);
    });
}

/// nginx closing idle keep-alive connections after 1 s, the usual cause of
/// the mesh's most reported 503.
fn nginx_with_idle_timeout(dir: &std::path::Path, port: u16) -> Proc {
    let conf = dir.join("nginx.conf");
    let d = dir.display();
    std::fs::write(
        &conf,
        format!(
            "worker_processes 1;\nmaster_process off;\ndaemon off;\npid {d}/nginx.pid;\nerror_log stderr error;\nevents {{ worker_connections 1024; }}\nhttp {{\n  access_log off;\n  keepalive_timeout 1s;\n  client_body_temp_path {d}/body; proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fcgi; uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;\n  server {{ listen 127.0.0.1:{port}; location / {{ default_type text/plain; return 200 \"ok\"; }} }}\n}}\n"
        ),
    )
    .unwrap();
    let child = std::process::Command::new("nginx")
        .args(["-c", conf.to_str().unwrap(), "-p", dir.to_str().unwrap(), "-e", "stderr"])
        .stdin(std::process::Stdio::null())
        .spawn()
        .expect("nginx (scripts/setup installs nginx-light)");
    Proc(child)
}

#[test]
fn upstream_closing_idle_keepalive_connections_causes_no_error() {
    let dir = tempfile::tempdir().unwrap();
    let nginx_dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let port = free_port();
        let _nginx = nginx_with_idle_timeout(nginx_dir.path(), port);
        eventually(10, "nginx", || async move { up_at(&format!("127.0.0.1:{port}")).await }).await;
        // No retry policy at all: a request that never reached the upstream
        // is resent on its own.
        std::fs::write(dir.path().join("mesh.yaml"), backend_yaml("idle", port)).unwrap();
        let control = Control::start(dir.path()).await;
        let sc = Sidecar::start(&control.xds, "client").await;
        let (mut ok, mut failed) = (0u32, Vec::new());
        // Bursts of 8 concurrent requests (8 pooled upstream connections),
        // separated by gaps straddling nginx's 1 s idle timeout: 20 s in all.
        let gaps_ms =
            [950u64, 1000, 1050, 990, 1010, 1000, 980, 1020, 1000, 995, 1005, 1000, 970, 1030, 1000, 1000, 985, 1015];
        for gap in gaps_ms {
            let burst: Vec<_> = (0..8)
                .map(|_| {
                    let out = sc.outbound.clone();
                    tokio::spawn(async move { try_call(&out, "idle").await })
                })
                .collect();
            for r in burst {
                match r.await.unwrap() {
                    Ok((200, _)) => ok += 1,
                    other => failed.push(format!("{other:?}")),
                }
            }
            tokio::time::sleep(Duration::from_millis(gap)).await;
        }
        let cx_total = format!("outbound|80||idle.default.svc.cluster.local::127.0.0.1:{port}::cx_total::");
        let opened: u64 = sc.clusters_line(&cx_total).await.unwrap().parse().unwrap();
        eprintln!("keep-alive race: {ok} ok, {} failed, {opened} upstream connections opened", failed.len());
        assert!(failed.is_empty(), "{failed:?}");
        assert!(opened > 8, "nginx should have closed idle connections ({opened} opened)");
    });
}
