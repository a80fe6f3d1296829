//! `weft status` against a running `weft up`: found with no flag, every
//! proxy synced; a proxy that cannot take the latest config (stopped) shown
//! stale until it does; one that refuses it shown with the NACK's reason.

mod common;
use common::*;
use std::path::Path;
use std::process::Command;

fn status(runtime: &Path, args: &[&str]) -> std::process::Output {
    Command::new(weft())
        .arg("status")
        .args(args)
        .env("XDG_RUNTIME_DIR", runtime)
        .env_remove("WEFT_CONTROL")
        .output()
        .unwrap()
}

/// `weft status -o json`'s proxies, by name.
fn states(runtime: &Path) -> Vec<(String, String, Option<String>)> {
    let out = status(runtime, &["-o", "json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut rows: Vec<_> = v["proxies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_owned(),
                p["state"].as_str().unwrap().to_owned(),
                p["nack"].as_str().map(str::to_owned),
            )
        })
        .collect();
    rows.sort();
    rows
}

fn signal(pid: i64, sig: &str) {
    assert!(Command::new("kill").args([sig, &pid.to_string()]).status().unwrap().success());
}

#[test]
fn status_shows_each_proxy_synced_stale_or_refusing() {
    let (runtime, dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    for f in std::fs::read_dir(repo().join("examples/seed")).unwrap() {
        let f = f.unwrap().path();
        if f.extension().is_some_and(|e| e == "yaml") {
            std::fs::copy(&f, dir.path().join(f.file_name().unwrap())).unwrap();
        }
    }
    let mut up = Up::start_env(dir.path(), &[("XDG_RUNTIME_DIR", runtime.path())]);
    let rows = states(runtime.path());
    assert_eq!(rows.len(), 2, "the gateway and the app's sidecar: {rows:?}");
    assert!(rows.iter().all(|(_, s, _)| s == "synced"), "{rows:?}");
    let table = String::from_utf8(status(runtime.path(), &[]).stdout).unwrap();
    assert!(table.contains("NAME") && table.contains("synced"), "{table}");

    // A stopped sidecar cannot take the next version: stale, until it runs again.
    let sidecar = up.info["workloads"][0]["sidecarPid"].as_i64().unwrap();
    let sidecar_name = rows.iter().find(|(n, _, _)| n.starts_with("my-app")).unwrap().0.clone();
    signal(sidecar, "-STOP");
    let extra = "apiVersion: v1\nkind: Service\nmetadata: {name: extra}\nspec:\n  selector: {app: extra}\n  ports: [{name: http, port: 80}]\n";
    std::fs::write(dir.path().join("extra.yaml"), extra).unwrap();
    let start = std::time::Instant::now();
    let stale = loop {
        let rows = states(runtime.path());
        if rows.iter().any(|(n, s, _)| *n == sidecar_name && s == "stale") {
            break rows;
        }
        assert!(start.elapsed().as_secs() < 20, "never stale: {rows:?}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert!(stale.iter().any(|(n, s, _)| n.starts_with("ingressgateway") && s == "synced"), "{stale:?}");
    signal(sidecar, "-CONT");
    let start = std::time::Instant::now();
    while !states(runtime.path()).iter().all(|(_, s, _)| s == "synced") {
        assert!(start.elapsed().as_secs() < 20, "never synced again");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }

    // An access log the proxies cannot open: each refuses the config, and says why.
    let telemetry = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: istio, namespace: istio-system}\ndata:\n  mesh: |\n    extensionProviders:\n    - {name: audit, envoyFileAccessLog: {path: /nonexistent/weft/audit.log}}\n---\napiVersion: telemetry.istio.io/v1\nkind: Telemetry\nmetadata: {name: mesh-default, namespace: istio-system}\nspec:\n  accessLogging: [{providers: [{name: audit}]}]\n";
    std::fs::write(dir.path().join("telemetry.yaml"), telemetry).unwrap();
    let start = std::time::Instant::now();
    let refused = loop {
        let rows = states(runtime.path());
        if rows.iter().all(|(_, s, _)| s == "nack") {
            break rows;
        }
        assert!(start.elapsed().as_secs() < 20, "never refused: {rows:?}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert!(
        refused.iter().all(|(_, _, n)| n.as_deref().is_some_and(|n| n.contains("/nonexistent/weft/audit.log"))),
        "{refused:?}"
    );

    up.stop();
    let gone = status(runtime.path(), &[]);
    assert!(!gone.status.success());
    assert!(
        String::from_utf8_lossy(&gone.stderr).contains("no mesh found"),
        "{}",
        String::from_utf8_lossy(&gone.stderr)
    );
}
