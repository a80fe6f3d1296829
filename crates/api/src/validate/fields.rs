//! Per-resource checks: each field on its own, no other resource needed.

use crate::diag::{Diagnostic, Severity::*, codes};
use crate::resource::{Resource, Spec};
use crate::types::*;

pub(super) fn check(r: &Resource, out: &mut Vec<Diagnostic>) {
    match &r.spec {
        Spec::VirtualService(vs) => super::virtual_service::check(r, vs, out),
        Spec::DestinationRule(dr) => destination_rule(r, dr, out),
        Spec::Gateway(g) => super::gateway::check(r, g, out),
        Spec::Service(s) => {
            for (i, p) in s.ports.iter().enumerate() {
                if p.port == 0 {
                    out.push(r.diag(
                        Error,
                        codes::INVALID_VALUE,
                        &format!("spec.ports[{i}].port"),
                        "port 0 is not a valid port",
                        Some("use 1-65535".into()),
                    ));
                }
                if s.ports.len() > 1 && p.name.is_none() {
                    out.push(r.diag(
                        Error,
                        codes::MISSING_FIELD,
                        &format!("spec.ports[{i}]"),
                        "a Service with several ports must name each port",
                        Some("add `name: http-<something>`; the prefix also sets the protocol".into()),
                    ));
                }
            }
            let external = s.type_.as_deref().is_some_and(|t| t.eq_ignore_ascii_case("ExternalName"));
            if external && s.external_name.as_deref().is_none_or(str::is_empty) {
                out.push(r.diag(
                    Error,
                    codes::MISSING_FIELD,
                    "spec.externalName",
                    "an ExternalName Service needs `externalName`, the DNS name it stands for",
                    Some("e.g. `externalName: api.example.com`".into()),
                ));
            }
        }
        Spec::ServiceEntry(se) => {
            if se.hosts.is_empty() {
                out.push(r.diag(
                    Error,
                    codes::MISSING_FIELD,
                    "spec.hosts",
                    "a ServiceEntry needs at least one host",
                    None,
                ));
            }
            if let Some(res) = &se.resolution
                && !matches!(res.as_str(), "NONE" | "STATIC" | "DNS" | "DNS_ROUND_ROBIN")
            {
                out.push(r.diag(
                    Error,
                    codes::INVALID_VALUE,
                    "spec.resolution",
                    format!("unknown resolution `{res}`"),
                    Some("use NONE, STATIC, DNS or DNS_ROUND_ROBIN".into()),
                ));
            }
            if let Some(loc) = &se.location
                && !matches!(loc.as_str(), "MESH_EXTERNAL" | "MESH_INTERNAL")
            {
                out.push(r.diag(
                    Error,
                    codes::INVALID_VALUE,
                    "spec.location",
                    format!("unknown location `{loc}`"),
                    Some("use MESH_EXTERNAL or MESH_INTERNAL".into()),
                ));
            }
            for (i, e) in se.endpoints.iter().enumerate() {
                locality(r, &format!("spec.endpoints[{i}].locality"), e.locality.as_deref(), out);
                tls_mode(r, &format!("spec.endpoints[{i}].labels"), &e.labels, out);
            }
        }
        Spec::WorkloadEntry(w) => {
            if w.address.is_empty() && w.network.is_none() {
                out.push(r.diag(
                    Error,
                    codes::MISSING_FIELD,
                    "spec.address",
                    "a WorkloadEntry needs an address",
                    Some("set `address: <ip or hostname>`".into()),
                ));
            }
            locality(r, "spec.locality", w.locality.as_deref(), out);
            tls_mode(r, "spec.labels", &w.labels, out);
        }
        Spec::Workload(w) => {
            if w.command.is_empty() {
                out.push(r.diag(
                    Error,
                    codes::MISSING_FIELD,
                    "spec.command",
                    "a Workload needs a command to run",
                    Some("e.g. `command: [weft, demo, --name, my-app]`".into()),
                ));
            }
            if w.port == 0 {
                out.push(r.diag(
                    Error,
                    codes::MISSING_FIELD,
                    "spec.port",
                    "a Workload needs the port its application listens on",
                    None,
                ));
            }
            locality(r, "spec.locality", w.locality.as_deref(), out);
        }
        Spec::Sidecar(sc) => sidecar(r, sc, out),
        Spec::AuthorizationPolicy(p) => super::authz::check(r, p, out),
        Spec::PeerAuthentication(p) => super::authz::peer_authentication(r, p, out),
        Spec::RequestAuthentication(p) => super::request_auth::check(r, p, out),
        Spec::Telemetry(t) => super::telemetry::check(r, t, out),
        Spec::MeshConfig(m) => super::telemetry::mesh_config(r, m, out),
        // Gateway API resources are checked as they are lowered (`crate::gateway_api`).
        Spec::GatewayClass(_)
        | Spec::KubeGateway(_)
        | Spec::KubeHttpRoute(_)
        | Spec::KubeGrpcRoute(_)
        | Spec::KubeTcpRoute(_)
        | Spec::KubeTlsRoute(_)
        | Spec::ReferenceGrant(_) => {}
        Spec::Endpoints(_) | Spec::EndpointSlice(_) | Spec::Pods(_) | Spec::Secret(_) | Spec::Inert(_) => {}
    }
}

