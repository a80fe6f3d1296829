//! TLS a listener terminates (a gateway's HTTPS servers): each filter
//! chain's `DownstreamTlsContext` made into a rustls server configuration,
//! chosen per connection by the server name its ClientHello asks for.

use super::CompileError;
use super::certs::{SanMatch, cert_names, data, sans_of};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{DownstreamTlsContext, common_tls_context};
use prost::Message;
use rustls::DistinguishedName;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, SignatureScheme};
use std::sync::Arc;

/// The server configurations of a listener's TLS filter chains.
#[derive(Debug, Default)]
pub struct Terminate {
    /// By server names: exact or `*.suffix`, lowercase.
    pub by_name: Vec<(Vec<String>, Arc<rustls::ServerConfig>)>,
    /// The chain that matches any name (or none).
    pub default: Option<Arc<rustls::ServerConfig>>,
}

impl Terminate {
    /// The configuration for a ClientHello naming `name`: an exact name,
    /// then the longest wildcard, then the default.
    pub fn pick(&self, name: Option<&str>) -> Option<&Arc<rustls::ServerConfig>> {
        let name = name.map(str::to_ascii_lowercase);
        let exact = name.as_deref().and_then(|n| self.by_name.iter().find(|(ns, _)| ns.iter().any(|x| x == n)));
        let wildcard = || {
            let n = name.as_deref()?;
            self.by_name
                .iter()
                .filter_map(|(ns, c)| {
                    let best = ns
                        .iter()
                        .filter_map(|x| x.strip_prefix('*'))
                        .filter(|s| n.ends_with(*s))
                        .map(str::len)
                        .max()?;
                    Some((best, c))
                })
                .max_by_key(|(len, _)| *len)
                .map(|(_, c)| c)
        };
        exact.map(|(_, c)| c).or_else(wildcard).or(self.default.as_ref())
    }

    /// Adds a chain's TLS (its transport socket's typed config) for `names`.
    pub fn add(&mut self, names: Vec<String>, config: &[u8]) -> Result<(), CompileError> {
        let ctx = DownstreamTlsContext::decode(config).map_err(|e| CompileError::new(format!("TLS context: {e}")))?;
        let cfg = Arc::new(server_config(&ctx)?);
        if names.is_empty() {
            if self.default.replace(cfg).is_some() {
                return Err(CompileError::new("two TLS filter chains match any server name"));
            }
        } else {
            self.by_name.push((names.into_iter().map(|n| n.to_ascii_lowercase()).collect(), cfg));
        }
        Ok(())
    }
}

fn server_config(ctx: &DownstreamTlsContext) -> Result<rustls::ServerConfig, CompileError> {
    let err = |what: &str, e: &dyn std::fmt::Display| CompileError::new(format!("{what}: {e}"));
    let common =
        ctx.common_tls_context.as_ref().ok_or_else(|| CompileError::new("TLS context without common_tls_context"))?;
    let [cert] = common.tls_certificates.as_slice() else {
        return Err(CompileError::new(
            "a TLS filter chain needs exactly one inline or file certificate (SDS is not supported)",
        ));
    };
    let chain_pem = data(cert.certificate_chain.as_ref(), "certificate chain")?;
    let key_pem = data(cert.private_key.as_ref(), "private key")?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&chain_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| err("certificate chain", &e))?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| err("private key", &e))?;
    let (provider, versions) = super::tls_params::apply(common.tls_params.as_ref())?;
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| err("TLS versions", &e))?;
    let mutual = ctx.require_client_certificate.is_some_and(|b| b.value);
    let builder = match (&common.validation_context_type, mutual) {
        (Some(common_tls_context::ValidationContextType::ValidationContext(v)), true) => {
            let ca = data(v.trusted_ca.as_ref(), "trusted CA")?;
            let mut roots = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_slice_iter(&ca) {
                roots.add(c.map_err(|e| err("trusted CA", &e))?).map_err(|e| err("trusted CA", &e))?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| err("client verifier", &e))?;
            let sans = sans_of(Some(v))?;
            if sans.is_empty() {
                builder.with_client_cert_verifier(verifier)
            } else {
                builder.with_client_cert_verifier(Arc::new(ClientNames { inner: verifier, sans }))
            }
        }
        (_, true) => {
            return Err(CompileError::new("require_client_certificate needs a validation context with trusted_ca"));
        }
        _ => builder.with_no_client_auth(),
    };
    let mut cfg = builder.with_single_cert(chain, key).map_err(|e| err("certificate and key", &e))?;
    cfg.alpn_protocols = common.alpn_protocols.iter().map(|p| p.as_bytes().to_vec()).collect();
    Ok(cfg)
}

/// A client's certificate checked as the CA says, then for one of the
/// names the server asks for (Istio's `subjectAltNames` on a MUTUAL server).
#[derive(Debug)]
struct ClientNames {
    inner: Arc<dyn ClientCertVerifier>,
    sans: Vec<SanMatch>,
}

impl ClientCertVerifier for ClientNames {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self.inner.verify_client_cert(end_entity, intermediates, now)?;
        let names = cert_names(end_entity);
        if !self.sans.iter().any(|s| s.matches(&names)) {
            return Err(rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName));
        }
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
