//! The live dashboard in a real browser: headless Chromium loads it from
//! the control plane of a running `weft up`, runs its script against the
//! read API, and the page it draws shows the traffic sent (the edge from
//! the gateway to the app, green, then red once requests fail) and every
//! proxy synced, and the waterfall of a trace the proxies reported to the
//! control plane's trace store. Its assets are all served by the control
//! plane; its reads need the admin token, which its address carries.

mod common;
use common::*;
use std::process::Command;

/// The DOM after the page's script ran (Chromium's virtual time lets its
/// timers and fetches finish).
fn rendered(url: &str) -> String {
    let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .expect("Chromium is not installed: run scripts/setup");
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--virtual-time-budget=3000",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(url)
        .output()
        .unwrap();
    assert!(out.status.success(), "chromium: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// Waits until the control plane's window holds `n` requests to my-service
/// with a success rate `ok` says is right.
async fn seen(api: &str, auth: &str, n: u64, ok: impl Fn(f64) -> bool) {
    eventually(20, "the requests in the control plane's window", || async {
        let v = get(api, "/debug/stats?by=service&window=60", &[("authorization", auth)]).await.json();
        v["rows"].as_array().unwrap().iter().any(|r| {
            r["name"] == "my-service.default.svc.cluster.local"
                && r["requests"].as_u64() >= Some(n)
                && r["successRate"].as_f64().is_some_and(&ok)
        })
    })
    .await;
}

#[test]
fn the_dashboard_draws_the_live_mesh_in_a_browser() {
    let dir = tempfile::tempdir().unwrap();
    for f in ["gateway-and-virtualservice.yaml", "service.yaml", "workload.yaml"] {
        std::fs::copy(repo().join("examples/seed").join(f), dir.path().join(f)).unwrap();
    }
    // Every request traced, to the default provider: the trace store.
    let telemetry = "apiVersion: telemetry.istio.io/v1\nkind: Telemetry\nmetadata: {name: mesh-default, namespace: istio-system}\nspec:\n  tracing: [{randomSamplingPercentage: 100}]\n";
    std::fs::write(dir.path().join("telemetry.yaml"), telemetry).unwrap();
    let mut up = Up::start_with(dir.path(), &[], &["--stats-interval", "0.2"]);
    let api = up.info["control"]["api"].as_str().unwrap().to_owned();
    let gw = format!("127.0.0.1:{}", up.gateway_port);
    // The mesh's reads are the admin's: the page's address carries the token.
    let token_file = up.info["control"]["adminToken"].as_str().unwrap().to_owned();
    let token = std::fs::read_to_string(&token_file).unwrap().trim().to_owned();
    let auth = format!("Bearer {token}");
    let url = format!("http://{api}/dashboard#token={token}");
    rt().block_on(async {
        // Every asset from the control plane itself, under a policy that
        // lets the page load nothing else.
        for (path, ctype) in [
            ("/dashboard", "text/html"),
            ("/dashboard/app.js", "text/javascript"),
            ("/dashboard/style.css", "text/css"),
        ] {
            let r = get(&api, path, &[]).await;
            assert_eq!(r.status, 200, "{path}");
            assert!(r.headers["content-type"].to_str().unwrap().starts_with(ctype), "{path}");
            assert!(r.headers["content-security-policy"].to_str().unwrap().contains("default-src 'self'"));
            let body = String::from_utf8(r.body.to_vec()).unwrap().replace("http://www.w3.org/2000/svg", "");
            assert!(
                !body.contains("http://") && !body.contains("https://") && !body.contains("//cdn"),
                "{path} loads from elsewhere"
            );
        }

        for _ in 0..20 {
            assert_eq!(get(&gw, "/", &[]).await.status, 200);
        }
        seen(&api, &auth, 20, |s| s == 1.0).await;
        eventually(20, "20 traces of the gateway's and the app's spans in the store", || async {
            let v = get(&api, "/debug/traces?limit=50", &[("authorization", &auth)]).await.json();
            let two = v["traces"].as_array().unwrap().iter().filter(|t| t["spans"] == 2).count();
            two >= 20
        })
        .await;
    });
    let page = rendered(&url);
    let edge = "class=\"edge good\" data-from=\"ingressgateway.default\" data-to=\"my-app.default\"";
    assert!(page.contains(edge), "no green edge gateway → my-app in\n{page}");
    assert!(page.contains("data-name=\"my-service.default.svc.cluster.local\""), "no service row in\n{page}");
    assert_eq!(page.matches("data-state=\"synced\"").count(), 2, "the gateway and the sidecar, synced:\n{page}");
    assert!(page.contains("23h59m"), "certificate expiry shown:\n{page}");
    assert!(page.matches("data-trace=").count() >= 20, "the recent traces listed:\n{page}");
    assert_eq!(page.matches("class=\"span-row\"").count(), 2, "the newest trace's two spans drawn:\n{page}");
    assert!(page.contains("ingressgateway.default: ") && page.contains("my-app.default: "), "{page}");

    rt().block_on(async {
        for _ in 0..60 {
            assert_eq!(get(&gw, "/?status=500", &[]).await.status, 500);
        }
        seen(&api, &auth, 80, |s| s < 0.95).await;
    });
    let page = rendered(&url);
    assert!(
        page.contains("class=\"edge bad\" data-from=\"ingressgateway.default\" data-to=\"my-app.default\""),
        "the failing edge is not red in\n{page}"
    );
    let out = Command::new(weft())
        .args(["dashboard", "--control", &api, "--admin-token-file", &token_file])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), url);
    // Without the token: no read, and the page says what to open.
    rt().block_on(async { assert_eq!(get(&api, "/debug/proxies", &[]).await.status, 401) });
    let page = rendered(&format!("http://{api}/dashboard"));
    assert!(page.contains("open the address `weft dashboard` prints"), "{page}");
    up.stop();
}
