//! A DestinationRule's `tls` (for the whole rule, a subset or a port): a
//! known mode, and what that mode needs. MUTUAL needs a client certificate
//! (the two files, or a `credentialName` Secret in the rule's namespace);
//! a certificate file needs its key; a named Secret must exist and be a
//! `kubernetes.io/tls` one (for SIMPLE, one holding `ca.crt` will do).

use super::{Diagnostic, Resource};
use crate::Spec;
use crate::diag::{Severity::Error, Severity::Warning, codes};
use crate::types::{ClientTlsSettings, SecretSpec, TrafficPolicy};

pub(super) fn check(resources: &[Resource], out: &mut Vec<Diagnostic>) {
    for r in resources {
        let Spec::DestinationRule(dr) = &r.spec else { continue };
        let secret = |name: &str| {
            resources.iter().find_map(|s| match &s.spec {
                Spec::Secret(sec) if s.namespace() == r.namespace() && s.name() == name => Some(sec),
                _ => None,
            })
        };
        let mut each = |base: String, tp: &TrafficPolicy| {
            if let Some(tls) = &tp.tls {
                one(r, &format!("{base}.tls"), tls, &secret, out);
            }
            for (i, p) in tp.port_level_settings.iter().enumerate() {
                if let Some(tls) = &p.tls {
                    one(r, &format!("{base}.portLevelSettings[{i}].tls"), tls, &secret, out);
                }
            }
        };
        if let Some(tp) = &dr.traffic_policy {
            each("spec.trafficPolicy".into(), tp);
        }
        for (i, s) in dr.subsets.iter().enumerate() {
            if let Some(tp) = &s.traffic_policy {
                each(format!("spec.subsets[{i}].trafficPolicy"), tp);
            }
        }
    }
}

fn one<'a>(
    r: &Resource,
    at: &str,
    tls: &ClientTlsSettings,
    secret: &dyn Fn(&str) -> Option<&'a SecretSpec>,
    out: &mut Vec<Diagnostic>,
) {
    let mut error = |field: &str, msg: String, hint: &str| {
        let path = if field.is_empty() { at.to_owned() } else { format!("{at}.{field}") };
        out.push(r.diag(Error, codes::INVALID_VALUE, &path, msg, Some(hint.into())));
    };
    let mode = tls.mode.as_deref().unwrap_or("DISABLE");
    if !matches!(mode, "DISABLE" | "SIMPLE" | "MUTUAL" | "ISTIO_MUTUAL") {
        error("mode", format!("unknown TLS mode `{mode}`"), "use DISABLE, SIMPLE, MUTUAL or ISTIO_MUTUAL");
        return;
    }
    // Fields the mode does not use are accepted and said to be unused.
    let unused: &[(&str, bool)] = &[
        ("sni", tls.sni.is_some()),
        ("subjectAltNames", !tls.subject_alt_names.is_empty()),
        ("caCertificates", tls.ca_certificates.is_some()),
        ("credentialName", tls.credential_name.is_some()),
        ("insecureSkipVerify", tls.insecure_skip_verify.is_some()),
        ("clientCertificate", tls.client_certificate.is_some()),
        ("privateKey", tls.private_key.is_some()),
    ];
    let (uses, why): (&[&str], &str) = match mode {
        "DISABLE" if tls.mode.is_none() => {
            (&[], "with no `mode` the rule is DISABLE (plaintext), as Istio reads it; set the mode you mean")
        }
        "DISABLE" => (&[], "DISABLE speaks plaintext"),
        "ISTIO_MUTUAL" => {
            (&["sni", "subjectAltNames"], "ISTIO_MUTUAL shows the mesh certificate and trusts the mesh root")
        }
        "SIMPLE" => (
            &["sni", "subjectAltNames", "caCertificates", "credentialName", "insecureSkipVerify"],
            "SIMPLE shows no client certificate",
        ),
        _ => (
            &[
                "sni",
                "subjectAltNames",
                "caCertificates",
                "credentialName",
                "insecureSkipVerify",
                "clientCertificate",
                "privateKey",
            ],
            "",
        ),
    };
    let notes: Vec<Diagnostic> = unused
        .iter()
        .filter(|(field, set)| *set && !uses.contains(field))
        .map(|(field, _)| {
            let msg = format!("`{field}` is not applied: {why}");
            r.diag(
                Warning,
                codes::NOT_APPLIED,
                &format!("{at}.{field}"),
                msg,
                Some("remove it, or change `mode`".into()),
            )
        })
        .collect();
    if tls.client_certificate.is_some() != tls.private_key.is_some() {
        let (has, lacks) = if tls.client_certificate.is_some() {
            ("clientCertificate", "privateKey")
        } else {
            ("privateKey", "clientCertificate")
        };
        error(lacks, format!("`{has}` is set without `{lacks}`"), "give both files, or a `credentialName` Secret");
    }
    match &tls.credential_name {
        Some(name) if matches!(mode, "SIMPLE" | "MUTUAL") => match secret(name) {
            None => error(
                "credentialName",
                format!("no Secret `{name}` in namespace `{}`", r.namespace()),
                "add a `type: kubernetes.io/tls` Secret of that name to the config, in the rule's namespace",
            ),
            Some(s) if s.tls.is_none() && (mode == "MUTUAL" || s.ca_pem.is_none()) => error(
                "credentialName",
                format!("Secret `{name}` holds no client certificate (`tls.crt`, `tls.key`)"),
                "a client certificate is a `type: kubernetes.io/tls` Secret with `tls.crt` and `tls.key`",
            ),
            Some(_) => {}
        },
        _ => {}
    }
    if mode == "MUTUAL" && tls.credential_name.is_none() && tls.client_certificate.is_none() {
        error(
            "",
            "MUTUAL needs a client certificate".into(),
            "set `clientCertificate` and `privateKey`, or `credentialName`; or use SIMPLE",
        );
    }
    out.extend(notes);
}
