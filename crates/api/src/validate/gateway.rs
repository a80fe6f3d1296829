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
