//! A Gateway's servers: hosts, protocols, and the TLS settings each needs.

use crate::diag::{Diagnostic, Severity::*, codes};
use crate::resource::Resource;
use crate::types::*;

const GATEWAY_PROTOCOLS: &[&str] = &["HTTP", "HTTPS", "GRPC", "GRPC-WEB", "HTTP2", "MONGO", "TCP", "TLS"];

pub(super) fn check(r: &Resource, g: &GatewaySpec, out: &mut Vec<Diagnostic>) {
    if g.servers.is_empty() {
        out.push(r.diag(Error, codes::MISSING_FIELD, "spec.servers", "a Gateway needs at least one server", None));
    }
    for (i, s) in g.servers.iter().enumerate() {
        let base = format!("spec.servers[{i}]");
        if s.hosts.is_empty() {
            out.push(r.diag(
                Error,
                codes::MISSING_FIELD,
                &format!("{base}.hosts"),
                "a server needs `hosts`",
                Some("use `\"*\"` for any host".into()),
            ));
        }
        for (j, h) in s.hosts.iter().enumerate() {
            if let Some((ns, _)) = h.split_once('/').filter(|(ns, _)| *ns != "*") {
                out.push(r.diag(
                    Warning,
                    codes::NOT_APPLIED,
                    &format!("{base}.hosts[{j}]"),
                    format!("the namespace part of `{h}` is not applied: VirtualServices of every namespace, not only `{ns}`, bind to this server"),
                    Some("see docs/COVERAGE.md for what weft applies".into()),
                ));
            }
        }
        let proto = s.port.protocol.to_ascii_uppercase();
        if !GATEWAY_PROTOCOLS.contains(&proto.as_str()) {
            out.push(r.diag(
                Error,
                codes::INVALID_VALUE,
                &format!("{base}.port.protocol"),
                format!("unknown protocol `{}`", s.port.protocol),
                Some(format!("use one of {}", GATEWAY_PROTOCOLS.join(", "))),
            ));
        }
        if matches!(proto.as_str(), "HTTPS" | "TLS") && s.tls.is_none() {
            out.push(r.diag(
                Error,
                codes::MISSING_FIELD,
                &format!("{base}.tls"),
                format!("a {proto} server needs `tls` settings"),
                None,
            ));
        }
        if let (Some(mode), Some(tls)) = (s.terminates_any(), &s.tls) {
            super::server_tls::check(r, &base, tls, out);
            let files = tls.server_certificate.is_some() && tls.private_key.is_some();
            let own = [
                ("credentialName", tls.credential_name.is_some()),
                ("credentialNames", !tls.credential_names.is_empty()),
                ("serverCertificate", tls.server_certificate.is_some()),
                ("privateKey", tls.private_key.is_some()),
                ("caCertificates", tls.ca_certificates.is_some()),
            ];
            if mode == TlsTermination::IstioMutual {
                for (field, _) in own.iter().filter(|(_, set)| *set) {
                    out.push(r.diag(
                        Error,
                        codes::INVALID_VALUE,
                        &format!("{base}.tls.{field}"),
                        format!("an ISTIO_MUTUAL server shows the gateway's mesh certificate and trusts the mesh root: `{field}` has no place in it"),
                        Some("remove it, or use MUTUAL with your own certificates".into()),
                    ));
                }
            } else if tls.credential_name.is_some() && !tls.credential_names.is_empty() {
                out.push(r.diag(
                    Error,
                    codes::INVALID_VALUE,
                    &format!("{base}.tls.credentialNames"),
                    "`credentialName` and `credentialNames` are both set; a server takes one of them",
                    Some("list every certificate in `credentialNames`, or keep only `credentialName`".into()),
                ));
            } else if tls.credential_name.is_none() && tls.credential_names.is_empty() && !files {
                out.push(r.diag(
                    Error,
                    codes::MISSING_FIELD,
                    &format!("{base}.tls"),
                    "an HTTPS server the gateway terminates needs its certificate",
                    Some("set `credentialName` (a kubernetes.io/tls Secret in the config) or `serverCertificate` and `privateKey` (files)".into()),
                ));
            }
            let named = tls.credential_name.is_some() || !tls.credential_names.is_empty();
            if mode.needs_ca() && !named && tls.ca_certificates.is_none() {
                out.push(r.diag(
                    Error,
                    codes::MISSING_FIELD,
                    &format!("{base}.tls.caCertificates"),
                    "a MUTUAL or OPTIONAL_MUTUAL server needs the CA its clients' certificates are checked against",
                    Some("set `caCertificates` (a file), or `credentialName` with `ca.crt` in the Secret".into()),
                ));
            }
        }
        if s.tcp() && g.servers.iter().any(|o| o.http() && o.port.number == s.port.number) {
            out.push(r.diag(
                Warning,
                codes::NOT_APPLIED,
                &format!("{base}.port"),
                format!(
                    "this {} server is not served: port {} also has an HTTP server, and a port takes one kind of listener (HTTP)",
                    s.port.protocol, s.port.number
                ),
                Some("give the TCP or TLS server a port of its own".into()),
            ));
        }
        if s.port.number == 0 {
            out.push(r.diag(
                Error,
                codes::INVALID_VALUE,
                &format!("{base}.port.number"),
                "port 0 is not a valid port",
                None,
            ));
        }
    }
}

