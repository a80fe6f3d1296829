//! A cluster's transport sockets, as Istio writes them from a
//! DestinationRule's `tls` (its subset's or port's, merged by `policy`):
//!
//! - unset: auto mutual TLS: endpoints with a sidecar (`tlsMode: istio`)
//!   get the mesh's mutual TLS (a `transport_socket_matches` entry), the
//!   others plaintext;
//! - `ISTIO_MUTUAL`: the mesh's mutual TLS to every endpoint;
//! - `DISABLE`: plaintext;
//! - `SIMPLE` / `MUTUAL`: TLS origination, with the rule's CA (a file, the
//!   `credentialName` Secret's `ca.crt`, else the system's bundle), SNI (else
//!   the service's host), subject alt names (else the SNI) and, for MUTUAL,
//!   client certificate; `insecureSkipVerify` checks nothing.
//!
//! The mesh's mutual TLS names Istio's SDS secrets (`default`, `ROOTCA`)
//! and lists the SPIFFE IDs the server may show: the service accounts of
//! the service's endpoints and its ServiceEntry's `subjectAltNames`.

use super::gateway_tls::{file, inline};
use super::listeners::ads;
use super::node::ProxyNode;
use envoy_types::pb::envoy::config::cluster::v3::{Cluster, cluster::TransportSocketMatch};
use envoy_types::pb::envoy::config::core::v3::{TransportSocket, transport_socket};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    CertificateValidationContext, CommonTlsContext, SdsSecretConfig, SubjectAltNameMatcher, TlsCertificate,
    UpstreamTlsContext, common_tls_context, subject_alt_name_matcher::SanType,
};
use envoy_types::pb::envoy::r#type::matcher::v3::{StringMatcher, string_matcher::MatchPattern};
use envoy_types::pb::google::protobuf::{Struct, Value, value::Kind};
use envoy_types::util::pack_any;
use weft_api::types::ClientTlsSettings;
use weft_api::{Resource, Spec};

/// Where a system's trusted CAs are (Debian's bundle, as Istio uses the
/// proxy image's).
pub const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// What the cluster's TLS is made from besides the rule.
pub struct Dest<'a> {
    /// The service's host: the default SNI for origination.
    pub host: &'a str,
    /// Some endpoint of the service has a sidecar.
    pub mesh_endpoints: bool,
    /// SPIFFE IDs the service's mesh servers may show.
    pub sans: &'a [String],
    /// The rule's namespace and the config, for `credentialName`.
    pub namespace: &'a str,
    pub resources: &'a [Resource],
}

/// Sets `c`'s transport sockets; Err when the rule's TLS cannot be built
/// (a Secret gone since validation): the cluster must then not be used in
/// plaintext instead.
pub fn apply(c: &mut Cluster, tls: Option<&ClientTlsSettings>, node: &ProxyNode, dest: &Dest) -> Result<(), String> {
    // A `tls` with no mode is DISABLE (its proto's zero value, as Istio
    // reads it); validation says so. No `tls` at all is auto mutual TLS.
    let mode = tls.map(|t| t.mode.as_deref().unwrap_or("DISABLE"));
    match (mode, tls) {
        // An Envoy would need the mesh certificate over SDS, which is not
        // served yet: it stays plaintext to the mesh.
        (None | Some("ISTIO_MUTUAL"), _) if !node.holds_mesh_cert => {}
        // Endpoints without a sidecar get the cluster's own socket (none:
        // plaintext) when no match takes them, so one match is enough; a
        // service with no mesh endpoint needs none (its cluster is sent
        // again when one registers, its accounts being part of it).
        (None, _) if dest.mesh_endpoints => {
            c.transport_socket_matches = vec![TransportSocketMatch {
                name: "tlsMode-istio".into(),
                r#match: Some(Struct {
                    fields: [("tlsMode".to_owned(), Value { kind: Some(Kind::StringValue("istio".into())) })].into(),
                }),
                transport_socket: Some(mesh(dest.sans, &sni_of(&c.name))),
            }];
        }
        (Some("ISTIO_MUTUAL"), Some(tls)) => {
            let sans = if tls.subject_alt_names.is_empty() { dest.sans } else { &tls.subject_alt_names };
            let sni = tls.sni.clone().unwrap_or_else(|| sni_of(&c.name));
            c.transport_socket = Some(mesh(sans, &sni));
        }
        (Some(m @ ("SIMPLE" | "MUTUAL")), Some(tls)) => {
            c.transport_socket = Some(origination(tls, m == "MUTUAL", dest)?);
        }
        _ => {} // DISABLE
    }
    Ok(())
}

fn socket(name: &str, any: envoy_types::pb::google::protobuf::Any) -> TransportSocket {
    TransportSocket { name: name.into(), config_type: Some(transport_socket::ConfigType::TypedConfig(any)) }
}

