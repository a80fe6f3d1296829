//! A gateway's TCP and TLS-passthrough servers, for any data plane that
//! runs as the gateway (weft's, Envoy): backends that say who answered,
//! the Gateway and VirtualServices, and the checks.

use super::*;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A backend that reads what arrives first and answers with its name and
/// whether those bytes began a TLS handshake record.
pub async fn backend(name: &'static str) -> u16 {
    tcp_server(move |mut s| async move {
        let mut buf = vec![0u8; 4096];
        let n = s.read(&mut buf).await.unwrap_or(0);
        let tls = n > 0 && buf[0] == 0x16;
        let _ = s.write_all(format!("{name} tls={tls}").as_bytes()).await;
    })
    .await
}

pub fn service(name: &str, port_name: &str, port: u16, backend: u16) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}}}\nspec:\n  selector: {{app: {name}}}\n  ports: [{{name: {port_name}, port: {port}}}]\n---\napiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {{name: {name}}}\nspec: {{address: 127.0.0.1, ports: {{{port_name}: {backend}}}, labels: {{app: {name}}}}}\n---\n"
    )
}

pub const ROUTES: &str = r#"apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: edge}
spec:
  selector: {istio: ingressgateway}
  servers:
    - port: {number: 443, name: tls, protocol: TLS}
      hosts: ["*.example.com"]
      tls: {mode: PASSTHROUGH}
    - port: {number: TCP_PORT, name: tcp, protocol: TCP}
      hosts: ["*"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: passthrough}
spec:
  hosts: ["*.example.com"]
  gateways: [edge]
  tls:
    - match: [{sniHosts: [pay.example.com], port: 443}]
      route: [{destination: {host: pay, port: {number: 443}}}]
    - match: [{sniHosts: ["*.example.com"]}]
      route: [{destination: {host: shop}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: db}
spec:
  hosts: [db]
  gateways: [edge]
  tcp:
    - match: [{port: TCP_PORT}]
      route: [{destination: {host: db}}]
"#;

/// A ClientHello for `sni`, as rustls writes it.
pub fn client_hello(sni: &str) -> Vec<u8> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    let mut conn = rustls::ClientConnection::new(Arc::new(config), sni.to_owned().try_into().unwrap()).unwrap();
    let mut bytes = Vec::new();
    conn.write_tls(&mut bytes).unwrap();
    bytes
}

/// Sends `bytes` to `addr` and reads the answer until the other side closes.
pub async fn exchange(addr: &str, bytes: &[u8]) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(10), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// The gateway's ports: a port offset that puts its server port 443 on a
/// free port, and a TCP server port that the offset puts on another.
pub fn ports() -> (u16, u16) {
    loop {
        let offset = free_port() - 443;
        if let Some(tcp) = free_port().checked_sub(offset).filter(|p| *p > 0 && *p != 443) {
            return (offset, tcp);
        }
    }
}

/// The config: `pay`, `shop` (TLS) and `db` (TCP) behind the gateway
/// `edge`, whose TLS server is on 443 and TCP server on `tcp_port`.
pub async fn mesh(tcp_port: u16) -> String {
    let (pay, shop, db) = (backend("pay").await, backend("shop").await, backend("db").await);
    let routes = ROUTES.replace("TCP_PORT", &tcp_port.to_string());
    service("pay", "tls", 443, pay) + &service("shop", "tls", 443, shop) + &service("db", "tcp", 5432, db) + &routes
}

/// What a gateway serving `mesh()` must do, at its TLS (`tls`) and TCP (`tcp`) servers' addresses.
pub async fn check(tls: &str, tcp: &str) {
    // The exact name, then the wildcard; the bytes arrive as the client sent them.
    assert_eq!(exchange(tls, &client_hello("pay.example.com")).await, "pay tls=true");
    assert_eq!(exchange(tls, &client_hello("www.example.com")).await, "shop tls=true");
    assert_eq!(exchange(tls, &client_hello("PAY.example.com")).await, "pay tls=true", "names are case-blind");
    // No rule for the name, or no TLS at all: closed, nothing reaches a backend.
    assert_eq!(exchange(tls, &client_hello("pay.example.org")).await, "");
    assert_eq!(exchange(tls, b"GET / HTTP/1.1\r\nhost: pay.example.com\r\n\r\n").await, "");
    // The TCP server follows its `tcp` rule.
    assert_eq!(exchange(tcp, b"ping").await, "db tls=false");
}
