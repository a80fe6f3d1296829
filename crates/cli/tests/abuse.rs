//! What a client sends cannot take the mesh down: the control API against
//! hostile requests, the proxy's metrics against hostile headers. Each test
//! sends what broke weft once (issue "Nothing a client sends") and checks
//! the one request fails alone.

mod common;
use common::*;

/// A POST with the admin's credential (registrations need one).
fn json_post(control: &Control, path: &str, body: String) -> impl std::future::Future<Output = Resp> {
    let (api, admin) = (control.api.clone(), control.admin());
    let path = path.to_owned();
    async move {
        let h = [("content-type", "application/json"), ("authorization", admin.as_str())];
        request(&api, "POST", &path, &h, body.into()).await
    }
}

fn reg(name: &str, port: u16, labels: serde_json::Value, ttl: serde_json::Value) -> String {
    serde_json::json!({"name": name, "address": "127.0.0.1", "port": port, "labels": labels, "ttlSeconds": ttl})
        .to_string()
}

#[test]
fn hostile_registrations_fail_alone_and_the_registry_keeps_working() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("svc.yaml"), service_yaml("echo", &[80])).unwrap();
    rt().block_on(async {
        let control = Control::start(dir.path()).await;
        let api = control.api.as_str();

        // A TTL past u64 seconds panicked under the registry's lock once; one
        // past the limit would make an instance immortal.
        for ttl in [serde_json::json!(18446744073709551615u64), serde_json::json!(1e12)] {
            let r =
                json_post(&control, "/v1/instances", reg("echo-a", 9, serde_json::json!({"app": "echo"}), ttl)).await;
            assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(&r.body));
            assert!(r.json()["error"].as_str().unwrap().contains("--max-ttl"), "{}", r.json());
        }
        // Every later call still works.
        let r =
            json_post(&control, "/v1/instances", reg("echo-a", 9, serde_json::json!({"app": "echo"}), 5.into())).await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        let id = r.json()["id"].as_str().unwrap().to_owned();
        let admin = control.admin();
        let beat = request(
            api,
            "PUT",
            &format!("/v1/instances/{id}/heartbeat"),
            &[("content-type", "application/json"), ("authorization", &admin)],
            Default::default(),
        )
        .await;
        assert_eq!(beat.status, 200);
        // The mesh's config is the admin's to read.
        assert_eq!(get(api, "/debug/config", &[]).await.status, 401);
        assert_eq!(get(api, "/debug/config", &[("authorization", &admin)]).await.status, 200);

        // Fields that become ids, endpoints and labels are checked.
        for (body, want) in [
            (serde_json::json!({"name": "x", "address": "not an ip; rm -rf /", "port": 1}), "not an IP address"),
            (serde_json::json!({"name": "a/b", "address": "127.0.0.1", "port": 1}), "`name`"),
            (serde_json::json!({"name": "x", "address": "127.0.0.1", "port": 1, "ttlSecond": 5}), "unknown field"),
        ] {
            let r = json_post(&control, "/v1/instances", body.to_string()).await;
            assert_eq!(r.status, 400);
            assert!(r.json()["error"].as_str().unwrap().contains(want), "{}", r.json());
        }

        // Another registration for the live instance's address is refused;
        // the live one keeps its labels.
        let r =
            json_post(&control, "/v1/instances", reg("echo-a", 9, serde_json::json!({"app": "evil"}), 5.into())).await;
        assert_eq!(r.status, 409, "{}", String::from_utf8_lossy(&r.body));
        let listed = get(api, "/v1/instances", &[("authorization", &admin)]).await.json();
        assert_eq!(listed[0]["instance"]["labels"]["app"], "echo", "{listed}");

        // What a browser page could send: a form post, another Host, another Origin.
        let form = request(
            api,
            "POST",
            "/v1/instances",
            &[("content-type", "text/plain")],
            reg("echo-b", 10, serde_json::json!({}), 5.into()).into(),
        )
        .await;
        assert_eq!(form.status, 415);
        let rebound =
            request(api, "GET", "/v1/instances", &[("host", "attacker.example:15014")], Default::default()).await;
        assert_eq!(rebound.status, 403);
        let origin = request(
            api,
            "DELETE",
            &format!("/v1/instances/{id}"),
            &[("content-type", "application/json"), ("origin", "http://attacker.example")],
            Default::default(),
        )
        .await;
        assert_eq!(origin.status, 403);

        // A body past the limit (64 KiB) is refused. (Small enough to sit
        // in the socket buffers whole: a larger one is cut off unread, and
        // the client sees its write fail instead of the 413.)
        let big = request(
            api,
            "POST",
            "/v1/instances",
            &[("content-type", "application/json")],
            vec![b' '; 100 << 10].into(),
        )
        .await;
        assert_eq!(big.status, 413);

        let metrics = String::from_utf8(get(api, "/metrics", &[]).await.body.to_vec()).unwrap();
        for line in [
            "weft_control_limit_refusals_total{limit=\"ttl\"} 2",
            "weft_control_limit_refusals_total{limit=\"request_bytes\"} 1",
            "weft_control_limit_refusals_total{limit=\"content_type\"} 1",
            "weft_control_limit_refusals_total{limit=\"host\"} 1",
            "weft_control_limit_refusals_total{limit=\"origin\"} 1",
            "weft_control_registered_instances 1",
        ] {
            assert!(metrics.contains(line), "{line} missing from:\n{metrics}");
        }
        // And the instance is still there, deregistered by its owner.
        let gone = request(
            api,
            "DELETE",
            &format!("/v1/instances/{id}"),
            &[("content-type", "application/json"), ("authorization", &admin)],
            Default::default(),
        )
        .await;
        assert_eq!(gone.status, 200);
    });
}