/// A terminating server's `credentialName` (each of its `credentialNames`)
/// names a TLS Secret of the Gateway's namespace in the config; a MUTUAL
/// one's CA is there too (`ca.crt` in one, or in a `<name>-cacert` Secret).
pub(super) fn credentials(resources: &[Resource], out: &mut Vec<Diagnostic>) {
    // A credential name as the gateway reads it (`kubernetes-gateway://`
    // names another namespace's, when granted).
    let secret = |ns: &str, name: &str| {
        let (ns, name) = crate::gateway_api::credential(resources, ns, name)?;
        resources.iter().find_map(|r| match &r.spec {
            crate::Spec::Secret(s) if r.namespace() == ns && r.name() == name => Some(s),
            _ => None,
        })
    };
    for r in resources {
        let crate::Spec::Gateway(g) = &r.spec else { continue };
        for (i, s) in g.servers.iter().enumerate() {
            let (Some(mode), Some(tls)) = (s.terminates_any(), s.tls.as_ref()) else { continue };
            let mut names: Vec<(String, &str)> = tls
                .credential_name
                .iter()
                .map(|n| (format!("spec.servers[{i}].tls.credentialName"), n.as_str()))
                .collect();
            names.extend(
                tls.credential_names
                    .iter()
                    .enumerate()
                    .map(|(j, n)| (format!("spec.servers[{i}].tls.credentialNames[{j}]"), n.as_str())),
            );
            let has_ca = |name: &str| {
                secret(r.namespace(), name).is_some_and(|s| s.ca_pem.is_some())
                    || secret(r.namespace(), &format!("{name}-cacert")).is_some_and(|c| c.ca_pem.is_some())
            };
            let any_ca = names.iter().any(|(_, n)| has_ca(n)) || tls.ca_certificates.is_some();
            for (k, (path, name)) in names.iter().enumerate() {
                match secret(r.namespace(), name) {
                    Some(sec) if sec.tls.is_some() => {
                        if mode.needs_ca() && !any_ca && k == 0 {
                            out.push(r.diag(
                                Error,
                                codes::MISSING_FIELD,
                                path,
                                format!("Secret `{name}` has no `ca.crt` for this MUTUAL server, and there is no `{name}-cacert` Secret"),
                                Some("add `ca.crt` to the Secret, or a Secret `<name>-cacert` holding it".into()),
                            ));
                        }
                    }
                    Some(_) => out.push(r.diag(
                        Error,
                        codes::INVALID_VALUE,
                        path,
                        format!("Secret `{name}` is not of type kubernetes.io/tls"),
                        Some("a gateway's certificate is a `type: kubernetes.io/tls` Secret with `tls.crt` and `tls.key`".into()),
                    )),
                    None if crate::gateway_api::credential(resources, r.namespace(), name).is_none() => {
                        out.push(r.diag(
                            Error,
                            codes::INVALID_VALUE,
                            path,
                            format!("`{name}`: no ReferenceGrant in its namespace lets Gateways of `{}` read it", r.namespace()),
                            Some("add a ReferenceGrant there from `gateway.networking.k8s.io` `Gateway` to that Secret".into()),
                        ))
                    }
                    None => out.push(r.diag(
                        Error,
                        codes::UNKNOWN_HOST,
                        path,
                        format!("no Secret `{name}` in namespace `{}` in the config", r.namespace()),
                        Some("add the kubernetes.io/tls Secret to the folder (the gateway reads Secrets of its Gateway's namespace)".into()),
                    )),
                }
            }
        }
    }
}
