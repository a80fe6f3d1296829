//! Rolling restart under load: `weft up` replaces every replica of a
//! workload whose spec or annotations change (new one in service first,
//! then the old one drains), and callers see no error at all.

mod common;
use common::*;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

fn mesh(annotation: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: roll}}\nspec:\n  selector: {{app: roll}}\n  ports: [{{name: http, port: 80}}]\n---\napiVersion: weft.dev/v1alpha1\nkind: Workload\nmetadata:\n  name: roll\n  annotations: {{weft.dev/restartedAt: \"{annotation}\"}}\nspec:\n  command: [weft, demo, --port, \"${{PORT}}\"]\n  replicas: 3\n  labels: {{app: roll}}\n  port: 9000\n"
    )
}

fn app_pids(ready: &std::path::Path) -> Vec<i64> {
    let info: serde_json::Value = serde_json::from_slice(&std::fs::read(ready).unwrap()).unwrap();
    info["workloads"].as_array().unwrap().iter().filter_map(|w| w["pid"].as_i64()).collect()
}

#[test]
fn rolling_restart_of_every_instance_under_load_loses_no_request() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("mesh.yaml"), mesh("1")).unwrap();
    let up = Up::start(dir.path());
    let ready = up.ready_file();
    let before = app_pids(&ready);
    assert_eq!(before.len(), 3);
    let mut up = up;
    rt().block_on(async {
        let xds = up.info["control"]["xds"].as_str().unwrap().to_owned();
        let sc = Sidecar::start(&xds, "client").await;
        let (ok, failed, stop) =
            (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)), Arc::new(AtomicBool::new(false)));
        let errors = Arc::new(std::sync::Mutex::new(Vec::new()));
        // Four callers, each at most ~50 rps, for at most 90 s.
        let mut load = Vec::new();
        for _ in 0..4 {
            let (out, ok, failed, stop, errors) =
                (sc.outbound.clone(), ok.clone(), failed.clone(), stop.clone(), errors.clone());
            load.push(tokio::spawn(async move {
                let end = Instant::now() + Duration::from_secs(90);
                while !stop.load(Ordering::Relaxed) && Instant::now() < end {
                    match try_request(&out, "GET", "http://roll/", &[], Default::default()).await {
                        Ok(r) if r.status == 200 => ok.fetch_add(1, Ordering::Relaxed),
                        Ok(r) => {
                            errors.lock().unwrap().push(format!("{} {}", r.status, r.instance()));
                            failed.fetch_add(1, Ordering::Relaxed)
                        }
                        Err(e) => {
                            errors.lock().unwrap().push(e);
                            failed.fetch_add(1, Ordering::Relaxed)
                        }
                    };
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }));
        }
        eventually(10, "load flowing", || async { ok.load(Ordering::Relaxed) > 50 }).await;

        // `kubectl rollout restart` style: an annotation edit.
        let at_edit = ok.load(Ordering::Relaxed);
        std::fs::write(dir.path().join("mesh.yaml"), mesh("2")).unwrap();
        let r = ready.clone();
        let b = before.clone();
        eventually(80, "every replica replaced", move || {
            let (r, b) = (r.clone(), b.clone());
            async move { app_pids(&r).iter().all(|p| !b.contains(p)) && app_pids(&r).len() == 3 }
        })
        .await;
        let during = ok.load(Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(500)).await;
        stop.store(true, Ordering::Relaxed);
        for l in load {
            l.await.unwrap();
        }
        let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
        eprintln!(
            "rolling restart: {} requests, {failed} failed, {} of them during the rollout",
            ok + failed,
            during - at_edit
        );
        assert_eq!(failed, 0, "{:?}", errors.lock().unwrap());
        assert!(during - at_edit > 50, "load really ran during the rollout: {}", during - at_edit);
        // The old processes are gone.
        for pid in before {
            let alive = std::path::Path::new(&format!("/proc/{pid}")).exists()
                && !std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default().contains(") Z ");
            assert!(!alive, "old replica {pid} still runs");
        }
    });
    // A clean stop takes the new replicas down too.
    up.info = serde_json::from_slice(&std::fs::read(&ready).unwrap()).unwrap();
    up.stop();
}