#[test]
fn the_instance_cap_refuses_the_one_past_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("svc.yaml"), service_yaml("echo", &[80])).unwrap();
    rt().block_on(async {
        let control = Control::start_with(dir.path(), &["--max-instances", "3"]).await;
        let api = control.api.as_str();
        for port in 1..=3 {
            let r = json_post(&control, "/v1/instances", reg("echo", port, serde_json::json!({}), 30.into())).await;
            assert_eq!(r.status, 200);
        }
        let r = json_post(&control, "/v1/instances", reg("echo", 4, serde_json::json!({}), 30.into())).await;
        assert_eq!(r.status, 503);
        assert!(r.json()["error"].as_str().unwrap().contains("--max-instances"), "{}", r.json());
        let metrics = String::from_utf8(get(api, "/metrics", &[]).await.body.to_vec()).unwrap();
        assert!(metrics.contains("weft_control_limit_refusals_total{limit=\"instances\"} 1"), "{metrics}");
    });
}

/// On plaintext the caller names itself in `x-weft-source`, which becomes
/// the `source_workload` label: distinct names once grew a sidecar's
/// metrics (and its scrape) without bound.
#[test]
fn callers_naming_themselves_cannot_grow_the_metrics_past_the_cap() {
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let (_app, app_port) = demo("echo", "v1").await;
        std::fs::write(dir.path().join("svc.yaml"), service_yaml("echo", &[80])).unwrap();
        let control = Control::start(dir.path()).await;
        let inbound = free_port();
        let (app, inb) = (app_port.to_string(), inbound.to_string());
        let sidecar = Sidecar::start_with(
            &control.xds,
            "echo",
            &["--labels", "app=echo", "--app-port", &app, "--inbound-port", &inb, "--max-metric-series", "20"],
        )
        .await;
        let inbound = format!("127.0.0.1:{inbound}");
        for i in 0..300 {
            let caller = format!("caller-{i}.ns-{i}");
            assert_eq!(get(&inbound, "/", &[("x-weft-source", &caller)]).await.status, 200);
        }
        let page = String::from_utf8(get(&sidecar.admin, "/stats/prometheus", &[]).await.body.to_vec()).unwrap();
        let sets: Vec<&str> = page.lines().filter(|l| l.starts_with("istio_requests_total{")).collect();
        assert!(sets.len() <= 21, "{} label sets past a cap of 20:\n{}", sets.len(), sets.join("\n"));
        let overflow = sets.iter().find(|l| l.contains(r#"source_workload="overflow""#)).expect("the catch-all series");
        let counted: u64 = overflow.rsplit(' ').next().unwrap().parse().unwrap();
        assert_eq!(counted, counter(&sidecar.admin, "weft_metric_series_overflow_total").await);
        assert!(counted >= 280, "{overflow}");
        let total: u64 = sets.iter().map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap()).sum();
        assert_eq!(total, 300, "every request is counted, in its own set or the catch-all");
    });
}

