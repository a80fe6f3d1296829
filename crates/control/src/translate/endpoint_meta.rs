//! An endpoint's metadata, as Istio writes it: telemetry's
//! `istio.workload = "name;namespace;canonical service;canonical
//! revision;cluster"` with the workload's `app` and `version` beside it
//! (the destination's labels in a caller's metrics), and for an endpoint
//! with a sidecar `envoy.transport_socket_match.tlsMode = "istio"`.

use envoy_types::pb::envoy::config::core::v3::Metadata;
use envoy_types::pb::google::protobuf::{Struct, Value, value::Kind};
use std::collections::HashMap;
use weft_api::types::Labels;

/// The cluster every workload is in until weft spans several (Istio's
/// default cluster id).
pub const CLUSTER: &str = "Kubernetes";

pub fn metadata(workload: &str, namespace: &str, labels: Option<&Labels>, mesh: bool) -> Metadata {
    let string = |s: &str| Value { kind: Some(Kind::StringValue(s.to_owned())) };
    let get = |k: &str| labels.and_then(|l| l.get(k)).map(String::as_str);
    let (service, revision) = canonical(get, workload);
    let mut istio = map(3);
    istio.insert("workload".to_owned(), string(&format!("{workload};{namespace};{service};{revision};{CLUSTER}")));
    for key in ["app", "version"] {
        if let Some(v) = get(key) {
            istio.insert(key.to_owned(), string(v));
        }
    }
    let mut meta = map(2);
    meta.insert("istio".to_owned(), Struct { fields: istio });
    if mesh {
        meta.insert("envoy.transport_socket_match".to_owned(), Struct { fields: one("tlsMode", string("istio")) });
    }
    Metadata { filter_metadata: meta, ..Default::default() }
}

/// Istio's canonical service and revision of a workload: its
/// `service.istio.io/canonical-name`, `app.kubernetes.io/name` or `app`
/// label, else its name; its `service.istio.io/canonical-revision`,
/// `app.kubernetes.io/version` or `version` label, else `latest`.
fn canonical<'a>(get: impl Fn(&str) -> Option<&'a str>, workload: &'a str) -> (&'a str, &'a str) {
    let first = |keys: &[&str]| keys.iter().find_map(|k| get(k));
    let service = first(&["service.istio.io/canonical-name", "app.kubernetes.io/name", "app"]).unwrap_or(workload);
    let revision = first(&["service.istio.io/canonical-revision", "app.kubernetes.io/version", "version"]);
    (service, revision.unwrap_or("latest"))
}

/// prost encodes a map in its iteration order, and a `HashMap` from
/// `collect` gets its own random seed: the same endpoints would encode to
/// other bytes (and another hash, which tells the ADS server what changed)
/// on every push. Maps built alike with one shared seed iterate alike.
pub fn map<V>(capacity: usize) -> HashMap<String, V> {
    static SEED: std::sync::LazyLock<std::hash::RandomState> = std::sync::LazyLock::new(Default::default);
    HashMap::with_capacity_and_hasher(capacity, SEED.clone())
}

pub fn one(key: &str, v: Value) -> HashMap<String, Value> {
    let mut m = map(1);
    m.insert(key.to_owned(), v);
    m
}
