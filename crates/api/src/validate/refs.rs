//! Cross-resource checks: every name a resource uses must lead somewhere.

use crate::diag::{Diagnostic, Severity::*, codes};
use crate::index::{Index, host_matches};
use crate::resource::{Resource, Spec};
use crate::types::*;

pub(super) fn check(resources: &[Resource], out: &mut Vec<Diagnostic>) {
    let index = Index::new(resources);
    for r in resources {
        match &r.spec {
            Spec::VirtualService(vs) => virtual_service(&index, r, vs, out),
            Spec::DestinationRule(dr) => destination_rule(&index, r, dr, out),
            Spec::Service(svc) => named_target_ports(resources, r, svc, out),
            _ => {}
        }
    }
}

fn virtual_service(index: &Index, r: &Resource, vs: &VirtualServiceSpec, out: &mut Vec<Diagnostic>) {
    super::delegation::check(index, r, vs, out);
    for (i, g) in vs.gateways.iter().enumerate() {
        if g == "mesh" {
            continue;
        }
        let Some((_, gw)) = index.gateway(g, r.namespace()) else {
            let known: Vec<String> = resources_of(index, "Gateway");
            out.push(r.diag(
                Error,
                codes::UNKNOWN_GATEWAY,
                &format!("spec.gateways[{i}]"),
                format!("gateway `{g}` does not exist, so this VirtualService would not be applied to it"),
                Some(if known.is_empty() {
                    "define a Gateway with this name, or remove it from `gateways`".into()
                } else {
                    format!("known gateways: {}", known.join(", "))
                }),
            ));
            continue;
        };
        let served: Vec<&str> = gw
            .servers
            .iter()
            .flat_map(|s| s.hosts.iter())
            .map(|h| h.split_once('/').map_or(h.as_str(), |(_, h)| h))
            .collect();
        let any = vs.hosts.iter().any(|h| served.iter().any(|s| host_matches(s, h) || host_matches(h, s)));
        if !any {
            out.push(r.diag(
                Warning,
                codes::UNKNOWN_HOST,
                "spec.hosts",
                format!("none of these hosts is served by gateway `{g}` (it serves {})", served.join(", ")),
                Some("add a matching host to the VirtualService or to the Gateway's server".into()),
            ));
        }
    }
    tls_rules_on_sidecars(index, r, vs, out);
    for (i, h) in vs.http.iter().enumerate() {
        for (j, d) in h.route.iter().enumerate() {
            destination(index, r, &format!("spec.http[{i}].route[{j}].destination"), &d.destination, out);
        }
        if let Some(m) = &h.mirror {
            destination(index, r, &format!("spec.http[{i}].mirror"), m, out);
        }
        for (j, m) in h.mirrors.iter().enumerate() {
            destination(index, r, &format!("spec.http[{i}].mirrors[{j}].destination"), &m.destination, out);
        }
    }
    for (kind, routes) in [
        ("tcp", vs.tcp.iter().map(|t| &t.route).collect::<Vec<_>>()),
        ("tls", vs.tls.iter().map(|t| &t.route).collect()),
    ] {
        for (i, route) in routes.iter().enumerate() {
            for (j, d) in route.iter().enumerate() {
                destination(index, r, &format!("spec.{kind}[{i}].route[{j}].destination"), &d.destination, out);
            }
        }
    }
}

fn resources_of(index: &Index, kind: &str) -> Vec<String> {
    index.resources.iter().filter(|r| r.kind() == kind).map(|r| format!("{}/{}", r.namespace(), r.name())).collect()
}

fn destination(index: &Index, r: &Resource, path: &str, d: &Destination, out: &mut Vec<Diagnostic>) {
    let Some(svc) = index.service(&d.host, r.namespace()) else {
        let known: Vec<&str> = index.services.values().map(|s| s.name.as_str()).collect();
        out.push(r.diag(
            Error,
            codes::UNKNOWN_HOST,
            &format!("{path}.host"),
            format!("no service `{}` is defined (looked for `{}`)", d.host, Index::qualify(&d.host, r.namespace())),
            Some(if known.is_empty() {
                "define a Service or ServiceEntry for it".into()
            } else {
                format!("known services: {}", known.join(", "))
            }),
        ));
        return;
    };
    match &d.port {
        Some(p) if !svc.ports.iter().any(|sp| sp.port == p.number) => {
            let ports: Vec<String> = svc.ports.iter().map(|p| p.port.to_string()).collect();
            out.push(r.diag(
                Error,
                codes::UNKNOWN_PORT,
                &format!("{path}.port.number"),
                format!("service `{}` has no port {}", d.host, p.number),
                Some(format!("its ports: {}", ports.join(", "))),
            ));
        }
        None if svc.ports.len() > 1 => {
            let ports: Vec<String> = svc.ports.iter().map(|p| p.port.to_string()).collect();
            out.push(r.diag(
                Error,
                codes::UNKNOWN_PORT,
                path,
                format!("service `{}` has several ports, so the destination must name one", d.host),
                Some(format!("add `port: {{number: N}}` with N one of {}", ports.join(", "))),
            ));
        }
        _ => {}
    }
    if let Some(subset) = &d.subset {
        let dr = index.destination_rule(&svc.fqdn, r.namespace());
        let found = dr.and_then(|(_, dr)| dr.subsets.iter().find(|s| &s.name == subset));
        if found.is_none() {
            let hint = match dr {
                None => format!("define a DestinationRule for `{}` with a subset named `{subset}`", d.host),
                Some((dr_res, dr)) => format!(
                    "{} defines: {}",
                    dr_res.key(),
                    dr.subsets.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", ")
                ),
            };
            out.push(r.diag(
                Error,
                codes::UNKNOWN_SUBSET,
                &format!("{path}.subset"),
                format!("subset `{subset}` of `{}` is not defined", d.host),
                Some(hint),
            ));
        }
    }
}

