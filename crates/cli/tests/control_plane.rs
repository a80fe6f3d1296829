//! The control plane against real proxies: hot reload under load, broken
//! edits, and run-time registration with TTLs.

mod common;
use common::*;
use std::time::{Duration, Instant};

fn route_yaml(w1: u32, w2: u32) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: echo}}\nspec:\n  hosts: [echo]\n  http:\n    - route:\n        - {{destination: {{host: echo, subset: v1}}, weight: {w1}}}\n        - {{destination: {{host: echo, subset: v2}}, weight: {w2}}}\n"
    )
}

/// Writes atomically (rename), as editors and `kubectl`-style tools do.
fn write(path: &std::path::Path, text: &str) {
    let tmp = path.with_extension("tmp~");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[test]
fn hot_reload_under_load_loses_no_request() {
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let (_v1, p1) = demo("echo", "v1").await;
        let (_v2, p2) = demo("echo", "v2").await;
        std::fs::write(dir.path().join("mesh.yaml"), two_versions_yaml("echo", p1, p2)).unwrap();
        let vs = dir.path().join("route.yaml");
        write(&vs, &route_yaml(100, 0));
        let control = Control::start(dir.path()).await;
        let sidecar = Sidecar::start(&control.xds, "client").await;
        let v0 = sidecar.config_dump().await["version"].as_str().unwrap().to_owned();

        // Steady traffic from 8 clients while the route flips every 100 ms.
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut clients = Vec::new();
        for _ in 0..8 {
            let (out, stop) = (sidecar.outbound.clone(), stop.clone());
            clients.push(tokio::spawn(async move {
                let (mut ok, mut failed, mut v2) = (0u32, Vec::new(), 0u32);
                let deadline = Instant::now() + Duration::from_secs(20);
                while !stop.load(std::sync::atomic::Ordering::Relaxed) && Instant::now() < deadline && ok < 5_000 {
                    let r = request(&out, "GET", "http://echo/", &[], Default::default()).await;
                    if r.status == 200 {
                        ok += 1;
                        v2 += (r.json()["version"] == "v2") as u32;
                    } else {
                        failed.push(format!("{} {}", r.status, String::from_utf8_lossy(&r.body)));
                    }
                }
                (ok, failed, v2)
            }));
        }
        for i in 0..30u32 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let (a, b) = if i % 2 == 0 { (0, 100) } else { (100, 0) };
            write(&vs, &route_yaml(a, b));
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let (mut ok, mut failed, mut v2) = (0, Vec::new(), 0);
        for c in clients {
            let (o, f, v) = c.await.unwrap();
            ok += o;
            failed.extend(f);
            v2 += v;
        }
        let v1 = sidecar.config_dump().await["version"].as_str().unwrap().to_owned();
        println!("hot reload: {ok} ok, {} failed, {v2} to v2, config version {v0} -> {v1}", failed.len());
        assert!(failed.is_empty(), "{} failed requests, first: {:?}", failed.len(), &failed[..failed.len().min(3)]);
        assert!(ok > 100, "too little traffic to mean anything: {ok}");
        assert!(v2 > 0 && v2 < ok, "both versions should have served during the flips: v2={v2} of {ok}");
        assert!(
            v1.parse::<u64>().unwrap() >= v0.parse::<u64>().unwrap() + 10,
            "the proxy applied many of the 30 edits: {v0} -> {v1}"
        );
        drop(control);
    });
}