/// A proxy that stops ACKing (here: stopped with SIGSTOP) is waited for a
/// bounded time, named, and then left behind: the rollout finishes.
#[test]
fn a_silent_proxy_does_not_hold_a_rollout() {
    let dir = tempfile::tempdir().unwrap();
    let one = |a: &str| mesh(a).replace("replicas: 3", "replicas: 1");
    std::fs::write(dir.path().join("mesh.yaml"), one("1")).unwrap();
    let mut up = Up::start(dir.path());
    let ready = up.ready_file();
    let before = app_pids(&ready);
    rt().block_on(async {
        let xds = up.info["control"]["xds"].as_str().unwrap().to_owned();
        let silent = Sidecar::start(&xds, "silent").await;
        let pid = silent.proc.0.id().to_string();
        assert!(std::process::Command::new("kill").args(["-STOP", &pid]).status().unwrap().success());
        let edited = Instant::now();
        std::fs::write(dir.path().join("mesh.yaml"), one("2")).unwrap();
        let r = ready.clone();
        eventually(40, "the replica replaced despite a silent proxy", move || {
            let (r, b) = (r.clone(), before.clone());
            async move { app_pids(&r).len() == 1 && app_pids(&r).iter().all(|p| !b.contains(p)) }
        })
        .await;
        println!("rolled {:?} after the edit with one proxy silent", edited.elapsed());
        let _ = std::process::Command::new("kill").args(["-CONT", &pid]).status();
    });
    up.stop();
}

/// `weft up` supervises: an app killed with SIGKILL is reaped (no zombie),
/// its replica is stopped (the instance leaves the registry) and started
/// again, and the service answers from both replicas once more.
#[test]
fn a_killed_app_is_reaped_and_its_replica_restarted() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("mesh.yaml"), mesh("1").replace("replicas: 3", "replicas: 2")).unwrap();
    let mut up = Up::start(dir.path());
    let ready = up.ready_file();
    let before = app_pids(&ready);
    assert_eq!(before.len(), 2);
    let api = up.info["control"]["api"].as_str().unwrap().to_owned();
    let admin = up.admin();
    let auth = admin.as_str();
    rt().block_on(async {
        let victim = before[0];
        assert!(std::process::Command::new("kill").args(["-9", &victim.to_string()]).status().unwrap().success());
        let a = api.clone();
        eventually(15, "the dead replica's instance to leave", || {
            let a = a.clone();
            async move {
                get(&a, "/v1/instances", &[("authorization", auth)]).await.json().as_array().map_or(0, |v| v.len()) == 1
            }
        })
        .await;
        let zombie = || std::fs::read_to_string(format!("/proc/{victim}/stat")).is_ok_and(|s| s.contains(") Z "));
        assert!(!zombie(), "the killed app was not reaped");
        let r = ready.clone();
        eventually(30, "the replica started again", move || {
            let r = r.clone();
            async move { app_pids(&r).len() == 2 && !app_pids(&r).contains(&victim) }
        })
        .await;
        let a = api.clone();
        eventually(15, "both instances registered", || {
            let a = a.clone();
            async move {
                get(&a, "/v1/instances", &[("authorization", auth)]).await.json().as_array().map_or(0, |v| v.len()) == 2
            }
        })
        .await;
    });
    up.stop();
}

/// A killed gateway is reaped, logged and started again on its ports.
#[test]
fn a_killed_gateway_is_restarted() {
    let mut up = Up::start(&repo().join("examples/bookinfo"));
    let ready = up.ready_file();
    let gw = format!("127.0.0.1:{}", up.gateway_port);
    let gateway_pid = |ready: &std::path::Path| -> i64 {
        let info: serde_json::Value = serde_json::from_slice(&std::fs::read(ready).unwrap()).unwrap();
        info["gateways"][0]["pid"].as_i64().unwrap()
    };
    let victim = gateway_pid(&ready);
    rt().block_on(async {
        assert_eq!(get(&gw, "/", &[]).await.status, 200);
        assert!(std::process::Command::new("kill").args(["-9", &victim.to_string()]).status().unwrap().success());
        let r = ready.clone();
        eventually(20, "the gateway started again", move || {
            let r = r.clone();
            async move { gateway_pid(&r) != victim }
        })
        .await;
        let g = gw.clone();
        eventually(20, "the restarted gateway serving", || {
            let g = g.clone();
            async move { try_request(&g, "GET", "/", &[], Default::default()).await.is_ok_and(|r| r.status == 200) }
        })
        .await;
    });
    up.stop();
}
