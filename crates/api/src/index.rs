//! A config indexed for lookups: services by host, gateways by name,
//! destination rules by host. Shared by validation and the control plane so
//! both resolve names the same way.

use crate::resource::{Resource, Spec, service_fqdn};
use crate::types::*;
use std::collections::BTreeMap;

/// A port of a service, in Kubernetes or ServiceEntry terms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SvcPort {
    pub name: String,
    pub port: u16,
    /// Port on the instance; a name refers to a named container port.
    pub target: Option<IntOrString>,
    /// `http`, `http2`, `grpc`, `tcp`, `tls`, `https` or `` (sniff).
    pub protocol: String,
}

/// A service as the mesh sees it, from a `Service` or a `ServiceEntry` host.
#[derive(Clone, Debug)]
pub struct SvcInfo {
    pub fqdn: String,
    pub name: String,
    pub namespace: String,
    pub ports: Vec<SvcPort>,
    /// Labels that select its instances (Service selector, ServiceEntry workloadSelector).
    pub selector: Option<Labels>,
    /// Index in `Index::resources` of the defining resource.
    pub resource: usize,
}

impl SvcInfo {
    /// Whether a workload in `ns` with `labels` is one of its instances (a
    /// selector that is absent or empty selects none).
    pub fn selects_workload(&self, ns: &str, labels: &Labels) -> bool {
        self.namespace == ns && self.selector.as_ref().is_some_and(|s| !s.is_empty() && selects(s, labels))
    }
}

pub struct Index<'a> {
    pub resources: &'a [Resource],
    pub services: BTreeMap<String, SvcInfo>,
    /// The PeerAuthentications, few in any mesh, by name within each scope.
    peer_auth: Vec<&'a Resource>,
}

/// L7 protocol of a port: `appProtocol`, else the name prefix, else "".
pub fn port_protocol(name: &str, app_protocol: Option<&str>, declared: Option<&str>) -> String {
    let from = |s: &str| {
        let s = s.to_ascii_lowercase();
        let prefix = s.split(['-', '_']).next().unwrap_or("").to_owned();
        match prefix.as_str() {
            "http" | "http2" | "grpc" | "grpc-web" | "tcp" | "tls" | "https" | "mongo" | "redis" | "mysql" => {
                Some(prefix)
            }
            "h2c" => Some("http2".into()),
            _ => None,
        }
    };
    if let Some(p) = app_protocol.and_then(from) {
        return p;
    }
    if let Some(p) = declared.and_then(from) {
        return p;
    }
    from(name).unwrap_or_default()
}

impl<'a> Index<'a> {
    pub fn new(resources: &'a [Resource]) -> Self {
        let mut services = BTreeMap::new();
        for (i, r) in resources.iter().enumerate() {
            match &r.spec {
                Spec::Service(s) => {
                    let fqdn = service_fqdn(r.name(), r.namespace());
                    let ports = s
                        .ports
                        .iter()
                        .map(|p| {
                            let name = p.name.clone().unwrap_or_default();
                            let protocol = port_protocol(&name, p.app_protocol.as_deref(), None);
                            SvcPort { name, port: p.port, target: p.target_port.clone(), protocol }
                        })
                        .collect();
                    let selector = (!s.selector.is_empty()).then(|| s.selector.clone());
                    let info = SvcInfo {
                        fqdn: fqdn.clone(),
                        name: r.name().into(),
                        namespace: r.namespace().into(),
                        ports,
                        selector,
                        resource: i,
                    };
                    services.insert(fqdn, info);
                }
                Spec::ServiceEntry(se) => {
                    for host in &se.hosts {
                        let ports = se
                            .ports
                            .iter()
                            .map(|p| SvcPort {
                                name: p.name.clone(),
                                port: p.number,
                                target: p.target_port.map(IntOrString::Int),
                                protocol: port_protocol(&p.name, None, Some(&p.protocol)),
                            })
                            .collect();
                        let selector = se.workload_selector.as_ref().map(|w| w.match_labels.clone());
                        let info = SvcInfo {
                            fqdn: host.clone(),
                            name: host.clone(),
                            namespace: r.namespace().into(),
                            ports,
                            selector,
                            resource: i,
                        };
                        services.insert(host.clone(), info);
                    }
                }
                _ => {}
            }
        }
        let mut peer_auth: Vec<&Resource> =
            resources.iter().filter(|r| matches!(r.spec, Spec::PeerAuthentication(_))).collect();
        peer_auth.sort_by_key(|r| r.name());
        Index { resources, services, peer_auth }
    }

