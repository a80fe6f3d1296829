//! Clusters (one per service port and subset) and their endpoints.

use super::cluster_name;
use super::endpoint_meta;
use super::listeners::{ads, socket};
use super::locality::{self, Placement};
use super::node::ProxyNode;
use super::policy;
use super::routes::pb_duration;
use super::upstream_tls;
use crate::registry::Instance;
use envoy_types::pb::envoy::config::cluster::v3::{Cluster, cluster};
use envoy_types::pb::envoy::config::core::v3::Http2ProtocolOptions;
use envoy_types::pb::envoy::config::endpoint::v3::{
    ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints, lb_endpoint,
};
use envoy_types::pb::envoy::extensions::upstreams::http::v3::{HttpProtocolOptions, http_protocol_options};
use envoy_types::pb::google::protobuf::UInt32Value;
use envoy_types::util::pack_any;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;
use weft_api::Spec;
use weft_api::index::{Index, SvcInfo, SvcPort};
use weft_api::types::*;

/// weft's annotation extensions of a service's DestinationRule, read once
/// per service. Annotations were validated with the config; a bad one is
/// left out here.
#[derive(Default)]
struct Extensions {
    outlier: weft_api::extensions::OutlierExt,
    health_check: Option<weft_api::extensions::HealthCheck>,
}

impl Extensions {
    fn of(ann: &Labels) -> Self {
        Extensions {
            outlier: weft_api::extensions::outlier(ann).0,
            health_check: weft_api::extensions::health_check(ann).0,
        }
    }
}

fn eds_cluster(name: &str, sp: &SvcPort, tp: &TrafficPolicy, ext: &Extensions) -> Cluster {
    let connect = tp
        .connection_pool
        .as_ref()
        .and_then(|c| c.tcp.as_ref())
        .and_then(|t| t.connect_timeout)
        .map_or(Duration::from_secs(10), |d| d.0);
    let mut c = Cluster {
        name: name.to_owned(),
        cluster_discovery_type: Some(cluster::ClusterDiscoveryType::Type(cluster::DiscoveryType::Eds as i32)),
        eds_cluster_config: Some(cluster::EdsClusterConfig { eds_config: Some(ads()), service_name: name.to_owned() }),
        connect_timeout: Some(pb_duration(connect)),
        ..Default::default()
    };
    policy::apply_lb(&mut c, tp.load_balancer.as_ref());
    policy::apply_outlier(&mut c, tp.outlier_detection.as_ref(), &ext.outlier);
    policy::apply_health_check(&mut c, ext.health_check.as_ref(), tp.outlier_detection.is_some());
    let common = policy::apply_connection_pool(&mut c, tp);
    // Istio's `h2UpgradePolicy: UPGRADE` speaks HTTP/2 to an HTTP port's
    // endpoints; `useClientProtocol` what the caller spoke (it wins).
    let http = tp.connection_pool.as_ref().and_then(|p| p.http.as_ref());
    let upgrade = http.and_then(|h| h.h2_upgrade_policy.as_deref()) == Some("UPGRADE");
    let client = http.and_then(|h| h.use_client_protocol).unwrap_or(false);
    let h2 = matches!(sp.protocol.as_str(), "http2" | "grpc") || (upgrade && !super::routes::tcp_port(sp));
    if h2 || client || common.is_some() {
        use http_protocol_options::explicit_http_config::ProtocolConfig;
        let protocol_config = if h2 {
            ProtocolConfig::Http2ProtocolOptions(Http2ProtocolOptions::default())
        } else {
            ProtocolConfig::HttpProtocolOptions(Default::default())
        };
        let upstream = if client {
            http_protocol_options::UpstreamProtocolOptions::UseDownstreamProtocolConfig(
                http_protocol_options::UseDownstreamHttpConfig {
                    http2_protocol_options: Some(Http2ProtocolOptions::default()),
                    ..Default::default()
                },
            )
        } else {
            http_protocol_options::UpstreamProtocolOptions::ExplicitHttpConfig(
                http_protocol_options::ExplicitHttpConfig { protocol_config: Some(protocol_config) },
            )
        };
        let opts = HttpProtocolOptions {
            common_http_protocol_options: common,
            upstream_protocol_options: Some(upstream),
            ..Default::default()
        };
        c.typed_extension_protocol_options
            .insert("envoy.extensions.upstreams.http.v3.HttpProtocolOptions".into(), pack_any(opts));
    }
    c
}

