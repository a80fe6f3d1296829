//! The TLS a cluster's connections use, from its transport sockets as
//! Istio writes them: `transport_socket_matches` pick one by the endpoint's
//! `envoy.transport_socket_match` metadata (`tlsMode: istio` for endpoints
//! with a sidecar: auto mutual TLS), else the cluster's `transport_socket`
//! (none: plaintext; a DestinationRule's `tls`).
//!
//! An `UpstreamTlsContext` naming the SDS secrets `default` and `ROOTCA`
//! (Istio's agent's names for the workload certificate and the mesh root)
//! is the mesh's mutual TLS: this proxy holds both itself (`mtls`), so no
//! SDS stream is needed, and the server must also show one of the SPIFFE
//! IDs the context lists (its service's accounts). Any other context is TLS
//! origination with certificates of its own (SIMPLE, MUTUAL): the server's
//! chain is checked against `trusted_ca` and its names against the listed
//! subject alt names (as Envoy: none listed, no name is checked; weft's
//! control plane lists the SNI then); no validation context at all accepts
//! any server (`insecureSkipVerify`).

use super::CompileError;
use super::certs::{SanMatch, cert_names, data, sans_of};
use super::matcher::StrMatch;
use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::core::v3::{TransportSocket, transport_socket};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::subject_alt_name_matcher::SanType;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{UpstreamTlsContext, common_tls_context};
use prost::Message;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::sync::Arc;

/// Istio's SDS names for the workload certificate and the mesh root.
const WORKLOAD_CERT: &str = "default";
const MESH_ROOT: &str = "ROOTCA";

/// What a cluster's hosts connect with: `mesh` for hosts that carry
/// `tlsMode: istio`, `other` for the rest; None is plaintext.
#[derive(Debug, Clone, Default)]
pub struct ClusterTls {
    pub mesh: Option<UpstreamTls>,
    pub other: Option<UpstreamTls>,
    /// The identity a mesh host proves in its handshake when the cluster
    /// accepts exactly one (a URI name, exactly): the connection is
    /// refused unless the server shows it. None when several or any would do.
    pub mesh_principal: Option<Arc<str>>,
}

impl ClusterTls {
    pub fn for_host(&self, mesh: bool) -> Option<&UpstreamTls> {
        if mesh { self.mesh.as_ref() } else { self.other.as_ref() }
    }

    /// For the admin's cluster list: what each kind of host gets.
    pub fn describe(&self) -> serde_json::Value {
        let one = |t: Option<&UpstreamTls>| match t.map(|t| &t.kind) {
            None => serde_json::json!({"mode": "plaintext"}),
            Some(TlsKind::Mesh { sans, sni }) => serde_json::json!({
                "mode": "mesh mutual TLS",
                "sni": sni.as_ref().map(|n| n.to_str()),
                "serverIdentities": sans.iter().map(SanMatch::text).collect::<Vec<_>>(),
            }),
            Some(TlsKind::Origin(o)) => serde_json::json!({
                "mode": "TLS origination",
                "sni": o.server_name.to_str(),
                "clientCertificate": o.h1.client_auth_cert_resolver.has_certs(),
            }),
        };
        serde_json::json!({"meshEndpoints": one(self.mesh.as_ref()), "otherEndpoints": one(self.other.as_ref())})
    }
}

/// One transport: `key` (a hash of its config) tells pools apart, so
/// connections made under one TLS setting never serve another.
#[derive(Debug, Clone)]
pub struct UpstreamTls {
    pub key: u64,
    pub kind: TlsKind,
}

