//! The shipped examples, answered end to end through `weft up`: gateway →
//! sidecar → workload, with real processes on 127.0.0.1.

mod common;
use common::*;

#[test]
fn seed_example_routes_exact_root_to_my_app() {
    let mut up = Up::start(&repo().join("examples/seed"));
    let gw = format!("127.0.0.1:{}", up.gateway_port);
    rt().block_on(async {
        let r = get(&gw, "/", &[]).await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        let j = r.json();
        assert_eq!(j["service"], "my-app");
        assert_eq!(j["path"], "/");
        // The VirtualService matches `exact: /` only.
        assert_eq!(get(&gw, "/other", &[]).await.status, 404);
    });
    up.stop();
}

#[test]
fn bookinfo_canary_splits_90_10_and_header_pins_v2() {
    let mut up = Up::start(&repo().join("examples/bookinfo"));
    let gw = format!("127.0.0.1:{}", up.gateway_port);
    rt().block_on(async {
        let n = 300;
        let mut v2 = 0;
        for _ in 0..n {
            let r = get(&gw, "/", &[]).await;
            assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
            let j = r.json();
            assert_eq!(j["service"], "productpage");
            let calls = j["calls"].as_array().unwrap();
            let details = calls.iter().find(|c| c["target"] == "details:9080").unwrap();
            assert_eq!(details["body"]["service"], "details", "{details}");
            let reviews = calls.iter().find(|c| c["target"] == "reviews:9080").unwrap();
            assert_eq!(reviews["status"], 200, "{reviews}");
            if reviews["body"]["version"] == "v2" {
                v2 += 1;
            }
        }
        // 10% of 300 = 30; binomial sd ≈ 5.2, so 12..=54 is beyond 3.5 sd.
        assert!((12..=54).contains(&v2), "v2 got {v2} of {n}, expected about 30");
        for _ in 0..20 {
            let j = get(&gw, "/", &[("end-user", "jason")]).await.json();
            let reviews =
                j["calls"].as_array().unwrap().iter().find(|c| c["target"] == "reviews:9080").unwrap().clone();
            assert_eq!(reviews["body"]["version"], "v2", "{reviews}");
        }
    });
    up.stop();
}

/// The Gateway API example as its README runs it: 90/10 by weight, a
/// header pins v2, and a prefix redirect.
#[test]
fn gateway_api_example_splits_by_weight_and_pins_by_header() {
    let mut up = Up::start(&repo().join("examples/gateway-api"));
    assert_eq!(up.info["gateways"][0]["name"], "store-gateway", "{}", up.info);
    let gw = format!("127.0.0.1:{}", up.gateway_port);
    rt().block_on(async {
        let n = 300;
        let mut v2 = 0;
        for _ in 0..n {
            let j = get(&gw, "/", &[]).await.json();
            assert_eq!(j["service"], "store", "{j}");
            v2 += (j["version"] == "v2") as u32;
        }
        // 10% of 300 = 30; binomial sd ≈ 5.2, so 12..=54 is beyond 3.5 sd.
        assert!((12..=54).contains(&v2), "v2 got {v2} of {n}, expected about 30");
        for _ in 0..10 {
            assert_eq!(get(&gw, "/", &[("x-canary", "always")]).await.json()["version"], "v2");
        }
        let r = get(&gw, "/legacy/cart", &[]).await;
        assert_eq!(r.status, 301);
        let location = r.headers.get("location").unwrap().to_str().unwrap();
        assert!(location.ends_with("/cart"), "{location}");
    });
    up.stop();
}

/// The zero-trust example as its README runs it: mutual TLS on every hop,
/// `orders` for `frontend` alone, tokens checked and `/admin` for admins.
#[test]
fn zero_trust_example_enforces_identities_and_tokens() {
    let dir = repo().join("examples/zero-trust");
    let readme = std::fs::read_to_string(dir.join("README.md")).unwrap();
    let token = |name: &str| {
        let line = readme.lines().find(|l| l.starts_with(&format!("{name}="))).unwrap();
        format!("Bearer {}", &line[name.len() + 1..])
    };
    let mut up = Up::start(&dir);
    let gw = format!("127.0.0.1:{}", up.gateway_port);
    let workload =
        |name: &str| up.info["workloads"].as_array().unwrap().iter().find(|w| w["name"] == name).unwrap().clone();
    let orders = workload("orders");
    let orders_inbound = format!("{}:{}", orders["ip"].as_str().unwrap(), orders["inboundPort"]);
    rt().block_on(async {
        let r = get(&gw, "/", &[]).await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        let j = r.json();
        let call = j["calls"].as_array().unwrap().iter().find(|c| c["target"] == "orders:8080").unwrap().clone();
        assert_eq!(call["status"], 200, "frontend reaches orders: {call}");
        assert!(
            call["body"]["headers"]["x-forwarded-client-cert"].as_str().is_some_and(|x| x.contains("sa/frontend")),
            "orders learns frontend called, over mutual TLS: {call}"
        );
        assert_eq!(get(&gw, "/admin", &[]).await.status, 403, "no token");
        assert_eq!(get(&gw, "/admin", &[("authorization", &token("USER_TOKEN"))]).await.status, 403, "not an admin");
        let admin = get(&gw, "/admin", &[("authorization", &token("ADMIN_TOKEN"))]).await;
        assert_eq!(admin.status, 200, "{}", String::from_utf8_lossy(&admin.body));
        assert_eq!(admin.json()["headers"]["x-user"], "alice", "the token's subject, as a header");
        assert_eq!(get(&gw, "/", &[("authorization", "Bearer not-a-token")]).await.status, 401);
        // STRICT: plaintext to orders' sidecar is closed unanswered.
        let plain = try_request(&orders_inbound, "GET", "/", &[], bytes::Bytes::new()).await;
        assert!(plain.is_err(), "orders served plaintext: {:?}", plain.map(|r| r.status));
    });
    up.stop();
}

