//! The operator's commands against running meshes: `weft proxy-config`
//! shows what a proxy runs (asked from the proxy through the control
//! plane), `weft check` passes a healthy mesh and fails one with a NACK, a
//! CA near expiry or a proxy that cannot renew its certificate, `weft
//! stat` reads the golden signals of the traffic sent, `weft describe`
//! what applies to a service and where its requests go.

mod common;
use common::*;
use std::path::Path;
use std::process::{Command, Output};

fn weft_at(runtime: &Path, args: &[&str]) -> Output {
    Command::new(weft()).args(args).env("XDG_RUNTIME_DIR", runtime).env_remove("WEFT_CONTROL").output().unwrap()
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// The seed example in a folder of its own (the tests edit it).
fn seed() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for f in std::fs::read_dir(repo().join("examples/seed")).unwrap() {
        let f = f.unwrap().path();
        if f.extension().is_some_and(|e| e == "yaml") {
            std::fs::copy(&f, dir.path().join(f.file_name().unwrap())).unwrap();
        }
    }
    dir
}

#[test]
fn proxy_config_shows_what_a_proxy_runs_and_check_fails_on_a_nack() {
    let (runtime, dir) = (tempfile::tempdir().unwrap(), seed());
    let mut up = Up::start_env(dir.path(), &[("XDG_RUNTIME_DIR", runtime.path())]);
    let run = |args: &[&str]| weft_at(runtime.path(), args);

    // The gateway's route table: the VirtualService's exact match to my-service.
    let routes = run(&["proxy-config", "ingressgateway", "routes"]);
    assert!(routes.status.success(), "{}", text(&routes));
    let line = String::from_utf8(routes.stdout).unwrap();
    let row = line.lines().find(|l| l.contains("exact /")).unwrap_or_else(|| panic!("no exact / route: {line}"));
    assert!(row.contains("→ outbound|80||my-service.default.svc.cluster.local"), "{row}");

    // The sidecar: its listeners, the app behind its inbound cluster, its certificate.
    let all = String::from_utf8(run(&["proxy-config", "my-app"]).stdout).unwrap();
    for section in ["LISTENERS", "ROUTES", "CLUSTERS", "ENDPOINTS", "SECRET"] {
        assert!(all.contains(section), "{section} missing: {all}");
    }
    let json = run(&["proxy-config", "my-app", "endpoints", "-o", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&json)));
    let app_port = up.info["workloads"][0]["appPort"].as_u64().unwrap();
    let inbound =
        v["endpoints"].as_array().unwrap().iter().find(|c| c["name"].as_str().unwrap().starts_with("inbound|"));
    let addrs: Vec<&str> =
        inbound.unwrap()["endpoints"].as_array().unwrap().iter().map(|e| e["address"].as_str().unwrap()).collect();
    assert_eq!(addrs, [format!("127.0.0.1:{app_port}")], "{v}");
    let secret = String::from_utf8(run(&["proxy-config", "my-app", "secret"]).stdout).unwrap();
    assert!(secret.contains("spiffe://cluster.local/ns/default/sa/default") && secret.contains("23h"), "{secret}");
    let nope = run(&["proxy-config", "nope"]);
    assert!(
        !nope.status.success() && text(&nope).contains("no proxy `nope` is connected; the proxies are: "),
        "{}",
        text(&nope)
    );

    let check = run(&["check"]);
    assert!(check.status.success(), "{}", text(&check));
    assert!(text(&check).contains("0 failures, 0 warnings"), "{}", text(&check));

    // An access log no proxy can open (every proxy refuses the config) and
    // a kind weft does not apply (a warning).
    let edit = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: istio, namespace: istio-system}\ndata:\n  mesh: |\n    extensionProviders:\n    - {name: audit, envoyFileAccessLog: {path: /nonexistent/weft/audit.log}}\n---\napiVersion: telemetry.istio.io/v1\nkind: Telemetry\nmetadata: {name: mesh-default, namespace: istio-system}\nspec:\n  accessLogging: [{providers: [{name: audit}]}]\n---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: deny-all}\nspec: {podSelector: {}}\n";
    std::fs::write(dir.path().join("edit.yaml"), edit).unwrap();
    let start = std::time::Instant::now();
    let failed = loop {
        let out = run(&["check", "-o", "json"]);
        let v: serde_json::Value =
            serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
        if v["failures"] == 2 {
            assert!(!out.status.success(), "failures exit 1");
            break v;
        }
        assert!(start.elapsed().as_secs() < 20, "never two NACKs: {v}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let findings = failed["findings"].as_array().unwrap();
    let fails: Vec<&str> =
        findings.iter().filter(|f| f["level"] == "fail").map(|f| f["detail"].as_str().unwrap()).collect();
    assert!(
        fails.iter().all(|d| d.contains("refused the config (NACK)") && d.contains("/nonexistent/weft/audit.log")),
        "{fails:?}"
    );
    assert!(
        findings.iter().any(|f| f["level"] == "warn"
            && f["check"] == "config"
            && f["detail"].as_str().unwrap().contains("NetworkPolicy")),
        "{failed}"
    );
    // The running mesh's diagnostics, and a rejected edit's.
    let analyze = run(&["analyze", "-o", "json"]);
    assert!(analyze.status.success(), "{}", text(&analyze));
    let v: serde_json::Value = serde_json::from_slice(&analyze.stdout).unwrap();
    assert!(v["warnings"].as_array().unwrap().iter().any(|w| w.as_str().unwrap().contains("NetworkPolicy")), "{v}");
    std::fs::write(dir.path().join("typo.yaml"), "apiVersion: v1\nkind: Servce\nmetadata: {name: x}\n").unwrap();
    let start = std::time::Instant::now();
    let rejected = loop {
        let out = run(&["analyze"]);
        if !out.status.success() {
            break text(&out);
        }
        assert!(start.elapsed().as_secs() < 20, "the typo never rejected: {}", text(&out));
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert!(
        rejected.contains("typo.yaml")
            && rejected.contains("Servce")
            && rejected.contains("last good config keeps serving"),
        "{rejected}"
    );
    up.stop();
}

/// An operator's CA whose certificate ends in under ten days.
fn short_lived_ca(dir: &Path) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name.push(rcgen::DnType::CommonName, "short-lived root");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::CrlSign];
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - std::time::Duration::from_secs(3600);
    params.not_after = now + std::time::Duration::from_secs(10 * 86400 - 3600);
    let pem = params.self_signed(&key).unwrap().pem();
    std::fs::write(dir.join("ca-cert.pem"), &pem).unwrap();
    std::fs::write(dir.join("ca-key.pem"), key.serialize_pem()).unwrap();
}

