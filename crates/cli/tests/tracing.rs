//! Distributed tracing through real sidecars, configured as Istio users
//! do (the mesh config's OpenTelemetry provider, a Telemetry's sampling and
//! custom tags) and received by an OTLP receiver built on OpenTelemetry's
//! own protobuf definitions (tests/otlp/receiver.py): one trace across a
//! client, a frontend and the two services it calls, with every proxy's
//! span and the parent links right; a caller's trace and sampling decision
//! honoured; a dead collector costing no request; OTLP over HTTP.

mod common;
use common::otlp::*;
use common::*;
use std::collections::HashMap;

#[test]
fn one_trace_crosses_the_gateway_a_frontend_and_two_services() {
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let (_receiver, received, collector) = receiver();
        // The services' instances are their sidecars' inbound ports, known
        // once they start: the folder is written, then the control plane reads it.
        let (be_in, st_in, fe_in) = (free_port(), free_port(), free_port());
        let gateway = "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: edge}\nspec:\n  selector: {istio: ingressgateway}\n  servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: [\"*\"]}]\n---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: edge}\nspec:\n  hosts: [\"*\"]\n  gateways: [edge]\n  http: [{route: [{destination: {host: frontend}}]}]\n";
        let mesh = [
            backend_yaml("frontend", fe_in),
            backend_yaml("backend", be_in),
            backend_yaml("store", st_in),
            gateway.to_owned(),
        ];
        std::fs::write(dir.path().join("mesh.yaml"), mesh.join("---\n") + "---\n" + &telemetry(collector)).unwrap();
        let control = Control::start(dir.path()).await;
        let mut procs = Vec::new();
        for (name, port, calls) in [("backend", be_in, None), ("store", st_in, None), ("frontend", fe_in, Some("backend,store"))] {
            let (app, inbound) = (free_port(), port);
            let (a, i, l) = (app.to_string(), inbound.to_string(), format!("app={name}"));
            let sc = Sidecar::start_with(&control.xds, name, &["--app-port", &a, "--inbound-port", &i, "--labels", &l]).await;
            let mut args = vec!["demo", "--name", name, "--port", &a];
            if let Some(c) = calls {
                args.extend(["--calls", c, "--proxy", &sc.outbound]);
            }
            procs.push(spawn(&args));
            let addr = format!("127.0.0.1:{app}");
            eventually(20, "the demo app", || {
                let a = addr.clone();
                async move { up_at(&a).await }
            })
            .await;
            procs.push(sc.proc);
        }
        let client = Sidecar::start_with(&control.xds, "client", &["--labels", "app=client"]).await;
        let edge = free_port();
        let (admin, off) = (free_port().to_string(), (edge - 80).to_string());
        let args = ["gateway", "--xds", &control.xds, "--labels", "app=edge,istio=ingressgateway", "--port-offset", &off];
        let _gw = spawn(&[&args[..], &["--admin-port", &admin, "--metrics-port", "0", "--health-port", "0"]].concat());
        let edge = format!("127.0.0.1:{edge}");
        let e = edge.clone();
        eventually(20, "the gateway's listener", || {
            let e = e.clone();
            async move { up_at(&e).await }
        })
        .await;

        // A request with no trace, at the gateway: it starts one.
        let r = request(&edge, "GET", "http://shop.example/", &[("x-caller", "test")], Default::default()).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        let calls = r.json()["calls"].as_array().unwrap().clone();
        assert!(calls.iter().all(|c| c["status"] == 200), "{calls:?}");
        eventually(10, "the gateway's span", || {
            let n = received.json().iter().filter(|s| s["service"] == "edge.default").count();
            async move { n >= 1 }
        })
        .await;
        let first = received.json().into_iter().find(|s| s["service"] == "edge.default").unwrap();
        let trace = first["trace_id"].as_str().unwrap().to_owned();
        let all = wait_spans(&received, &trace, 6).await;
        assert_eq!(all.len(), 6, "{all:#?}");
        let by: HashMap<(String, i64), Vec<&serde_json::Value>> = all.iter().fold(HashMap::new(), |mut m, s| {
            let key = (s["service"].as_str().unwrap().to_owned(), s["kind"].as_i64().unwrap());
            m.entry(key).or_default().push(s);
            m
        });
        let one = |svc: &str, kind: i64| by.get(&(format!("{svc}.default"), kind)).map(|v| v[0]).unwrap_or_else(|| panic!("{svc} {kind}: {all:#?}"));
        let (edge_span, fe_server) = (one("edge", 2), one("frontend", 2));
        assert_eq!(edge_span["parent_span_id"], "", "the root");
        assert_eq!(fe_server["parent_span_id"], edge_span["span_id"]);
        let fe_clients = &by[&("frontend.default".to_owned(), 3)];
        assert_eq!(fe_clients.len(), 2, "one client span per call");
        for c in fe_clients {
            assert_eq!(c["parent_span_id"], fe_server["span_id"], "the app forwarded the inbound span's context");
        }
        for svc in ["backend", "store"] {
            let server = one(svc, 2);
            assert!(fe_clients.iter().any(|c| c["span_id"] == server["parent_span_id"]), "{svc}'s parent");
            assert_eq!(server["attributes"]["istio.canonical_service"], svc);
            assert_eq!(server["attributes"]["http.status_code"], 200);
            assert!(server["name"].as_str().unwrap().starts_with(&format!("{svc}.default.svc.cluster.local:")), "{server}");
        }
        let ids: Vec<_> = all.iter().map(|s| s["attributes"]["guid:x-request-id"].clone()).collect();
        assert!(ids.iter().all(|i| *i == ids[0] && i.as_str().is_some_and(|s| s.len() == 36)), "{ids:?}");
        assert_eq!(edge_span["attributes"]["upstream_cluster"], "outbound|80||frontend.default.svc.cluster.local");
        assert_eq!(edge_span["name"], "frontend.default.svc.cluster.local:80/*");
        assert_eq!(edge_span["attributes"]["team"], "shop");
        assert_eq!(edge_span["attributes"]["caller"], "test", "a header tag");
        assert_eq!(one("backend", 2)["attributes"]["caller"], "nobody", "the app did not forward x-caller");

        // A caller's trace is continued; its decision not to sample is kept.
        let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let r = request(&client.outbound, "GET", "http://backend/", &[("traceparent", parent)], Default::default()).await;
        assert_eq!(r.status, 200);
        let continued = wait_spans(&received, "4bf92f3577b34da6a3ce929d0e0e4736", 2).await;
        assert!(continued.iter().any(|s| s["parent_span_id"] == "00f067aa0ba902b7"), "{continued:#?}");
        let unsampled = "00-5bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
        let r = request(&client.outbound, "GET", "http://backend/", &[("traceparent", unsampled)], Default::default()).await;
        assert_eq!(r.status, 200);
        // A later sampled request's spans arrive after any of the unsampled one's would.
        let b3 = [("x-b3-traceid", "6bf92f3577b34da6"), ("x-b3-spanid", "00f067aa0ba902b8"), ("x-b3-sampled", "1")];
        assert_eq!(request(&client.outbound, "GET", "http://backend/", &b3, Default::default()).await.status, 200);
        wait_spans(&received, "00000000000000006bf92f3577b34da6", 2).await;
        assert!(spans(&received, "5bf92f3577b34da6a3ce929d0e0e4736").is_empty(), "an unsampled trace reports nothing");
        drop(procs);
    });
}

