//! A terminating Gateway server's protocol versions and cipher suites,
//! within what weft speaks: TLS 1.2 and 1.3, and the TLS 1.2 suites named
//! here (the proxy's `config/tls_params.rs` maps the same names); its
//! pinned client certificates, SHA-256 digests.

use crate::diag::{Diagnostic, Severity::*, codes};
use crate::resource::Resource;
use crate::types::ServerTlsSettings;

const VERSIONS: &[&str] = &["TLS_AUTO", "TLSV1_0", "TLSV1_1", "TLSV1_2", "TLSV1_3"];

/// OpenSSL's names of the TLS 1.2 suites weft offers.
const CIPHER_SUITES: &[&str] = &[
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305",
    "ECDHE-RSA-CHACHA20-POLY1305",
];

pub(super) fn check(r: &Resource, base: &str, tls: &ServerTlsSettings, out: &mut Vec<Diagnostic>) {
    let rank = |v: &str| VERSIONS.iter().position(|x| *x == v);
    let mut bounds = [None, None];
    for (i, (field, v)) in
        [("minProtocolVersion", &tls.min_protocol_version), ("maxProtocolVersion", &tls.max_protocol_version)]
            .into_iter()
            .enumerate()
    {
        let Some(v) = v else { continue };
        let path = format!("{base}.tls.{field}");
        match rank(v) {
            None => out.push(r.diag(
                Error,
                codes::INVALID_VALUE,
                &path,
                format!("unknown TLS version `{v}`"),
                Some(format!("use one of {}", VERSIONS.join(", "))),
            )),
            Some(1 | 2) if field == "maxProtocolVersion" => out.push(r.diag(
                Error,
                codes::INVALID_VALUE,
                &path,
                format!("weft speaks TLS 1.2 and 1.3 only: a server that stops at `{v}` takes no client"),
                Some("use TLSV1_2 or TLSV1_3".into()),
            )),
            Some(1 | 2) => out.push(r.diag(
                Warning,
                codes::NOT_APPLIED,
                &path,
                format!("`{v}` is not applied: weft speaks nothing older than TLS 1.2"),
                Some("use TLSV1_2".into()),
            )),
            Some(n) => bounds[i] = Some(n).filter(|n| *n > 0),
        }
    }
    if let [Some(min), Some(max)] = bounds
        && min > max
    {
        out.push(r.diag(
            Error,
            codes::INVALID_VALUE,
            &format!("{base}.tls.minProtocolVersion"),
            "the minimum TLS version is above the maximum",
            None,
        ));
    }
    let names = |s: &String| s.trim_matches(|c| c == '[' || c == ']').split('|').map(str::to_owned).collect::<Vec<_>>();
    let (known, unknown): (Vec<String>, Vec<String>) =
        tls.cipher_suites.iter().flat_map(names).partition(|n| CIPHER_SUITES.contains(&n.as_str()));
    let path = format!("{base}.tls.cipherSuites");
    let tls13_only = tls.min_protocol_version.as_deref() == Some("TLSV1_3");
    if !tls.cipher_suites.is_empty() && known.is_empty() && !tls13_only {
        out.push(r.diag(
            Error,
            codes::INVALID_VALUE,
            &path,
            "none of these cipher suites is one weft offers for TLS 1.2",
            Some(format!("use some of {}", CIPHER_SUITES.join(", "))),
        ));
    } else if !unknown.is_empty() {
        out.push(r.diag(
            Warning,
            codes::NOT_APPLIED,
            &path,
            format!("{} not offered: weft has only AEAD suites with forward secrecy", unknown.join(", ")),
            Some(format!("weft offers {}", CIPHER_SUITES.join(", "))),
        ));
    }
    pins(r, base, tls, out);
}

/// `verifyCertificateSpki` (base64) and `verifyCertificateHash` (hex,
/// colons allowed) are SHA-256 digests, and pin the certificates of
/// clients: a server that takes none (SIMPLE) has nothing to pin.
fn pins(r: &Resource, base: &str, tls: &ServerTlsSettings, out: &mut Vec<Diagnostic>) {
    use base64::Engine;
    let spki_ok = |v: &str| base64::engine::general_purpose::STANDARD.decode(v).is_ok_and(|b| b.len() == 32);
    let hash_ok = |v: &str| {
        let hex: String = v.chars().filter(|c| *c != ':').collect();
        hex.len() == 64 && hex.chars().all(|c| c.is_ascii_hexdigit())
    };
    let lists = [
        (
            "verifyCertificateSpki",
            &tls.verify_certificate_spki,
            &spki_ok as &dyn Fn(&str) -> bool,
            "the base64 of a SHA-256 digest (44 characters)",
        ),
        (
            "verifyCertificateHash",
            &tls.verify_certificate_hash,
            &hash_ok,
            "the hex of a SHA-256 digest (64 digits, colons allowed)",
        ),
    ];
    let mode = tls.mode.as_deref().unwrap_or("SIMPLE").to_ascii_uppercase();
    for (field, values, ok, shape) in lists {
        for (i, v) in values.iter().enumerate().filter(|(_, v)| !ok(v)) {
            out.push(r.diag(
                Error,
                codes::INVALID_VALUE,
                &format!("{base}.tls.{field}[{i}]"),
                format!("`{v}` is not {shape}"),
                Some("pin a client certificate by its digest, e.g. `openssl x509 -noout -fingerprint -sha256`".into()),
            ));
        }
        if !values.is_empty() && !matches!(mode.as_str(), "MUTUAL" | "OPTIONAL_MUTUAL") {
            let why = if mode == "ISTIO_MUTUAL" {
                "an ISTIO_MUTUAL server checks mesh identities (`subjectAltNames`), not pinned digests".to_owned()
            } else {
                format!("a {mode} server takes no client certificate to pin")
            };
            out.push(r.diag(
                Warning,
                codes::NOT_APPLIED,
                &format!("{base}.tls.{field}"),
                format!("not applied: {why}"),
                Some("use MUTUAL (or OPTIONAL_MUTUAL) to pin client certificates".into()),
            ));
        }
    }
}