    /// The Kubernetes Service behind `svc`, if it is one.
    fn k8s_service(&self, svc: &SvcInfo) -> Option<&'a ServiceSpec> {
        match &self.resources.get(svc.resource)?.spec {
            Spec::Service(s) => Some(s),
            _ => None,
        }
    }

    /// The load balancing a Service's `sessionAffinity: ClientIP` stands for
    /// (a hash of the caller's address), where no DestinationRule sets one.
    pub fn session_affinity(&self, svc: &SvcInfo) -> Option<LoadBalancerSettings> {
        let client_ip = self.k8s_service(svc)?.session_affinity.as_deref()?.eq_ignore_ascii_case("ClientIP");
        client_ip.then(|| LoadBalancerSettings {
            consistent_hash: Some(ConsistentHashLb { use_source_ip: Some(true), ..Default::default() }),
            ..Default::default()
        })
    }

    /// The DNS name a `type: ExternalName` Service stands for.
    pub fn external_name(&self, svc: &SvcInfo) -> Option<&'a str> {
        let s = self.k8s_service(svc)?;
        s.type_.as_deref().filter(|t| t.eq_ignore_ascii_case("ExternalName"))?;
        s.external_name.as_deref()
    }

    /// The fully qualified name `host` means when written in namespace `ns`.
    pub fn qualify(host: &str, ns: &str) -> String {
        let dots = host.matches('.').count();
        if host.contains('*') {
            host.to_owned()
        } else if dots == 0 {
            service_fqdn(host, ns)
        } else if dots == 1 && !host.ends_with(".svc") {
            let (name, ns) = host.split_once('.').unwrap_or((host, ns));
            service_fqdn(name, ns)
        } else if let Some(stripped) = host.strip_suffix(".svc") {
            format!("{stripped}.svc.cluster.local")
        } else {
            host.to_owned()
        }
    }

    /// The service `host` (written in namespace `ns`) names, if any.
    pub fn service(&self, host: &str, ns: &str) -> Option<&SvcInfo> {
        self.services.get(host).or_else(|| self.services.get(&Self::qualify(host, ns)))
    }

    /// A `Gateway` by reference as a VirtualService writes it (`name` or `ns/name`).
    pub fn gateway(&self, reference: &str, vs_ns: &str) -> Option<(&'a Resource, &'a GatewaySpec)> {
        let (ns, name) = reference.split_once('/').unwrap_or((vs_ns, reference));
        // `name.ns.svc.cluster.local` style is accepted upstream too.
        let (name, ns) = match name.split_once('.') {
            Some((n, rest)) if !reference.contains('/') => (n, rest.split('.').next().unwrap_or(ns)),
            _ => (name, ns),
        };
        self.resources.iter().find_map(|r| match &r.spec {
            Spec::Gateway(g) if r.name() == name && r.namespace() == ns => Some((r, g)),
            _ => None,
        })
    }

    /// Labels of every workload instance known statically (WorkloadEntry,
    /// ServiceEntry endpoints, local Workloads, Kubernetes objects that run pods).
    pub fn static_workload_labels(&self) -> Vec<&'a Labels> {
        let mut out = Vec::new();
        for r in self.resources {
            match &r.spec {
                Spec::WorkloadEntry(w) => out.push(&w.labels),
                Spec::Workload(w) => out.push(&w.labels),
                Spec::Pods(p) if p.replicas != Some(0) => out.push(&p.labels),
                Spec::ServiceEntry(se) => out.extend(se.endpoints.iter().map(|e| &e.labels)),
                _ => {}
            }
        }
        out
    }

    /// Whether the resource at `i` is visible from namespace `viewer` under
    /// Istio's exportTo (`spec.exportTo`, or for a Service the
    /// `networking.istio.io/exportTo` annotation).
    pub fn exported(&self, r: &Resource, viewer: &str) -> bool {
        let list: Vec<String> = match &r.spec {
            Spec::VirtualService(v) => v.export_to.clone(),
            Spec::DestinationRule(d) => d.export_to.clone(),
            Spec::ServiceEntry(se) => se.export_to.clone(),
            Spec::Service(_) => r
                .meta
                .annotations
                .get("networking.istio.io/exportTo")
                .map(|a| a.split(',').map(|x| x.trim().to_owned()).collect())
                .unwrap_or_default(),
            _ => Vec::new(),
        };
        exported_to(&list, r.namespace(), viewer)
    }

    /// Services a proxy in namespace `viewer` may see.
    pub fn visible_services<'s>(&'s self, viewer: &'s str) -> impl Iterator<Item = &'s SvcInfo> + 's {
        self.services.values().filter(move |s| self.exported(&self.resources[s.resource], viewer))
    }

    /// Services a proxy in namespace `ns` with `labels` may reach: those
    /// exported to it, within its Sidecar's egress hosts when one applies.
    pub fn reachable_services<'s>(&'s self, ns: &'s str, labels: &Labels) -> impl Iterator<Item = &'s SvcInfo> + 's {
        let scope = sidecar_for(self.resources, ns, labels).and_then(|r| match &r.spec {
            Spec::Sidecar(sc) => Some((r.namespace(), sc)),
            _ => None,
        });
        self.visible_services(ns).filter(move |s| scope.is_none_or(|(own, sc)| sc.allows(own, &s.namespace, &s.fqdn)))
    }

    pub fn destination_rules(&self) -> impl Iterator<Item = (&'a Resource, &'a DestinationRuleSpec)> {
        self.resources.iter().filter_map(|r| match &r.spec {
            Spec::DestinationRule(d) => Some((r, d)),
            _ => None,
        })
    }

    /// The DestinationRule for service `fqdn` as seen from namespace `ns`:
    /// the caller's namespace first, then the service's, then any. A rule's
    /// `workloadSelector` is not looked at (validation: a subset may come
    /// from any rule); translation asks `destination_rule_for` a caller.
    pub fn destination_rule(&self, fqdn: &str, ns: &str) -> Option<(&'a Resource, &'a DestinationRuleSpec)> {
        self.pick_rule(fqdn, ns, None)
    }

    /// The DestinationRule a caller in `ns` with `labels` gets for `fqdn`:
    /// a rule of its own namespace whose `workloadSelector` selects it comes
    /// first; a rule whose selector does not select it never applies (nor
    /// does one with a selector in another namespace, as Istio's).
    pub fn destination_rule_for(
        &self,
        fqdn: &str,
        ns: &str,
        labels: &crate::types::Labels,
    ) -> Option<(&'a Resource, &'a DestinationRuleSpec)> {
        self.pick_rule(fqdn, ns, Some(labels))
    }

    fn pick_rule(
        &self,
        fqdn: &str,
        ns: &str,
        caller: Option<&crate::types::Labels>,
    ) -> Option<(&'a Resource, &'a DestinationRuleSpec)> {
        let mut best: Option<(u8, (&'a Resource, &'a DestinationRuleSpec))> = None;
        for (r, d) in self.destination_rules() {
            // A ServiceEntry's host (`api.example`) is itself; the
            // `name.namespace` reading is for Services.
            let names_it = d.host == fqdn || Self::qualify(&d.host, r.namespace()) == fqdn;
            if !names_it || !self.exported(r, ns) {
                continue;
            }
            let selected = match (caller, &d.workload_selector) {
                (Some(labels), Some(sel)) => {
                    if r.namespace() != ns || !crate::types::selects(&sel.match_labels, labels) {
                        continue;
                    }
                    true
                }
                _ => false,
            };
            let rank = if selected {
                0
            } else if r.namespace() == ns {
                1
            } else if fqdn.split('.').nth(1) == Some(r.namespace()) {
                2
            } else {
                3
            };
            if best.as_ref().is_none_or(|(b, _)| rank < *b) {
                best = Some((rank, (r, d)));
            }
        }
        best.map(|(_, x)| x)
    }
}

