//! A gateway's HTTPS and TLS servers whose TLS it terminates (SIMPLE, MUTUAL,
//! OPTIONAL_MUTUAL; ISTIO_MUTUAL with its mesh certificate), as
//! Envoy filter chains: one per server, matched by the server names its
//! hosts give (SNI; none for `*`), with a `DownstreamTlsContext` holding the
//! certificate (from `kubernetes.io/tls` Secrets named by `credentialName`,
//! or `credentialNames` for certificates of several key types,
//! inline, or the files `serverCertificate` and `privateKey` name) and, for
//! MUTUAL, the CA clients must chain to (`ca.crt` in the Secret or in a
//! `<name>-cacert` Secret, or `caCertificates`) and the names one of them
//! must show (`subjectAltNames`) or be (`verifyCertificateSpki`,
//! `verifyCertificateHash`); protocol versions and TLS 1.2 cipher
//! suites as the server names them.

use super::node::ProxyNode;
use envoy_types::pb::envoy::config::core::v3::{DataSource, TransportSocket, data_source, transport_socket};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    CertificateValidationContext, CommonTlsContext, DownstreamTlsContext, SdsSecretConfig, TlsCertificate,
    TlsParameters, common_tls_context, tls_parameters::TlsProtocol,
};
use envoy_types::pb::google::protobuf::BoolValue;
use envoy_types::util::pack_any;
use weft_api::index::Index;
use weft_api::types::*;
use weft_api::{Resource, Spec};

/// One terminating server: the names it answers (SNI) and its TLS.
#[derive(Clone, Debug)]
pub struct TlsChain {
    pub server_names: Vec<String>,
    pub transport: TransportSocket,
}

/// The terminating HTTPS servers on `port` of the Gateways that select the proxy.
pub fn chains(index: &Index, node: &ProxyNode, port: u16) -> Vec<TlsChain> {
    let mut out = Vec::new();
    for r in index.resources {
        let Spec::Gateway(g) = &r.spec else { continue };
        if !selects(&g.selector, &node.labels) {
            continue;
        }
        for s in g.servers.iter().filter(|s| s.port.number == port && s.terminates().is_some()) {
            let Some(transport) = server_transport(index, node, r, s) else { continue };
            out.push(TlsChain { server_names: server_names(s), transport });
        }
    }
    out
}

/// The names a server answers by SNI: its hosts (none for `*`).
pub fn server_names(s: &Server) -> Vec<String> {
    let mut names: Vec<String> =
        s.hosts.iter().map(|h| h.split_once('/').map_or(h.as_str(), |(_, h)| h).to_ascii_lowercase()).collect();
    if names.iter().any(|n| n == "*") {
        names.clear();
    }
    names
}

/// The TLS a gateway `r` ends for server `s` (HTTPS, or TLS before TCP
/// routing), or None when it cannot (said why).
pub fn server_transport(index: &Index, node: &ProxyNode, r: &Resource, s: &Server) -> Option<TransportSocket> {
    let (Some(mode), Some(tls)) = (s.terminates_any(), &s.tls) else { return None };
    let port = s.port.number;
    if mode == TlsTermination::IstioMutual && !node.holds_mesh_cert {
        tracing::warn!(gateway = %r.key(), port, "an ISTIO_MUTUAL server needs the mesh certificate, which weft serves Envoy no SDS for yet; it is not served");
        return None;
    }
    let mut context =
        if mode == TlsTermination::IstioMutual { Some(mesh(tls)) } else { context(index.resources, r, tls, mode) };
    let Some(context) = context.as_mut() else {
        tracing::warn!(gateway = %r.key(), port, "a server's certificate is missing; it is not served");
        return None;
    };
    // Bytes for TCP routing: no application protocol to offer.
    if s.terminates_tcp().is_some()
        && let Some(common) = context.common_tls_context.as_mut()
    {
        common.alpn_protocols.clear();
    }
    Some(TransportSocket {
        name: "envoy.transport_sockets.tls".into(),
        config_type: Some(transport_socket::ConfigType::TypedConfig(pack_any(context.clone()))),
    })
}

pub(super) fn inline(bytes: &[u8]) -> Option<DataSource> {
    Some(DataSource { specifier: Some(data_source::Specifier::InlineBytes(bytes.to_vec())), ..Default::default() })
}

pub(super) fn file(path: &str) -> Option<DataSource> {
    Some(DataSource { specifier: Some(data_source::Specifier::Filename(path.to_owned())), ..Default::default() })
}

