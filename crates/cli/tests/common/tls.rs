//! A test client that speaks TLS to a sidecar's inbound listener, with a
//! mesh certificate (`weft cert`'s files) or none, trusting any server.

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

/// One request: method, path, headers, and the local address to call from.
pub struct Call<'a> {
    pub method: &'a str,
    pub host: &'a str,
    pub path: &'a str,
    pub headers: &'a [(&'a str, &'a str)],
    pub from: Option<std::net::IpAddr>,
    /// The server name the ClientHello asks for (none: the address).
    pub sni: Option<&'a str>,
}

impl Default for Call<'_> {
    fn default() -> Self {
        Call { method: "GET", host: "web", path: "/", headers: &[], from: None, sni: None }
    }
}

/// Sends `call` to `addr` over TLS with the certificate in `certs` (or
/// none), or in plaintext when `tls` is false; its status and body, or why
/// it failed.
pub async fn send(addr: &str, tls: bool, certs: Option<&Path>, call: &Call<'_>) -> Result<(u16, String), String> {
    let addr: SocketAddr = addr.parse().unwrap();
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    if let Some(ip) = call.from {
        sock.bind(SocketAddr::new(ip, 0)).map_err(|e| e.to_string())?;
    }
    let tcp = sock.connect(addr).await.map_err(|e| e.to_string())?;
    let mut req = http::Request::builder().method(call.method).uri(call.path).header("host", call.host);
    for (k, v) in call.headers {
        req = req.header(*k, *v);
    }
    let req = req.body(http_body_util::Empty::<bytes::Bytes>::new()).unwrap();
    let resp = if tls {
        let io = tokio_rustls::TlsConnector::from(Arc::new(client_config(certs)))
            .connect(
                match call.sni {
                    Some(n) => ServerName::try_from(n.to_owned()).map_err(|e| e.to_string())?,
                    None => ServerName::IpAddress(addr.ip().into()),
                },
                tcp,
            )
            .await
            .map_err(|e| e.to_string())?;
        exchange(hyper_util::rt::TokioIo::new(io), req).await?
    } else {
        exchange(hyper_util::rt::TokioIo::new(tcp), req).await?
    };
    Ok(resp)
}

async fn exchange<I>(io: I, req: http::Request<http_body_util::Empty<bytes::Bytes>>) -> Result<(u16, String), String>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await.map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let body = http_body_util::BodyExt::collect(resp.into_body()).await.map_err(|e| e.to_string())?;
    Ok((status, String::from_utf8_lossy(&body.to_bytes()).into_owned()))
}

fn client_config(certs: Option<&Path>) -> rustls::ClientConfig {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyServer(provider)));
    match certs {
        None => builder.with_no_client_auth(),
        Some(dir) => {
            let chain = CertificateDer::pem_file_iter(dir.join("cert.pem")).unwrap().map(Result::unwrap).collect();
            let key = rustls::pki_types::PrivateKeyDer::from_pem_file(dir.join("key.pem")).unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
    }
}

/// Trusts any server: these tests look at what the server decides.
#[derive(Debug)]
struct AnyServer(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyServer {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `weft cert` files (cert.pem, key.pem, root.pem) for a namespace and
/// service account, proven with the control plane's admin token.
pub fn weft_cert(control: &super::Control, dir: &Path, ns: &str, sa: &str) -> std::path::PathBuf {
    let out = dir.join(format!("{ns}-{sa}"));
    let done = std::process::Command::new(super::weft())
        .args(["cert", "--ca", &control.api, "--token-file", &control.admin_token])
        .args(["--namespace", ns, "--service-account", sa, "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(done.status.success(), "{}", String::from_utf8_lossy(&done.stderr));
    out
}