/// Egress hosts are `namespace/dnsName`, the name a FQDN or a wildcard.
fn sidecar(r: &Resource, sc: &SidecarSpec, out: &mut Vec<Diagnostic>) {
    for (i, e) in sc.egress.iter().enumerate() {
        if e.hosts.is_empty() {
            let path = format!("spec.egress[{i}].hosts");
            out.push(r.diag(Error, codes::MISSING_FIELD, &path, "an egress listener needs `hosts`", None));
        }
        for (j, h) in e.hosts.iter().enumerate() {
            let path = format!("spec.egress[{i}].hosts[{j}]");
            match h.split_once('/') {
                None => out.push(r.diag(
                    Error,
                    codes::INVALID_VALUE,
                    &path,
                    format!("`{h}` is not `namespace/host`"),
                    Some(format!("e.g. `./{h}` (this namespace) or `*/{h}` (any)")),
                )),
                Some((_, host)) if host != "*" && !host.starts_with("*.") && !host.contains('.') => out.push(r.diag(
                    Warning,
                    codes::INVALID_VALUE,
                    &path,
                    format!("`{host}` is a short name, and egress hosts match fully qualified names only"),
                    Some(format!("write `{host}.<namespace>.svc.cluster.local`, or `*` for every host")),
                )),
                _ => {}
            }
        }
    }
}

/// Any other `tlsMode` than Istio's two reads as `disabled` (see
/// `in_mesh`), which a typo should not do silently.
fn tls_mode(r: &Resource, path: &str, labels: &Labels, out: &mut Vec<Diagnostic>) {
    if let Some(v) = labels.get(TLS_MODE_LABEL).filter(|v| !matches!(v.as_str(), "istio" | "disabled")) {
        out.push(r.diag(
            Warning,
            codes::INVALID_VALUE,
            &format!("{path}[\"{TLS_MODE_LABEL}\"]"),
            format!("unknown tlsMode `{v}`: the instance is treated as outside the mesh"),
            Some("use `istio` for an instance with a weft sidecar, or `disabled`".into()),
        ));
    }
}

fn locality(r: &Resource, path: &str, loc: Option<&str>, out: &mut Vec<Diagnostic>) {
    if let Some(l) = loc
        && (l.split('/').count() > 3 || l.split('/').any(str::is_empty))
    {
        out.push(r.diag(
            Error,
            codes::INVALID_VALUE,
            path,
            format!("locality `{l}` is not region/zone/subzone"),
            Some("e.g. `us-east/us-east-1a` or `eu/zone-b/rack-3`".into()),
        ));
    }
}

