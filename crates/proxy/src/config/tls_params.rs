//! The protocol versions and cipher suites a TLS context allows (Envoy's
//! `TlsParameters`), within what rustls speaks: TLS 1.2 and 1.3, AEAD
//! suites with forward secrecy. As in Envoy, cipher suites name TLS 1.2's
//! (OpenSSL names, `[A|B]` groups read as their members); TLS 1.3's are
//! always offered.

use super::CompileError;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{TlsParameters, tls_parameters::TlsProtocol};
use rustls::crypto::CryptoProvider;
use rustls::{CipherSuite, ProtocolVersion, SupportedProtocolVersion};
use std::sync::Arc;

/// OpenSSL's names for the TLS 1.2 suites rustls has.
const SUITES: &[(&str, CipherSuite)] = &[
    ("ECDHE-ECDSA-AES128-GCM-SHA256", CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256),
    ("ECDHE-RSA-AES128-GCM-SHA256", CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256),
    ("ECDHE-ECDSA-AES256-GCM-SHA384", CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384),
    ("ECDHE-RSA-AES256-GCM-SHA384", CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384),
    ("ECDHE-ECDSA-CHACHA20-POLY1305", CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256),
    ("ECDHE-RSA-CHACHA20-POLY1305", CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256),
];

/// The provider with only the suites `params` names (every suite when it
/// names none), and the protocol versions it allows.
pub fn apply(
    params: Option<&TlsParameters>,
) -> Result<(Arc<CryptoProvider>, Vec<&'static SupportedProtocolVersion>), CompileError> {
    let mut provider = rustls::crypto::ring::default_provider();
    let Some(p) = params else { return Ok((Arc::new(provider), rustls::DEFAULT_VERSIONS.to_vec())) };
    let rank = |v: i32, default: u8| match TlsProtocol::try_from(v).unwrap_or(TlsProtocol::TlsAuto) {
        TlsProtocol::TlsAuto => default,
        // rustls speaks nothing older than TLS 1.2.
        TlsProtocol::TlSv10 | TlsProtocol::TlSv11 => 2,
        TlsProtocol::TlSv12 => 2,
        TlsProtocol::TlSv13 => 3,
    };
    let (min, max) = (rank(p.tls_minimum_protocol_version, 2), rank(p.tls_maximum_protocol_version, 3));
    let max_names_old =
        matches!(TlsProtocol::try_from(p.tls_maximum_protocol_version), Ok(TlsProtocol::TlSv10 | TlsProtocol::TlSv11));
    if min > max || max_names_old {
        return Err(CompileError::new("the TLS versions allowed leave none that weft speaks (TLS 1.2 and 1.3)"));
    }
    let versions: Vec<&'static SupportedProtocolVersion> = [(2, &rustls::version::TLS12), (3, &rustls::version::TLS13)]
        .into_iter()
        .filter(|(r, _)| (min..=max).contains(r))
        .map(|(_, v)| v)
        .collect();
    if !p.cipher_suites.is_empty() {
        let named: Vec<CipherSuite> = p
            .cipher_suites
            .iter()
            .flat_map(|s| s.trim_matches(|c| c == '[' || c == ']').split('|'))
            .filter_map(|n| SUITES.iter().find(|(name, _)| *name == n).map(|(_, s)| *s))
            .collect();
        let tls12 = versions.iter().any(|v| v.version == ProtocolVersion::TLSv1_2);
        if named.is_empty() && tls12 {
            return Err(CompileError::new(format!(
                "none of the cipher suites {:?} is one weft offers ({})",
                p.cipher_suites,
                SUITES.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
            )));
        }
        provider
            .cipher_suites
            .retain(|s| s.version().version == ProtocolVersion::TLSv1_3 || named.contains(&s.suite()));
    }
    Ok((Arc::new(provider), versions))
}