#[test]
fn broken_edit_is_rejected_and_last_good_config_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let (_v1, p1) = demo("echo", "v1").await;
        let (_v2, p2) = demo("echo", "v2").await;
        std::fs::write(dir.path().join("mesh.yaml"), two_versions_yaml("echo", p1, p2)).unwrap();
        let vs = dir.path().join("route.yaml");
        write(&vs, &route_yaml(100, 0));
        let control = Control::start(dir.path()).await;
        let sidecar = Sidecar::start(&control.xds, "client").await;
        let version = |r: Resp| r.json()["version"].as_str().unwrap().to_owned();
        assert_eq!(version(request(&sidecar.outbound, "GET", "http://echo/", &[], Default::default()).await), "v1");

        // An edit whose YAML is broken, then one that is valid YAML with a bad reference.
        write(&vs, &route_yaml(0, 100).replace("  http:\n", "  http:\n   x: [\n"));
        let (api, admin) = (control.api.clone(), control.admin());
        let auth = admin.as_str();
        eventually(10, "the rejection to be reported", || {
            let a = api.clone();
            async move {
                get(&a, "/debug/config", &[("authorization", auth)]).await.json()["rejected"]
                    .as_array()
                    .is_some_and(|r| !r.is_empty())
            }
        })
        .await;
        let rejected =
            get(&control.api, "/debug/config", &[("authorization", auth)]).await.json()["rejected"].to_string();
        assert!(rejected.contains("route.yaml:"), "diagnostics name the file and line: {rejected}");
        write(&vs, &route_yaml(0, 100).replace("subset: v2", "subset: v9"));
        eventually(10, "the second rejection", || {
            let a = api.clone();
            async move {
                get(&a, "/debug/config", &[("authorization", auth)]).await.json()["rejected"].to_string().contains("v9")
            }
        })
        .await;
        for _ in 0..20 {
            assert_eq!(
                version(request(&sidecar.outbound, "GET", "http://echo/", &[], Default::default()).await),
                "v1",
                "the last good config still routes"
            );
        }

        // Mended: applied.
        write(&vs, &route_yaml(0, 100));
        let out = sidecar.outbound.clone();
        let took = eventually(10, "the mended edit to route to v2", || {
            let o = out.clone();
            async move { version(request(&o, "GET", "http://echo/", &[], Default::default()).await) == "v2" }
        })
        .await;
        println!("mended edit applied at the proxy after {took:?}");
        assert!(
            get(&control.api, "/debug/config", &[("authorization", auth)]).await.json()["rejected"]
                .as_array()
                .unwrap()
                .is_empty()
        );
    });
}

#[test]
fn registered_instance_leaves_when_it_stops_heartbeating() {
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let (_a, pa) = demo("echo", "v1").await;
        std::fs::write(dir.path().join("svc.yaml"), "apiVersion: v1\nkind: Service\nmetadata: {name: echo}\nspec:\n  selector: {app: echo}\n  ports: [{name: http, port: 80}]\n").unwrap();
        let control = Control::start(dir.path()).await;
        let sidecar = Sidecar::start(&control.xds, "client").await;
        let endpoints = |dump: serde_json::Value| -> usize {
            dump["clusters"].as_array().unwrap().iter().find(|c| c["name"] == "outbound|80||echo.default.svc.cluster.local").map_or(0, |c| c["endpoints"].as_array().unwrap().len())
        };
        assert_eq!(endpoints(sidecar.config_dump().await), 0);
        assert_eq!(request(&sidecar.outbound, "GET", "http://echo/", &[], Default::default()).await.status, 503, "no instance yet");

        let reg = serde_json::json!({"name": "echo-a", "address": "127.0.0.1", "port": pa, "labels": {"app": "echo"}, "ttlSeconds": 2});
        let admin = control.admin();
        let auth = [("content-type", "application/json"), ("authorization", admin.as_str())];
        let r = request(&control.api, "POST", "/v1/instances", &auth, reg.to_string().into()).await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        let id = r.json()["id"].as_str().unwrap().to_owned();
        let s = &sidecar;
        eventually(10, "the registered instance to reach the proxy", || async move { endpoints(s.config_dump().await) == 1 }).await;
        assert_eq!(request(&sidecar.outbound, "GET", "http://echo/", &[], Default::default()).await.status, 200);

        // Heartbeats keep it past its TTL...
        for _ in 0..6 {
            tokio::time::sleep(Duration::from_millis(500)).await;
            assert_eq!(request(&control.api, "PUT", &format!("/v1/instances/{id}/heartbeat"), &auth, Default::default()).await.status, 200);
        }
        assert_eq!(endpoints(sidecar.config_dump().await), 1, "alive after 3 s with a 2 s TTL thanks to heartbeats");
        // ...and without them it leaves within its TTL (plus the push).
        let last_beat = Instant::now();
        eventually(10, "the silent instance to leave", || async move { endpoints(s.config_dump().await) == 0 }).await;
        let gone_after = last_beat.elapsed();
        println!("instance left {gone_after:?} after its last heartbeat (TTL 2 s)");
        assert!(gone_after >= Duration::from_millis(1900), "left before its TTL: {gone_after:?}");
        assert!(gone_after < Duration::from_secs(4), "stayed well past its TTL: {gone_after:?}");
        assert_eq!(request(&control.api, "PUT", &format!("/v1/instances/{id}/heartbeat"), &auth, Default::default()).await.status, 404, "expired instances must register again");
    });
}