#[test]
fn check_warns_of_a_root_near_expiry_and_fails_a_proxy_that_cannot_renew() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("svc.yaml"), "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  selector: {app: web}\n  ports: [{name: http, port: 80}]\n").unwrap();
    let ca_dir = tempfile::tempdir().unwrap();
    short_lived_ca(ca_dir.path());
    let bogus = dir.path().join("stolen.token");
    std::fs::write(&bogus, "not-a-token").unwrap();
    rt().block_on(async {
        let control = Control::start_with_ca(dir.path(), ca_dir, &[]).await;
        let check = || {
            let out = Command::new(weft())
                .args(["check", "--control", &control.api, "--admin-token-file", &control.admin_token, "-o", "json"])
                .output()
                .unwrap();
            let v: serde_json::Value =
                serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
            (out.status.success(), v)
        };
        let detail = |v: &serde_json::Value, level: &str, what: &str| {
            v["findings"]
                .as_array()
                .unwrap()
                .iter()
                .any(|f| f["level"] == level && f["detail"].as_str().unwrap().contains(what))
        };
        // The mesh's reads are the admin's: without its token, a clear refusal.
        let anon = Command::new(weft()).args(["status", "--control", &control.api]).output().unwrap();
        assert!(!anon.status.success() && text(&anon).contains("needs the admin token"), "{}", text(&anon));
        let (ok, v) = check();
        assert!(ok, "warnings alone pass: {v}");
        assert!(detail(&v, "warn", "the mesh root (CN=short-lived root) expires in 9d"), "{v}");

        // A sidecar whose token the CA refuses: it has no certificate and says why.
        let admin = free_port().to_string();
        let _sc = spawn(&[
            "proxy",
            "--xds",
            &control.xds,
            "--workload",
            "web",
            "--outbound-port",
            &free_port().to_string(),
            "--admin-port",
            &admin,
            "--metrics-port",
            "0",
            "--health-port",
            "0",
            "--ca",
            &control.api,
            "--token-file",
            bogus.to_str().unwrap(),
        ]);
        let start = std::time::Instant::now();
        let v = loop {
            let (ok, v) = check();
            if detail(&v, "fail", "web.default cannot renew its certificate (has none)") {
                assert!(!ok, "a failure exits 1");
                break v;
            }
            assert!(start.elapsed().as_secs() < 20, "never a failing renewal: {v}");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        };
        assert!(detail(&v, "fail", "401"), "the CA's reason is shown: {v}");
    });
}