/// Istio's exportTo: empty or `*` = every namespace, `.` = the owner's,
/// otherwise the namespaces listed.
pub fn exported_to(list: &[String], owner: &str, viewer: &str) -> bool {
    list.is_empty() || list.iter().any(|e| e == "*" || (e == "." && owner == viewer) || e == viewer)
}

/// Does a host pattern (`*`, `*.example.com`, `example.com`) match `host`?
pub fn host_matches(pattern: &str, host: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    if let Some(suffix) = pattern.strip_prefix('*') {
        return host.ends_with(suffix);
    }
    pattern.eq_ignore_ascii_case(host)
}

impl Index<'_> {
    /// The mutual TLS a workload in `ns` with `labels` takes on `port`, as
    /// Istio decides it: its own namespace's policy that selects it, else
    /// its namespace's policy without selector, else the mesh's (the root
    /// namespace's without selector), each `UNSET` deferring to the next;
    /// PERMISSIVE by default. Among equals the first by name wins.
    pub fn mtls_mode(&self, ns: &str, labels: &Labels, port: Option<u16>) -> MtlsMode {
        let scoped = |rank: u8| {
            self.peer_auth.iter().find_map(|r| {
                let Spec::PeerAuthentication(p) = &r.spec else { return None };
                let here = scope_rank(p.selector.as_ref().map(|s| &s.match_labels), r.namespace(), ns, labels)?;
                (here == rank).then_some(p)
            })
        };
        (0..3).find_map(|rank| scoped(rank).and_then(|p| p.mode_at(port))).unwrap_or(MtlsMode::Permissive)
    }

    /// Whether any PeerAuthentication is in the config.
    pub fn has_peer_auth(&self) -> bool {
        !self.peer_auth.is_empty()
    }
}

