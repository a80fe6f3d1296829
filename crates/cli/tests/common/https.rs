//! A gateway's HTTPS servers, for any data plane that runs as the gateway
//! (weft's, Envoy): the certificates, the config (a SIMPLE and a MUTUAL
//! server on 443, an HTTP server on 80 redirecting to https) and the checks.

use super::*;

/// Certificates for the HTTPS test: a CA for the servers, one for clients.
pub struct Pki {
    pub server_ca: String,
    pub shop: (String, String),
    pub api: (String, String),
    pub client_ca: String,
    pub client: (String, String),
    /// Of the client CA too, under another name (`b-client`).
    pub other_client: (String, String),
}

pub fn pki() -> Pki {
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
        other_client: leaf(&clients, "b-client"),
        server_ca,
        client_ca,
    }
}

/// A `kubernetes.io/tls` Secret holding `cert` and `key`, and `ca.crt` when given.
pub fn tls_secret(name: &str, (cert, key): &(String, String), ca: Option<&str>) -> String {
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
pub async fn https_get(addr: &str, name: &str, ca: &str, client: Option<&(String, String)>) -> Result<Resp, String> {
    https_get_offering(addr, name, ca, client, None).await
}

/// `https_get` offering only `suite` (and its TLS version) when given.
pub async fn https_get_offering(
    addr: &str,
    name: &str,
    ca: &str,
    client: Option<&(String, String)>,
    suite: Option<rustls::SupportedCipherSuite>,
) -> Result<Resp, String> {
    let mut sender = connect(addr, name, client_config(ca, client, suite)).await?;
    send(&mut sender, name).await
}

/// A client trusting `ca`, with `client`'s certificate if given, offering
/// only `suite` (and its TLS version) when given.
pub fn client_config(
    ca: &str,
    client: Option<&(String, String)>,
    suite: Option<rustls::SupportedCipherSuite>,
) -> rustls::ClientConfig {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_slice(ca.as_bytes()).unwrap()).unwrap();
    let mut provider = rustls::crypto::ring::default_provider();
    let mut versions = rustls::DEFAULT_VERSIONS.to_vec();
    if let Some(only) = suite {
        provider.cipher_suites = vec![only];
        versions = vec![only.version()];
    }
    let builder = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(provider))
        .with_protocol_versions(&versions)
        .unwrap()
        .with_root_certificates(roots);
    match client {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => builder
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_slice(cert.as_bytes()).unwrap()],
                PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
            )
            .unwrap(),
    }
}

/// TLS to `addr` for `name`, with `cfg`.
pub async fn tls_stream(
    addr: &str,
    name: &str,
    cfg: rustls::ClientConfig,
) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>, String> {
    let tcp = tokio::net::TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let server = rustls::pki_types::ServerName::try_from(name.to_owned()).unwrap();
    tokio_rustls::TlsConnector::from(std::sync::Arc::new(cfg)).connect(server, tcp).await.map_err(|e| e.to_string())
}

/// An HTTP/1.1 connection over TLS to `addr` for `name`, with `cfg`.
pub async fn connect(
    addr: &str,
    name: &str,
    cfg: rustls::ClientConfig,
) -> Result<hyper::client::conn::http1::SendRequest<http_body_util::Empty<bytes::Bytes>>, String> {
    let io = tls_stream(addr, name, cfg).await?;
    let (sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(io)).await.map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    Ok(sender)
}

/// GET /hello for `name` on an open connection.
pub async fn send(
    sender: &mut hyper::client::conn::http1::SendRequest<http_body_util::Empty<bytes::Bytes>>,
    name: &str,
) -> Result<Resp, String> {
    let req =
        http::Request::get("/hello").header("host", name).body(http_body_util::Empty::<bytes::Bytes>::new()).unwrap();
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = http_body_util::BodyExt::collect(resp.into_body()).await.map_err(|e| e.to_string())?.to_bytes();
    Ok(Resp { status, headers, body })
}

/// A port offset that leaves both 80 and 443 free once added.
pub fn offset() -> u16 {
    loop {
        let o = free_port() - 443;
        if o >= 80 && std::net::TcpListener::bind(("127.0.0.1", 80 + o)).is_ok() {
            return o;
        }
    }
}

/// The config, with its backend `web` (a demo, kept alive by the `Proc`).
pub async fn mesh(pki: &Pki) -> (String, Proc) {
    let (web, port) = demo("web", "v1").await;
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
      tls: {mode: SIMPLE, credentialName: shop-cert, minProtocolVersion: TLSV1_3}
    - port: {number: 443, name: https-api, protocol: HTTPS}
      hosts: [api.example]
      tls:
        mode: MUTUAL
        credentialName: api-cert
        subjectAltNames: [a-client]
        maxProtocolVersion: TLSV1_2
        cipherSuites: [ECDHE-ECDSA-AES128-GCM-SHA256]
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
    (yaml, web)
}

/// What a gateway serving `mesh()` on `offset` must do.
pub async fn check(offset: u16, pki: &Pki) {
    let (https, http) = (format!("127.0.0.1:{}", 443 + offset), format!("127.0.0.1:{}", 80 + offset));
    for addr in [&https, &http] {
        let a = addr.clone();
        eventually(30, "the gateway's HTTPS and HTTP listeners", || {
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
    // Versions, suites and client names as each server says: the shop
    // takes TLS 1.3 only; the API TLS 1.2 with one suite, from a-client.
    use rustls::crypto::ring::cipher_suite::{
        TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 as AES128, TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256 as CHACHA,
    };
    let old = https_get_offering(&https, "shop.example", &pki.server_ca, None, Some(AES128)).await;
    assert!(old.is_err(), "a TLS 1.2 client was served by a TLS 1.3 server: {:?}", old.map(|r| r.status));
    let api = https_get_offering(&https, "api.example", &pki.server_ca, Some(&pki.client), Some(AES128)).await;
    assert_eq!(api.expect("TLS 1.2 with the server's suite").status, 200);
    let other = https_get_offering(&https, "api.example", &pki.server_ca, Some(&pki.client), Some(CHACHA)).await;
    assert!(other.is_err(), "a suite the server does not offer: {:?}", other.map(|r| r.status));
    let b = https_get(&https, "api.example", &pki.server_ca, Some(&pki.other_client)).await;
    assert!(
        b.is_err() || b.as_ref().is_ok_and(|r| r.status >= 400),
        "b-client is not a-client: {:?}",
        b.map(|r| r.status)
    );
    // A name no server has: no certificate to show.
    assert!(https_get(&https, "other.example", &pki.server_ca, None).await.is_err());
    // Plain HTTP for the shop is redirected.
    let r = get(&http, "/cart?x=1", &[("host", "shop.example")]).await;
    assert_eq!(r.status, 301);
    assert_eq!(r.headers["location"], "https://shop.example/cart?x=1");
}