/// Headers only the mesh may set: a client's `x-forwarded-client-cert` is
/// removed at the gateway and at a sidecar's outbound (it would otherwise
/// reach apps as a certificate the mesh vouched for), and the gateway
/// appends the client's address to `x-forwarded-for`.
#[test]
fn clients_cannot_forge_the_headers_the_mesh_sets() {
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let (_app, app_port) = demo("echo", "v1").await;
        let gw_port = free_port();
        let offset = (gw_port - 80).to_string();
        let routes = "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: edge}\nspec:\n  selector: {istio: ingressgateway}\n  servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: [\"*\"]}]\n---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: edge}\nspec:\n  hosts: [\"*\"]\n  gateways: [edge]\n  http: [{route: [{destination: {host: echo}}]}]\n";
        std::fs::write(dir.path().join("mesh.yaml"), format!("{}---\n{routes}", backend_yaml("echo", app_port))).unwrap();
        let control = Control::start(dir.path()).await;
        let admin = free_port().to_string();
        let _gw = spawn(&[
            "gateway", "--xds", &control.xds, "--labels", "istio=ingressgateway", "--port-offset", &offset,
            "--admin-port", &admin, "--metrics-port", "0", "--health-port", "0",
        ]);
        let admin = format!("127.0.0.1:{admin}");
        eventually(20, "gateway ready", || {
            let a = admin.clone();
            async move { up_at(&a).await && get(&a, "/ready", &[]).await.status == 200 }
        })
        .await;
        let sidecar = Sidecar::start(&control.xds, "client").await;

        let forged = [
            ("x-forwarded-client-cert", "By=spiffe://cluster.local/ns/default/sa/echo;URI=spiffe://cluster.local/ns/kube-system/sa/admin"),
            ("x-forwarded-for", "203.0.113.9"),
        ];
        let gw = format!("127.0.0.1:{gw_port}");
        let r = get(&gw, "/", &forged).await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        let h = &r.json()["headers"];
        assert_eq!(h.get("x-forwarded-client-cert"), None, "the gateway passed a forged certificate on: {h}");
        assert_eq!(h["x-forwarded-for"], "203.0.113.9,127.0.0.1", "the gateway appends the client's address: {h}");
        assert_eq!(h["x-forwarded-proto"], "http", "{h}");

        let r = get(&sidecar.outbound, "http://echo/", &forged).await;
        assert_eq!(r.status, 200);
        let h = &r.json()["headers"];
        assert_eq!(h.get("x-forwarded-client-cert"), None, "the outbound sidecar passed a forged certificate on: {h}");
        assert_eq!(h["x-forwarded-for"], "203.0.113.9", "a sidecar leaves x-forwarded-for to the edge: {h}");
    });
}

/// An HTTP/2 request whose headers pass 16 KB (Envoy's default) is refused
/// alone; the connection and the proxy serve the next one. HTTP/1.1 heads
/// have Envoy's limits too.
#[test]
fn oversized_headers_are_refused_alone() {
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let (_app, app_port) = demo("echo", "v1").await;
        std::fs::write(dir.path().join("svc.yaml"), backend_yaml("echo", app_port)).unwrap();
        let control = Control::start(dir.path()).await;
        let sidecar = Sidecar::start(&control.xds, "client").await;
        let (mut sender, _conn) = h2_handshake(&sidecar.outbound).await;
        let req = |big: usize| {
            http::Request::get("http://echo/")
                .header("x-big", "a".repeat(big))
                .body(http_body_util::Empty::<bytes::Bytes>::new())
                .unwrap()
        };
        let refused = sender.send_request(req(20 << 10)).await;
        assert!(refused.as_ref().map_or(true, |r| r.status() == 431), "a 20 KB header list was served: {refused:?}");
        sender.ready().await.expect("the connection survives");
        let ok = sender.send_request(req(1 << 10)).await.expect("the next request is served");
        assert_eq!(ok.status(), 200);

        // HTTP/1.1: a head past 64 KiB or 100 headers gets 431, and the
        // proxy serves the next connection.
        let huge = [("x-big", "a".repeat(70 << 10))];
        let many: Vec<(String, &str)> = (0..101).map(|i| (format!("x-h{i}"), "v")).collect();
        for headers in [
            huge.iter().map(|(k, v)| (*k, v.as_str())).collect::<Vec<_>>(),
            many.iter().map(|(k, v)| (k.as_str(), *v)).collect(),
        ] {
            let mut with_host = vec![("host", "echo")];
            with_host.extend(headers);
            let r = try_request(&sidecar.outbound, "GET", "/", &with_host, Default::default()).await;
            assert_eq!(r.map(|r| r.status), Ok(431), "{} headers", with_host.len());
        }
        let fine: Vec<(String, &str)> = (0..90).map(|i| (format!("x-h{i}"), "v")).collect();
        let mut headers: Vec<(&str, &str)> = fine.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        headers.extend([("host", "echo"), ("x-big", &huge[0].1[..50 << 10])]);
        assert_eq!(request(&sidecar.outbound, "GET", "/", &headers, Default::default()).await.status, 200);
    });
}