/// How specifically a resource of namespace `resource_ns` with `selector`
/// applies to a workload in `ns` with `labels`, Istio's way for Sidecar,
/// PeerAuthentication and Telemetry: 0 its namespace's selecting it, 1 its
/// namespace's without a selector, 2 the mesh's (the root namespace's
/// without a selector); none when it does not apply.
pub fn scope_rank(selector: Option<&Labels>, resource_ns: &str, ns: &str, labels: &Labels) -> Option<u8> {
    match selector {
        Some(s) if resource_ns == ns && selects(s, labels) => Some(0),
        None if resource_ns == ns => Some(1),
        None if resource_ns == ROOT_NAMESPACE => Some(2),
        _ => None,
    }
}

/// The Sidecar that applies to a proxy in namespace `ns` with `labels`, as
/// Istio picks it: one in its namespace whose selector selects it, else one
/// in its namespace without selector, else one in the root namespace
/// without selector (the first by name where several would do).
pub fn sidecar_for<'a>(resources: &'a [Resource], ns: &str, labels: &Labels) -> Option<&'a Resource> {
    let rank = |r: &Resource, sc: &SidecarSpec| {
        scope_rank(sc.workload_selector.as_ref().map(|w| &w.labels), r.namespace(), ns, labels)
    };
    resources
        .iter()
        .filter_map(|r| match &r.spec {
            Spec::Sidecar(sc) => rank(r, sc).map(|k| (k, r.name(), r)),
            _ => None,
        })
        .min_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)))
        .map(|(_, _, r)| r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_most_specific_peer_authentication_decides_and_unset_defers() {
        let yaml = r#"
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: mesh, namespace: istio-system}
spec: {mtls: {mode: STRICT}}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: legacy, namespace: legacy}
spec: {mtls: {mode: PERMISSIVE}}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: db, namespace: legacy}
spec:
  selector: {matchLabels: {app: db}}
  mtls: {mode: UNSET}
  portLevelMtls: {"5432": {mode: DISABLE}}
"#;
        let loaded = crate::parse_str("pa.yaml", yaml);
        let ix = Index::new(&loaded.resources);
        let labels = |app: &str| Labels::from([("app".to_string(), app.to_string())]);
        assert_eq!(ix.mtls_mode("default", &labels("web"), None), MtlsMode::Strict, "the mesh's");
        assert_eq!(ix.mtls_mode("legacy", &labels("web"), None), MtlsMode::Permissive, "the namespace's");
        assert_eq!(ix.mtls_mode("legacy", &labels("db"), Some(5432)), MtlsMode::Disable, "the port's");
        assert_eq!(ix.mtls_mode("legacy", &labels("db"), Some(80)), MtlsMode::Permissive, "UNSET defers");
    }

    #[test]
    fn qualifies_short_names() {
        assert_eq!(Index::qualify("reviews", "default"), "reviews.default.svc.cluster.local");
        assert_eq!(Index::qualify("reviews.shop", "default"), "reviews.shop.svc.cluster.local");
        assert_eq!(Index::qualify("reviews.shop.svc", "x"), "reviews.shop.svc.cluster.local");
        assert_eq!(Index::qualify("api.example.com", "x"), "api.example.com");
    }

    #[test]
    fn protocol_from_name_or_app_protocol() {
        assert_eq!(port_protocol("http-web", None, None), "http");
        assert_eq!(port_protocol("grpc", None, None), "grpc");
        assert_eq!(port_protocol("web", Some("http2"), None), "http2");
        assert_eq!(port_protocol("web", None, None), "");
    }
}