fn destination_rule(index: &Index, r: &Resource, dr: &DestinationRuleSpec, out: &mut Vec<Diagnostic>) {
    let Some(svc) = index.service(&dr.host, r.namespace()) else {
        out.push(r.diag(
            Warning,
            codes::UNKNOWN_HOST,
            "spec.host",
            format!("no service `{}` is defined; this rule applies to nothing yet", dr.host),
            None,
        ));
        return;
    };
    let workloads = index.static_workload_labels();
    let selector = svc.selector.clone().unwrap_or_default();
    for (i, s) in dr.subsets.iter().enumerate() {
        let mut wanted = selector.clone();
        wanted.extend(s.labels.clone());
        if !workloads.iter().any(|l| selects(&wanted, l)) {
            out.push(
                r.diag(
                    Warning,
                    codes::SUBSET_SELECTS_NOTHING,
                    &format!("spec.subsets[{i}].labels"),
                    format!("subset `{}` selects no known instance of `{}`", s.name, dr.host),
                    Some(
                        "check the labels against the workloads; instances that register at run time will be picked up"
                            .into(),
                    ),
                ),
            );
        }
    }
}

/// A named `targetPort` must name a container port of every pod object the
/// Service selects: Kubernetes leaves out the pods that lack it.
fn named_target_ports(resources: &[Resource], r: &Resource, svc: &ServiceSpec, out: &mut Vec<Diagnostic>) {
    if svc.selector.is_empty() {
        return;
    }
    let pods: Vec<(&Resource, &PodsSpec)> = resources
        .iter()
        .filter(|p| p.namespace() == r.namespace())
        .filter_map(|p| match &p.spec {
            Spec::Pods(pods) if selects(&svc.selector, &pods.labels) => Some((p, pods)),
            _ => None,
        })
        .collect();
    for (i, port) in svc.ports.iter().enumerate() {
        let Some(IntOrString::Str(name)) = &port.target_port else { continue };
        let lacking: Vec<String> = pods
            .iter()
            .filter(|(_, pods)| !pods.ports.iter().any(|c| c.name.as_deref() == Some(name.as_str())))
            .map(|(p, _)| format!("{}/{}", p.kind(), p.name()))
            .collect();
        if !lacking.is_empty() {
            out.push(r.diag(
                Warning,
                codes::UNKNOWN_PORT,
                &format!("spec.ports[{i}].targetPort"),
                format!("targetPort `{name}` names no container port of {}, so their pods get none of this port's traffic", lacking.join(", ")),
                Some(format!("name the container port `{name}` (`ports: [{{name: {name}, containerPort: N}}]`), or give the number")),
            ));
        }
    }
}

/// On sidecars `tls` rules route a service's TLS ports by SNI; for a
/// service without one they apply to nothing there.
fn tls_rules_on_sidecars(index: &Index, r: &Resource, vs: &VirtualServiceSpec, out: &mut Vec<Diagnostic>) {
    let on_sidecars = vs.gateways.is_empty() || vs.gateways.iter().any(|g| g == "mesh");
    if vs.tls.is_empty() || !on_sidecars {
        return;
    }
    for h in &vs.hosts {
        let Some(svc) = index.service(h, r.namespace()) else { continue };
        if !svc.ports.iter().any(|p| matches!(p.protocol.as_str(), "tls" | "https")) {
            out.push(r.diag(
                Warning,
                codes::NOT_APPLIED,
                "spec.tls",
                format!("`{h}` has no TLS port, so on sidecars these `tls` rules route nothing"),
                Some("name the service's TLS port `tls-...` or `https-...` (or set appProtocol: tls)".into()),
            ));
        }
    }
}