/// 30 slow successes and 10 failures through the gateway: `weft stat`
/// counts each request once (by the app's sidecar, not again by the
/// gateway), with its success rate, rate and latency, per service,
/// workload and edge.
#[test]
fn stat_reads_the_golden_signals_of_the_traffic_sent() {
    let (runtime, dir) = (tempfile::tempdir().unwrap(), seed());
    let mut up = Up::start_with(dir.path(), &[("XDG_RUNTIME_DIR", runtime.path())], &["--stats-interval", "0.2"]);
    let gw = format!("127.0.0.1:{}", up.gateway_port);
    rt().block_on(async {
        for i in 0..40 {
            let path = if i % 4 == 0 { "/?status=500" } else { "/?delay=20" };
            let r = get(&gw, path, &[]).await;
            assert_eq!(r.status, if i % 4 == 0 { 500 } else { 200 });
        }
    });
    let stat = |by: &str| {
        let out = weft_at(runtime.path(), &["stat", by, "--window", "5m", "-o", "json"]);
        assert!(out.status.success(), "{}", text(&out));
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let row =
        |v: &serde_json::Value, name: &str| v["rows"].as_array().unwrap().iter().find(|r| r["name"] == name).cloned();
    let start = std::time::Instant::now();
    let service = loop {
        let v = stat("service");
        if let Some(r) = row(&v, "my-service.default.svc.cluster.local").filter(|r| r["requests"] == 40) {
            break r;
        }
        assert!(start.elapsed().as_secs() < 20, "never 40 requests: {v}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert_eq!(service["successRate"], 0.75, "{service}");
    let p50 = service["p50Ms"].as_f64().unwrap();
    assert!((10.0..=50.0).contains(&p50), "three in four took 20 ms: {service}");
    assert!(service["rps"].as_f64().unwrap() > 0.0);
    let workload = row(&stat("workload"), "my-app.default").expect("the serving workload");
    assert_eq!(workload["requests"], 40);
    let edges = stat("edge");
    let edge =
        edges["rows"].as_array().unwrap().iter().find(|r| r["service"] == "my-service.default.svc.cluster.local");
    let edge = edge.unwrap_or_else(|| panic!("{edges}"));
    assert_eq!(
        (edge["source"].as_str(), edge["destination"].as_str()),
        (Some("ingressgateway.default"), Some("my-app.default")),
        "{edges}"
    );
    assert_eq!(edge["requests"], 40, "once, not again by the gateway: {edges}");
    let table = String::from_utf8(weft_at(runtime.path(), &["stat"]).stdout).unwrap();
    assert!(table.contains("75.00%") && table.contains("SERVICE"), "{table}");
    up.stop();
}

/// While requests flow through the gateway, `weft tap` shows those that
/// match its filter as they finish (and stops at `--max`), a sidecar's
/// tap shows its inbound requests with their caller, and `weft top`
/// ranks the paths it saw.
#[test]
fn tap_shows_requests_as_they_finish_and_top_ranks_their_paths() {
    let (runtime, dir) = (tempfile::tempdir().unwrap(), seed());
    let mut up = Up::start_env(dir.path(), &[("XDG_RUNTIME_DIR", runtime.path())]);
    let gw = format!("127.0.0.1:{}", up.gateway_port);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sender = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            rt().block_on(async {
                // Bounded: at most 30 s of traffic.
                for _ in 0..1500 {
                    if stop.load(std::sync::atomic::Ordering::Relaxed) {
                        break;
                    }
                    assert_eq!(get(&gw, "/", &[]).await.status, 200);
                    assert_eq!(get(&gw, "/nope", &[]).await.status, 404);
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
            })
        })
    };
    let events = |args: &[&str]| -> Vec<serde_json::Value> {
        let out = weft_at(runtime.path(), args);
        assert!(out.status.success(), "{}", text(&out));
        String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    };
    let nope = events(&["tap", "ingressgateway", "--path", "/nope", "--max", "3", "--duration", "20", "-o", "json"]);
    assert_eq!(nope.len(), 3, "{nope:?}");
    for e in &nope {
        assert_eq!(
            (e["method"].as_str(), e["path"].as_str(), e["status"].as_u64()),
            (Some("GET"), Some("/nope"), Some(404)),
            "{e}"
        );
        assert_eq!(e["flags"], "NR", "no route: {e}");
    }
    let inbound = events(&["tap", "my-app", "--max", "2", "--duration", "20", "-o", "json"]);
    assert_eq!(inbound.len(), 2, "{inbound:?}");
    for e in &inbound {
        assert_eq!(
            (e["direction"].as_str(), e["source"].as_str(), e["destination"].as_str()),
            (Some("inbound"), Some("ingressgateway.default"), Some("my-app.default")),
            "{e}"
        );
    }

    let top = weft_at(runtime.path(), &["top", "ingressgateway", "--duration", "2", "-o", "json"]);
    let paths: Vec<serde_json::Value> =
        serde_json::from_slice(&top.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&top)));
    let count = |suffix: &str| {
        paths.iter().find(|p| p["path"].as_str().unwrap().ends_with(suffix)).map(|p| p["count"].as_u64().unwrap())
    };
    assert!(count("/nope").is_some_and(|n| n > 0) && count("/").is_some_and(|n| n > 0), "{paths:?}");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    sender.join().unwrap();
    up.stop();
}

