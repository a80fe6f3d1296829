//! Compiling against the last config: what did not change is kept (same
//! `Arc`, so endpoint sets, health watchers and pools carry on), what did
//! is rebuilt.

use super::*;
use crate::config::route;
use crate::config::wire::{RawMap, spend_all};
use envoy_types::pb::envoy::config::cluster::v3::cluster::{ClusterDiscoveryType, DiscoveryType, EdsClusterConfig};
use envoy_types::pb::envoy::config::core::v3::{Address, SocketAddress};
use envoy_types::pb::envoy::config::core::v3::{address, socket_address};
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::endpoint::v3::{Endpoint, LbEndpoint, LocalityLbEndpoints, lb_endpoint};
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use envoy_types::pb::envoy::config::route::v3::{
    Route, RouteAction, RouteMatch, VirtualHost, route as pb_route, route_action,
};
use prost::Message;

fn cluster(name: &str) -> ClusterProto {
    ClusterProto {
        name: name.into(),
        cluster_discovery_type: Some(ClusterDiscoveryType::Type(DiscoveryType::Eds as i32)),
        eds_cluster_config: Some(EdsClusterConfig::default()),
        ..Default::default()
    }
}

fn assignment(name: &str, ports: &[u32]) -> ClusterLoadAssignment {
    let lb = |port: u32| LbEndpoint {
        host_identifier: Some(lb_endpoint::HostIdentifier::Endpoint(Endpoint {
            address: Some(Address {
                address: Some(address::Address::SocketAddress(SocketAddress {
                    address: "127.0.0.1".into(),
                    port_specifier: Some(socket_address::PortSpecifier::PortValue(port)),
                    ..Default::default()
                })),
            }),
            ..Default::default()
        })),
        ..Default::default()
    };
    ClusterLoadAssignment {
        cluster_name: name.into(),
        endpoints: vec![LocalityLbEndpoints {
            lb_endpoints: ports.iter().map(|p| lb(*p)).collect(),
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn table(clusters: &[&str]) -> RouteConfiguration {
    let vhost = |c: &str| VirtualHost {
        name: c.into(),
        domains: vec![c.into()],
        routes: vec![Route {
            r#match: Some(RouteMatch {
                path_specifier: Some(envoy_types::pb::envoy::config::route::v3::route_match::PathSpecifier::Prefix(
                    "/".into(),
                )),
                ..Default::default()
            }),
            action: Some(pb_route::Action::Route(RouteAction {
                cluster_specifier: Some(route_action::ClusterSpecifier::Cluster(c.into())),
                ..Default::default()
            })),
            ..Default::default()
        }],
        ..Default::default()
    };
    RouteConfiguration {
        name: "outbound".into(),
        virtual_hosts: clusters.iter().map(|c| vhost(c)).collect(),
        ..Default::default()
    }
}

fn wires<M: Message + Default>(items: Vec<(&str, M)>) -> Arc<RawMap<M>> {
    Arc::new(items.into_iter().map(|(n, m)| (n.into(), Wire::encode(&m))).collect())
}

fn raw(a_ports: &[u32]) -> Raw {
    Raw {
        listeners: Arc::default(),
        routes: wires(vec![("outbound", table(&["a", "b"]))]),
        clusters: wires(vec![("a", cluster("a")), ("b", cluster("b"))]),
        endpoints: wires(vec![("a", assignment("a", a_ports)), ("b", assignment("b", &[2000]))]),
    }
}

fn ports(c: &Cluster) -> Vec<u16> {
    c.endpoints().endpoints.iter().map(|e| e.addr.port()).collect()
}

#[test]
fn unchanged_clusters_and_tables_are_kept_and_changed_ones_rebuilt() {
    let hosts = Arc::new(Registries::default());
    let first_raw = raw(&[1000]);
    let first = Snapshot::compile(&first_raw, None, "1".into(), &hosts).unwrap();
    assert_eq!(ports(&first.clusters["a"]), vec![1000]);

    // The same resources again (a state-of-the-world resend): all kept.
    let same = Snapshot::compile(&raw(&[1000]), Some((&first_raw, &first)), "2".into(), &hosts).unwrap();
    for c in ["a", "b"] {
        assert!(Arc::ptr_eq(&same.clusters[c], &first.clusters[c]), "{c} kept");
    }
    assert!(Arc::ptr_eq(&same.routes["outbound"], &first.routes["outbound"]));

    // a's endpoints changed: a is rebuilt with them, b kept, and the route
    // table rebuilt so that it points at the new a.
    let next = Snapshot::compile(&raw(&[1000, 1001]), Some((&first_raw, &first)), "3".into(), &hosts).unwrap();
    assert!(!Arc::ptr_eq(&next.clusters["a"], &first.clusters["a"]));
    assert!(Arc::ptr_eq(&next.clusters["b"], &first.clusters["b"]));
    assert_eq!(ports(&next.clusters["a"]), vec![1000, 1001]);
    assert!(!Arc::ptr_eq(&next.routes["outbound"], &first.routes["outbound"]));
    let vh = next.routes["outbound"].host("a").expect("virtual host a");
    let route::Action::Forward(f) = &vh.routes[0].action else { panic!("a forwards") };
    let route::Target::Cluster(c) = &f.target else { panic!("a goes to one cluster") };
    assert!(
        Arc::ptr_eq(next.clusters.linked(c).unwrap(), &next.clusters["a"]),
        "the route points at the rebuilt cluster"
    );

    // Names are shared, not copied per structure.
    assert!(Arc::ptr_eq(next.clusters["a"].name(), &hosts.names.get("a")));
}

#[test]
fn a_resource_that_does_not_decode_is_an_error_naming_its_type() {
    let mut bad = raw(&[1000]);
    Arc::make_mut(&mut bad.clusters).insert("a".into(), Wire::new(vec![0xff, 0xff, 0xff]));
    let (kind, e) = Snapshot::compile(&bad, None, "1".into(), &Arc::default()).unwrap_err();
    assert_eq!(kind, Kind::Cluster);
    assert!(e.0.contains("cannot decode Cluster"), "{e}");
}

#[test]
fn a_table_whose_resource_was_let_go_is_relinked_to_changed_clusters() {
    let hosts = Arc::new(Registries::default());
    let first_raw = raw(&[1000]);
    let first = Snapshot::compile(&first_raw, None, "1".into(), &hosts).unwrap();
    let kept_raw = spend(&first_raw);

    // Nothing changed: the same table.
    let same = Snapshot::compile(&kept_raw, Some((&kept_raw, &first)), "2".into(), &hosts).unwrap();
    assert!(Arc::ptr_eq(&same.routes["outbound"], &first.routes["outbound"]));

    // Cluster a changed: a relinked table whose route goes to the new a,
    // with the same hosts, domains and routes.
    let next_raw = spend(&raw(&[1000, 1001]));
    let next = Snapshot::compile(&next_raw, Some((&kept_raw, &same)), "3".into(), &hosts).unwrap();
    let vh = next.routes["outbound"].host("a").expect("virtual host a");
    let route::Action::Forward(f) = &vh.routes[0].action else { panic!("a forwards") };
    let route::Target::Cluster(c) = &f.target else { panic!("a goes to one cluster") };
    let c = next.clusters.linked(c).unwrap();
    assert!(Arc::ptr_eq(c, &next.clusters["a"]));
    assert_eq!(ports(c), vec![1000, 1001]);
    let described = next.routes["outbound"].describe();
    assert_eq!(described.len(), 2);
    assert_eq!(described[0]["domains"], serde_json::json!(["a"]));
    assert_eq!(described[0]["routes"][0]["action"], "→ a");

    // A cluster that went away leaves its route pointing nowhere (503 NC),
    // and coming back relinks it.
    let mut gone = next_raw.clone();
    Arc::make_mut(&mut gone.clusters).remove("a");
    let without = Snapshot::compile(&gone, Some((&next_raw, &next)), "4".into(), &hosts).unwrap();
    let vh = without.routes["outbound"].host("a").unwrap();
    let route::Action::Forward(f) = &vh.routes[0].action else { panic!() };
    assert!(matches!(&f.target, route::Target::Cluster(c) if c.id.is_none() && &*c.name == "a"));
    // (CDS resends it in full; only the route table stays spent.)
    let returned = Raw { clusters: raw(&[1000, 1001]).clusters, ..next_raw.clone() };
    let back = Snapshot::compile(&returned, Some((&gone, &without)), "5".into(), &hosts).unwrap();
    let vh = back.routes["outbound"].host("a").unwrap();
    let route::Action::Forward(f) = &vh.routes[0].action else { panic!() };
    assert!(
        matches!(&f.target, route::Target::Cluster(c) if Arc::ptr_eq(back.clusters.linked(c).unwrap(), &back.clusters["a"]))
    );

    // Without a compiled form to keep, a spent resource is an error, not a 404.
    let (_, e) = Snapshot::compile(&kept_raw, None, "6".into(), &hosts).unwrap_err();
    assert!(e.0.contains("only its digest is kept"), "{e}");
}

/// What the xDS session keeps after a config is applied: clusters and
/// route tables as digests, their compiled form in the config.
fn spend(r: &Raw) -> Raw {
    let mut r = r.clone();
    spend_all(&mut r.clusters);
    spend_all(&mut r.routes);
    r
}

#[test]
fn spent_resources_are_known_by_their_digest_and_clusters_keep_their_settings() {
    use envoy_types::pb::envoy::config::cluster::v3::{CircuitBreakers, circuit_breakers::Thresholds};
    let hosts = Arc::new(Registries::default());
    let first_raw = raw(&[1000]);
    let first = Snapshot::compile(&first_raw, None, "1".into(), &hosts).unwrap();
    let kept_raw = spend(&first_raw);
    assert!(kept_raw.clusters.values().all(Wire::is_spent) && kept_raw.routes.values().all(Wire::is_spent));
    assert!(kept_raw.endpoints.values().all(|w| !w.is_spent()), "assignments keep their bytes (built on first use)");

    // The same resources resent in full: recognised by their digests, all kept.
    let same = Snapshot::compile(&raw(&[1000]), Some((&kept_raw, &first)), "2".into(), &hosts).unwrap();
    for c in ["a", "b"] {
        assert!(Arc::ptr_eq(&same.clusters[c], &first.clusters[c]), "{c} kept");
    }
    assert!(Arc::ptr_eq(&same.routes["outbound"], &first.routes["outbound"]), "the resent table is kept");

    // a's resource changed: compiled anew from its bytes.
    let mut a = cluster("a");
    a.connect_timeout = Some(envoy_types::pb::google::protobuf::Duration { seconds: 3, nanos: 0 });
    a.circuit_breakers = Some(CircuitBreakers {
        thresholds: vec![Thresholds {
            max_requests: Some(envoy_types::pb::google::protobuf::UInt32Value { value: 7 }),
            ..Default::default()
        }],
        ..Default::default()
    });
    let mut changed = raw(&[1000]);
    Arc::make_mut(&mut changed.clusters).insert("a".into(), Wire::encode(&a));
    let next = Snapshot::compile(&changed, Some((&kept_raw, &first)), "3".into(), &hosts).unwrap();
    assert!(!Arc::ptr_eq(&next.clusters["a"], &first.clusters["a"]));
    assert!(Arc::ptr_eq(&next.clusters["b"], &first.clusters["b"]));
    assert_eq!(next.clusters["a"].settings.connect_timeout, std::time::Duration::from_secs(3));

    // Then only a's endpoints change, its resource spent: its settings come
    // from the compiled cluster, and its circuit breakers are the same ones.
    let next_raw = spend(&changed);
    let mut moved_raw = next_raw.clone();
    Arc::make_mut(&mut moved_raw.endpoints).insert("a".into(), Wire::encode(&assignment("a", &[1001])));
    let moved = Snapshot::compile(&moved_raw, Some((&next_raw, &next)), "4".into(), &hosts).unwrap();
    let (old_a, new_a) = (&next.clusters["a"], &moved.clusters["a"]);
    assert!(!Arc::ptr_eq(old_a, new_a));
    assert_eq!(new_a.settings.connect_timeout, std::time::Duration::from_secs(3));
    assert!(new_a.limits.as_ref().zip(old_a.limits.as_ref()).is_some_and(|(n, o)| Arc::ptr_eq(n, o)));
    assert_eq!(set_ports(new_a), None, "a was not in use: still built on first use");
    assert_eq!(ports(new_a), vec![1001]);
    assert!(Arc::ptr_eq(&moved.clusters["b"], &first.clusters["b"]));
}

fn set_ports(c: &Cluster) -> Option<Vec<u16>> {
    c.built().map(|s| s.endpoints.iter().map(|e| e.addr.port()).collect())
}

#[test]
fn endpoint_sets_are_built_on_first_use_and_assignments_checked_on_arrival() {
    let hosts = Arc::new(Registries::default());
    let first_raw = raw(&[1000]);
    let first = Snapshot::compile(&first_raw, None, "1".into(), &hosts).unwrap();
    let a = &first.clusters["a"];
    assert_eq!(set_ports(a), None, "unused: no endpoint set yet");
    assert_eq!(a.view().endpoints.len(), 1, "the admin view shows the hosts");
    assert_eq!(set_ports(a), None, "looking is not using");

    // An update before first use replaces what the set will be built from.
    let cla = assignment("a", &[1001]);
    a.assign(&cla, Wire::encode(&cla));
    assert_eq!(set_ports(a), None);
    assert_eq!(ports(a), vec![1001], "first use builds it");
    // Once in use, an update rebuilds it at once.
    let cla = assignment("a", &[1002]);
    a.assign(&cla, Wire::encode(&cla));
    assert_eq!(set_ports(a), Some(vec![1002]));

    // A new version of a cluster in use is built as it is compiled (while
    // the old one still holds its hosts' health); an unused one is kept as
    // it was, unbuilt.
    let next = Snapshot::compile(&raw(&[1003]), Some((&first_raw, &first)), "2".into(), &hosts).unwrap();
    assert_eq!(set_ports(&next.clusters["a"]), Some(vec![1003]));
    assert!(Arc::ptr_eq(&next.clusters["b"], &first.clusters["b"]));
    assert_eq!(set_ports(&next.clusters["b"]), None);

    // What the build would refuse is refused on arrival, built or not.
    let mut cla = assignment("b", &[2000]);
    let lb = &mut cla.endpoints[0].lb_endpoints[0];
    let Some(lb_endpoint::HostIdentifier::Endpoint(ep)) = &mut lb.host_identifier else { unreachable!() };
    let Some(address::Address::SocketAddress(sa)) = ep.address.as_mut().and_then(|a| a.address.as_mut()) else {
        unreachable!()
    };
    sa.address = "b.example".into();
    let e = next.clusters["b"].check_assignment(&cla).unwrap_err();
    assert!(e.0.contains("\"b.example\" is not an IP"), "{e}");
    let mut bad = raw(&[1000]);
    Arc::make_mut(&mut bad.endpoints).insert("b".into(), Wire::encode(&cla));
    let (kind, e) = Snapshot::compile(&bad, None, "3".into(), &hosts).unwrap_err();
    assert_eq!(kind, Kind::Cluster);
    assert!(e.0.contains("is not an IP"), "{e}");
}
