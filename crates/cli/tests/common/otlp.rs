//! The tracing tests' collector: an OTLP/gRPC receiver on OpenTelemetry's
//! own protobuf definitions (`tests/otlp/receiver.py`), and the mesh
//! config and Telemetry that send spans to it.

use super::*;
use std::process::{Command, Stdio};

/// The OTLP/gRPC receiver, and the spans it printed.
pub fn receiver() -> (Proc, Lines, u16) {
    receiver_with(&[])
}

/// The OTLP receiver started with `args` (`--http`: OTLP over HTTP).
pub fn receiver_with(args: &[&str]) -> (Proc, Lines, u16) {
    let script = repo().join("crates/cli/tests/otlp/receiver.py");
    let mut child = Command::new("python3")
        .arg(script)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 with opentelemetry-proto and grpcio (scripts/setup installs them)");
    let lines = Lines::default();
    lines.follow(child.stdout.take().unwrap());
    let start = std::time::Instant::now();
    let port = loop {
        if let Some(p) = lines.all().iter().find_map(|l| l.strip_prefix("ready ").map(|p| p.parse().unwrap())) {
            break p;
        }
        assert!(start.elapsed() < std::time::Duration::from_secs(20), "the OTLP receiver did not start");
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    (Proc(child), lines, port)
}

/// The `istio` mesh config with an OpenTelemetry provider `otel` at
/// `collector` (the default tracing provider), and a mesh-wide Telemetry
/// sampling every request, with a literal and a header tag.
pub fn telemetry(collector: u16) -> String {
    format!(
        "apiVersion: v1
kind: ConfigMap
metadata: {{name: istio, namespace: istio-system}}
data:
  mesh: |
    extensionProviders:
    - name: otel
      opentelemetry: {{service: 127.0.0.1, port: {collector}}}
    defaultProviders:
      tracing: [otel]
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {{name: mesh-default, namespace: istio-system}}
spec:
  tracing:
    - randomSamplingPercentage: 100
      customTags:
        team: {{literal: {{value: shop}}}}
        caller: {{header: {{name: x-caller, defaultValue: nobody}}}}
"
    )
}

/// Waits for `n` spans of `trace`, showing all received if they do not come.
pub async fn wait_spans(lines: &Lines, trace: &str, n: usize) -> Vec<serde_json::Value> {
    for _ in 0..1000 {
        let got = spans(lines, trace);
        if got.len() >= n {
            return got;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("no {n} spans of trace {trace}; received:\n{}", lines.all().join("\n"));
}

/// Spans received for `trace`, by service and kind (2: server, 3: client).
pub fn spans(lines: &Lines, trace: &str) -> Vec<serde_json::Value> {
    lines.json().into_iter().filter(|s| s["trace_id"] == trace).collect()
}