/// A subject alt name to match exactly: a URI when it has a scheme
/// (`spiffe://...`), else a DNS name.
pub(super) fn san(v: &str) -> SubjectAltNameMatcher {
    exact(if v.contains("://") { SanType::Uri } else { SanType::Dns }, v)
}

fn exact(kind: SanType, v: &str) -> SubjectAltNameMatcher {
    SubjectAltNameMatcher {
        san_type: kind as i32,
        matcher: Some(StringMatcher { match_pattern: Some(MatchPattern::Exact(v.to_owned())), ignore_case: false }),
        ..Default::default()
    }
}

fn sds(name: &str) -> SdsSecretConfig {
    SdsSecretConfig { name: name.into(), sds_config: Some(ads()) }
}

/// Istio's server name for mesh connections of cluster
/// `outbound|<port>|<subset>|<host>`: `outbound_.<port>_.<subset>_.<host>`.
/// A sidecar chooses nothing by it; an east-west gateway's AUTO_PASSTHROUGH
/// server routes the connection by it, still encrypted.
pub fn sni_of(cluster: &str) -> String {
    cluster.replace('|', "_.")
}

/// The mesh's mutual TLS, the server checked for one of `sans`, naming
/// the destination as `sni`.
fn mesh(sans: &[String], sni: &str) -> TransportSocket {
    let validation = CertificateValidationContext {
        match_typed_subject_alt_names: sans.iter().map(|s| exact(SanType::Uri, s)).collect(),
        ..Default::default()
    };
    let ctx = UpstreamTlsContext {
        common_tls_context: Some(CommonTlsContext {
            tls_certificate_sds_secret_configs: vec![sds("default")],
            validation_context_type: Some(common_tls_context::ValidationContextType::CombinedValidationContext(
                common_tls_context::CombinedCertificateValidationContext {
                    default_validation_context: Some(validation),
                    validation_context_sds_secret_config: Some(sds("ROOTCA")),
                    ..Default::default()
                },
            )),
            ..Default::default()
        }),
        sni: sni.to_owned(),
        ..Default::default()
    };
    socket("envoy.transport_sockets.tls", pack_any(ctx))
}

fn origination(tls: &ClientTlsSettings, mutual: bool, dest: &Dest) -> Result<TransportSocket, String> {
    let secret = |name: &str| {
        dest.resources.iter().find_map(|r| match &r.spec {
            Spec::Secret(s) if r.namespace() == dest.namespace && r.name() == name => Some(s),
            _ => None,
        })
    };
    let named = match &tls.credential_name {
        Some(name) => Some((name, secret(name).ok_or_else(|| format!("Secret {name} is missing"))?)),
        None => None,
    };
    let mut cert = None;
    if mutual {
        cert = Some(match (named, &tls.client_certificate, &tls.private_key) {
            (Some((name, s)), _, _) => {
                let pair = s.tls.as_ref().ok_or_else(|| format!("Secret {name} holds no client certificate"))?;
                TlsCertificate {
                    certificate_chain: inline(&pair.cert_pem),
                    private_key: inline(&pair.key_pem),
                    ..Default::default()
                }
            }
            (None, Some(c), Some(k)) => {
                TlsCertificate { certificate_chain: file(c), private_key: file(k), ..Default::default() }
            }
            _ => return Err("MUTUAL without a client certificate".into()),
        });
    }
    let sni = tls.sni.as_deref().unwrap_or(dest.host);
    let validation = if tls.insecure_skip_verify == Some(true) {
        None
    } else {
        let from_secret = named.and_then(|(name, s)| {
            s.ca_pem.clone().or_else(|| secret(&format!("{name}-cacert")).and_then(|c| c.ca_pem.clone()))
        });
        let ca = match (from_secret, &tls.ca_certificates) {
            (Some(pem), _) => inline(&pem),
            (None, Some(path)) => file(path),
            (None, None) => file(SYSTEM_CA_BUNDLE),
        };
        let sans: Vec<SubjectAltNameMatcher> = if tls.subject_alt_names.is_empty() {
            vec![exact(SanType::Dns, sni)]
        } else {
            tls.subject_alt_names.iter().map(|s| san(s)).collect()
        };
        Some(common_tls_context::ValidationContextType::ValidationContext(CertificateValidationContext {
            trusted_ca: ca,
            match_typed_subject_alt_names: sans,
            ..Default::default()
        }))
    };
    let ctx = UpstreamTlsContext {
        common_tls_context: Some(CommonTlsContext {
            tls_certificates: cert.into_iter().collect(),
            validation_context_type: validation,
            ..Default::default()
        }),
        sni: sni.to_owned(),
        ..Default::default()
    };
    Ok(socket("envoy.transport_sockets.tls", pack_any(ctx)))
}
