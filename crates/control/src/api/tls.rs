//! The API's TLS port (Istio's 15012, for the CA and xDS): the control
//! plane's own certificate, signed by the mesh root, and an optional
//! client certificate of the mesh, whose identity proves who calls
//! (renewal, registration) without a token. xDS (gRPC, HTTP/2) is served
//! here too, to proxies that show their certificate: each gets the config
//! of the namespace it proves (`ads::Proven`).

use super::Api;
use crate::auth::Identity;
use http_body_util::BodyExt;
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
pub fn server_config(ca: &crate::ca::Ca, listen: std::net::IpAddr) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut ips = vec![listen, std::net::Ipv4Addr::LOCALHOST.into(), std::net::Ipv6Addr::LOCALHOST.into()];
    ips.dedup();
    let (cert_pem, key_pem) = ca.server_cert(CONTROL_IDENTITY, &ips)?;
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(cert_pem.as_bytes()).collect::<Result<_, _>>()?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())?;
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca.root_pem().as_bytes()) {
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
pub async fn serve(api: Arc<Api>, listener: TcpListener) {
    loop {
        let Ok((sock, peer)) = listener.accept().await else { continue };
        // The configuration of the moment: a reloaded CA's from then on.
        let acceptor = tokio_rustls::TlsAcceptor::from(api.tls.load_full());
        let api = api.clone();
        tokio::spawn(async move {
            let handshake = tokio::time::timeout(std::time::Duration::from_secs(10), acceptor.accept(sock)).await;
            let stream = match handshake {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => return tracing::debug!(%peer, error = %e, "API TLS handshake failed"),
                Err(_) => return tracing::debug!(%peer, "API TLS handshake timed out"),
            };
            let caller = stream.get_ref().1.peer_certificates().and_then(|c| c.first()).and_then(|c| identity(&api, c));
            let local = stream.get_ref().0.local_addr().ok();
            let svc = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let (api, caller) = (api.clone(), caller.clone());
                async move {
                    if req.uri().path().starts_with(ADS_PATH) {
                        let conn =
                            tonic::transport::server::TcpConnectInfo { local_addr: local, remote_addr: Some(peer) };
                        return Ok::<_, std::convert::Infallible>(xds(&api, caller, conn, req).await);
                    }
                    let resp = super::handle(api, caller, req).await?;
                    Ok(resp.map(|b| b.map_err(|never| match never {}).boxed_unsync()))
                }
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

const ADS_PATH: &str = "/envoy.service.discovery.v3.AggregatedDiscoveryService/";

type Body = http_body_util::combinators::UnsyncBoxBody<bytes::Bytes, Box<dyn std::error::Error + Send + Sync>>;

/// One xDS stream, from a proxy that showed its workload certificate.
async fn xds(
    api: &Api,
    caller: Option<Identity>,
    conn: tonic::transport::server::TcpConnectInfo,
    mut req: hyper::Request<hyper::body::Incoming>,
) -> hyper::Response<Body> {
    use tower::Service;
    let box_body = |r: hyper::Response<tonic::body::Body>| r.map(|b| b.map_err(Into::into).boxed_unsync());
    let Some(id) = caller else {
        api.hub.metrics.unauthorized("xds");
        let refused = tonic::Status::unauthenticated(
            "xDS on the TLS port needs the proxy's workload certificate (`weft proxy --ca ... --xds https://...`)",
        );
        return box_body(refused.into_http());
    };
    req.extensions_mut().insert(crate::ads::Proven(id));
    req.extensions_mut().insert(conn);
    let mut svc = api.xds.clone();
    match svc.call(req).await {
        Ok(resp) => box_body(resp),
        Err(never) => match never {},
    }
}

/// The workload identity a verified client certificate names.
fn identity(api: &Api, der: &CertificateDer<'_>) -> Option<Identity> {
    use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    let san = cert.subject_alternative_name().ok()??;
    san.value.general_names.iter().find_map(|n| match n {
        GeneralName::URI(u) => api.ca.load().identity_of(u),
        _ => None,
    })
}
