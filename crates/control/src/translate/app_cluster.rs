//! The cluster of the application behind a sidecar (`inbound|<port>||`):
//! the local app, and the services that select it, which name the
//! service in the sidecar's inbound metrics.

use super::clusters::{Ep, assignment};
use super::endpoint_meta::{map, one};
use super::locality::Placement;
use super::node::ProxyNode;
use super::routes::pb_duration;
use envoy_types::pb::envoy::config::cluster::v3::{Cluster, cluster};
use envoy_types::pb::envoy::config::core::v3::Metadata;
use envoy_types::pb::envoy::extensions::upstreams::http::v3::{HttpProtocolOptions, http_protocol_options};
use envoy_types::pb::google::protobuf::{Struct, Value, value::Kind};
use envoy_types::util::pack_any;
use std::time::Duration;
use weft_api::index::SvcInfo;

/// The local application behind a sidecar, with the services that select
/// it as Istio writes them (`istio.services`: `[{host, name, namespace}]`),
/// which name the service in the sidecar's inbound metrics.
pub fn inbound(node: &ProxyNode, services: &[&SvcInfo]) -> Option<Cluster> {
    let app = node.app_port?;
    let name = format!("inbound|{app}||");
    let ep = Ep {
        address: "127.0.0.1".into(),
        port: app,
        weight: None,
        locality: None,
        labels: None,
        workload: &node.workload,
        namespace: &node.namespace,
        mesh: false,
        account: None,
    };
    // The app gets the protocol the caller spoke (gRPC stays HTTP/2).
    let opts = HttpProtocolOptions {
        upstream_protocol_options: Some(http_protocol_options::UpstreamProtocolOptions::UseDownstreamProtocolConfig(
            http_protocol_options::UseDownstreamHttpConfig::default(),
        )),
        ..Default::default()
    };
    let string = |s: &str| Value { kind: Some(Kind::StringValue(s.to_owned())) };
    let listed = services.iter().map(|s| {
        let mut f = map(3);
        f.extend(
            [("host", &s.fqdn), ("name", &s.name), ("namespace", &s.namespace)].map(|(k, v)| (k.to_owned(), string(v))),
        );
        Value { kind: Some(Kind::StructValue(Struct { fields: f })) }
    });
    let list = Value {
        kind: Some(Kind::ListValue(envoy_types::pb::google::protobuf::ListValue { values: listed.collect() })),
    };
    let mut meta = map(1);
    meta.insert("istio".to_owned(), Struct { fields: one("services", list) });
    Some(Cluster {
        name: name.clone(),
        metadata: Some(Metadata { filter_metadata: meta, ..Default::default() }),
        cluster_discovery_type: Some(cluster::ClusterDiscoveryType::Type(cluster::DiscoveryType::Static as i32)),
        connect_timeout: Some(pb_duration(Duration::from_secs(10))),
        load_assignment: Some(assignment(&name, vec![ep], &Placement::Flat)),
        typed_extension_protocol_options: [(
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions".to_owned(),
            pack_any(opts),
        )]
        .into(),
        ..Default::default()
    })
}
