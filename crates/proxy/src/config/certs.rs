//! Certificates as the config names them: data given inline or as a file,
//! and the subject alt names a peer must show (Envoy's
//! `match_typed_subject_alt_names`), for TLS a listener terminates and TLS
//! a cluster originates alike.

use super::CompileError;
use super::matcher::StrMatch;
use envoy_types::pb::envoy::config::core::v3::{DataSource, data_source};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    CertificateValidationContext, subject_alt_name_matcher::SanType,
};
use rustls::pki_types::CertificateDer;

/// Inline bytes, an inline string, or a file's contents (read now: a
/// changed file takes a config update to be read again).
pub fn data(d: Option<&DataSource>, what: &str) -> Result<Vec<u8>, CompileError> {
    match d.and_then(|d| d.specifier.as_ref()) {
        Some(data_source::Specifier::InlineBytes(b)) => Ok(b.clone()),
        Some(data_source::Specifier::InlineString(s)) => Ok(s.clone().into_bytes()),
        Some(data_source::Specifier::Filename(f)) => {
            std::fs::read(f).map_err(|e| CompileError::new(format!("{what}: cannot read {f}: {e}")))
        }
        _ => Err(CompileError::new(format!("{what}: give it inline or as a file name"))),
    }
}

/// A subject alt name a peer must show (any of those listed).
#[derive(Debug, Clone)]
pub struct SanMatch {
    /// None: a name of any type.
    pub kind: Option<SanType>,
    pub matcher: StrMatch,
}

impl SanMatch {
    pub fn text(&self) -> String {
        match &self.matcher {
            StrMatch::Exact(s) => s.clone(),
            StrMatch::Prefix(s) => format!("{s}*"),
            StrMatch::Suffix(s) => format!("*{s}"),
            StrMatch::Contains(s) => format!("*{s}*"),
            StrMatch::Regex(r) => format!("~{}", r.as_str()),
        }
    }

    pub fn matches(&self, names: &[(SanType, String)]) -> bool {
        names.iter().any(|(k, v)| {
            self.kind.is_none_or(|want| want == *k)
                && (self.matcher.matches(v, false) || *k == SanType::Dns && self.wildcard(v))
        })
    }

    /// A certificate's `*.example.com` covers an exact `a.example.com`
    /// (one label, RFC 6125), as Envoy matches DNS names.
    fn wildcard(&self, cert_name: &str) -> bool {
        let (Some(suffix), StrMatch::Exact(want)) = (cert_name.strip_prefix("*."), &self.matcher) else { return false };
        want.split_once('.').is_some_and(|(label, rest)| !label.is_empty() && rest.eq_ignore_ascii_case(suffix))
    }
}

/// The DNS names and URIs of a certificate's subject alt names.
pub fn cert_names(cert: &CertificateDer<'_>) -> Vec<(SanType, String)> {
    use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};
    let Ok((_, cert)) = X509Certificate::from_der(cert) else { return Vec::new() };
    let Ok(Some(san)) = cert.subject_alternative_name() else { return Vec::new() };
    san.value
        .general_names
        .iter()
        .filter_map(|n| match n {
            GeneralName::DNSName(d) => Some((SanType::Dns, d.to_ascii_lowercase())),
            GeneralName::URI(u) => Some((SanType::Uri, (*u).to_owned())),
            _ => None,
        })
        .collect()
}

/// The names a validation context asks a peer to show.
pub fn sans_of(v: Option<&CertificateValidationContext>) -> Result<Vec<SanMatch>, CompileError> {
    let Some(v) = v else { return Ok(Vec::new()) };
    let mut out = Vec::new();
    for m in &v.match_typed_subject_alt_names {
        let kind = match SanType::try_from(m.san_type) {
            Ok(k @ (SanType::Dns | SanType::Uri)) => Some(k),
            _ => return Err(CompileError::new("only DNS and URI subject alt names can be matched")),
        };
        let Some(sm) = &m.matcher else { continue };
        out.push(SanMatch { kind, matcher: StrMatch::compile(sm)?.0 });
    }
    #[allow(deprecated)]
    for sm in &v.match_subject_alt_names {
        out.push(SanMatch { kind: None, matcher: StrMatch::compile(sm)?.0 });
    }
    Ok(out)
}