/// One endpoint before grouping by locality.
pub(super) struct Ep<'a> {
    pub(super) address: String,
    pub(super) port: u16,
    pub(super) weight: Option<u32>,
    pub(super) locality: Option<&'a str>,
    /// The instance's labels (for `failoverPriority`).
    pub(super) labels: Option<&'a Labels>,
    pub(super) workload: &'a str,
    pub(super) namespace: &'a str,
    /// A weft sidecar fronts it: it takes mesh-internal headers.
    pub(super) mesh: bool,
    /// The service account it runs as, when known.
    pub(super) account: Option<&'a str>,
}

/// Endpoints grouped by (rank, locality), as `placement` ranks and weighs
/// them for the caller.
pub(super) fn assignment(name: &str, eps: Vec<Ep>, placement: &Placement) -> ClusterLoadAssignment {
    let mut by_loc: BTreeMap<(u32, Option<&str>), Vec<LbEndpoint>> = BTreeMap::new();
    for ep in eps {
        let rank = placement.rank(ep.locality, ep.labels);
        let lb = LbEndpoint {
            host_identifier: Some(lb_endpoint::HostIdentifier::Endpoint(Endpoint {
                address: Some(socket(&ep.address, ep.port)),
                ..Default::default()
            })),
            load_balancing_weight: ep.weight.map(|w| UInt32Value { value: w.max(1) }),
            metadata: Some(endpoint_meta::metadata(ep.workload, ep.namespace, ep.labels, ep.mesh)),
            ..Default::default()
        };
        by_loc.entry((rank, ep.locality)).or_default().push(lb);
    }
    let keys: Vec<(u32, Option<&str>)> = by_loc.keys().copied().collect();
    let priorities = locality::compact(&keys.iter().map(|k| k.0).collect::<Vec<_>>());
    let weights = placement.weights(&keys.iter().map(|k| k.1).collect::<Vec<_>>());
    let endpoints = by_loc
        .into_iter()
        .zip(priorities.into_iter().zip(weights))
        // `distribute` leaves out localities it gives no share.
        .filter(|(_, (_, w))| w.is_some())
        .map(|(((_, loc), lb_endpoints), (priority, weight))| {
            let locality = loc.map(locality::to_pb);
            LocalityLbEndpoints {
                locality,
                lb_endpoints,
                priority,
                load_balancing_weight: weight
                    .filter(|_| placement.locality_weighted())
                    .map(|value| UInt32Value { value }),
                ..Default::default()
            }
        })
        .collect();
    ClusterLoadAssignment { cluster_name: name.to_owned(), endpoints, ..Default::default() }
}

/// Instances of `svc` (restricted to `subset_labels`) on port `sp`.
/// Instances and explicit endpoints indexed once per build, so finding a
/// service's endpoints costs its candidates, not every instance of the mesh.
struct Lookup<'a> {
    instances: &'a [Arc<Instance>],
    by_label: HashMap<(&'a str, &'a str), Vec<usize>>,
    by_host: HashMap<&'a str, Vec<usize>>,
    /// (namespace, service name) to its Endpoints / EndpointSlice resources.
    explicit: HashMap<(&'a str, &'a str), Vec<&'a weft_api::Resource>>,
    /// Instances whose PeerAuthentication is DISABLE: their sidecars take
    /// plaintext only, so callers do not offer them mutual TLS.
    plaintext: Vec<bool>,
}

