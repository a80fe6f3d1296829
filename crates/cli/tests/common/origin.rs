//! Pieces of the TLS origination tests, for any data plane as the client
//! (weft's sidecar, Envoy): an HTTPS server outside the mesh, the
//! ServiceEntry and DestinationRule that reach it, and a wait for the
//! answer a request gets.

use super::*;
use std::path::Path;

/// An HTTPS server on a free port of 127.0.0.1 with `cert` (PEM chain and
/// key), asking clients for a certificate of `client_ca` when given. It
/// answers every request `200` with a body naming the server name the
/// client asked for and whether it showed a certificate:
/// `tls sni=<name> client=<yes|no>`.
pub async fn tls_server(cert: &(String, String), client_ca: Option<&str>) -> u16 {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use std::sync::Arc;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder =
        rustls::ServerConfig::builder_with_provider(provider.clone()).with_safe_default_protocol_versions().unwrap();
    let builder = match client_ca {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(CertificateDer::from_pem_slice(ca.as_bytes()).unwrap()).unwrap();
            let v =
                rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider).build().unwrap();
            builder.with_client_cert_verifier(v)
        }
        None => builder.with_no_client_auth(),
    };
    let chain = CertificateDer::pem_slice_iter(cert.0.as_bytes()).collect::<Result<Vec<_>, _>>().unwrap();
    let mut cfg = builder.with_single_cert(chain, PrivateKeyDer::from_pem_slice(cert.1.as_bytes()).unwrap()).unwrap();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    tcp_server(move |tcp| {
        let acceptor = acceptor.clone();
        async move {
            let Ok(tls) = acceptor.accept(tcp).await else { return };
            let (_, conn) = tls.get_ref();
            let body = format!(
                "tls sni={} client={}",
                conn.server_name().unwrap_or("-"),
                if conn.peer_certificates().is_some() { "yes" } else { "no" }
            );
            let service = hyper::service::service_fn(move |_req| {
                let body = body.clone();
                async move {
                    Ok::<_, std::convert::Infallible>(hyper::Response::new(http_body_util::Full::new(Bytes::from(
                        body,
                    ))))
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                .await;
        }
    })
    .await
}

/// A ServiceEntry for `host` on port 80 (HTTP) and `tcp_port` (TCP), at
/// 127.0.0.1:`port`, with a DestinationRule whose `tls` is `tls`.
pub fn external(host: &str, port: u16, tcp_port: u16, tls: &str) -> String {
    format!(
        "---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: {host}}}\nspec:\n  hosts: [{host}]\n  location: MESH_EXTERNAL\n  resolution: STATIC\n  ports: [{{number: 80, name: http, protocol: HTTP}}, {{number: {tcp_port}, name: tcp, protocol: TCP}}]\n  endpoints: [{{address: 127.0.0.1, ports: {{http: {port}, tcp: {port}}}}}]\n---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: {host}}}\nspec:\n  host: {host}\n  trafficPolicy:\n    tls: {tls}\n"
    )
}

pub fn write_pem(dir: &Path, name: &str, pem: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, pem).unwrap();
    p.to_string_lossy().into_owned()
}

/// Waits (20 s at most) until a request for `host` through `out` answers
/// `status` with a body containing `text`; returns that answer.
pub async fn answers(out: &str, host: &str, status: u16, text: &str) -> String {
    let (out, host, text) = (out.to_owned(), host.to_owned(), text.to_owned());
    let seen = std::sync::Arc::new(parking_lot::Mutex::new(String::new()));
    let s = seen.clone();
    let what = format!("{status} with {text:?} from {host}");
    let done = eventually_quiet(20, || {
        let (out, host, text, s) = (out.clone(), host.clone(), text.clone(), s.clone());
        async move {
            // Until the proxy listens, its port refuses: not an answer yet.
            match try_request(&out, "GET", &format!("http://{host}/"), &[], Default::default()).await {
                Ok(r) => {
                    let body = String::from_utf8_lossy(&r.body).into_owned();
                    *s.lock() = format!("{} {body}", r.status);
                    r.status == status && body.contains(&text)
                }
                Err(e) => {
                    *s.lock() = e;
                    false
                }
            }
        }
    })
    .await;
    let last = seen.lock().clone();
    assert!(done, "waited for {what}; last answer: {last}");
    last
}

/// Polls `check` every 100 ms for up to `secs` seconds; whether it held.
pub async fn eventually_quiet<F: std::future::Future<Output = bool>>(secs: u64, mut check: impl FnMut() -> F) -> bool {
    let until = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while std::time::Instant::now() < until {
        if check().await {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    false
}
