//! Micro-benchmarks of what every request does: find the virtual host and
//! route, pick an endpoint, record the request's metrics.
//!
//! `cargo bench -p weft-proxy --bench hot_path` (numbers in BENCHMARKS.md).

use criterion::{Criterion, criterion_group, criterion_main};
use envoy_types::pb::envoy::config::route::v3 as rt;
use std::hint::black_box;
use std::sync::Arc;
use weft_proxy::config::balance::{DEFAULT_OVERPROVISIONING, LbKind, SetPolicy};
use weft_proxy::config::route::{RequestView, RouteTable};
use weft_proxy::telemetry::{Labels, Metrics, Record};
use weft_proxy::upstream::endpoint::Endpoint;
use weft_proxy::upstream::pool::EndpointPool;
use weft_proxy::upstream::set::EndpointSet;

fn route(name: String, path: rt::route_match::PathSpecifier, headers: Vec<rt::HeaderMatcher>) -> rt::Route {
    rt::Route {
        name: name.clone(),
        r#match: Some(rt::RouteMatch { path_specifier: Some(path), headers, ..Default::default() }),
        action: Some(rt::route::Action::Route(rt::RouteAction {
            cluster_specifier: Some(rt::route_action::ClusterSpecifier::Cluster(name)),
            ..Default::default()
        })),
        ..Default::default()
    }
}

/// A sidecar's outbound table: 1,000 services, each with the eight domains
/// the control plane writes (short name to FQDN, with and without port).
fn sidecar_table() -> RouteTable {
    let vhosts = (0..1000)
        .map(|i| {
            let fqdn = format!("svc-{i}.default.svc.cluster.local");
            let short = [format!("svc-{i}"), format!("svc-{i}.default"), format!("svc-{i}.default.svc"), fqdn.clone()];
            let domains = short.iter().flat_map(|d| [format!("{d}:80"), d.clone()]).collect();
            let prefix = rt::route_match::PathSpecifier::Prefix("/".into());
            rt::VirtualHost {
                name: fqdn.clone(),
                domains,
                routes: vec![route(fqdn, prefix, vec![])],
                ..Default::default()
            }
        })
        .collect();
    let rc = rt::RouteConfiguration { name: "outbound".into(), virtual_hosts: vhosts, ..Default::default() };
    RouteTable::compile(&rc, &Default::default(), &Default::default()).expect("table compiles")
}

/// One host with 1,000 routes, exact paths and a header match each; the
/// request matches the last, so every route is tried.
fn long_host() -> RouteTable {
    let routes = (0..1000)
        .map(|i| {
            let h = rt::HeaderMatcher {
                name: "x-version".into(),
                header_match_specifier: Some(rt::header_matcher::HeaderMatchSpecifier::StringMatch(
                    envoy_types::pb::envoy::r#type::matcher::v3::StringMatcher {
                        match_pattern: Some(
                            envoy_types::pb::envoy::r#type::matcher::v3::string_matcher::MatchPattern::Exact(format!(
                                "v{i}"
                            )),
                        ),
                        ..Default::default()
                    },
                )),
                ..Default::default()
            };
            route(format!("r{i}"), rt::route_match::PathSpecifier::Path(format!("/api/r{i}")), vec![h])
        })
        .collect();
    let vh = rt::VirtualHost { name: "api".into(), domains: vec!["*".into()], routes, ..Default::default() };
    let rc = rt::RouteConfiguration { name: "long".into(), virtual_hosts: vec![vh], ..Default::default() };
    RouteTable::compile(&rc, &Default::default(), &Default::default()).expect("table compiles")
}

fn routing(c: &mut Criterion) {
    let table = sidecar_table();
    let headers = http::HeaderMap::new();
    let get = http::Method::GET;
    let view =
        |authority, path, headers| RequestView { method: &get, authority, scheme: "http", path, query: None, headers };
    c.bench_function("route: host among 1,000 services + its route", |b| {
        b.iter(|| {
            let vh = table.host(black_box("svc-737.default.svc.cluster.local:80")).expect("host");
            black_box(vh.route(&view("svc-737.default.svc.cluster.local:80", "/reviews/1", &headers)).is_some())
        })
    });
    let long = long_host();
    let mut h = http::HeaderMap::new();
    h.insert("x-version", http::HeaderValue::from_static("v999"));
    c.bench_function("route: last of 1,000 routes (path + header)", |b| {
        b.iter(|| {
            let vh = long.host("api").expect("host");
            black_box(vh.route(&view("api", black_box("/api/r999"), &h)).map(|r| r.name.len()))
        })
    });
}

fn endpoints(n: usize) -> Vec<Arc<Endpoint>> {
    (0..n)
        .map(|i| {
            let addr: std::net::SocketAddr = format!("10.0.{}.{}:8080", i / 250, i % 250 + 1).parse().unwrap();
            let pool = Arc::new(EndpointPool::new(addr));
            Arc::new(Endpoint::new(addr, 1 + (i % 3) as u32, "w".into(), "ns".into(), "".into(), pool))
        })
        .collect()
}

fn balancing(c: &mut Criterion) {
    let kinds = [
        ("round robin", LbKind::RoundRobin),
        ("random", LbKind::Random),
        ("least request", LbKind::LeastRequest),
        ("ring hash", LbKind::RingHash { min_ring: 1024 }),
        ("maglev", LbKind::Maglev { table_size: 65537 }),
    ];
    for (name, kind) in kinds {
        let policy = SetPolicy { kind, panic_threshold: 50, locality_weighted: false, warmup: None };
        let set = EndpointSet::new(endpoints(10), &policy, DEFAULT_OVERPROVISIONING, tokio::time::Instant::now());
        let hashed = matches!(kind, LbKind::RingHash { .. } | LbKind::Maglev { .. });
        let mut k = 0u64;
        c.bench_function(&format!("pick: {name}, 10 weighted endpoints"), |b| {
            b.iter(|| {
                k = k.wrapping_add(0x9e37_79b9_7f4a_7c15);
                black_box(set.pick(hashed.then_some(k), &[], false))
            })
        });
    }
}

fn metrics(c: &mut Criterion) {
    let node =
        weft_proxy::NodeInfo { workload: "productpage".into(), namespace: "default".into(), ..Default::default() };
    let m = Metrics::new(&node);
    let labels = Labels {
        reporter: "source",
        source_workload: "productpage",
        source_workload_namespace: "default",
        destination_workload: "reviews-v1",
        destination_workload_namespace: "default",
        destination_service: "reviews.default.svc.cluster.local",
        destination_service_name: "reviews",
        destination_service_namespace: "default",
        request_protocol: "http",
        response_code: 200,
        grpc_response_status: "",
        response_flags: "-",
        connection_security_policy: "none",
        source_app: "productpage",
        source_version: "v1",
        source_canonical_service: "productpage",
        source_canonical_revision: "v1",
        destination_app: "reviews",
        destination_version: "v1",
        destination_canonical_service: "reviews",
        destination_canonical_revision: "v1",
        ..Labels::unknown_peers()
    };
    c.bench_function("metrics: record one request (4 series)", |b| {
        b.iter(|| m.record(Record { labels, duration_ms: black_box(1.7), request_bytes: 0, response_bytes: 1024 }))
    });
}

criterion_group!(benches, routing, balancing, metrics);
criterion_main!(benches);