impl<'a> Lookup<'a> {
    fn new(index: &'a Index, instances: &'a [Arc<Instance>]) -> Self {
        let mut by_label: HashMap<(&str, &str), Vec<usize>> = HashMap::new();
        let mut by_host: HashMap<&str, Vec<usize>> = HashMap::new();
        for (i, inst) in instances.iter().enumerate() {
            for (k, v) in &inst.labels {
                by_label.entry((k, v)).or_default().push(i);
            }
            for h in inst.only_hosts.iter().flatten() {
                by_host.entry(h).or_default().push(i);
            }
        }
        let mut explicit: HashMap<(&str, &str), Vec<&weft_api::Resource>> = HashMap::new();
        for r in index.resources {
            let svc = match &r.spec {
                Spec::Endpoints(_) => Some(r.name()),
                Spec::EndpointSlice(_) => r.meta.labels.get("kubernetes.io/service-name").map(String::as_str),
                _ => None,
            };
            if let Some(svc) = svc {
                explicit.entry((r.namespace(), svc)).or_default().push(r);
            }
        }
        let plaintext = if index.has_peer_auth() {
            let mode = |i: &Instance| index.mtls_mode(&i.namespace, &i.labels, None);
            instances.iter().map(|i| mode(i) == weft_api::types::MtlsMode::Disable).collect()
        } else {
            Vec::new()
        };
        Lookup { instances, by_label, by_host, explicit, plaintext }
    }

    /// Instances that may belong to `svc`: those bound to its host, and
    /// those carrying the first label of `wanted`.
    fn candidates(&self, svc: &SvcInfo, wanted: Option<&Labels>) -> Vec<usize> {
        let mut c: Vec<usize> = self.by_host.get(svc.fqdn.as_str()).cloned().unwrap_or_default();
        if let Some((k, v)) = wanted.and_then(|w| w.iter().next()) {
            c.extend(self.by_label.get(&(k.as_str(), v.as_str())).into_iter().flatten());
        } else if wanted.is_some() {
            c.extend(0..self.instances.len()); // an empty selector selects everything
        }
        c.sort_unstable();
        c.dedup();
        c
    }
}

fn endpoints<'a>(lookup: &Lookup<'a>, svc: &SvcInfo, sp: &SvcPort, subset_labels: Option<&Labels>) -> Vec<Ep<'a>> {
    let mut out = Vec::new();
    let wanted = svc.selector.as_ref().map(|sel| {
        let mut w = sel.clone();
        w.extend(subset_labels.cloned().unwrap_or_default());
        w
    });
    for i in lookup.candidates(svc, wanted.as_ref()) {
        let inst = &lookup.instances[i];
        let for_host = inst.only_hosts.as_ref().map(|h| h.iter().any(|h| h == &svc.fqdn));
        let selected = match (&wanted, for_host) {
            (_, Some(false)) => false,
            (Some(w), _) => selects(w, &inst.labels),
            (None, Some(true)) => subset_labels.is_none_or(|l| selects(l, &inst.labels)),
            (None, None) => false,
        };
        if selected {
            out.push(Ep {
                address: inst.address.clone(),
                port: inst.port_for(sp),
                weight: inst.weight,
                locality: inst.locality.as_deref(),
                labels: Some(&inst.labels),
                workload: &inst.name,
                namespace: &inst.namespace,
                mesh: in_mesh(&inst.labels) && !lookup.plaintext.get(i).copied().unwrap_or(false),
                account: inst.service_account.as_deref(),
            });
        }
    }
    if subset_labels.is_some() {
        return out;
    }
    // Explicit Endpoints / EndpointSlices for a Kubernetes Service. As
    // Kubernetes' proxies do, the serving endpoints of terminating pods
    // take traffic only while no endpoint is ready (a rollout's last pods).
    let explicit = || lookup.explicit.get(&(svc.namespace.as_str(), svc.name.as_str())).into_iter().flatten();
    let ready = |e: &SliceEndpoint| e.conditions.as_ref().and_then(|c| c.ready) != Some(false);
    let serving_terminating = |e: &SliceEndpoint| {
        e.conditions.as_ref().is_some_and(|c| c.serving == Some(true) && c.terminating == Some(true))
    };
    let any_ready = explicit().any(|r| matches!(&r.spec, Spec::EndpointSlice(sl) if sl.endpoints.iter().any(ready)));
    for r in explicit() {
        match &r.spec {
            Spec::Endpoints(subsets) if r.name() == svc.name => {
                for s in subsets {
                    let port = s
                        .ports
                        .iter()
                        .find(|p| p.name.as_deref().unwrap_or("") == sp.name)
                        .or(s.ports.first().filter(|_| s.ports.len() == 1));
                    let Some(port) = port else { continue };
                    for a in &s.addresses {
                        out.push(Ep {
                            address: a.ip.clone(),
                            port: port.port,
                            weight: None,
                            locality: None,
                            labels: None,
                            workload: r.name(),
                            namespace: r.namespace(),
                            mesh: false,
                            account: None,
                        });
                    }
                }
            }
            Spec::EndpointSlice(sl) => {
                let port = sl
                    .ports
                    .iter()
                    .find(|p| p.name.as_deref().unwrap_or("") == sp.name)
                    .or(sl.ports.first().filter(|_| sl.ports.len() == 1));
                let Some(port) = port else { continue };
                let take = |e: &&SliceEndpoint| if any_ready { ready(e) } else { serving_terminating(e) };
                for e in sl.endpoints.iter().filter(take) {
                    for a in &e.addresses {
                        out.push(Ep {
                            address: a.clone(),
                            port: port.port,
                            weight: None,
                            locality: e.zone.as_deref(),
                            labels: None,
                            workload: r.name(),
                            namespace: r.namespace(),
                            mesh: false,
                            account: None,
                        });
                    }
                }
            }
            _ => {}
        }
    }
    out
}

