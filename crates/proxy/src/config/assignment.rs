//! A cluster's endpoints as an Envoy `ClusterLoadAssignment` gives them:
//! address or host name, weight, locality, priority and Istio's metadata.
//! Checked when an assignment arrives; the runtime endpoints (pools,
//! health) are made from these in `upstream::cluster` on first use.

use super::CompileError;
use crate::names::Interner;
use crate::telemetry::peer::Workload;
use envoy_types::pb::envoy::config::core::v3::{address, socket_address};
use envoy_types::pb::envoy::config::endpoint::v3::{ClusterLoadAssignment, lb_endpoint};
use envoy_types::pb::google::protobuf::value::Kind;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

/// Where a host is: an address, or a name a DNS cluster resolves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostAddr {
    Ip(IpAddr),
    Name(String),
}

/// One `lb_endpoint` of an assignment.
#[derive(Debug, Clone)]
pub struct Host {
    pub addr: HostAddr,
    pub port: u16,
    pub weight: u32,
    pub workload: Arc<str>,
    pub namespace: Arc<str>,
    pub locality: Arc<str>,
    /// Envoy priority (0 is preferred); set per caller by the control plane.
    pub priority: u32,
    /// The locality's weight, when the cluster weights localities.
    pub locality_weight: u32,
    /// A weft sidecar fronts it (`tlsMode: istio`).
    pub mesh: bool,
    /// Its names in metrics, shared by the hosts of one workload.
    pub meta: Arc<Workload>,
}

/// The host and port of an endpoint, or why it has none.
fn host_port<'a>(
    cla: &ClusterLoadAssignment,
    ep: &'a lb_endpoint::HostIdentifier,
) -> Result<Option<(&'a str, u16)>, CompileError> {
    let lb_endpoint::HostIdentifier::Endpoint(ep) = ep else { return Ok(None) };
    let Some(address::Address::SocketAddress(sa)) = ep.address.as_ref().and_then(|a| a.address.as_ref()) else {
        return Err(CompileError::new(format!("cluster {}: endpoint without a socket address", cla.cluster_name)));
    };
    match sa.port_specifier {
        Some(socket_address::PortSpecifier::PortValue(p)) => Ok(Some((&sa.address, p as u16))),
        _ => Err(CompileError::new(format!("cluster {}: endpoint without a port", cla.cluster_name))),
    }
}

fn not_an_ip(cla: &ClusterLoadAssignment, host: &str) -> CompileError {
    CompileError::new(format!(
        "cluster {}: endpoint address {host:?} is not an IP; names need a STRICT_DNS or LOGICAL_DNS cluster",
        cla.cluster_name
    ))
}

/// Everything `hosts` could refuse, without building anything: an
/// assignment is checked when it arrives and built on first use.
pub fn check(cla: &ClusterLoadAssignment, dns: bool) -> Result<(), CompileError> {
    for lb in cla.endpoints.iter().flat_map(|l| &l.lb_endpoints) {
        let Some(id) = &lb.host_identifier else { continue };
        if let Some((host, _)) = host_port(cla, id)?
            && !dns
            && host.parse::<IpAddr>().is_err()
        {
            return Err(not_an_ip(cla, host));
        }
    }
    Ok(())
}

/// The hosts of an assignment; names are allowed when `dns`.
pub fn hosts(cla: &ClusterLoadAssignment, names: &Interner, dns: bool) -> Result<Vec<Host>, CompileError> {
    let mut out = Vec::new();
    let mut shared: HashMap<(Arc<str>, Arc<str>), Arc<Workload>> = HashMap::new();
    for loc in &cla.endpoints {
        let locality = names.get(&loc.locality.as_ref().map_or(String::new(), |l| {
            format!("{}/{}/{}", l.region, l.zone, l.sub_zone).trim_end_matches('/').to_owned()
        }));
        for lb in &loc.lb_endpoints {
            let Some(id) = &lb.host_identifier else { continue };
            let Some((host, port)) = host_port(cla, id)? else { continue };
            let addr = match host.parse() {
                Ok(ip) => HostAddr::Ip(ip),
                Err(_) if dns => HostAddr::Name(host.to_owned()),
                Err(_) => return Err(not_an_ip(cla, host)),
            };
            let meta = lb.metadata.as_ref().and_then(|m| m.filter_metadata.get("istio"));
            let field = |k: &str| -> Arc<str> {
                match meta.and_then(|m| m.fields.get(k)).and_then(|v| v.kind.as_ref()) {
                    Some(Kind::StringValue(s)) => s.as_str().into(),
                    _ => "unknown".into(),
                }
            };
            let mesh = lb
                .metadata
                .as_ref()
                .and_then(|m| m.filter_metadata.get("envoy.transport_socket_match"))
                .and_then(|m| m.fields.get("tlsMode"))
                .is_some_and(|v| matches!(&v.kind, Some(Kind::StringValue(s)) if s == "istio"));
            // `istio.workload` is "name;namespace;canonical service;canonical
            // revision;cluster" (Istio's form; the first two alone from older
            // control planes).
            let wl = field("workload");
            let mut parts = wl.split(';');
            let (workload, namespace): (Arc<str>, Arc<str>) = match (parts.next(), parts.next()) {
                (Some(w), Some(ns)) => (w.into(), names.get(ns)),
                _ => (wl.clone(), names.get(&field("namespace"))),
            };
            let (service, revision) = (parts.next(), parts.next());
            let (app, version) = (field("app"), field("version"));
            let key = (workload.clone(), namespace.clone());
            let meta = shared
                .entry(key)
                .or_insert_with(|| {
                    let name = |s: Option<&str>| names.get(s.filter(|s| !s.is_empty()).unwrap_or("unknown"));
                    Arc::new(Workload {
                        app: names.get(&app),
                        version: names.get(&version),
                        canonical_service: name(service),
                        canonical_revision: name(revision),
                        principal: names.get("unknown"),
                    })
                })
                .clone();
            out.push(Host {
                addr,
                port,
                weight: lb.load_balancing_weight.as_ref().map_or(1, |w| w.value.max(1)),
                workload,
                namespace,
                locality: locality.clone(),
                priority: loc.priority,
                locality_weight: loc.load_balancing_weight.as_ref().map_or(0, |w| w.value),
                mesh,
                meta,
            });
        }
    }
    Ok(out)
}
