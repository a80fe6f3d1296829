//! The proxy's side of ACK/NACK, against a scripted ADS server: a route
//! table it cannot compile is NACKed with the reason, and the proxy keeps
//! routing with its last good config.

mod common;
use common::*;
use envoy_types::pb::envoy::config::cluster::v3::{Cluster, cluster};
use envoy_types::pb::envoy::config::core::v3::{
    Address, AggregatedConfigSource, ConfigSource, SocketAddress, address, config_source, socket_address,
};
use envoy_types::pb::envoy::config::endpoint::v3::{
    ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints, lb_endpoint,
};
use envoy_types::pb::envoy::config::listener::v3::{Filter, FilterChain, Listener, filter};
use envoy_types::pb::envoy::config::route::v3::{
    Route, RouteAction, RouteConfiguration, RouteMatch, VirtualHost, route, route_action, route_match,
};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, Rds, http_connection_manager,
};
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_server::{
    AggregatedDiscoveryService, AggregatedDiscoveryServiceServer,
};
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use envoy_types::pb::envoy::r#type::matcher::v3::RegexMatcher;
use envoy_types::util::pack_any;
use futures::StreamExt;
use std::pin::Pin;
use tokio::sync::mpsc;

fn sock(port: u16) -> Address {
    Address {
        address: Some(address::Address::SocketAddress(SocketAddress {
            address: "127.0.0.1".into(),
            port_specifier: Some(socket_address::PortSpecifier::PortValue(port.into())),
            ..Default::default()
        })),
    }
}