/// The SPIFFE IDs a service's mesh servers may show: its endpoints'
/// service accounts and its ServiceEntry's `subjectAltNames` (Istio's).
fn service_sans(index: &Index, svc: &SvcInfo, eps: &[Ep]) -> Vec<String> {
    let mut out: BTreeSet<String> = eps
        .iter()
        .filter_map(|e| Some(format!("spiffe://{}/ns/{}/sa/{}", crate::ca::TRUST_DOMAIN, e.namespace, e.account?)))
        .collect();
    if let Some(Spec::ServiceEntry(se)) = index.resources.get(svc.resource).map(|r| &r.spec) {
        out.extend(se.subject_alt_names.iter().cloned());
    }
    out.into_iter().collect()
}

/// Services whose names the proxy resolves, and the name it resolves when
/// there are no endpoints: ServiceEntries with `resolution: DNS` (every
/// address of every name) or `DNS_ROUND_ROBIN` (one address at a time), and
/// `type: ExternalName` Services (their `externalName`), as Istio maps them.
fn dns_resolution<'a>(index: &Index<'a>, svc: &'a SvcInfo) -> Option<(cluster::DiscoveryType, &'a str)> {
    if let Some(name) = index.external_name(svc) {
        return Some((cluster::DiscoveryType::StrictDns, name));
    }
    let Spec::ServiceEntry(se) = &index.resources.get(svc.resource)?.spec else { return None };
    match se.resolution.as_deref() {
        Some("DNS") => Some((cluster::DiscoveryType::StrictDns, &svc.fqdn)),
        Some("DNS_ROUND_ROBIN") => Some((cluster::DiscoveryType::LogicalDns, &svc.fqdn)),
        _ => None,
    }
}

