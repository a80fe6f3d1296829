//! Tracing from Istio's Telemetry and the mesh config: the connection
//! manager's `tracing` (random sampling, custom tags, the OpenTelemetry
//! tracer reporting to a collector cluster over gRPC or HTTP) and that cluster.
//! Envoy and weft's proxy read the same.

use super::listeners::socket;
use super::node::ProxyNode;
use super::routes::pb_duration;
use envoy_types::pb::envoy::config::cluster::v3::{Cluster, cluster};
use envoy_types::pb::envoy::config::core::v3::{
    GrpcService, HeaderValue, HeaderValueOption, Http2ProtocolOptions, HttpService, HttpUri, grpc_service, http_uri,
};
use envoy_types::pb::envoy::config::endpoint::v3::{
    ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints, lb_endpoint,
};
use envoy_types::pb::envoy::config::trace::v3::{OpenTelemetryConfig, tracing};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_connection_manager::Tracing;
use envoy_types::pb::envoy::extensions::upstreams::http::v3::{HttpProtocolOptions, http_protocol_options};
use envoy_types::pb::envoy::r#type::tracing::v3::{CustomTag, custom_tag};
use envoy_types::pb::envoy::r#type::v3::Percent;
use envoy_types::util::pack_any;
use std::time::Duration;
use weft_api::index::Index;
use weft_api::observability::{Collector, TracingChoice, tracing_for};
use weft_api::types::mesh_config::OtelHttp;
use weft_api::types::telemetry::Side;

/// The collector cluster of provider `name`.
pub fn cluster_name(provider: &str) -> String {
    format!("tracing|{provider}")
}

/// The connection manager's tracing for `node` on `side`, and the
/// collector cluster it reports to; none when no Telemetry traces it.
pub fn for_side(
    index: &Index,
    node: &ProxyNode,
    side: Side,
    store: Option<std::net::SocketAddr>,
) -> Option<(Tracing, Option<Cluster>)> {
    let choice = tracing_for(index.resources, &node.namespace, &node.labels, side, store)?;
    Some((hcm_tracing(&choice, node), choice.collector.as_ref().map(collector)))
}

fn hcm_tracing(choice: &TracingChoice, node: &ProxyNode) -> Tracing {
    let canonical = node
        .labels
        .get("service.istio.io/canonical-name")
        .or_else(|| node.labels.get("app"))
        .map_or(node.workload.as_str(), String::as_str);
    let provider = choice.collector.as_ref().map(|c| {
        let (grpc_service, http_service) = match &c.http {
            None => (Some(grpc(&c.name)), None),
            Some(h) => (None, Some(http(c, h))),
        };
        tracing::Http {
            name: "envoy.tracers.opentelemetry".into(),
            config_type: Some(tracing::http::ConfigType::TypedConfig(pack_any(OpenTelemetryConfig {
                grpc_service,
                http_service,
                // Istio's: the canonical service and its namespace.
                service_name: format!("{canonical}.{}", node.namespace),
                ..Default::default()
            }))),
        }
    });
    let custom_tags = choice
        .custom_tags
        .iter()
        .filter_map(|(tag, t)| {
            let r#type = if let Some(l) = &t.literal {
                custom_tag::Type::Literal(custom_tag::Literal { value: l.value.clone() })
            } else if let Some(e) = &t.environment {
                custom_tag::Type::Environment(custom_tag::Environment {
                    name: e.name.clone(),
                    default_value: e.default_value.clone().unwrap_or_default(),
                })
            } else {
                let h = t.header.as_ref()?;
                custom_tag::Type::RequestHeader(custom_tag::Header {
                    name: h.name.clone(),
                    default_value: h.default_value.clone().unwrap_or_default(),
                })
            };
            Some(CustomTag { tag: tag.clone(), r#type: Some(r#type) })
        })
        .collect();
    Tracing { random_sampling: Some(Percent { value: choice.sampling }), custom_tags, provider, ..Default::default() }
}

/// OTLP over gRPC to provider `name`'s cluster.
fn grpc(name: &str) -> GrpcService {
    GrpcService {
        target_specifier: Some(grpc_service::TargetSpecifier::EnvoyGrpc(grpc_service::EnvoyGrpc {
            cluster_name: cluster_name(name),
            ..Default::default()
        })),
        ..Default::default()
    }
}

/// OTLP over HTTP: protobuf POSTed to the path (OTLP's `/v1/traces` by
/// default) through the provider's cluster, with its headers.
fn http(c: &Collector, h: &OtelHttp) -> HttpService {
    let path = if h.path.is_empty() { "/v1/traces" } else { h.path.as_str() };
    let host = if c.host.contains(':') { format!("[{}]", c.host) } else { c.host.clone() };
    HttpService {
        http_uri: Some(HttpUri {
            uri: format!("http://{host}:{}{path}", c.port),
            timeout: Some(pb_duration(h.timeout.map_or(Duration::from_secs(5), |t| t.0))),
            http_upstream_type: Some(http_uri::HttpUpstreamType::Cluster(cluster_name(&c.name))),
        }),
        request_headers_to_add: h
            .headers
            .iter()
            .map(|x| HeaderValueOption {
                header: Some(HeaderValue { key: x.name.clone(), value: x.value.clone(), ..Default::default() }),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

/// A collector's cluster: static for an IP address, DNS for a host name,
/// HTTP/2 for gRPC (HTTP/1.1 for OTLP over HTTP).
fn collector(c: &Collector) -> Cluster {
    let (name, host, port) = (cluster_name(&c.name), &c.host, c.port);
    let kind = if host.parse::<std::net::IpAddr>().is_ok() {
        cluster::DiscoveryType::Static
    } else {
        cluster::DiscoveryType::StrictDns
    };
    let opts = HttpProtocolOptions {
        upstream_protocol_options: Some(http_protocol_options::UpstreamProtocolOptions::ExplicitHttpConfig(
            http_protocol_options::ExplicitHttpConfig {
                protocol_config: Some(
                    http_protocol_options::explicit_http_config::ProtocolConfig::Http2ProtocolOptions(
                        Http2ProtocolOptions::default(),
                    ),
                ),
            },
        )),
        ..Default::default()
    };
    let endpoint = LbEndpoint {
        host_identifier: Some(lb_endpoint::HostIdentifier::Endpoint(Endpoint {
            address: Some(socket(host, port)),
            ..Default::default()
        })),
        ..Default::default()
    };
    let protocol_options = match c.http {
        Some(_) => Default::default(),
        None => [("envoy.extensions.upstreams.http.v3.HttpProtocolOptions".to_owned(), pack_any(opts))].into(),
    };
    Cluster {
        name: name.clone(),
        cluster_discovery_type: Some(cluster::ClusterDiscoveryType::Type(kind as i32)),
        connect_timeout: Some(pb_duration(Duration::from_secs(1))),
        load_assignment: Some(ClusterLoadAssignment {
            cluster_name: name,
            endpoints: vec![LocalityLbEndpoints { lb_endpoints: vec![endpoint], ..Default::default() }],
            ..Default::default()
        }),
        typed_extension_protocol_options: protocol_options,
        ..Default::default()
    }
}
