//! Istio's standard request metrics on both sides of a hop, in a format
//! Prometheus' own `promtool` accepts and a Prometheus server scrapes and
//! queries as Istio's dashboards do.

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

/// A PromQL query's result vector, from a real Prometheus server.
async fn query(prom: &str, q: &str) -> Vec<serde_json::Value> {
    let path =
        format!("/api/v1/query?query={}", percent_encoding::utf8_percent_encode(q, percent_encoding::NON_ALPHANUMERIC));
    let v = get(prom, &path, &[]).await.json();
    assert_eq!(v["status"], "success", "{q}: {v}");
    v["data"]["result"].as_array().cloned().unwrap_or_default()
}

/// A real Prometheus server scrapes every proxy of a `weft up` bookinfo
/// under traffic, and queries shaped as Istio's Grafana dashboards write
/// them (service, workload and mesh views: rates by reporter and service,
/// success rate, latency quantiles from the buckets, callers by workload,
/// principal and canonical service, destinations by app and version, bytes,
/// clusters) return series for that traffic with Istio's values.
#[test]
fn prometheus_scrapes_the_mesh_and_dashboard_queries_return_its_traffic() {
    let mut up = Up::start(&repo().join("examples/bookinfo"));
    let gw = format!("127.0.0.1:{}", up.gateway_port);
    let mut targets: Vec<String> = Vec::new();
    for kind in ["workloads", "gateways"] {
        for p in up.info[kind].as_array().unwrap() {
            targets.push(format!("'127.0.0.1:{}'", p["admin"]));
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\nscrape_configs:\n  - job_name: weft\n    metrics_path: /stats/prometheus\n    static_configs: [{{targets: [{}]}}]\n",
        targets.join(", ")
    );
    std::fs::write(dir.path().join("prometheus.yml"), config).unwrap();
    let prom = format!("127.0.0.1:{}", free_port());
    let server = Command::new("prometheus")
        .args([
            format!("--config.file={}", dir.path().join("prometheus.yml").display()),
            format!("--storage.tsdb.path={}", dir.path().join("data").display()),
            format!("--web.listen-address={prom}"),
            "--log.level=warn".to_owned(),
        ])
        .stdin(Stdio::null())
        .spawn()
        .expect("prometheus (scripts/setup installs it)");
    let _server = Proc(server);
    rt().block_on(async {
        eventually(60, "prometheus ready", || {
            let p = prom.clone();
            async move { up_at(&p).await && get(&p, "/-/ready", &[]).await.status == 200 }
        })
        .await;
        let details = "details.default.svc.cluster.local";
        // Traffic in two rounds, each seen scraped: a rate needs a series'
        // count to grow between two samples, as under steady traffic.
        // Both ends' counts: each proxy is scraped on its own schedule.
        let total = format!("sum(istio_requests_total{{destination_service=\"{details}\"}}) by (reporter)");
        for (round, sent) in [(10, 10), (20, 30)] {
            for _ in 0..round {
                assert_eq!(get(&gw, "/", &[]).await.status, 200);
            }
            let (p, q, want) = (prom.clone(), total.clone(), sent.to_string());
            eventually(60, "prometheus to scrape the traffic", || {
                let (p, q, want) = (p.clone(), q.clone(), want.clone());
                async move {
                    let both = query(&p, &q).await;
                    both.len() == 2 && both.iter().all(|r| r["value"][1] == want.as_str())
                }
            })
            .await;
        }

        // Service dashboard: request rate, success rate, latency, callers.
        let rate = query(&prom, &format!("sum(rate(istio_requests_total{{reporter=~\"source|destination\",destination_service=~\"{details}\"}}[1m]))")).await;
        assert!(rate[0]["value"][1].as_str().unwrap().parse::<f64>().unwrap() > 0.0, "{rate:?}");
        let ok = query(&prom, &format!("sum(rate(istio_requests_total{{reporter=\"destination\",destination_service=~\"{details}\",response_code!~\"5.*\"}}[1m])) / sum(rate(istio_requests_total{{reporter=\"destination\",destination_service=~\"{details}\"}}[1m]))")).await;
        assert_eq!(ok[0]["value"][1], "1", "{ok:?}");
        let p99 = query(&prom, &format!("histogram_quantile(0.99, sum(rate(istio_request_duration_milliseconds_bucket{{reporter=\"destination\",destination_service=~\"{details}\"}}[1m])) by (le))")).await;
        assert!(p99[0]["value"][1].as_str().unwrap().parse::<f64>().is_ok_and(|v| v > 0.0), "{p99:?}");
        let callers = query(&prom, &format!("sum(istio_requests_total{{reporter=\"destination\",connection_security_policy=\"mutual_tls\",destination_service=~\"{details}\"}}) by (source_workload, source_workload_namespace, source_canonical_service, source_canonical_revision, source_principal, source_app, source_version)")).await;
        assert_eq!(callers.len(), 1, "{callers:?}");
        let m = &callers[0]["metric"];
        assert_eq!(
            (&m["source_workload"], &m["source_canonical_service"], &m["source_canonical_revision"], &m["source_app"], &m["source_version"]),
            (&"productpage".into(), &"productpage".into(), &"v1".into(), &"productpage".into(), &"v1".into()),
            "{m}"
        );
        assert_eq!(m["source_principal"], "spiffe://cluster.local/ns/default/sa/bookinfo-productpage", "{m}");
        let served = query(&prom, &format!("sum(istio_requests_total{{reporter=\"destination\",destination_service=~\"{details}\"}}) by (destination_principal, destination_canonical_service, destination_version, destination_cluster)")).await;
        let m = &served[0]["metric"];
        assert_eq!(m["destination_principal"], "spiffe://cluster.local/ns/default/sa/default", "{m}");
        assert_eq!((&m["destination_canonical_service"], &m["destination_version"]), (&"details".into(), &"v1".into()));
        assert_eq!(m["destination_cluster"], "Kubernetes");
        // The caller's side names the same identity: the one its mutual TLS
        // to details accepted and got.
        let called = query(&prom, &format!("sum(istio_requests_total{{reporter=\"source\",destination_service=~\"{details}\"}}) by (destination_principal)")).await;
        assert_eq!(called.len(), 1, "{called:?}");
        assert_eq!(called[0]["metric"]["destination_principal"], "spiffe://cluster.local/ns/default/sa/default", "{called:?}");

        // Workload dashboard: productpage's outbound by destination app and version.
        let out = query(&prom, "sum(istio_requests_total{reporter=\"source\",source_workload=\"productpage\",source_workload_namespace=\"default\"}) by (destination_service, destination_app, destination_version, destination_canonical_revision)").await;
        let mut seen: Vec<String> = out
            .iter()
            .map(|r| format!("{}:{}:{}", r["metric"]["destination_app"].as_str().unwrap(), r["metric"]["destination_version"].as_str().unwrap(), r["metric"]["destination_canonical_revision"].as_str().unwrap()))
            .collect();
        seen.sort();
        assert!(seen.contains(&"details:v1:v1".to_owned()) && seen.iter().any(|s| s.starts_with("reviews:v")), "{seen:?}");
        let bytes = query(&prom, "sum(rate(istio_response_bytes_sum{reporter=\"source\",source_workload=\"productpage\"}[1m])) by (destination_service)").await;
        assert!(!bytes.is_empty(), "{bytes:?}");

        // Mesh dashboard: global rate and per-cluster view.
        let mesh = query(&prom, "sum(rate(istio_requests_total{reporter=\"source\"}[1m])) by (source_cluster, destination_cluster)").await;
        assert_eq!(mesh.len(), 1, "{mesh:?}");
        assert_eq!((&mesh[0]["metric"]["source_cluster"], &mesh[0]["metric"]["destination_cluster"]), (&"Kubernetes".into(), &"Kubernetes".into()));
    });
    up.stop();
}