#[derive(Debug, Clone)]
pub enum TlsKind {
    /// Mutual TLS with the proxy's certificate; the server's SPIFFE ID
    /// must match one of `sans` (none listed: any of the mesh). `sni`, as
    /// Istio sends it (`outbound_.<port>_.<subset>_.<host>`), lets an
    /// east-west gateway pass the connection through by name.
    Mesh { sans: Arc<[SanMatch]>, sni: Option<ServerName<'static>> },
    /// TLS origination with the config's own trust and certificate.
    Origin(Arc<Origin>),
}

/// Client configurations for one origination context, one per ALPN.
#[derive(Debug)]
pub struct Origin {
    pub h1: Arc<rustls::ClientConfig>,
    pub h2: Arc<rustls::ClientConfig>,
    /// TCP: no ALPN.
    pub raw: Arc<rustls::ClientConfig>,
    pub server_name: ServerName<'static>,
}

/// Whether a mesh server's certificate shows one of `sans`; the error says
/// what it showed instead.
pub fn check_mesh_server(sans: &[SanMatch], cert: Option<&CertificateDer<'_>>) -> Result<(), String> {
    if sans.is_empty() {
        return Ok(());
    }
    let names = cert.map(cert_names).unwrap_or_default();
    if sans.iter().any(|s| s.matches(&names)) {
        return Ok(());
    }
    let shown: Vec<&str> = names.iter().map(|(_, n)| n.as_str()).collect();
    Err(format!("the server's identity [{}] is not one its service runs as", shown.join(", ")))
}

fn key_of(ts: &TransportSocket) -> u64 {
    let mut h = xxhash_rust::xxh64::Xxh64::new(0);
    h.update(ts.name.as_bytes());
    if let Some(transport_socket::ConfigType::TypedConfig(any)) = &ts.config_type {
        h.update(any.type_url.as_bytes());
        h.update(&any.value);
    }
    h.digest()
}

impl ClusterTls {
    pub fn from_proto(c: &Cluster) -> Result<Self, CompileError> {
        let default = c.transport_socket.as_ref().map(transport).transpose()?.flatten();
        let (mut mesh, mut other) = (None, None);
        for m in &c.transport_socket_matches {
            let criteria: Vec<(&str, Option<&str>)> = m
                .r#match
                .iter()
                .flat_map(|s| &s.fields)
                .map(|(k, v)| {
                    let v = match &v.kind {
                        Some(envoy_types::pb::google::protobuf::value::Kind::StringValue(s)) => Some(s.as_str()),
                        _ => None,
                    };
                    (k.as_str(), v)
                })
                .collect();
            let (takes_mesh, takes_other) = match criteria.as_slice() {
                [] => (true, true),
                [("tlsMode", Some("istio"))] => (true, false),
                [("tlsMode", Some(_))] => (false, false),
                _ => {
                    return Err(CompileError::new(format!(
                        "transport socket match {:?}: only a `tlsMode` criterion (or none) is supported",
                        m.name
                    )));
                }
            };
            let t = m.transport_socket.as_ref().map(transport).transpose()?.flatten();
            // The first match wins.
            if takes_mesh && mesh.is_none() {
                mesh = Some(t.clone());
            }
            if takes_other && other.is_none() {
                other = Some(t);
            }
        }
        let mesh = mesh.unwrap_or_else(|| default.clone());
        let mesh_principal = match mesh.as_ref().map(|t| &t.kind) {
            Some(TlsKind::Mesh { sans, .. }) => match &**sans {
                [SanMatch { kind: Some(SanType::Uri) | None, matcher: StrMatch::Exact(s) }] => Some(s.as_str().into()),
                _ => None,
            },
            _ => None,
        };
        Ok(ClusterTls { mesh, other: other.unwrap_or(default), mesh_principal })
    }
}

/// One transport socket: None for plaintext (`raw_buffer`).
fn transport(ts: &TransportSocket) -> Result<Option<UpstreamTls>, CompileError> {
    let any = match &ts.config_type {
        Some(transport_socket::ConfigType::TypedConfig(any)) => any,
        _ if ts.name.contains("raw_buffer") => return Ok(None),
        _ => return Err(CompileError::new(format!("transport socket {:?} has no typed config", ts.name))),
    };
    if any.type_url.ends_with("RawBuffer") {
        return Ok(None);
    }
    if !any.type_url.ends_with(".UpstreamTlsContext") {
        return Err(CompileError::new(format!("transport socket type {} is not supported", any.type_url)));
    }
    let ctx = UpstreamTlsContext::decode(any.value.as_slice())
        .map_err(|e| CompileError::new(format!("upstream TLS context: {e}")))?;
    let kind = compile(&ctx).map_err(|e| CompileError::new(format!("upstream TLS context: {e}")))?;
    Ok(Some(UpstreamTls { key: key_of(ts), kind }))
}

fn compile(ctx: &UpstreamTlsContext) -> Result<TlsKind, CompileError> {
    use common_tls_context::ValidationContextType as V;
    let err = |what: &str, e: &dyn std::fmt::Display| CompileError::new(format!("{what}: {e}"));
    let common = ctx.common_tls_context.clone().unwrap_or_default();
    let sds_cert = common.tls_certificate_sds_secret_configs.first().map(|s| s.name.as_str());
    let (validation, sds_root) = match &common.validation_context_type {
        Some(V::ValidationContext(v)) => (Some(v), None),
        Some(V::CombinedValidationContext(c)) => (
            c.default_validation_context.as_ref(),
            c.validation_context_sds_secret_config.as_ref().map(|s| s.name.as_str()),
        ),
        Some(V::ValidationContextSdsSecretConfig(s)) => (None, Some(s.name.as_str())),
        Some(_) => return Err(CompileError::new("certificate providers are not supported")),
        None => (None, None),
    };
    let sans = sans_of(validation)?;
    match (sds_cert, sds_root) {
        (Some(WORKLOAD_CERT), Some(MESH_ROOT)) => {
            let sni = match ctx.sni.as_str() {
                "" => None,
                n => Some(ServerName::try_from(n.to_owned()).map_err(|e| err("sni", &e))?),
            };
            return Ok(TlsKind::Mesh { sans: sans.into(), sni });
        }
        (None, None) => {}
        (c, r) => {
            return Err(CompileError::new(format!(
                "SDS secrets {c:?} and {r:?}: this proxy has only its own certificate ({WORKLOAD_CERT:?}) and the mesh root ({MESH_ROOT:?})"
            )));
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let roots = match validation.and_then(|v| v.trusted_ca.as_ref()) {
        Some(ca) => {
            let pem = data(Some(ca), "trusted CA")?;
            let mut roots = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_slice_iter(&pem) {
                roots.add(c.map_err(|e| err("trusted CA", &e))?).map_err(|e| err("trusted CA", &e))?;
            }
            if roots.is_empty() {
                return Err(CompileError::new("trusted CA: no certificate in it"));
            }
            Some(Arc::new(roots))
        }
        None if validation.is_some() && !sans.is_empty() => {
            return Err(CompileError::new("subject alt names to match need a trusted CA"));
        }
        None => None,
    };
    let server_name = match ctx.sni.as_str() {
        "" => None,
        sni => Some(ServerName::try_from(sni.to_owned()).map_err(|e| err("sni", &e))?),
    };
    // A server's names are checked only against those listed (as Envoy:
    // none listed, none checked; weft's control plane lists the SNI then).
    let names: Option<crate::mtls::NameCheck> = (!sans.is_empty())
        .then(|| Box::new(move |cert: &CertificateDer<'_>| sans.iter().any(|s| s.matches(&cert_names(cert)))) as _);
    let verifier = Arc::new(crate::mtls::ServerChain::new(roots, names, provider.signature_verification_algorithms));
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| err("TLS versions", &e))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let base = match common.tls_certificates.as_slice() {
        [] => builder.with_no_client_auth(),
        [cert] => {
            let chain: Vec<CertificateDer<'static>> =
                CertificateDer::pem_slice_iter(&data(cert.certificate_chain.as_ref(), "client certificate")?)
                    .collect::<Result<_, _>>()
                    .map_err(|e| err("client certificate", &e))?;
            let key = PrivateKeyDer::from_pem_slice(&data(cert.private_key.as_ref(), "client key")?)
                .map_err(|e| err("client key", &e))?;
            builder.with_client_auth_cert(chain, key).map_err(|e| err("client certificate and key", &e))?
        }
        _ => return Err(CompileError::new("more than one client certificate")),
    };
    let with_alpn = |alpn: &[&str]| {
        let mut c = base.clone();
        c.alpn_protocols = if common.alpn_protocols.is_empty() {
            alpn.iter().map(|p| p.as_bytes().to_vec()).collect()
        } else {
            common.alpn_protocols.iter().map(|p| p.as_bytes().to_vec()).collect()
        };
        // No SNI when the context names none (Envoy sends none then).
        c.enable_sni = server_name.is_some();
        Arc::new(c)
    };
    Ok(TlsKind::Origin(Arc::new(Origin {
        h1: with_alpn(&["http/1.1"]),
        h2: with_alpn(&["h2"]),
        raw: with_alpn(&[]),
        // Without SNI the name is sent nowhere and checked by nothing.
        server_name: server_name.unwrap_or_else(|| ServerName::try_from("upstream.invalid").expect("a valid name")),
    })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::matcher::StrMatch;
    use envoy_types::pb::envoy::config::cluster::v3::cluster::TransportSocketMatch;
    use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
        CertificateValidationContext, subject_alt_name_matcher::SanType,
    };
    use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
        CommonTlsContext, SdsSecretConfig, SubjectAltNameMatcher,
    };
    use envoy_types::pb::envoy::r#type::matcher::v3::{StringMatcher, string_matcher::MatchPattern};
    use envoy_types::pb::google::protobuf::{Struct, Value, value::Kind};

    fn mesh_socket(san: &str) -> TransportSocket {
        let sds = |n: &str| SdsSecretConfig { name: n.into(), sds_config: None };
        let ctx = UpstreamTlsContext {
            common_tls_context: Some(CommonTlsContext {
                tls_certificate_sds_secret_configs: vec![sds(WORKLOAD_CERT)],
                validation_context_type: Some(common_tls_context::ValidationContextType::CombinedValidationContext(
                    common_tls_context::CombinedCertificateValidationContext {
                        default_validation_context: Some(CertificateValidationContext {
                            match_typed_subject_alt_names: vec![SubjectAltNameMatcher {
                                san_type: SanType::Uri as i32,
                                matcher: Some(StringMatcher {
                                    match_pattern: Some(MatchPattern::Exact(san.into())),
                                    ignore_case: false,
                                }),
                                ..Default::default()
                            }],
                            ..Default::default()
                        }),
                        validation_context_sds_secret_config: Some(sds(MESH_ROOT)),
                        ..Default::default()
                    },
                )),
                ..Default::default()
            }),
            ..Default::default()
        };
        TransportSocket {
            name: "envoy.transport_sockets.tls".into(),
            config_type: Some(transport_socket::ConfigType::TypedConfig(envoy_types::util::pack_any(ctx))),
        }
    }

    fn matching(criteria: &[(&str, &str)], socket: Option<TransportSocket>) -> TransportSocketMatch {
        let fields = criteria
            .iter()
            .map(|(k, v)| (k.to_string(), Value { kind: Some(Kind::StringValue(v.to_string())) }))
            .collect();
        TransportSocketMatch { name: "m".into(), r#match: Some(Struct { fields }), transport_socket: socket }
    }

    fn sans(t: Option<&UpstreamTls>) -> Option<Vec<String>> {
        match &t?.kind {
            TlsKind::Mesh { sans, .. } => Some(sans.iter().map(SanMatch::text).collect()),
            TlsKind::Origin(_) => None,
        }
    }

    #[test]
    fn the_first_matching_transport_socket_wins_else_the_clusters_own() {
        const ID: &str = "spiffe://cluster.local/ns/a/sa/b";
        let mut c = Cluster {
            transport_socket_matches: vec![
                matching(&[("tlsMode", "istio")], Some(mesh_socket(ID))),
                matching(&[], None),
            ],
            ..Default::default()
        };
        let t = ClusterTls::from_proto(&c).unwrap();
        assert_eq!(sans(t.for_host(true)), Some(vec![ID.to_owned()]));
        assert!(t.for_host(false).is_none(), "the empty criteria's raw buffer");

        c.transport_socket_matches.reverse();
        let t = ClusterTls::from_proto(&c).unwrap();
        assert!(t.for_host(true).is_none(), "an empty criteria first takes every host");

        let c = Cluster { transport_socket: Some(mesh_socket(ID)), ..Default::default() };
        let t = ClusterTls::from_proto(&c).unwrap();
        assert!(sans(t.for_host(true)).is_some() && sans(t.for_host(false)).is_some(), "no match: the cluster's own");

        let c = Cluster { transport_socket_matches: vec![matching(&[("zone", "a")], None)], ..Default::default() };
        assert!(ClusterTls::from_proto(&c).is_err(), "criteria it cannot read are refused, not ignored");
    }

    #[test]
    fn a_mesh_server_must_show_a_listed_identity() {
        let cert = |id: &str| {
            let key = rcgen::KeyPair::generate().unwrap();
            let mut p = rcgen::CertificateParams::default();
            p.subject_alt_names = vec![rcgen::SanType::URI(id.try_into().unwrap())];
            p.self_signed(&key).unwrap().der().clone()
        };
        let listed = [SanMatch {
            kind: Some(SanType::Uri),
            matcher: StrMatch::Exact("spiffe://cluster.local/ns/a/sa/b".into()),
        }];
        assert!(check_mesh_server(&listed, Some(&cert("spiffe://cluster.local/ns/a/sa/b"))).is_ok());
        let refused = check_mesh_server(&listed, Some(&cert("spiffe://cluster.local/ns/a/sa/c"))).unwrap_err();
        assert!(refused.contains("sa/c"), "{refused}");
        assert!(check_mesh_server(&listed, None).is_err());
        assert!(check_mesh_server(&[], None).is_ok(), "none listed: the mesh root decides alone");
        let dns = SanMatch { kind: Some(SanType::Dns), matcher: StrMatch::Exact("api.example".into()) };
        assert!(dns.matches(&[(SanType::Dns, "*.example".into())]), "a wildcard covers one label");
        assert!(!dns.matches(&[(SanType::Dns, "*.api.example".into())]));
    }
}