fn route_table(path: route_match::PathSpecifier) -> RouteConfiguration {
    RouteConfiguration {
        name: "r".into(),
        virtual_hosts: vec![VirtualHost {
            name: "any".into(),
            domains: vec!["*".into()],
            routes: vec![Route {
                r#match: Some(RouteMatch { path_specifier: Some(path), ..Default::default() }),
                action: Some(route::Action::Route(RouteAction {
                    cluster_specifier: Some(route_action::ClusterSpecifier::Cluster("c".into())),
                    ..Default::default()
                })),
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// Serves the scripted resources; reports every request it gets.
struct Script {
    listen: u16,
    backend: u16,
    seen: mpsc::UnboundedSender<DiscoveryRequest>,
    bad_rx: tokio::sync::Mutex<Option<mpsc::Receiver<()>>>,
}

#[tonic::async_trait]
impl AggregatedDiscoveryService for Script {
    type StreamAggregatedResourcesStream =
        Pin<Box<dyn futures::Stream<Item = Result<DiscoveryResponse, tonic::Status>> + Send>>;
    type DeltaAggregatedResourcesStream =
        Pin<Box<dyn futures::Stream<Item = Result<DeltaDiscoveryResponse, tonic::Status>> + Send>>;

    async fn stream_aggregated_resources(
        &self,
        req: tonic::Request<tonic::Streaming<DiscoveryRequest>>,
    ) -> Result<tonic::Response<Self::StreamAggregatedResourcesStream>, tonic::Status> {
        let mut input = req.into_inner();
        let (tx, rx) = mpsc::channel(16);
        let (listen, backend, seen) = (self.listen, self.backend, self.seen.clone());
        let mut bad = self.bad_rx.lock().await.take().expect("one stream");
        tokio::spawn(async move {
            let send = |type_url: &str, res: Vec<envoy_types::pb::google::protobuf::Any>, v: &str| {
                let (tx, t, v) = (tx.clone(), type_url.to_owned(), v.to_owned());
                async move {
                    let _ = tx
                        .send(Ok(DiscoveryResponse {
                            version_info: v.clone(),
                            resources: res,
                            type_url: t,
                            nonce: v,
                            ..Default::default()
                        }))
                        .await;
                }
            };
            loop {
                tokio::select! {
                    r = input.next() => {
                        let Some(Ok(r)) = r else { break };
                        let first = r.response_nonce.is_empty();
                        let t = r.type_url.clone();
                        let _ = seen.send(r);
                        if !first { continue }
                        match t.rsplit('.').next().unwrap() {
                            "Cluster" => {
                                let cla = ClusterLoadAssignment { cluster_name: "c".into(), endpoints: vec![LocalityLbEndpoints { lb_endpoints: vec![LbEndpoint { host_identifier: Some(lb_endpoint::HostIdentifier::Endpoint(Endpoint { address: Some(sock(backend)), ..Default::default() })), ..Default::default() }], ..Default::default() }], ..Default::default() };
                                let c = Cluster { name: "c".into(), cluster_discovery_type: Some(cluster::ClusterDiscoveryType::Type(cluster::DiscoveryType::Static as i32)), load_assignment: Some(cla), ..Default::default() };
                                send(&t, vec![pack_any(c)], "1").await;
                            }
                            "Listener" => {
                                let ads = ConfigSource { config_source_specifier: Some(config_source::ConfigSourceSpecifier::Ads(AggregatedConfigSource {})), ..Default::default() };
                                let hcm = HttpConnectionManager { stat_prefix: "out".into(), route_specifier: Some(http_connection_manager::RouteSpecifier::Rds(Rds { config_source: Some(ads), route_config_name: "r".into() })), ..Default::default() };
                                let f = Filter { name: "hcm".into(), config_type: Some(filter::ConfigType::TypedConfig(pack_any(hcm))) };
                                let l = Listener { name: "out".into(), address: Some(sock(listen)), filter_chains: vec![FilterChain { filters: vec![f], ..Default::default() }], ..Default::default() };
                                send(&t, vec![pack_any(l)], "1").await;
                            }
                            "RouteConfiguration" => send(&t, vec![pack_any(route_table(route_match::PathSpecifier::Prefix("/".into())))], "1").await,
                            _ => {}
                        }
                    }
                    Some(()) = bad.recv() => {
                        let broken = route_table(route_match::PathSpecifier::SafeRegex(RegexMatcher { regex: "/(unclosed".into(), engine_type: None }));
                        send("type.googleapis.com/envoy.config.route.v3.RouteConfiguration", vec![pack_any(broken)], "2").await;
                    }
                }
            }
        });
        Ok(tonic::Response::new(Box::pin(tokio_stream_wrapper(rx))))
    }

    async fn delta_aggregated_resources(
        &self,
        _: tonic::Request<tonic::Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<tonic::Response<Self::DeltaAggregatedResourcesStream>, tonic::Status> {
        Err(tonic::Status::unimplemented("delta"))
    }
}

fn tokio_stream_wrapper<T: Send + 'static>(mut rx: mpsc::Receiver<T>) -> impl futures::Stream<Item = T> + Send {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

#[test]
fn proxy_nacks_a_broken_route_table_and_keeps_serving() {
    rt().block_on(async {
        let (_backend, bport) = demo("backend", "v1").await;
        let (listen, xds_port, admin) = (free_port(), free_port(), free_port());
        let (seen_tx, mut seen) = mpsc::unbounded_channel();
        let (bad_tx, bad_rx) = mpsc::channel(1);
        let script = Script { listen, backend: bport, seen: seen_tx, bad_rx: tokio::sync::Mutex::new(Some(bad_rx)) };
        let incoming = tokio::net::TcpListener::bind(("127.0.0.1", xds_port)).await.unwrap();
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(AggregatedDiscoveryServiceServer::new(script))
                .serve_with_incoming(tonic::codegen::tokio_stream::wrappers::TcpListenerStream::new(incoming)),
        );
        let _proxy = spawn(&[
            "proxy",
            "--xds",
            &format!("127.0.0.1:{xds_port}"),
            "--workload",
            "p",
            "--outbound-port",
            "1",
            "--admin-port",
            &admin.to_string(),
            "--metrics-port",
            "0",
            "--health-port",
            "0",
        ]);
        let out = format!("127.0.0.1:{listen}");
        let o = out.clone();
        eventually(20, "the scripted listener", || {
            let o = o.clone();
            async move { up_at(&o).await }
        })
        .await;
        assert_eq!(get(&out, "/", &[]).await.json()["service"], "backend");

        // Wait for the route ACK (version 1), then send the broken table.
        loop {
            let r = seen.recv().await.unwrap();
            if r.type_url.ends_with("RouteConfiguration") && r.version_info == "1" && r.error_detail.is_none() {
                break;
            }
        }
        bad_tx.send(()).await.unwrap();
        let nack = loop {
            let r = seen.recv().await.unwrap();
            if r.type_url.ends_with("RouteConfiguration") && r.response_nonce == "2" {
                break r;
            }
        };
        let err = nack.error_detail.expect("a NACK carries error_detail");
        println!("proxy NACK: {}", err.message);
        assert!(err.message.contains("regex"), "the reason names the problem: {}", err.message);
        assert_eq!(nack.version_info, "1", "a NACK keeps the last accepted version");
        for _ in 0..10 {
            assert_eq!(get(&out, "/", &[]).await.json()["service"], "backend", "last good config still routes");
        }
        let dump = get(&format!("127.0.0.1:{admin}"), "/config_dump", &[]).await.json();
        assert!(dump["lastNack"].as_str().unwrap().contains("regex"), "{dump}");
    });
}