pub(crate) fn string_match(r: &Resource, path: &str, m: &StringMatch, allow_empty: bool, out: &mut Vec<Diagnostic>) {
    let set = [m.exact.is_some(), m.prefix.is_some(), m.regex.is_some()].iter().filter(|b| **b).count();
    if set > 1 || (set == 0 && !allow_empty) {
        out.push(r.diag(
            Error,
            codes::INVALID_VALUE,
            path,
            "a string match needs exactly one of `exact`, `prefix`, `regex`",
            None,
        ));
    }
    if let Some(re) = &m.regex
        && let Err(e) = regex::Regex::new(re)
    {
        let first = e.to_string().lines().last().unwrap_or_default().to_owned();
        out.push(r.diag(
            Error,
            codes::INVALID_VALUE,
            &format!("{path}.regex"),
            format!("regex does not compile: {first}"),
            Some("RE2 syntax; it must match the whole value".into()),
        ));
    }
}

fn destination_rule(r: &Resource, dr: &DestinationRuleSpec, out: &mut Vec<Diagnostic>) {
    // weft's extensions, in annotations (see `extensions`).
    let ann = &r.meta.annotations;
    for e in crate::extensions::health_check(ann).1.into_iter().chain(crate::extensions::outlier(ann).1) {
        let path = format!("metadata.annotations[\"{}\"]", e.key);
        out.push(r.diag(Error, codes::INVALID_VALUE, &path, e.message, Some(e.hint)));
    }
    if dr.host.is_empty() {
        out.push(r.diag(Error, codes::MISSING_FIELD, "spec.host", "a DestinationRule needs a `host`", None));
    }
    let mut names = std::collections::HashSet::new();
    for (i, s) in dr.subsets.iter().enumerate() {
        if !names.insert(&s.name) {
            out.push(r.diag(
                Error,
                codes::DUPLICATE,
                &format!("spec.subsets[{i}].name"),
                format!("subset `{}` is defined twice", s.name),
                None,
            ));
        }
        if let Some(tp) = &s.traffic_policy {
            traffic_policy(r, &format!("spec.subsets[{i}].trafficPolicy"), tp, out);
        }
    }
    if let Some(tp) = &dr.traffic_policy {
        traffic_policy(r, "spec.trafficPolicy", tp, out);
    }
}

