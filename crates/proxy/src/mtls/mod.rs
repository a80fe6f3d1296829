//! Mutual TLS between sidecars: the proxy's workload certificate and the
//! rustls configurations made from it (`ca_client` gets it from the CA).
//!
//! The proxy makes its own key, sends a CSR for its SPIFFE identity to the
//! control plane's CA (`POST /v1/certificates`) and renews at half the
//! certificate's life (Istio's default). Until the first certificate
//! arrives, and if the CA cannot be reached, connections stay plaintext:
//! inbound listeners accept both (Istio's PERMISSIVE mode).
//!
//! - Inbound: a connection whose first byte is a TLS handshake record is
//!   served over TLS; the client must present a certificate of the mesh's
//!   root, and its SPIFFE ID is the caller's identity (the
//!   `x-forwarded-client-cert` header the application gets).
//! - Outbound: connections to endpoints in the mesh (`tlsMode: istio`)
//!   are TLS with this proxy's certificate; the server's certificate must
//!   chain to the mesh root and show one of the identities its cluster
//!   lists (`config::upstream_tls`, checked as the connection is made).

pub mod ca_client;
pub mod control;

use arc_swap::ArcSwapOption;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Istio's default trust domain.
pub const TRUST_DOMAIN: &str = "cluster.local";

/// A workload's SPIFFE ID.
pub fn spiffe_id(namespace: &str, service_account: &str) -> String {
    format!("spiffe://{TRUST_DOMAIN}/ns/{namespace}/sa/{service_account}")
}

/// The proxy's certificate, made into what its connections use.
pub struct MeshTls {
    pub identity: String,
    /// The mesh roots these configurations trust, and the CA's signing
    /// certificate's SHA-256 (`ca_client` renews at once when either of
    /// the CA's differs: a rotation's new bundle, or its switch of signer).
    pub root_pem: String,
    pub signer: String,
    pub server: Arc<ServerConfig>,
    /// Outbound, one per upstream protocol (ALPN `http/1.1` or `h2`).
    pub client_h1: Arc<ClientConfig>,
    pub client_h2: Arc<ClientConfig>,
    /// To the control plane's TLS port, with this certificate.
    pub control: Arc<ClientConfig>,
    pub expires: SystemTime,
}

impl std::fmt::Debug for MeshTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MeshTls").field("identity", &self.identity).field("expires", &self.expires).finish()
    }
}

/// Where the current certificate lives: read when a connection is made,
/// replaced on renewal (connections already made keep theirs).
pub type Slot = ArcSwapOption<MeshTls>;

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl MeshTls {
    /// Builds the configurations from an issued certificate, its key and
    /// the mesh root.
    pub fn new(issued: &Issued) -> anyhow::Result<Self> {
        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(issued.cert_pem.as_bytes()).collect::<Result<_, _>>()?;
        let key = PrivateKeyDer::from_pem_slice(issued.key_pem.as_bytes())?;
        let mut roots = RootCertStore::empty();
        for root in CertificateDer::pem_slice_iter(issued.root_pem.as_bytes()) {
            roots.add(root?)?;
        }
        let roots = Arc::new(roots);
        let provider = provider();
        let verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone()).build()?;
        let mut server = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain.clone(), key.clone_key())?;
        server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let algs = provider.signature_verification_algorithms;
        let client = |alpn: &[u8]| -> anyhow::Result<Arc<ClientConfig>> {
            let mut c = ClientConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()?
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(ServerChain::new(Some(roots.clone()), None, algs)))
                .with_client_auth_cert(chain.clone(), key.clone_key())?;
            c.alpn_protocols = vec![alpn.to_vec()];
            Ok(Arc::new(c))
        };
        let control = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots.clone())
            .with_client_auth_cert(chain.clone(), key.clone_key())?;
        Ok(MeshTls {
            control: Arc::new(control),
            identity: issued.identity.clone(),
            server: Arc::new(server),
            client_h1: client(b"http/1.1")?,
            client_h2: client(b"h2")?,
            expires: SystemTime::now() + issued.ttl,
            root_pem: issued.root_pem.clone(),
            signer: issued.signer.clone(),
        })
    }
}

