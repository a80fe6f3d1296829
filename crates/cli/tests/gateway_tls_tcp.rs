//! A gateway that ends TLS, then routes the bytes as TCP, through a real
//! gateway process: an Istio Gateway server of `protocol: TLS` with
//! `tls.mode: SIMPLE` and the VirtualService `tcp` rule bound to it, and a
//! Gateway API `TLS` listener of `mode: Terminate` with its TCPRoute. The
//! client checks the gateway's certificate for the name it asked; the
//! backend gets the bytes in the clear.

mod common;
use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Opens TLS to `addr` for `name` (its certificate checked against `ca`),
/// sends `hello` and reads the answer until the backend closes.
async fn over_tls(addr: &str, name: &str, ca: &str, hello: &str) -> Result<String, String> {
    let mut io = https::tls_stream(addr, name, https::client_config(ca, None, None)).await?;
    io.write_all(hello.as_bytes()).await.map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    let read = tokio::time::timeout(std::time::Duration::from_secs(10), io.read_to_end(&mut out)).await;
    // The backend closes without a TLS close_notify reaching the client.
    if let Ok(Err(e)) = read
        && out.is_empty()
    {
        return Err(e.to_string());
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// Starts the gateway with `labels` once the config in `dir` validates
/// (with nothing said but information) and waits for its port `port`.
async fn gateway_for(dir: &std::path::Path, yaml: &str, labels: &str, port: u16) -> (Control, Proc, String) {
    std::fs::write(dir.join("mesh.yaml"), yaml).unwrap();
    let out = std::process::Command::new(weft()).arg("validate").arg(dir).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && !text.contains("warning["), "{text}");
    let control = Control::start(dir).await;
    let offset = https::offset();
    let gw = gateway(&control, labels, offset, &[]);
    let addr = format!("127.0.0.1:{}", port + offset);
    eventually(30, "the gateway's TLS listener", || {
        let a = addr.clone();
        async move { up_at(&a).await }
    })
    .await;
    (control, gw, addr)
}

#[test]
fn an_istio_tls_server_ends_tls_then_routes_tcp() {
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let pki = https::pki();
        let db = l4::backend("db").await;
        let yaml = l4::service("db", "tcp", 5432, db)
            + &https::tls_secret("shop-cert", &pki.shop, None)
            + r#"---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: edge}
spec:
  selector: {istio: ingressgateway}
  servers:
    - port: {number: 443, name: db-tls, protocol: TLS}
      hosts: [shop.example]
      tls: {mode: SIMPLE, credentialName: shop-cert}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: db}
spec:
  hosts: [shop.example]
  gateways: [edge]
  tcp: [{route: [{destination: {host: db, port: {number: 5432}}}]}]
"#;
        let (_control, _gw, addr) = gateway_for(dir.path(), &yaml, "istio=ingressgateway", 443).await;
        // The gateway's certificate, checked for the name; the bytes reach
        // the backend decrypted.
        assert_eq!(over_tls(&addr, "shop.example", &pki.server_ca, "hi").await.as_deref(), Ok("db tls=false"));
        // A name no server has: no certificate for it, nothing reaches the backend.
        assert!(over_tls(&addr, "api.example", &pki.server_ca, "hi").await.is_err());
        // Plaintext on the TLS port is closed.
        assert_eq!(l4::exchange(&addr, b"plain").await, "");
    });
}

#[test]
fn a_gateway_api_tls_listener_terminates_for_its_tcp_route() {
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let pki = https::pki();
        let db = l4::backend("db").await;
        let yaml = l4::service("db", "tcp", 5432, db)
            + &https::tls_secret("api-cert", &pki.api, None)
            + r#"---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: edge}
spec:
  gatewayClassName: istio
  listeners:
    - name: db
      port: 443
      protocol: TLS
      hostname: api.example
      tls: {mode: Terminate, certificateRefs: [{name: api-cert}]}
---
apiVersion: gateway.networking.k8s.io/v1alpha2
kind: TCPRoute
metadata: {name: db}
spec:
  parentRefs: [{name: edge, sectionName: db}]
  rules: [{backendRefs: [{name: db, port: 5432}]}]
"#;
        let labels = "gateway.networking.k8s.io/gateway-name=edge";
        let (_control, _gw, addr) = gateway_for(dir.path(), &yaml, labels, 443).await;
        assert_eq!(over_tls(&addr, "api.example", &pki.server_ca, "hi").await.as_deref(), Ok("db tls=false"));
        assert!(over_tls(&addr, "shop.example", &pki.server_ca, "hi").await.is_err());
    });
}
