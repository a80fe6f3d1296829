//! A gateway's TCP and TLS-passthrough servers through a real gateway
//! process: a TLS connection goes to the backend its ClientHello names
//! (VirtualService `tls` rules by `sniHosts`, exact and wildcard), with its
//! bytes passed through untouched; a TCP server's connections follow the
//! `tcp` rule bound to it. A connection no rule takes is closed.

mod common;
use common::*;

#[test]
fn a_gateway_routes_tls_by_sni_and_tcp_by_port() {
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let (offset, tcp_port) = l4::ports();
        let yaml = l4::mesh(tcp_port).await;
        let diags = weft_api::validate(&weft_api::parse_str("mesh.yaml", &yaml).resources);
        assert!(diags.is_empty(), "{diags:#?}");
        std::fs::write(dir.path().join("mesh.yaml"), yaml).unwrap();
        let control = Control::start(dir.path()).await;
        let admin = free_port().to_string();
        let _gw = spawn(&[
            "gateway",
            "--xds",
            &control.xds,
            "--labels",
            "istio=ingressgateway",
            "--port-offset",
            &offset.to_string(),
            "--admin-port",
            &admin,
            "--metrics-port",
            "0",
            "--health-port",
            "0",
        ]);
        let (tls, tcp) = (format!("127.0.0.1:{}", 443 + offset), format!("127.0.0.1:{}", tcp_port + offset));
        let t = tcp.clone();
        eventually(20, "the gateway's TCP listener", || {
            let t = t.clone();
            async move { up_at(&t).await }
        })
        .await;
        l4::check(&tls, &tcp).await;
    });
}

/// On a sidecar, a TLS service port's `tls` rules route by SNI too; a
/// name no rule claims goes to the service itself.
#[test]
fn a_sidecar_routes_a_tls_port_by_sni() {
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let (api, pay) = (l4::backend("api").await, l4::backend("pay").await);
        let svc_port = free_port();
        let routes = format!(
            r#"apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: api}}
spec:
  hosts: [api]
  tls:
    - match: [{{sniHosts: [pay.example.com], port: {svc_port}}}]
      route: [{{destination: {{host: pay, port: {{number: {svc_port}}}}}}}]
"#
        );
        let yaml =
            l4::service("api", "tls-api", svc_port, api) + &l4::service("pay", "tls-api", svc_port, pay) + &routes;
        let diags = weft_api::validate(&weft_api::parse_str("mesh.yaml", &yaml).resources);
        assert!(diags.is_empty(), "{diags:#?}");
        std::fs::write(dir.path().join("mesh.yaml"), yaml).unwrap();
        let control = Control::start(dir.path()).await;
        let _sc = Sidecar::start(&control.xds, "client").await;
        let at = format!("127.0.0.1:{svc_port}");
        let a = at.clone();
        eventually(20, "the sidecar's TLS port", || {
            let a = a.clone();
            async move { up_at(&a).await }
        })
        .await;
        assert_eq!(l4::exchange(&at, &l4::client_hello("pay.example.com")).await, "pay tls=true");
        assert_eq!(l4::exchange(&at, &l4::client_hello("api.example.com")).await, "api tls=true");
        assert_eq!(l4::exchange(&at, b"not tls").await, "api tls=false", "the rest goes to the service");
    });
}

/// Certificates for the HTTPS test: a CA for the servers, one for clients.
struct Pki {
    server_ca: String,
    shop: (String, String),
    api: (String, String),
    client_ca: String,
    client: (String, String),
}

fn pki() -> Pki {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca = |name: &str| {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(rcgen::DnType::CommonName, name);
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let pem = p.self_signed(&key).unwrap().pem();
        (pem, Issuer::new(p, key))
    };
    let leaf = |issuer: &Issuer<'_, KeyPair>, name: &str| {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec![name.to_owned()]).unwrap().signed_by(&key, issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    };
    let (server_ca, servers) = ca("servers");
    let (client_ca, clients) = ca("clients");
    Pki {
        shop: leaf(&servers, "shop.example"),
        api: leaf(&servers, "api.example"),
        client: leaf(&clients, "a-client"),
        server_ca,
        client_ca,
    }
}

fn tls_secret(name: &str, (cert, key): &(String, String), ca: Option<&str>) -> String {
    let indent = |pem: &str| pem.lines().map(|l| format!("    {l}\n")).collect::<String>();
    let ca = ca.map(|c| format!("  ca.crt: |\n{}", indent(c))).unwrap_or_default();
    format!(
        "---\napiVersion: v1\nkind: Secret\nmetadata: {{name: {name}}}\ntype: kubernetes.io/tls\nstringData:\n  tls.crt: |\n{}  tls.key: |\n{}{ca}",
        indent(cert),
        indent(key)
    )
}