/// `weft up` on a folder it cannot run stops before starting anything, and
/// says why and what to do.
#[test]
fn up_refuses_a_folder_with_nothing_to_run_or_a_typo() {
    let up = |dir: &std::path::Path| {
        let out = std::process::Command::new(weft()).arg("up").arg(dir).output().unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let empty = tempfile::tempdir().unwrap();
    let (code, err) = up(empty.path());
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("has no resources") && err.contains("weft up examples/seed"), "{err}");

    let typo = tempfile::tempdir().unwrap();
    for f in ["service.yaml", "workload.yaml", "gateway-and-virtualservice.yaml"] {
        let text = std::fs::read_to_string(repo().join("examples/seed").join(f)).unwrap();
        std::fs::write(typo.path().join(f), text.replacen("destination:", "destinaton:", 1)).unwrap();
    }
    let (code, err) = up(typo.path());
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("gateway-and-virtualservice.yaml:30:11: error"), "{err}");
    assert!(err.contains("did you mean `destination`?"), "{err}");
    assert!(err.contains("has 1 error(s)"), "{err}");
}

/// A Gateway server weft does not serve (a TCP server on an HTTP server's
/// port) is not offered: the ready file and the table list only what a
/// gateway really listens on.
#[test]
fn up_lists_only_the_gateway_servers_it_serves() {
    let dir = tempfile::tempdir().unwrap();
    for f in ["service.yaml", "workload.yaml", "gateway-and-virtualservice.yaml"] {
        let mut text = std::fs::read_to_string(repo().join("examples/seed").join(f)).unwrap();
        if f.starts_with("gateway") {
            // A TCP server on the HTTP server's port: a port takes one kind of listener.
            let tcp = "    - port: {number: 80, name: tcp, protocol: TCP}\n      hosts: [\"*\"]\n";
            text = text.replacen("  servers:\n", &format!("  servers:\n{tcp}"), 1);
            assert!(text.contains("name: tcp"), "the seed's Gateway has `servers:`");
        }
        std::fs::write(dir.path().join(f), text).unwrap();
    }
    let mut up = Up::start(dir.path());
    let ports = up.info["gateways"][0]["ports"].as_object().unwrap().clone();
    assert_eq!(ports.keys().collect::<Vec<_>>(), ["80"], "{ports:?}");
    rt().block_on(async {
        let gw = format!("127.0.0.1:{}", up.gateway_port);
        assert_eq!(get(&gw, "/", &[]).await.status, 200, "the HTTP server still serves");
    });
    up.stop();
}

/// A folder holding the Kubernetes manifests a cluster runs (Deployment,
/// ServiceAccount, ConfigMap, a List) next to a Workload: `weft validate`
/// notes each kind once, and `weft up` runs the Workload and serves.
#[test]
fn up_runs_a_folder_that_holds_kubernetes_manifests() {
    let dir = tempfile::tempdir().unwrap();
    for f in ["service.yaml", "workload.yaml", "gateway-and-virtualservice.yaml"] {
        std::fs::copy(repo().join("examples/seed").join(f), dir.path().join(f)).unwrap();
    }
    let kube = r#"apiVersion: v1
kind: List
items:
  - {apiVersion: v1, kind: ServiceAccount, metadata: {name: my-app}}
  - {apiVersion: v1, kind: ConfigMap, metadata: {name: my-app}, data: {greeting: hello}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: my-app, labels: {app: my-app}}
spec:
  replicas: 3
  selector: {matchLabels: {app: my-app}}
  template:
    metadata: {labels: {app: my-app}}
    spec:
      serviceAccountName: my-app
      containers:
        - name: app
          image: registry.example/my-app:1.0
          ports: [{containerPort: 9376}]
          readinessProbe: {httpGet: {path: /healthz, port: 9376}}
"#;
    std::fs::write(dir.path().join("kubernetes.yaml"), kube).unwrap();
    let out = std::process::Command::new(weft()).arg("validate").arg(dir.path()).output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && stdout.contains(", 0 warnings, 3 notes: ok"), "{stdout}\n{stderr}");
    assert!(stderr.contains("Deployment (1): read for the pods' labels"), "{stderr}");
    let mut up = Up::start(dir.path());
    assert_eq!(up.info["workloads"].as_array().unwrap().len(), 1, "only the Workload runs: {}", up.info);
    rt().block_on(async {
        let gw = format!("127.0.0.1:{}", up.gateway_port);
        assert_eq!(get(&gw, "/", &[]).await.status, 200);
    });
    up.stop();
}
