//! Calls to the control plane's API (the CA, registration): JSON over
//! HTTP/1.1, over TLS when the proxy knows the mesh root (`--ca-root`), with
//! the proxy's workload certificate once it has one (renewal and
//! registration prove who calls by it) and its bootstrap token
//! (`--token-file`) until then.

use super::MeshTls;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;

pub struct ControlApi {
    /// `host:port` of the API (its TLS port when `root` is set).
    pub addr: String,
    /// TLS to the control plane, verified against the mesh root, for calls
    /// made before this proxy has a certificate; plaintext when `None`.
    bootstrap: Option<Arc<rustls::ClientConfig>>,
    /// A bootstrap token (or the admin token): `Authorization: Bearer`.
    token: Option<String>,
}

impl ControlApi {
    /// `root_pem`: the mesh root that the control plane's certificate must
    /// chain to (TLS), or none (plaintext, for a loopback API).
    pub fn new(addr: String, root_pem: Option<&str>, token: Option<String>) -> anyhow::Result<Self> {
        let bootstrap = match root_pem {
            Some(pem) => {
                let mut roots = rustls::RootCertStore::empty();
                for c in CertificateDer::pem_slice_iter(pem.as_bytes()) {
                    roots.add(c?)?;
                }
                let cfg =
                    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                        .with_safe_default_protocol_versions()?
                        .with_root_certificates(roots)
                        .with_no_client_auth();
                Some(Arc::new(cfg))
            }
            None => None,
        };
        Ok(ControlApi { addr, bootstrap, token })
    }

    /// The bearer token it sends, if any.
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// Whether calls go over TLS.
    pub fn is_tls(&self) -> bool {
        self.bootstrap.is_some()
    }

    /// One call; `mesh` is the proxy's certificate, if it has one (used on
    /// TLS). Returns the status and body.
    pub async fn call(
        &self,
        mesh: Option<&MeshTls>,
        method: http::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> anyhow::Result<(u16, Bytes)> {
        let stream = tokio::time::timeout(Duration::from_secs(3), TcpStream::connect(&self.addr)).await??;
        let bytes = body.map(|b| serde_json::to_vec(&b).unwrap_or_default()).unwrap_or_default();
        let mut req = http::Request::builder()
            .method(method)
            .uri(path)
            .header("host", &self.addr)
            .header("content-type", "application/json");
        if let Some(t) = &self.token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let req = req.body(Full::new(Bytes::from(bytes)))?;
        match &self.bootstrap {
            None => exchange(hyper_util::rt::TokioIo::new(stream), req).await,
            Some(bootstrap) => {
                let cfg = mesh.map_or_else(|| bootstrap.clone(), |m| m.control.clone());
                let host = self.addr.rsplit_once(':').map_or(self.addr.as_str(), |(h, _)| h);
                let name = ServerName::try_from(host.trim_matches(['[', ']']).to_owned())?;
                let tls = tokio_rustls::TlsConnector::from(cfg).connect(name, stream).await?;
                exchange(hyper_util::rt::TokioIo::new(tls), req).await
            }
        }
    }
}

async fn exchange<I>(io: I, req: http::Request<Full<Bytes>>) -> anyhow::Result<(u16, Bytes)>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await?;
    tokio::spawn(conn);
    let resp = tokio::time::timeout(Duration::from_secs(5), sender.send_request(req)).await??;
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await?.to_bytes();
    Ok((status, body))
}