/// GET `path` over TLS to `addr`, asking for `name` and checking the
/// server's certificate for it against `ca`, with `client` if given.
async fn https_get(addr: &str, name: &str, ca: &str, client: Option<&(String, String)>) -> Result<Resp, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_slice(ca.as_bytes()).unwrap()).unwrap();
    let builder =
        rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
    let cfg = match client {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => builder
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_slice(cert.as_bytes()).unwrap()],
                PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
            )
            .unwrap(),
    };
    let tcp = tokio::net::TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let server = rustls::pki_types::ServerName::try_from(name.to_owned()).unwrap();
    let io = tokio_rustls::TlsConnector::from(std::sync::Arc::new(cfg))
        .connect(server, tcp)
        .await
        .map_err(|e| e.to_string())?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(io)).await.map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let req =
        http::Request::get("/hello").header("host", name).body(http_body_util::Empty::<bytes::Bytes>::new()).unwrap();
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = http_body_util::BodyExt::collect(resp.into_body()).await.map_err(|e| e.to_string())?.to_bytes();
    Ok(Resp { status, headers, body })
}

/// HTTPS servers the gateway terminates: the certificate its ClientHello's
/// name picks (SIMPLE), a client certificate required where MUTUAL, both
/// from `kubernetes.io/tls` Secrets; plain HTTP redirected by `httpsRedirect`.
#[test]
fn a_gateway_terminates_https_by_server_name() {
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        // An offset that leaves both 80 and 443 free once added.
        let offset = loop {
            let o = free_port() - 443;
            if o >= 80 && std::net::TcpListener::bind(("127.0.0.1", 80 + o)).is_ok() {
                break o;
            }
        };
        let (_web, port) = demo("web", "v1").await;
        let pki = pki();
        let yaml = backend_yaml("web", port)
            + &tls_secret("shop-cert", &pki.shop, None)
            + &tls_secret("api-cert", &pki.api, Some(&pki.client_ca))
            + r#"---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: edge}
spec:
  selector: {istio: ingressgateway}
  servers:
    - port: {number: 443, name: https-shop, protocol: HTTPS}
      hosts: [shop.example]
      tls: {mode: SIMPLE, credentialName: shop-cert}
    - port: {number: 443, name: https-api, protocol: HTTPS}
      hosts: [api.example]
      tls: {mode: MUTUAL, credentialName: api-cert}
    - port: {number: 80, name: http, protocol: HTTP}
      hosts: [shop.example]
      tls: {httpsRedirect: true}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web}
spec:
  hosts: [shop.example, api.example]
  gateways: [edge]
  http: [{route: [{destination: {host: web}}]}]
"#;
        let diags = weft_api::validate(&weft_api::parse_str("mesh.yaml", &yaml).resources);
        let said: Vec<_> = diags.iter().filter(|d| d.severity != weft_api::Severity::Info).collect();
        assert!(said.is_empty(), "{said:#?}");
        std::fs::write(dir.path().join("mesh.yaml"), yaml).unwrap();
        let control = Control::start(dir.path()).await;
        let admin = free_port().to_string();
        let off = offset.to_string();
        let args = ["gateway", "--xds", &control.xds, "--labels", "istio=ingressgateway", "--port-offset", &off];
        let _gw = spawn(&[&args[..], &["--admin-port", &admin, "--metrics-port", "0", "--health-port", "0"]].concat());
        let (https, http) = (format!("127.0.0.1:{}", 443 + offset), format!("127.0.0.1:{}", 80 + offset));
        for addr in [&https, &http] {
            let a = addr.clone();
            eventually(20, "the gateway's HTTPS and HTTP listeners", || {
                let a = a.clone();
                async move { up_at(&a).await }
            })
            .await;
        }
        let shop = https_get(&https, "shop.example", &pki.server_ca, None).await.expect("shop's certificate, checked");
        assert_eq!(shop.status, 200);
        assert_eq!(shop.json()["path"], "/hello", "{}", shop.json());
        // MUTUAL: no client certificate, no request; one of the client CA's, served.
        let refused = https_get(&https, "api.example", &pki.server_ca, None).await;
        assert!(refused.is_err() || refused.as_ref().is_ok_and(|r| r.status >= 400), "{:?}", refused.map(|r| r.status));
        let api = https_get(&https, "api.example", &pki.server_ca, Some(&pki.client))
            .await
            .expect("a client certificate of its CA");
        assert_eq!(api.status, 200);
        // A name no server has: no certificate to show.
        assert!(https_get(&https, "other.example", &pki.server_ca, None).await.is_err());
        // Plain HTTP for the shop is redirected.
        let r = get(&http, "/cart?x=1", &[("host", "shop.example")]).await;
        assert_eq!(r.status, 301);
        assert_eq!(r.headers["location"], "https://shop.example/cart?x=1");
    });
}