pub fn build(
    index: &Index,
    instances: &[Arc<Instance>],
    node: &ProxyNode,
    only: Option<&BTreeSet<String>>,
) -> (Vec<Cluster>, Vec<ClusterLoadAssignment>) {
    let mut clusters = Vec::new();
    let mut cla = Vec::new();
    let lookup = Lookup::new(index, instances);
    // A Sidecar resource scopes what a sidecar reaches; not a gateway's.
    let services: Vec<&SvcInfo> = match node.role {
        super::Role::Gateway => index.visible_services(&node.namespace).collect(),
        _ => index.reachable_services(&node.namespace, &node.labels).collect(),
    };
    for svc in services {
        let found = index.destination_rule_for(&svc.fqdn, &node.namespace, &node.labels);
        let dr = found.map(|(_, d)| d);
        let ext = found.map(|(r, _)| Extensions::of(&r.meta.annotations)).unwrap_or_default();
        let mut subsets: Vec<Option<&Subset>> = vec![None];
        subsets.extend(dr.iter().flat_map(|d| d.subsets.iter()).map(Some));
        for sp in &svc.ports {
            let mut all = Some(endpoints(&lookup, svc, sp, None));
            let sans = service_sans(index, svc, all.as_deref().unwrap_or_default());
            let mesh_endpoints = all.iter().flatten().any(|e| e.mesh);
            for subset in &subsets {
                let name = cluster_name(sp.port, subset.map_or("", |s| s.name.as_str()), &svc.fqdn);
                // A gateway may want it, or its AUTO_PASSTHROUGH twin, or both.
                let twin =
                    only.map(|_| super::upstream_tls::sni_of(&name)).filter(|t| only.is_some_and(|o| o.contains(t)));
                let wanted = only.is_none_or(|o| o.contains(&name));
                if !wanted && twin.is_none() {
                    continue;
                }
                let mut tp = policy::effective_policy(dr, *subset, sp.port);
                if tp.load_balancer.is_none() {
                    tp.load_balancer = index.session_affinity(svc);
                }
                let mut c = eds_cluster(&name, sp, &tp, &ext);
                let setting = tp.load_balancer.as_ref().and_then(|lb| lb.locality_lb_setting.as_ref());
                let placement = Placement::of(setting, tp.outlier_detection.is_some(), node);
                if placement.locality_weighted() {
                    c.common_lb_config.get_or_insert_default().locality_config_specifier = Some(
                        cluster::common_lb_config::LocalityConfigSpecifier::LocalityWeightedLbConfig(Default::default()),
                    );
                }
                let mut eps = match subset {
                    None => all.take().unwrap_or_default(),
                    Some(s) => endpoints(&lookup, svc, sp, Some(&s.labels)),
                };
                let dest = upstream_tls::Dest {
                    host: &svc.fqdn,
                    mesh_endpoints,
                    sans: &sans,
                    namespace: found.map_or(svc.namespace.as_str(), |(r, _)| r.namespace()),
                    resources: index.resources,
                };
                if let Err(e) = upstream_tls::apply(&mut c, tp.tls.as_ref(), node, &dest) {
                    // Never plaintext where the rule asks for TLS: no endpoint instead.
                    tracing::warn!(cluster = %name, error = %e, "the cluster's TLS cannot be built; it gets no endpoints");
                    eps.clear();
                }
                let own = match dns_resolution(index, svc) {
                    Some((kind, target)) => {
                        // Names are resolved by the proxy (EDS carries only IPs).
                        if eps.is_empty() {
                            let port = match &sp.target {
                                Some(IntOrString::Int(p)) => *p,
                                _ => sp.port,
                            };
                            eps.push(Ep {
                                address: target.to_owned(),
                                port,
                                weight: None,
                                locality: None,
                                labels: None,
                                workload: &svc.name,
                                namespace: &svc.namespace,
                                mesh: false,
                                account: None,
                            });
                        }
                        c.cluster_discovery_type = Some(cluster::ClusterDiscoveryType::Type(kind as i32));
                        c.eds_cluster_config = None;
                        c.load_assignment = Some(assignment(&name, eps, &placement));
                        None
                    }
                    None => Some(assignment(&name, eps, &placement)),
                };
                if let Some(t) = twin {
                    let (tc, tcla) = super::passthrough::twin(&c, own.as_ref(), t);
                    clusters.push(tc);
                    cla.extend(tcla);
                }
                if wanted {
                    clusters.push(c);
                    cla.extend(own);
                }
            }
        }
    }
    (clusters, cla)
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    /// The ADS server tells a change by the encoded bytes: the same
    /// endpoints, translated twice, must encode alike (two metadata keys
    /// on an endpoint in the mesh).
    #[test]
    fn the_same_endpoints_encode_to_the_same_bytes() {
        let encode = || {
            let eps = (0..8)
                .map(|i| Ep {
                    address: format!("10.0.0.{i}"),
                    port: 80,
                    weight: None,
                    locality: None,
                    labels: None,
                    workload: "w",
                    namespace: "ns",
                    mesh: i % 2 == 0,
                    account: None,
                })
                .collect();
            assignment("c", eps, &Placement::default()).encode_to_vec()
        };
        let first = encode();
        assert!((0..20).all(|_| encode() == first));
    }
}