/// The server's TLS context, or `None` when a Secret it names is missing
/// (validation reports it).
fn context(
    resources: &[Resource],
    gw: &Resource,
    tls: &ServerTlsSettings,
    mode: TlsTermination,
) -> Option<DownstreamTlsContext> {
    let secret = |name: &str| {
        let (ns, name) = weft_api::gateway_api::credential(resources, gw.namespace(), name)?;
        resources.iter().find_map(|r| match &r.spec {
            Spec::Secret(s) if r.namespace() == ns && r.name() == name => Some(s),
            _ => None,
        })
    };
    // `credentialNames` (an RSA and an ECDSA certificate, say) or `credentialName`.
    let names: Vec<&String> = match &tls.credential_name {
        _ if !tls.credential_names.is_empty() => tls.credential_names.iter().collect(),
        Some(name) => vec![name],
        None => Vec::new(),
    };
    let (certs, ca) = if names.is_empty() {
        let cert = TlsCertificate {
            certificate_chain: file(tls.server_certificate.as_deref()?),
            private_key: file(tls.private_key.as_deref()?),
            ..Default::default()
        };
        (vec![cert], None)
    } else {
        let mut certs = Vec::new();
        let mut ca = None;
        for name in names {
            let s = secret(name)?;
            let pair = s.tls.as_ref()?;
            ca = ca
                .or_else(|| s.ca_pem.clone())
                .or_else(|| secret(&format!("{name}-cacert")).and_then(|c| c.ca_pem.clone()));
            certs.push(TlsCertificate {
                certificate_chain: inline(&pair.cert_pem),
                private_key: inline(&pair.key_pem),
                ..Default::default()
            });
        }
        (certs, ca.and_then(|c| inline(&c)))
    };
    let ca = ca.or_else(|| tls.ca_certificates.as_deref().and_then(file));
    let validation = if mode.needs_ca() {
        // A client must show one of these names (DNS or, with a scheme, URI).
        let sans = tls.subject_alt_names.iter().map(|n| super::upstream_tls::san(n)).collect();
        let v = CertificateValidationContext {
            trusted_ca: Some(ca?),
            match_typed_subject_alt_names: sans,
            verify_certificate_spki: tls.verify_certificate_spki.clone(),
            verify_certificate_hash: tls.verify_certificate_hash.clone(),
            ..Default::default()
        };
        Some(common_tls_context::ValidationContextType::ValidationContext(v))
    } else {
        None
    };
    Some(DownstreamTlsContext {
        common_tls_context: Some(CommonTlsContext {
            tls_certificates: certs,
            alpn_protocols: vec!["h2".into(), "http/1.1".into()],
            validation_context_type: validation,
            tls_params: params(tls),
            ..Default::default()
        }),
        require_client_certificate: (mode == TlsTermination::Mutual).then_some(BoolValue { value: true }),
        ..Default::default()
    })
}

/// ISTIO_MUTUAL: the gateway's mesh certificate and the mesh root (Istio's
/// SDS names, which weft's proxy holds itself), a client certificate
/// required and, with `subjectAltNames`, one of those identities.
fn mesh(tls: &ServerTlsSettings) -> DownstreamTlsContext {
    let sans = tls.subject_alt_names.iter().map(|n| super::upstream_tls::san(n)).collect();
    mesh_context(sans, params(tls))
}

/// A sidecar's inbound mutual TLS for a proxy whose certificate comes over
/// SDS (Envoy), as Istio writes it.
pub(super) fn mesh_socket() -> TransportSocket {
    TransportSocket {
        name: "envoy.transport_sockets.tls".into(),
        config_type: Some(transport_socket::ConfigType::TypedConfig(pack_any(mesh_context(Vec::new(), None)))),
    }
}

fn mesh_context(
    sans: Vec<envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::SubjectAltNameMatcher>,
    tls_params: Option<TlsParameters>,
) -> DownstreamTlsContext {
    let sds = |name: &str| SdsSecretConfig { name: name.into(), sds_config: Some(super::listeners::ads()) };
    let names = CertificateValidationContext { match_typed_subject_alt_names: sans, ..Default::default() };
    DownstreamTlsContext {
        common_tls_context: Some(CommonTlsContext {
            tls_certificate_sds_secret_configs: vec![sds("default")],
            validation_context_type: Some(common_tls_context::ValidationContextType::CombinedValidationContext(
                common_tls_context::CombinedCertificateValidationContext {
                    default_validation_context: Some(names),
                    validation_context_sds_secret_config: Some(sds("ROOTCA")),
                    ..Default::default()
                },
            )),
            alpn_protocols: vec!["h2".into(), "http/1.1".into()],
            tls_params,
            ..Default::default()
        }),
        require_client_certificate: Some(BoolValue { value: true }),
        ..Default::default()
    }
}

/// Istio's `TLSV1_2`-style version names, as Envoy's.
fn version(v: Option<&str>) -> TlsProtocol {
    match v {
        Some("TLSV1_0") => TlsProtocol::TlSv10,
        Some("TLSV1_1") => TlsProtocol::TlSv11,
        Some("TLSV1_2") => TlsProtocol::TlSv12,
        Some("TLSV1_3") => TlsProtocol::TlSv13,
        _ => TlsProtocol::TlsAuto,
    }
}

/// The server's protocol versions and TLS 1.2 cipher suites, when it names any.
fn params(tls: &ServerTlsSettings) -> Option<TlsParameters> {
    let (min, max) = (tls.min_protocol_version.as_deref(), tls.max_protocol_version.as_deref());
    (min.is_some() || max.is_some() || !tls.cipher_suites.is_empty()).then(|| TlsParameters {
        tls_minimum_protocol_version: version(min) as i32,
        tls_maximum_protocol_version: version(max) as i32,
        cipher_suites: tls.cipher_suites.clone(),
        ..Default::default()
    })
}