#[test]
fn a_dead_collector_costs_no_request_and_its_spans_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let dead = free_port();
        let (_app, app) = demo("web", "v1").await;
        std::fs::write(dir.path().join("mesh.yaml"), backend_yaml("web", app) + "---\n" + &telemetry(dead)).unwrap();
        let control = Control::start(dir.path()).await;
        let client = Sidecar::start_with(&control.xds, "client", &["--labels", "app=client"]).await;
        for _ in 0..50 {
            assert_eq!(call(&client.outbound, "web").await.0, 200);
        }
        let admin = client.admin.clone();
        eventually(15, "the spans counted as dropped", || {
            let a = admin.clone();
            async move { counter(&a, "weft_spans_dropped_total").await == 50 }
        })
        .await;
        assert_eq!(counter(&client.admin, "weft_spans_exported_total").await, 0);
    });
}

/// A retried request's span has a child span for each attempt: the first
/// to the instance that answers 503, the second to the one that answers.
#[test]
fn a_retried_request_reports_each_attempt() {
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let (_receiver, received, collector) = receiver();
        let ((_bad, bad), (_good, good)) = (demo("web", "v1").await, demo("web", "v1").await);
        behave(bad, r#"{"failPercent": 100, "failStatus": 503}"#).await;
        let vs = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: web}\nspec:\n  hosts: [web]\n  http: [{retries: {attempts: 2, retryOn: \"503\"}, route: [{destination: {host: web}}]}]\n";
        let yaml = service_yaml("web", &[bad, good]) + "---\n" + vs + "---\n" + &telemetry(collector);
        std::fs::write(dir.path().join("mesh.yaml"), yaml).unwrap();
        let control = Control::start(dir.path()).await;
        let client = Sidecar::start_with(&control.xds, "client", &["--labels", "app=client"]).await;
        // Round robin: about every other request tries the failing instance first.
        for _ in 0..6 {
            assert_eq!(call(&client.outbound, "web").await.0, 200);
        }
        let named = |s: &serde_json::Value, prefix: &str| s["name"].as_str().is_some_and(|n| n.starts_with(prefix));
        eventually(15, "a retried request's attempts", || {
            let found = received.json().iter().any(|s| named(s, "attempt 2 "));
            async move { found }
        })
        .await;
        let second = received.json().into_iter().find(|s| named(s, "attempt 2 ")).unwrap();
        let all = wait_spans(&received, second["trace_id"].as_str().unwrap(), 3).await;
        let first = all.iter().find(|s| named(s, "attempt 1 ")).unwrap_or_else(|| panic!("{all:#?}"));
        let request = all.iter().find(|s| s["kind"] == 3 && !named(s, "attempt")).unwrap_or_else(|| panic!("{all:#?}"));
        for attempt in [first, &second] {
            assert_eq!(attempt["parent_span_id"], request["span_id"], "{all:#?}");
        }
        assert_eq!((first["attributes"]["http.status_code"].as_i64(), second["attributes"]["http.status_code"].as_i64()), (Some(503), Some(200)));
        assert_eq!(first["attributes"]["upstream_address"], format!("127.0.0.1:{bad}"));
        assert_eq!(second["attributes"]["upstream_address"], format!("127.0.0.1:{good}"));
    });
}

/// OTLP over HTTP, as Istio's `opentelemetry.http` asks: spans POSTed as
/// protobuf to the provider's path, with its headers.
#[test]
fn spans_go_over_otlp_http_to_the_providers_path_with_its_headers() {
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let (_receiver, received, collector) = receiver_with(&["--http"]);
        let (_app, app) = demo("web", "v1").await;
        let grpc = format!("opentelemetry: {{service: 127.0.0.1, port: {collector}}}");
        let http = format!(
            "opentelemetry: {{service: 127.0.0.1, port: {collector}, http: {{path: /tenant/v1/traces, timeout: 2s, headers: [{{name: x-tenant, value: shop}}]}}}}"
        );
        let mesh = telemetry(collector).replace(&grpc, &http);
        assert_ne!(mesh, telemetry(collector), "the provider is OTLP/HTTP");
        std::fs::write(dir.path().join("mesh.yaml"), backend_yaml("web", app) + "---\n" + &mesh).unwrap();
        let control = Control::start(dir.path()).await;
        let client = Sidecar::start_with(&control.xds, "client", &["--labels", "app=client"]).await;
        for _ in 0..5 {
            assert_eq!(call(&client.outbound, "web").await.0, 200);
        }
        eventually(15, "spans over OTLP/HTTP", || {
            let n = received.json().len();
            async move { n >= 5 }
        })
        .await;
        let span = received.json().remove(0);
        assert_eq!(span["http_path"], "/tenant/v1/traces", "{span}");
        assert_eq!(span["http_headers"]["x-tenant"], "shop", "{span}");
        assert_eq!(span["http_headers"]["content-type"], "application/x-protobuf", "{span}");
        assert_eq!((span["kind"].as_i64(), span["attributes"]["team"].as_str()), (Some(3), Some("shop")), "{span}");
        assert!(counter(&client.admin, "weft_spans_exported_total").await >= 5);
        assert_eq!(counter(&client.admin, "weft_spans_dropped_total").await, 0);
    });
}
