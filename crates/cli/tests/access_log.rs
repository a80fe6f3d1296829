//! Access logs through real sidecars, turned on by Istio's Telemetry: JSON
//! lines with Envoy's fields on each proxy's stdout, the mesh's Telemetry
//! for every proxy, a workload's own (a filter, the server side only)
//! winning for it; a local 404 (NR), an upstream's 500 and a TCP
//! connection read field by field.

mod common;
use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn mesh(inbound: u16, store_port: u16, store: u16) -> String {
    format!(
        "{web}---
apiVersion: v1
kind: Service
metadata: {{name: store}}
spec:
  selector: {{app: store}}
  ports: [{{name: tcp-store, port: {store_port}}}]
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: store}}
spec: {{address: 127.0.0.1, ports: {{tcp-store: {store}}}, labels: {{app: store}}}}
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {{name: mesh-default, namespace: istio-system}}
spec:
  accessLogging: [{{providers: [{{name: envoy}}]}}]
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {{name: web-errors}}
spec:
  selector: {{matchLabels: {{app: web}}}}
  accessLogging:
    - match: {{mode: SERVER}}
      filter: {{expression: \"response.code >= 400 && !has(request.headers.x_quiet)\"}}
",
        web = backend_yaml("web", inbound),
    )
}

fn with_id<'a>(lines: &'a [serde_json::Value], id: &str) -> Vec<&'a serde_json::Value> {
    lines.iter().filter(|l| l["request_id"] == id).collect()
}

#[test]
fn telemetry_turns_access_logs_on_by_scope_and_filter() {
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let (_app_proc, app) = demo("web", "v1").await;
        let inbound = free_port();
        let store = tcp_server(|mut s| async move {
            let mut buf = [0u8; 5];
            if s.read_exact(&mut buf).await.is_ok() {
                let _ = s.write_all(b"pong!!").await;
            }
        })
        .await;
        let store_port = free_port();
        std::fs::write(dir.path().join("mesh.yaml"), mesh(inbound, store_port, store)).unwrap();
        let control = Control::start(dir.path()).await;
        let (a, i) = (app.to_string(), inbound.to_string());
        // Its outbound side elsewhere: the client's binds the store's port on 127.0.0.1.
        let web_args = ["--app-port", &a, "--inbound-port", &i, "--labels", "app=web", "--outbound-ip", "127.0.0.5"];
        let (_web, web_log) = Sidecar::start_logged(&control.xds, "web", &web_args).await;
        let (client, client_log) = Sidecar::start_logged(&control.xds, "client", &["--labels", "app=client"]).await;

        let call = |id: &'static str, host: &'static str, quiet: bool| {
            let out = client.outbound.clone();
            async move {
                let mut h = vec![("x-request-id", id), ("user-agent", "weft-test/1")];
                if quiet {
                    h.push(("x-quiet", "1"));
                }
                request(&out, "GET", &format!("http://{host}/"), &h, Default::default()).await.status
            }
        };
        assert_eq!(call("ok-1", "web", false).await, 200);
        behave(app, r#"{"failPercent": 100, "failStatus": 500}"#).await;
        assert_eq!(call("fail-quiet", "web", true).await, 500);
        assert_eq!(call("fail-1", "web", false).await, 500);
        behave(app, r#"{"failPercent": 0}"#).await;
        assert_eq!(call("nr-1", "nowhere.example", false).await, 404);
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", store_port)).await.unwrap();
        s.write_all(b"ping!").await.unwrap();
        let mut back = Vec::new();
        s.read_to_end(&mut back).await.unwrap();
        assert_eq!(back, b"pong!!");
        drop(s);

        // The client's outbound logs every request (the mesh's Telemetry).
        eventually(10, "the client's four lines", || {
            let n =
                ["ok-1", "fail-quiet", "fail-1", "nr-1"].iter().all(|id| !with_id(&client_log.json(), id).is_empty());
            async move { n }
        })
        .await;
        let lines = client_log.json();
        let ok = with_id(&lines, "ok-1")[0];
        assert_eq!(ok["method"], "GET");
        assert_eq!(ok["path"], "/");
        assert_eq!(ok["protocol"], "HTTP/1.1");
        assert_eq!(ok["response_code"], 200);
        assert_eq!(ok["response_flags"], "-");
        assert_eq!(ok["authority"], "web");
        assert_eq!(ok["user_agent"], "weft-test/1");
        assert_eq!(ok["upstream_cluster"], "outbound|80||web.default.svc.cluster.local");
        assert_eq!(ok["upstream_host"], format!("127.0.0.1:{inbound}"));
        assert_eq!(ok["downstream_local_address"], client.outbound);
        assert!(ok["downstream_remote_address"].as_str().unwrap().starts_with("127.0.0.1:"));
        assert!(ok["bytes_sent"].as_u64().unwrap() > 0, "{ok}");
        assert!(ok["duration"].is_u64() && ok["start_time"].as_str().unwrap().ends_with('Z'), "{ok}");
        assert!(ok["route_name"].is_string(), "{ok}");
        // Envoy's: the time the upstream took, from the response header
        // the proxy sets; within the whole request's.
        let service_time = ok["upstream_service_time"].as_str().and_then(|t| t.parse::<u64>().ok());
        assert!(service_time.is_some_and(|t| t <= ok["duration"].as_u64().unwrap()), "{ok}");
        let nr = with_id(&lines, "nr-1")[0];
        assert_eq!((nr["response_code"].as_u64(), nr["response_flags"].as_str()), (Some(404), Some("NR")));
        assert_eq!(nr["upstream_host"], serde_json::Value::Null);
        assert_eq!(nr["upstream_service_time"], serde_json::Value::Null, "no upstream answered");
        assert_eq!(with_id(&lines, "fail-1")[0]["response_code"], 500);

        // A TCP connection: its bytes both ways, its upstream, no HTTP fields.
        eventually(10, "the client's TCP line", || {
            let n =
                client_log.json().iter().any(|l| l["upstream_cluster"].as_str().is_some_and(|c| c.contains("store")));
            async move { n }
        })
        .await;
        let lines = client_log.json();
        let tcp = lines.iter().find(|l| l["upstream_cluster"].as_str().is_some_and(|c| c.contains("store"))).unwrap();
        assert_eq!((tcp["bytes_received"].as_u64(), tcp["bytes_sent"].as_u64()), (Some(5), Some(6)), "{tcp}");
        assert_eq!(tcp["upstream_host"], format!("127.0.0.1:{store}"));
        assert_eq!(tcp["downstream_local_address"], format!("127.0.0.1:{store_port}"));
        assert_eq!((tcp["method"].is_null(), tcp["protocol"].is_null()), (true, true), "{tcp}");
        assert_eq!(tcp["response_code"], 0);

        // The web sidecar's inbound logs errors only, and not the quiet one.
        eventually(10, "the web sidecar's error line", || {
            let n = !with_id(&web_log.json(), "fail-1").is_empty();
            async move { n }
        })
        .await;
        let web_lines = web_log.json();
        let fail = with_id(&web_lines, "fail-1")[0];
        assert_eq!(fail["response_code"], 500);
        assert_eq!(fail["upstream_host"], format!("127.0.0.1:{app}"));
        assert_eq!(fail["downstream_local_address"], format!("127.0.0.1:{inbound}"));
        assert!(with_id(&web_lines, "ok-1").is_empty(), "a 200 is filtered out: {web_lines:?}");
        assert!(with_id(&web_lines, "fail-quiet").is_empty(), "x-quiet is filtered out: {web_lines:?}");
    });
}