/// A demo `echo` app of `version` behind a sidecar that registers it with
/// `control` (TTL 3 s), with `extra` sidecar arguments.
async fn echo_replica(control: &Control, version: &str, extra: &[&str]) -> (Proc, Sidecar) {
    let (app, port) = demo("echo", version).await;
    let (p, inbound) = (port.to_string(), free_port().to_string());
    let mut args = vec!["--labels", "app=echo", "--app-port", &p, "--inbound-port", &inbound];
    args.extend(["--register", &control.api, "--register-ttl", "3", "--token-file", &control.admin_token]);
    args.extend(extra);
    (app, Sidecar::start_with(&control.xds, "echo", &args).await)
}

/// The control plane killed and restarted under load: proxies keep their
/// config while it is gone, and when it is back they are not handed
/// endpoint sets emptied only because the instances have not registered
/// again yet (it holds its answer through a warm-up). Two outages: the
/// second after the proxies' reconnect backoff grew, which must start over.
#[test]
fn control_plane_restarts_under_load_lose_no_request() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("svc.yaml"), "apiVersion: v1\nkind: Service\nmetadata: {name: echo}\nspec:\n  selector: {app: echo}\n  ports: [{name: http, port: 80}]\n").unwrap();
    rt().block_on(async {
        let mut control = Control::start_with(dir.path(), &["--warmup", "3"]).await;
        let mut replicas = Vec::new();
        for v in ["v1", "v2"] {
            replicas.push(echo_replica(&control, v, &[]).await);
        }
        let client = Sidecar::start(&control.xds, "client").await;
        let out = client.outbound.clone();
        eventually(10, "both replicas serving", || {
            let o = out.clone();
            async move {
                let mut seen = std::collections::BTreeSet::new();
                for _ in 0..10 {
                    seen.insert(get(&o, "http://echo/", &[]).await.instance());
                }
                seen.len() == 2
            }
        })
        .await;

        let load = common::load::Load::start(&out, "http://echo/");
        // A short outage, then a long one (past the 5 s backoff cap).
        for outage in [Duration::from_millis(300), Duration::from_secs(7)] {
            control.kill();
            tokio::time::sleep(outage).await;
            let back = Instant::now();
            control.restart().await;
            let (api, admin) = (control.api.clone(), control.admin());
            let auth = admin.as_str();
            eventually(15, "both instances registered again", || {
                let a = api.clone();
                async move {
                    get(&a, "/v1/instances", &[("authorization", auth)]).await.json().as_array().map_or(0, |v| v.len())
                        == 2
                }
            })
            .await;
            let api = control.api.clone();
            let took = eventually(20, "the client proxy synced with the restarted control plane", || {
                let a = api.clone();
                async move {
                    get(&a, "/debug/proxies", &[("authorization", auth)])
                        .await
                        .json()
                        .as_array()
                        .is_some_and(|p| p.len() == 3 && p.iter().all(|p| p["synced"].as_u64() > Some(0)))
                }
            })
            .await;
            println!("outage {outage:?}: every proxy synced {:?} after the restart", back.elapsed().max(took));
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        let (ok, errors) = load.stop().await;
        println!("control plane restarts: {ok} requests served, {} failed", errors.len());
        assert!(ok > 200, "too little load to mean anything: {ok}");
        assert!(errors.is_empty(), "requests failed across the restarts: {:?}", &errors[..errors.len().min(10)]);
    });
}

/// The demo version that answered, or the proxy's message.
fn served_by(r: Resp) -> String {
    serde_json::from_slice::<serde_json::Value>(&r.body)
        .ok()
        .and_then(|v| v["version"].as_str().map(str::to_owned))
        .unwrap_or_else(|| String::from_utf8_lossy(&r.body).into_owned())
}