/// bookinfo (reviews v1 ×2 and v2, a header match and a 90/10 canary):
/// `weft describe reviews` shows the VirtualService and DestinationRule
/// that apply, the routes a caller's sidecar runs with their shares, each
/// subset's endpoints with their health as callers see it, and after
/// traffic its golden signals with the caller; a workload shows its
/// instances and proxies; a typo gets a suggestion.
#[test]
fn describe_shows_what_applies_to_a_service_and_where_requests_go() {
    let runtime = tempfile::tempdir().unwrap();
    let dir = repo().join("examples/bookinfo");
    let mut up = Up::start_with(&dir, &[("XDG_RUNTIME_DIR", runtime.path())], &["--stats-interval", "0.2"]);
    let run = |args: &[&str]| weft_at(runtime.path(), args);
    let describe = |args: &[&str]| {
        let out = run(&[&["describe"], args, &["-o", "json"]].concat());
        assert!(out.status.success(), "{}", text(&out));
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let fqdn = "reviews.default.svc.cluster.local";
    let cluster = |subset: &str| format!("outbound|9080|{subset}|{fqdn}");
    // Health arrives as the callers' sidecars take their clusters: waited for, bounded.
    let start = std::time::Instant::now();
    let v = loop {
        let v = describe(&["reviews"]);
        let seen = v["clusters"].as_array().unwrap().iter().flat_map(|c| c["endpoints"].as_array().unwrap().iter());
        if seen.clone().count() > 0 && seen.clone().all(|e| e["health"]["seenBy"].as_u64() > Some(0)) {
            break v;
        }
        assert!(start.elapsed().as_secs() < 20, "endpoints never seen by the callers: {v}");
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    assert_eq!(v["virtualServices"][0]["name"], "VirtualService/default/reviews", "{v}");
    assert_eq!(v["destinationRule"]["name"], "DestinationRule/default/reviews");
    let subsets: Vec<&str> =
        v["destinationRule"]["subsets"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(subsets, ["v1", "v2"]);
    let routes = v["routes"][0]["routes"].as_array().unwrap();
    assert_eq!(routes[0]["match"], "prefix / + headers end-user", "{v}");
    assert_eq!(routes[0]["to"], serde_json::json!([{"cluster": cluster("v2"), "weight": 100}]));
    assert_eq!(
        routes[1]["to"],
        serde_json::json!([{"cluster": cluster("v1"), "weight": 90.0}, {"cluster": cluster("v2"), "weight": 10.0}])
    );
    let endpoints = |name: &str| -> Vec<String> {
        let c = v["clusters"].as_array().unwrap().iter().find(|c| c["name"] == name).expect(name);
        c["endpoints"].as_array().unwrap().iter().map(|e| e["workload"].as_str().unwrap().to_owned()).collect()
    };
    assert_eq!(endpoints(&cluster("v1")), ["reviews-v1", "reviews-v1"]);
    assert_eq!(endpoints(&cluster("v2")), ["reviews-v2"]);
    assert_eq!(v["workloads"], serde_json::json!(["reviews-v1.default", "reviews-v2.default"]));

    // Traffic through the gateway: productpage calls reviews on `GET /`.
    rt().block_on(async {
        for _ in 0..10 {
            assert_eq!(get(&format!("127.0.0.1:{}", up.gateway_port), "/", &[]).await.status, 200);
        }
    });
    let start = std::time::Instant::now();
    let v = loop {
        let v = describe(&["service", "reviews.default", "--from", "productpage"]);
        if v["signals"]["requests"] == 10 {
            break v;
        }
        assert!(start.elapsed().as_secs() < 20, "never 10 requests: {v}");
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    assert_eq!(v["caller"]["labels"]["app"], "productpage", "{v}");
    let callers: Vec<&str> = v["callers"].as_array().unwrap().iter().map(|c| c["source"].as_str().unwrap()).collect();
    assert!(!callers.is_empty() && callers.iter().all(|c| *c == "productpage.default"), "probes are not callers: {v}");
    let human = String::from_utf8(run(&["describe", "reviews"]).stdout).unwrap();
    for want in ["subset v1 (version=v1)", "90%", "healthy (", "productpage.default → reviews-v"] {
        assert!(human.contains(want), "{want}: {human}");
    }

    let w = describe(&["workload", "reviews-v1"]);
    assert_eq!(w["instances"].as_array().unwrap().len(), 2, "{w}");
    assert_eq!(w["services"], serde_json::json!([fqdn]));
    let proxies = w["proxies"].as_array().unwrap();
    assert!(proxies.len() == 2 && proxies.iter().all(|p| p["synced"] == true), "{w}");

    let typo = run(&["describe", "revews"]);
    assert!(!typo.status.success());
    assert!(text(&typo).contains("did you mean reviews.default.svc.cluster.local?"), "{}", text(&typo));
    up.stop();
}
