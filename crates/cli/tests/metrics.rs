//! Istio's standard request metrics on both sides of a hop, in a format
//! Prometheus' own `promtool` accepts.

mod common;
use common::*;
use std::io::Write;
use std::process::{Command, Stdio};

fn series<'a>(page: &'a str, name: &str, labels: &[(&str, &str)]) -> Vec<&'a str> {
    page.lines()
        .filter(|l| l.starts_with(name) && labels.iter().all(|(k, v)| l.contains(&format!("{k}=\"{v}\""))))
        .collect()
}

fn value(line: &str) -> f64 {
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

#[test]
fn request_metrics_have_istio_names_and_labels_and_pass_promtool() {
    let mut up = Up::start(&repo().join("examples/bookinfo"));
    let gw = format!("127.0.0.1:{}", up.gateway_port);
    let admin = |name: &str| -> String {
        let w = up.info["workloads"].as_array().unwrap().iter().find(|w| w["name"] == name).unwrap();
        format!("127.0.0.1:{}", w["admin"])
    };
    let (pp, details) = (admin("productpage"), admin("details"));
    rt().block_on(async {
        for _ in 0..30 {
            assert_eq!(get(&gw, "/", &[]).await.status, 200);
        }
        // Outbound (reporter=source) at productpage's sidecar.
        let page = String::from_utf8(get(&pp, "/stats/prometheus", &[]).await.body.to_vec()).unwrap();
        let out = series(
            &page,
            "istio_requests_total",
            &[
                ("reporter", "source"),
                ("source_workload", "productpage"),
                ("destination_service", "details.default.svc.cluster.local"),
                ("destination_workload", "details"),
                ("response_code", "200"),
            ],
        );
        assert_eq!(out.len(), 1, "{page}");
        assert_eq!(value(out[0]), 30.0);
        // Istio's: the source cannot know how the callee secured the hop.
        assert!(out[0].contains(r#"connection_security_policy="unknown""#), "{}", out[0]);
        let hist = series(
            &page,
            "istio_request_duration_milliseconds_count",
            &[("reporter", "source"), ("destination_service_name", "details")],
        );
        assert_eq!(value(hist[0]), 30.0, "{page}");
        assert!(!series(&page, "istio_response_bytes_bucket", &[("destination_service_name", "details")]).is_empty());
        // Inbound (reporter=destination) at details' sidecar knows who called.
        let page = String::from_utf8(get(&details, "/stats/prometheus", &[]).await.body.to_vec()).unwrap();
        let inb = series(
            &page,
            "istio_requests_total",
            &[
                ("reporter", "destination"),
                ("source_workload", "productpage"),
                ("destination_workload", "details"),
                ("response_code", "200"),
            ],
        );
        assert_eq!(inb.len(), 1, "{page}");
        assert_eq!(value(inb[0]), 30.0);
        // The hop was mutual TLS (`weft up` gives every proxy a certificate).
        assert!(inb[0].contains(r#"connection_security_policy="mutual_tls""#), "{}", inb[0]);
        assert!(inb[0].contains(r#"source_workload_namespace="default""#), "{}", inb[0]);

        let mut promtool = Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("promtool (scripts/setup installs it)");
        promtool.stdin.take().unwrap().write_all(page.as_bytes()).unwrap();
        let out = promtool.wait_with_output().unwrap();
        let report = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        // The page parses; the only lint notes allowed are Istio's fixed
        // `_milliseconds` unit and HELP lines written OpenMetrics-style (on
        // the family name, not the `_total` series).
        let unexpected: Vec<&str> = report
            .lines()
            .filter(|l| !l.trim().is_empty())
            .filter(|l| {
                !(l.starts_with("istio_request_duration_milliseconds use base unit")
                    || l.ends_with("_total no help text"))
            })
            .collect();
        assert!(unexpected.is_empty(), "promtool: {report}");
        println!("promtool: {report}");
    });
    up.stop();
}
