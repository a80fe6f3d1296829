//! A terminating Gateway server's protocol versions and cipher suites,
//! within what weft speaks: TLS 1.2 and 1.3, and the TLS 1.2 suites named
//! here (the proxy's `config/tls_params.rs` maps the same names).

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
}