/// What a server's certificate must also pass once its chain checks out
/// (its names, for TLS origination); None: the chain alone decides.
pub type NameCheck = Box<dyn Fn(&CertificateDer<'_>) -> bool + Send + Sync>;

/// Accepts a server whose certificate chains to `roots` (None: any server,
/// as `insecureSkipVerify` asks) and passes `names`. Mesh endpoints are
/// dialled by address, so the mesh's verifier checks no name; the server's
/// SPIFFE ID is checked against its cluster's list once the handshake is
/// done (one configuration serves every cluster).
pub struct ServerChain {
    roots: Option<Arc<RootCertStore>>,
    names: Option<NameCheck>,
    algs: WebPkiSupportedAlgorithms,
}

impl std::fmt::Debug for ServerChain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerChain").field("checks_names", &self.names.is_some()).finish()
    }
}

impl ServerChain {
    pub fn new(roots: Option<Arc<RootCertStore>>, names: Option<NameCheck>, algs: WebPkiSupportedAlgorithms) -> Self {
        ServerChain { roots, names, algs }
    }
}

impl ServerCertVerifier for ServerChain {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(roots) = &self.roots else { return Ok(ServerCertVerified::assertion()) };
        let cert = rustls::server::ParsedCertificate::try_from(end_entity)?;
        rustls::client::verify_server_cert_signed_by_trust_anchor(&cert, roots, intermediates, now, self.algs.all)?;
        if self.names.as_ref().is_some_and(|check| !check(end_entity)) {
            return Err(rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName));
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

/// The SPIFFE ID in a peer's certificate (its URI SAN), if it has one.
pub fn peer_identity(cert: &CertificateDer<'_>) -> Option<String> {
    use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};
    let (_, cert) = X509Certificate::from_der(cert).ok()?;
    let san = cert.subject_alternative_name().ok()??;
    san.value.general_names.iter().find_map(|n| match n {
        GeneralName::URI(u) if u.starts_with("spiffe://") => Some((*u).to_owned()),
        _ => None,
    })
}

/// The namespace of a SPIFFE ID of the mesh's form
/// (`spiffe://<trust domain>/ns/<namespace>/sa/<service account>`).
pub fn spiffe_namespace(id: &str) -> Option<&str> {
    let path = id.strip_prefix("spiffe://")?.split_once('/')?.1;
    let rest = path.strip_prefix("ns/")?;
    let (ns, sa) = rest.split_once("/sa/")?;
    (!ns.is_empty() && !ns.contains('/') && !sa.is_empty()).then_some(ns)
}

/// A workload certificate as the CA issued it, with the key made for it.
pub struct Issued {
    pub identity: String,
    pub cert_pem: String,
    /// PKCS#8; made here, it never leaves the process but into `MeshTls`
    /// (or the files `weft cert` writes).
    pub key_pem: String,
    pub root_pem: String,
    /// The CA's signing certificate's SHA-256, when it says.
    pub signer: String,
    pub ttl: Duration,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert_with(sans: Vec<rcgen::SanType>) -> CertificateDer<'static> {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::default();
        p.subject_alt_names = sans;
        p.self_signed(&key).unwrap().der().clone()
    }

    #[test]
    fn a_peers_identity_is_its_spiffe_uri_san() {
        let id = spiffe_id("shop", "cart");
        assert_eq!(id, "spiffe://cluster.local/ns/shop/sa/cart");
        let dns = rcgen::SanType::DnsName("cart.shop".try_into().unwrap());
        let uri = rcgen::SanType::URI(id.as_str().try_into().unwrap());
        assert_eq!(peer_identity(&cert_with(vec![dns.clone(), uri])), Some(id));
        assert_eq!(peer_identity(&cert_with(vec![dns])), None, "no SPIFFE ID, no identity");
        assert_eq!(peer_identity(&CertificateDer::from(vec![1, 2, 3])), None);
    }

    #[test]
    fn a_spiffe_ids_namespace_is_read_from_its_path() {
        assert_eq!(spiffe_namespace(&spiffe_id("shop", "cart")), Some("shop"));
        for bad in [
            "spiffe://cluster.local/ns//sa/x",
            "spiffe://cluster.local/sa/x",
            "https://x/ns/a/sa/b",
            "spiffe://td/ns/a",
        ] {
            assert_eq!(spiffe_namespace(bad), None, "{bad}");
        }
    }
}
