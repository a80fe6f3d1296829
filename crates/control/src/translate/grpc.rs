//! Proxyless gRPC clients: a gRPC library with its own xDS client (grpc-go,
//! grpc-java, grpcio...) that marks its node `GENERATOR: grpc`, as istiod's
//! do. It dials `xds:///reviews.default.svc.cluster.local:9080` and asks for
//! a listener by that name; it gets an API listener whose route table is
//! the sidecar's virtual host for that service port, and the sidecar's
//! clusters and endpoints, cut to what gRPC's xDS client accepts (gRFCs
//! A27, A28, A31, A33, A42, A44, A50).

use super::fault;
use super::listeners::ads;
use envoy_types::pb::envoy::config::cluster::v3::{Cluster, cluster};
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::{ApiListener, Listener};
use envoy_types::pb::envoy::config::route::v3::{self as rt, RouteConfiguration, route, route_action};
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, HttpFilter, Rds, http_connection_manager, http_filter,
};
use envoy_types::pb::google::protobuf::UInt32Value;
use envoy_types::util::pack_any;

/// One API listener per name a virtual host answers to with a port (the
/// target a client dials), each pointing at the route table named after
/// the virtual host.
pub fn listeners(outbound: &RouteConfiguration) -> Vec<Listener> {
    let mut out = Vec::new();
    for vh in &outbound.virtual_hosts {
        for target in vh.domains.iter().filter(|d| d.rsplit_once(':').is_some_and(|(_, p)| p.parse::<u16>().is_ok())) {
            out.push(api_listener(target, &vh.name));
        }
    }
    out
}

fn api_listener(target: &str, route_table: &str) -> Listener {
    let hcm = HttpConnectionManager {
        stat_prefix: target.to_owned(),
        route_specifier: Some(http_connection_manager::RouteSpecifier::Rds(Rds {
            config_source: Some(ads()),
            route_config_name: route_table.to_owned(),
        })),
        // gRPC runs the fault filter (A33) and needs the router last.
        http_filters: vec![
            HttpFilter {
                name: fault::FILTER.into(),
                config_type: Some(http_filter::ConfigType::TypedConfig(fault::filter_config())),
                ..Default::default()
            },
            HttpFilter {
                name: "envoy.filters.http.router".into(),
                config_type: Some(http_filter::ConfigType::TypedConfig(pack_any(Router::default()))),
                ..Default::default()
            },
        ],
        ..Default::default()
    };
    Listener {
        name: target.to_owned(),
        api_listener: Some(ApiListener { api_listener: Some(pack_any(hcm)) }),
        ..Default::default()
    }
}

/// The sidecar's outbound table split into one table per virtual host,
/// named after it, with routes as gRPC reads them.
pub fn route_tables(outbound: RouteConfiguration) -> Vec<RouteConfiguration> {
    outbound
        .virtual_hosts
        .into_iter()
        .map(|mut vh| {
            vh.routes.iter_mut().for_each(for_grpc);
            RouteConfiguration { name: vh.name.clone(), virtual_hosts: vec![vh], ..Default::default() }
        })
        .collect()
}

/// gRPC takes a route's deadline from `max_stream_duration` (not
/// `timeout`), knows no filter but the fault filter in a route's config,
/// and retries only on gRPC status names (the rest of `retry_on` it skips).
fn for_grpc(r: &mut rt::Route) {
    r.typed_per_filter_config.retain(|name, _| name == fault::FILTER);
    let Some(route::Action::Route(a)) = &mut r.action else { return };
    if let Some(t) = a.timeout.take().filter(|t| t.seconds > 0 || t.nanos > 0) {
        a.max_stream_duration =
            Some(route_action::MaxStreamDuration { max_stream_duration: Some(t), ..Default::default() });
    }
    if a.retry_policy.as_ref().is_some_and(|p| p.num_retries.as_ref().is_some_and(|n| n.value == 0)) {
        a.retry_policy = None;
    }
}

/// Clusters gRPC can use: EDS ones, with a policy it knows (Maglev becomes
/// a ring hash, random becomes round robin) and no transport socket (a
/// proxyless client on insecure credentials speaks plaintext).
pub fn clusters(clusters: Vec<Cluster>) -> Vec<Cluster> {
    use cluster::LbPolicy as P;
    let eds = cluster::ClusterDiscoveryType::Type(cluster::DiscoveryType::Eds as i32);
    clusters
        .into_iter()
        .filter(|c| c.cluster_discovery_type == Some(eds.clone()))
        .map(|mut c| {
            c.transport_socket = None;
            c.transport_socket_matches.clear();
            c.health_checks.clear();
            if c.lb_policy == P::Maglev as i32 {
                c.lb_policy = P::RingHash as i32;
                c.lb_config = Some(cluster::LbConfig::RingHashLbConfig(cluster::RingHashLbConfig::default()));
            } else if !matches!(P::try_from(c.lb_policy), Ok(P::RoundRobin | P::RingHash | P::LeastRequest)) {
                c.lb_policy = P::RoundRobin as i32;
                c.lb_config = None;
            }
            c
        })
        .collect()
}

/// gRPC refuses a locality group without a locality and drops one without
/// a weight: the unnamed locality is named empty, and each gets the sum of
/// its endpoints' weights, so endpoints share traffic as they would in one.
pub fn endpoints(mut sets: Vec<ClusterLoadAssignment>) -> Vec<ClusterLoadAssignment> {
    for set in &mut sets {
        for loc in &mut set.endpoints {
            loc.locality.get_or_insert_with(Default::default);
        }
        for loc in set.endpoints.iter_mut().filter(|l| l.load_balancing_weight.is_none()) {
            let sum: u32 =
                loc.lb_endpoints.iter().map(|e| e.load_balancing_weight.as_ref().map_or(1, |w| w.value)).sum();
            loc.load_balancing_weight = Some(UInt32Value { value: sum.max(1) });
        }
    }
    sets
}
