//! Interop for observability: a real Envoy fed by `weft control` writes
//! the same access log lines as weft's sidecar under the same Telemetry,
//! and reports spans of the same traces to the same OTLP receiver.

mod common;
use common::envoy::*;
use common::*;

/// The same Telemetry, the same requests: Envoy and weft's sidecar log the
/// same requests (the filter), with the same fields and values.
#[test]
fn envoy_writes_the_same_access_log() {
    let envoy = envoy_bin();
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let (_app, app) = demo("web", "v1").await;
        let telemetry = "---\napiVersion: telemetry.istio.io/v1\nkind: Telemetry\nmetadata: {name: mesh-default, namespace: istio-system}\nspec:\n  accessLogging:\n    - filter: {expression: \"response.code >= 400 || has(request.headers.x_log)\"}\n";
        std::fs::write(dir.path().join("mesh.yaml"), backend_yaml("web", app) + telemetry).unwrap();
        let control = Control::start(dir.path()).await;
        let xds_port = control.xds_port();
        let (admin, outbound) = (free_port(), free_port());
        let envoy_log = Lines::default();
        let (_envoy, _envoy_dir) = start_envoy_into(&envoy, &bootstrap(xds_port, admin, outbound), Some(&envoy_log));
        let envoy_out = format!("127.0.0.1:{outbound}");
        let o = envoy_out.clone();
        eventually(30, "Envoy's outbound listener", || {
            let o = o.clone();
            async move { up_at(&o).await }
        })
        .await;
        let (weft, weft_log) = Sidecar::start_logged(&control.xds, "weft-client", &["--labels", "app=weft-client"]).await;
        for out in [&envoy_out, &weft.outbound] {
            let call = |host: &'static str, id: &'static str, log: bool| async move {
                let mut h = vec![("x-request-id", id)];
                if log {
                    h.push(("x-log", "1"));
                }
                request(out, "GET", &format!("http://{host}/"), &h, Default::default()).await
            };
            assert_eq!(call("web", "quiet", false).await.status, 200);
            assert_eq!(call("web", "logged", true).await.status, 200);
            assert_eq!(call("nowhere.example", "missing", false).await.status, 404);
        }
        let both = [("Envoy", &envoy_log), ("weft", &weft_log)];
        for (who, log) in both {
            eventually(10, &format!("{who}'s two lines"), || {
                let n = log.json().iter().filter(|l| l["request_id"] == "logged" || l["request_id"] == "missing").count();
                async move { n == 2 }
            })
            .await;
        }
        let (envoy_lines, weft_lines) = (envoy_log.json(), weft_log.json());
        let line = |lines: &[serde_json::Value], id: &str| lines.iter().find(|l| l["request_id"] == id).cloned();
        for lines in [&envoy_lines, &weft_lines] {
            assert!(line(lines, "quiet").is_none(), "the filter leaves out a 200 without x-log: {lines:?}");
        }
        for id in ["logged", "missing"] {
            let (e, w) = (line(&envoy_lines, id).unwrap(), line(&weft_lines, id).unwrap());
            let keys = |v: &serde_json::Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
            assert_eq!(keys(&e), keys(&w), "the same fields");
            for field in ["method", "path", "protocol", "response_code", "response_flags", "authority", "upstream_cluster"] {
                assert_eq!(e[field], w[field], "{field} of {id}: Envoy {e} weft {w}");
            }
        }
        assert_eq!(line(&weft_lines, "missing").unwrap()["response_flags"], "NR");
        assert_no_nack(&control, "envoy-client~127.0.0.1").await;
    });
}

/// The same tracing config drives Envoy's OpenTelemetry tracer: a caller's
/// trace is continued by Envoy and by weft's sidecar behind it, and both
/// report to the same OTLP receiver.
#[test]
fn envoy_reports_spans_of_the_same_trace() {
    let envoy = envoy_bin();
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let (_receiver, received, collector) = otlp::receiver();
        let (app, inbound) = (free_port(), free_port());
        let yaml = backend_yaml("web", inbound) + "---\n" + &otlp::telemetry(collector);
        std::fs::write(dir.path().join("mesh.yaml"), yaml).unwrap();
        let control = Control::start(dir.path()).await;
        let (a, i) = (app.to_string(), inbound.to_string());
        let _web =
            Sidecar::start_with(&control.xds, "web", &["--app-port", &a, "--inbound-port", &i, "--labels", "app=web"])
                .await;
        let _app = spawn(&["demo", "--name", "web", "--port", &a]);
        let xds_port = control.xds_port();
        let (admin, outbound) = (free_port(), free_port());
        let (_envoy, _envoy_dir) = start_envoy(&envoy, &bootstrap(xds_port, admin, outbound));
        let out = format!("127.0.0.1:{outbound}");
        let o = out.clone();
        eventually(30, "Envoy's outbound listener and the app", || {
            let o = o.clone();
            let app = format!("127.0.0.1:{app}");
            async move { up_at(&o).await && up_at(&app).await }
        })
        .await;
        let parent = "00-7bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let r = request(&out, "GET", "http://web/", &[("traceparent", parent)], Default::default()).await;
        assert_eq!(r.status, 200);
        // Envoy flushes its spans every 5 s.
        let spans = otlp::wait_spans(&received, "7bf92f3577b34da6a3ce929d0e0e4736", 2).await;
        let envoy_span = spans.iter().find(|s| s["parent_span_id"] == "00f067aa0ba902b7").expect("Envoy's span");
        let weft_span = spans.iter().find(|s| s["service"] == "web.default").expect("weft's span");
        assert_eq!(weft_span["parent_span_id"], envoy_span["span_id"], "weft continues Envoy's span");
        assert_eq!(envoy_span["service"], "envoy-client.default");
        assert_no_nack(&control, "envoy-client~127.0.0.1").await;
    });
}
