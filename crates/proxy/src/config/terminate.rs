//! TLS a listener terminates (a gateway's HTTPS servers): each filter
//! chain's `DownstreamTlsContext` made into a rustls server configuration,
//! chosen per connection by the server name its ClientHello asks for; or,
//! for a context naming Istio's SDS secrets (ISTIO_MUTUAL), the proxy's own
//! mesh configuration at the time of the handshake, which renews.

use super::CompileError;
use super::certs::{SanMatch, cert_names, data, sans_of};
use super::pins::Pins;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{DownstreamTlsContext, common_tls_context};
use prost::Message;
use rustls::DistinguishedName;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, SignatureScheme};
use std::sync::Arc;

/// The server configurations of a listener's TLS filter chains.
#[derive(Debug, Default)]
pub struct Terminate {
    /// By server names: exact or `*.suffix`, lowercase.
    pub by_name: Vec<(Vec<String>, ServerTls)>,
    /// The chain that matches any name (or none).
    pub default: Option<ServerTls>,
}

/// One chain's TLS.
#[derive(Debug, Clone)]
pub enum ServerTls {
    /// Its own certificate (SIMPLE, MUTUAL, OPTIONAL_MUTUAL).
    Fixed(Arc<rustls::ServerConfig>),
    /// The proxy's mesh certificate, a client's required and checked
    /// against the mesh root, then for one of these names if any.
    Mesh(Arc<[SanMatch]>),
}

/// Istio's SDS names for a workload's certificate and the mesh root.
pub const WORKLOAD_CERT: &str = "default";
pub const MESH_ROOT: &str = "ROOTCA";

impl Terminate {
    /// The configuration for a ClientHello naming `name`: an exact name,
    /// then the longest wildcard, then the default.
    pub fn pick(&self, name: Option<&str>) -> Option<&ServerTls> {
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
        let cfg = server_tls(&ctx)?;
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

fn server_tls(ctx: &DownstreamTlsContext) -> Result<ServerTls, CompileError> {
    use common_tls_context::ValidationContextType as V;
    let common =
        ctx.common_tls_context.as_ref().ok_or_else(|| CompileError::new("TLS context without common_tls_context"))?;
    let Some(sds) = common.tls_certificate_sds_secret_configs.first() else {
        return Ok(ServerTls::Fixed(Arc::new(server_config(ctx)?)));
    };
    let (names, root) = match &common.validation_context_type {
        Some(V::CombinedValidationContext(c)) => {
            (c.default_validation_context.as_ref(), c.validation_context_sds_secret_config.as_ref())
        }
        Some(V::ValidationContextSdsSecretConfig(s)) => (None, Some(s)),
        _ => (None, None),
    };
    let mesh = sds.name == WORKLOAD_CERT && root.is_some_and(|r| r.name == MESH_ROOT);
    if !mesh || !ctx.require_client_certificate.is_some_and(|b| b.value) {
        return Err(CompileError::new(format!(
            "SDS secret {:?}: this proxy terminates with its own mesh certificate ({WORKLOAD_CERT:?}, clients checked against {MESH_ROOT:?}) or inline and file certificates",
            sds.name
        )));
    }
    Ok(ServerTls::Mesh(sans_of(names)?.into()))
}

fn server_config(ctx: &DownstreamTlsContext) -> Result<rustls::ServerConfig, CompileError> {
    let err = |what: &str, e: &dyn std::fmt::Display| CompileError::new(format!("{what}: {e}"));
    let common =
        ctx.common_tls_context.as_ref().ok_or_else(|| CompileError::new("TLS context without common_tls_context"))?;
    let (provider, versions) = super::tls_params::apply(common.tls_params.as_ref())?;
    let certs = super::server_cert::ServerCerts::compile(&common.tls_certificates, &provider, &versions)?;
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| err("TLS versions", &e))?;
    let mutual = ctx.require_client_certificate.is_some_and(|b| b.value);
    let validation = match &common.validation_context_type {
        Some(common_tls_context::ValidationContextType::ValidationContext(v)) => Some(v),
        _ => None,
    };
    // A CA without `require_client_certificate`: a client certificate is
    // checked when one is shown (Istio's OPTIONAL_MUTUAL).
    let builder = match (validation.filter(|v| v.trusted_ca.is_some()), mutual) {
        (Some(v), _) => {
            let ca = data(v.trusted_ca.as_ref(), "trusted CA")?;
            let mut roots = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_slice_iter(&ca) {
                roots.add(c.map_err(|e| err("trusted CA", &e))?).map_err(|e| err("trusted CA", &e))?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = if mutual { verifier } else { verifier.allow_unauthenticated() };
            let verifier = verifier.build().map_err(|e| err("client verifier", &e))?;
            let sans = sans_of(Some(v))?;
            let pins = Pins::of(&v.verify_certificate_spki, &v.verify_certificate_hash)?;
            if sans.is_empty() && pins.is_empty() {
                builder.with_client_cert_verifier(verifier)
            } else {
                builder.with_client_cert_verifier(Arc::new(ClientNames { inner: verifier, sans, pins }))
            }
        }
        (_, true) => {
            return Err(CompileError::new("require_client_certificate needs a validation context with trusted_ca"));
        }
        _ => builder.with_no_client_auth(),
    };
    let mut cfg = builder.with_cert_resolver(Arc::new(certs));
    cfg.alpn_protocols = common.alpn_protocols.iter().map(|p| p.as_bytes().to_vec()).collect();
    Ok(cfg)
}

/// A client's certificate checked as the CA says, then for one of the
/// names the server asks for (Istio's `subjectAltNames` on a MUTUAL
/// server) and for its pinned hashes (`verifyCertificateSpki`, `...Hash`).
#[derive(Debug)]
struct ClientNames {
    inner: Arc<dyn ClientCertVerifier>,
    sans: Vec<SanMatch>,
    /// Certificates pinned by hash (any of them when none).
    pins: Pins,
}

impl ClientCertVerifier for ClientNames {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self.inner.verify_client_cert(end_entity, intermediates, now)?;
        let names = cert_names(end_entity);
        if !self.sans.is_empty() && !self.sans.iter().any(|s| s.matches(&names)) {
            return Err(rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName));
        }
        if !self.pins.is_empty() && !self.pins.admit(end_entity) {
            return Err(rustls::Error::InvalidCertificate(rustls::CertificateError::ApplicationVerificationFailure));
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
