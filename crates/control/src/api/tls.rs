//! The API's TLS port (Istio's 15012, for the CA): the control plane's own
//! certificate, signed by the mesh root, and an optional client
//! certificate of the mesh, whose identity proves who calls (renewal,
//! registration) without a token.

use super::Api;
use crate::auth::Identity;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use std::sync::Arc;
use tokio::net::TcpListener;

/// The control plane's SPIFFE ID: what proxies see on the TLS port.
pub const CONTROL_IDENTITY: &str = "spiffe://cluster.local/ns/istio-system/sa/weft-control";

/// The TLS configuration: the control plane's certificate for the
/// listener's address; client certificates of the mesh root, optional.
pub fn server_config(api: &Api, listen: std::net::IpAddr) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut ips = vec![listen, std::net::Ipv4Addr::LOCALHOST.into(), std::net::Ipv6Addr::LOCALHOST.into()];
    ips.dedup();
    let (cert_pem, key_pem) = api.ca.server_cert(CONTROL_IDENTITY, &ips)?;
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(cert_pem.as_bytes()).collect::<Result<_, _>>()?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())?;
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(api.ca.root_pem().as_bytes()) {
        roots.add(c?)?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()?;
    let cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)?;
    Ok(Arc::new(cfg))
}

/// Serves the API over TLS on `listener`; each request learns the identity
/// its connection's client certificate proved.
pub async fn serve(api: Arc<Api>, listener: TcpListener, cfg: Arc<rustls::ServerConfig>) {
    let acceptor = tokio_rustls::TlsAcceptor::from(cfg);
    loop {
        let Ok((sock, peer)) = listener.accept().await else { continue };
        let (api, acceptor) = (api.clone(), acceptor.clone());
        tokio::spawn(async move {
            let handshake = tokio::time::timeout(std::time::Duration::from_secs(10), acceptor.accept(sock)).await;
            let stream = match handshake {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => return tracing::debug!(%peer, error = %e, "API TLS handshake failed"),
                Err(_) => return tracing::debug!(%peer, "API TLS handshake timed out"),
            };
            let caller = stream.get_ref().1.peer_certificates().and_then(|c| c.first()).and_then(|c| identity(&api, c));
            let svc = hyper::service::service_fn(move |req| super::handle(api.clone(), caller.clone(), req));
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

/// The workload identity a verified client certificate names.
fn identity(api: &Api, der: &CertificateDer<'_>) -> Option<Identity> {
    use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    let san = cert.subject_alternative_name().ok()??;
    san.value.general_names.iter().find_map(|n| match n {
        GeneralName::URI(u) => api.ca.identity_of(u),
        _ => None,
    })
}