fn traffic_policy(r: &Resource, base: &str, tp: &TrafficPolicy, out: &mut Vec<Diagnostic>) {
    if let Some(lb) = &tp.load_balancer {
        let p = format!("{base}.loadBalancer");
        if lb.simple.is_some() && lb.consistent_hash.is_some() {
            out.push(r.diag(
                Error,
                codes::INVALID_VALUE,
                &p,
                "set either `simple` or `consistentHash`, not both",
                None,
            ));
        }
        if let Some(ch) = &lb.consistent_hash {
            let keys = [
                ch.http_header_name.is_some(),
                ch.http_cookie.is_some(),
                ch.use_source_ip == Some(true),
                ch.http_query_parameter_name.is_some(),
            ];
            if keys.iter().filter(|b| **b).count() != 1 {
                out.push(r.diag(Error, codes::INVALID_VALUE, &format!("{p}.consistentHash"), "consistentHash needs exactly one of httpHeaderName, httpCookie, useSourceIp, httpQueryParameterName", None));
            }
            let attributes = ch.http_cookie.iter().flat_map(|c| c.attributes.iter().enumerate());
            for (i, a) in attributes {
                if let Some(why) = a.invalid() {
                    let at = format!("{p}.consistentHash.httpCookie.attributes[{i}]");
                    let hint =
                        "an attribute as Set-Cookie writes it: `{name: SameSite, value: Strict}`, `{name: Secure}`";
                    out.push(r.diag(Error, codes::INVALID_VALUE, &at, why, Some(hint.into())));
                }
            }
            if ch.ring_hash.is_some() && ch.maglev.is_some() {
                out.push(r.diag(
                    Error,
                    codes::INVALID_VALUE,
                    &format!("{p}.consistentHash"),
                    "set either `ringHash` or `maglev`, not both",
                    None,
                ));
            }
        }
        if let Some(l) = &lb.locality_lb_setting {
            let failover = !l.failover.is_empty() || !l.failover_priority.is_empty();
            if !l.distribute.is_empty() && failover {
                out.push(r.diag(
                    Error,
                    codes::INVALID_VALUE,
                    &format!("{p}.localityLbSetting"),
                    "`distribute` cannot be combined with `failover` or `failoverPriority`",
                    Some("keep `distribute` to split traffic by locality, or `failover`/`failoverPriority` to prefer the nearest and fail over; not both".into()),
                ));
            }
            if failover && tp.outlier_detection.is_none() {
                out.push(r.diag(
                    Warning,
                    codes::INVALID_VALUE,
                    &format!("{p}.localityLbSetting"),
                    "locality failover only happens with `outlierDetection` set",
                    Some(format!("add `{base}.outlierDetection`, e.g. `consecutive5xxErrors: 5`")),
                ));
            }
            for (i, d) in l.distribute.iter().enumerate() {
                let total: u32 = d.to.values().sum();
                if total != 100 {
                    out.push(r.diag(
                        Error,
                        codes::WEIGHTS,
                        &format!("{p}.localityLbSetting.distribute[{i}].to"),
                        format!("distribute weights add up to {total}, not 100"),
                        None,
                    ));
                }
            }
        }
        if let Some(w) = &lb.warmup {
            if w.minimum_percent.is_some_and(|m| !(0.0..=100.0).contains(&m)) {
                out.push(r.diag(
                    Error,
                    codes::INVALID_VALUE,
                    &format!("{p}.warmup.minimumPercent"),
                    "minimumPercent is a percentage (0-100)",
                    None,
                ));
            }
            if w.duration.is_none() {
                out.push(r.diag(
                    Error,
                    codes::INVALID_VALUE,
                    &format!("{p}.warmup"),
                    "warmup needs a `duration`: how long a new endpoint takes to reach its full share",
                    Some(format!("add `{p}.warmup.duration`, e.g. `duration: 30s`")),
                ));
            }
            if lb.consistent_hash.is_some() || matches!(lb.simple, Some(SimpleLb::Random | SimpleLb::Passthrough)) {
                out.push(r.diag(
                    Warning,
                    codes::INVALID_VALUE,
                    &format!("{p}.warmup"),
                    "warmup (slow start) only applies to ROUND_ROBIN and LEAST_REQUEST; it is ignored here",
                    None,
                ));
            }
            if w.aggression.is_some_and(|a| a < 1.0) {
                out.push(r.diag(
                    Error,
                    codes::INVALID_VALUE,
                    &format!("{p}.warmup.aggression"),
                    "aggression must be at least 1.0",
                    None,
                ));
            }
        }
    }
    if let Some(od) = &tp.outlier_detection {
        for (field, v) in [("maxEjectionPercent", od.max_ejection_percent), ("minHealthPercent", od.min_health_percent)]
        {
            if v.is_some_and(|v| v > 100) {
                out.push(r.diag(
                    Error,
                    codes::INVALID_VALUE,
                    &format!("{base}.outlierDetection.{field}"),
                    format!("{field} is a percentage (0-100)"),
                    None,
                ));
            }
        }
    }
    if let Some(rb) = &tp.retry_budget
        && rb.percent.is_some_and(|p| !(0.0..=100.0).contains(&p))
    {
        out.push(r.diag(
            Error,
            codes::INVALID_VALUE,
            &format!("{base}.retryBudget.percent"),
            "percent is a percentage (0-100)",
            None,
        ));
    }
}