/// A control plane that restarts makes a new root (until it keeps one,
/// the zero-trust issue): proxies certified by the old one notice the
/// change and get a certificate of the new root at once, so a replica
/// started after the restart is reachable from them.
#[test]
fn proxies_follow_a_new_mesh_root_at_once() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("svc.yaml"), "apiVersion: v1\nkind: Service\nmetadata: {name: echo}\nspec:\n  selector: {app: echo}\n  ports: [{name: http, port: 80}]\n").unwrap();
    rt().block_on(async {
        let mut control = Control::start_with(dir.path(), &["--warmup", "1"]).await;

        let old = echo_replica(&control, "v1", &["--ca", &control.api]).await;
        let client = Sidecar::start_with(&control.xds, "client", &control.ca_args()).await;
        let out = client.outbound.clone();
        eventually(10, "the first replica over mutual TLS", || {
            let o = out.clone();
            async move { served_by(get(&o, "http://echo/", &[]).await) == "v1" }
        })
        .await;
        let root =
            |api: String| async move { get(&api, "/v1/root", &[]).await.json()["root"].as_str().unwrap().to_owned() };
        let first_root = root(control.api.clone()).await;

        control.kill();
        drop(old);
        // The operator replaces the CA kept in the CA directory (the admin
        // token stays); a restart with it as it was keeps the root.
        for f in ["ca-cert.pem", "ca-key.pem", "root-cert.pem", "cert-chain.pem"] {
            std::fs::remove_file(control.ca_dir.path().join(f)).unwrap();
        }
        control.restart().await;
        assert_ne!(root(control.api.clone()).await, first_root, "the new CA's root is served");
        let _new = echo_replica(&control, "v2", &["--ca", &control.api]).await;
        let o = out.clone();
        let took = eventually(20, "the old client to reach the replica of the new root", || {
            let o = o.clone();
            async move { served_by(get(&o, "http://echo/", &[]).await) == "v2" }
        })
        .await;
        println!("the client followed the new root within {took:?}");
    });
}

/// SIGTERM ends the control plane while it is still translating a large
/// config for a proxy: the work on the blocking pool does not hold the exit.
#[test]
fn sigterm_stops_the_control_plane_during_a_long_translation() {
    let dir = tempfile::tempdir().unwrap();
    let services: String = (0..20_000)
        .map(|i| format!("apiVersion: v1\nkind: Service\nmetadata: {{name: s{i}}}\nspec: {{selector: {{app: s{i}}}, ports: [{{name: http, port: 80}}]}}\n---\n"))
        .collect();
    std::fs::write(dir.path().join("many.yaml"), services).unwrap();
    rt().block_on(async {
        let mut control = Control::start(dir.path()).await;
        let (admin, out) = (free_port().to_string(), free_port().to_string());
        let _proxy = spawn(&[
            "proxy",
            "--xds",
            &control.xds,
            "--workload",
            "c",
            "--outbound-port",
            &out,
            "--admin-port",
            &admin,
            "--metrics-port",
            "0",
            "--health-port",
            "0",
        ]);
        let (api, admin_auth) = (control.api.clone(), control.admin());
        let auth = admin_auth.as_str();
        eventually(30, "the proxy's stream open", || {
            let api = api.clone();
            async move {
                get(&api, "/debug/proxies", &[("authorization", auth)])
                    .await
                    .json()
                    .as_array()
                    .is_some_and(|p| !p.is_empty())
            }
        })
        .await;
        let before = get(&api, "/debug/proxies", &[("authorization", auth)]).await.json();
        assert_eq!(before[0]["synced"], 0, "translation already done; nothing to interrupt: {before}");
        let stopped = Instant::now();
        assert!(
            std::process::Command::new("kill")
                .args(["-TERM", &control.proc.0.id().to_string()])
                .status()
                .unwrap()
                .success()
        );
        while control.proc.0.try_wait().unwrap().is_none() {
            assert!(stopped.elapsed() < Duration::from_secs(10), "the control plane ignored SIGTERM for 10 s");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        eprintln!("exited {:?} after SIGTERM", stopped.elapsed());
        // It was still translating: the proxy never got its config.
        let dump = get(&format!("127.0.0.1:{admin}"), "/config_dump", &[]).await.json();
        assert_eq!(dump["ready"], false, "the proxy got its config before the exit: {}", dump["version"]);
        control.kill();
    });
}
