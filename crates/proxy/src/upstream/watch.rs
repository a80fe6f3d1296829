//! What keeps a cluster's endpoint set current while it is in use: the
//! outcome each request reports (`report`), and per cluster version the
//! outlier task (ejections and the sweep), the active health checker and
//! the slow-start steps (`watch`). Each task stops once its cluster
//! version is dropped. Requests only count: every rebuild of the set
//! happens on these tasks.

use super::cluster::{Cluster, Trip};
use super::health::{HostHealth, Observation, active, outlier};
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Feeds one attempt's outcome to the cluster's outlier detectors (a few
/// atomic counters); a detector that trips hands the host to the cluster's
/// outlier task, which ejects it.
pub fn report(cluster: &Cluster, h: Option<&Arc<HostHealth>>, obs: Observation) {
    let (Some(cfg), Some(h)) = (&cluster.settings.outlier, h) else { return };
    if let Some(reason) = outlier::record(h, obs, cfg) {
        cluster.trip(h, reason);
    }
}

/// A DNS cluster's resolver: every name looked up, the set rebuilt if an
/// answer changed, then again after `every`, until the cluster version is
/// dropped. The first round marks the cluster resolved (readiness waits
/// for it).
async fn resolve_every(cluster: std::sync::Weak<Cluster>, every: std::time::Duration) {
    loop {
        let Some((name_of, names)) = cluster.upgrade().map(|c| (c.name().clone(), c.dns_names())) else { return };
        let mut changed = false;
        for (name, port) in names {
            let ips = super::dns::resolve(&name_of, &name, port).await;
            let Some(c) = cluster.upgrade() else { return };
            changed |= c.dns_cache().set(&name, port, ips);
        }
        let Some(c) = cluster.upgrade() else { return };
        c.dns_round_done(changed);
        drop(c);
        tokio::time::sleep(every).await;
    }
}

/// The next host a request found tripping, or never without a channel.
async fn next_trip(trips: &mut Option<mpsc::UnboundedReceiver<Trip>>) -> Option<Trip> {
    match trips {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Starts the cluster's outlier sweep and health checker, if it has them;
/// each stops once this version of the cluster is dropped.
pub fn watch(cluster: &Arc<Cluster>) {
    let Ok(rt) = tokio::runtime::Handle::try_current() else { return };
    if let Some(cfg) = cluster.settings.outlier.clone() {
        let weak = Arc::downgrade(cluster);
        let mut trips = cluster.take_trips();
        rt.spawn(async move {
            let sweep = tokio::time::sleep(cfg.interval);
            tokio::pin!(sweep);
            loop {
                tokio::select! {
                    () = &mut sweep => {
                        sweep.as_mut().reset(Instant::now() + cfg.interval);
                        let Some(c) = weak.upgrade() else { return };
                        let (out, back) =
                            c.with_set(|set| outlier::sweep(&set.endpoints, Instant::now(), &cfg)).unwrap_or((0, 0));
                        if out + back > 0 {
                            tracing::info!(cluster = %c.name(), ejected = out, readmitted = back, "outlier sweep");
                        }
                    }
                    trip = next_trip(&mut trips) => {
                        // The channel closes with the cluster version.
                        let (Some((h, reason)), Some(c)) = (trip, weak.upgrade()) else { return };
                        let now = Instant::now();
                        if c.with_set(|set| outlier::eject(&set.endpoints, &h, reason, now, &cfg)) == Some(true) {
                            tracing::warn!(cluster = %c.name(), reason, times = h.ejection_count(), "host ejected");
                        }
                    }
                }
            }
        });
    }
    if cluster.settings.dns.is_some() {
        rt.spawn(resolve_every(Arc::downgrade(cluster), cluster.settings.dns_refresh));
    }
    if let Some(cfg) = cluster.settings.health_check.clone() {
        rt.spawn(active::run(Arc::downgrade(cluster), *cfg));
    }
    if let Some(w) = cluster.settings.policy.warmup {
        // Slow start: rebuild the balancer in 20 steps per window while a
        // host ramps up. Health changes rebuild on their own (`with_set`),
        // so a set that is not warming costs this loop one load.
        let step = (w.window / 20).clamp(std::time::Duration::from_millis(50), std::time::Duration::from_secs(5));
        let weak = Arc::downgrade(cluster);
        rt.spawn(async move {
            loop {
                tokio::time::sleep(step).await;
                let Some(c) = weak.upgrade() else { return };
                if c.built().is_some_and(|s| s.warming) {
                    c.refresh();
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::cluster::ClusterSettings;
    use crate::upstream::Registries;
    use envoy_types::pb::envoy::config::cluster::v3::cluster::{ClusterDiscoveryType, DiscoveryType, LbPolicy};
    use envoy_types::pb::envoy::config::cluster::v3::{Cluster as ClusterProto, OutlierDetection};
    use envoy_types::pb::envoy::config::core::v3::{Address, SocketAddress, address, socket_address};
    use envoy_types::pb::envoy::config::endpoint::v3::{
        ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints, lb_endpoint,
    };
    use envoy_types::pb::google::protobuf::UInt32Value;

    fn host(address: &str, port: u32) -> LbEndpoint {
        LbEndpoint {
            host_identifier: Some(lb_endpoint::HostIdentifier::Endpoint(Endpoint {
                address: Some(Address {
                    address: Some(address::Address::SocketAddress(SocketAddress {
                        address: address.into(),
                        port_specifier: Some(socket_address::PortSpecifier::PortValue(port)),
                        ..Default::default()
                    })),
                }),
                ..Default::default()
            })),
            ..Default::default()
        }
    }

    fn compile(c: &ClusterProto) -> Arc<Cluster> {
        let hosts = Arc::new(Registries::default());
        let settings = ClusterSettings::from_proto(c, &hosts.names).unwrap();
        Arc::new(Cluster::new(settings, None, c.load_assignment.as_ref(), &hosts, false).unwrap())
    }

    /// A maglev cluster of three static hosts, ejecting on one 5xx.
    fn cluster() -> Arc<Cluster> {
        let c = ClusterProto {
            name: "c".into(),
            lb_policy: LbPolicy::Maglev as i32,
            outlier_detection: Some(OutlierDetection {
                consecutive_5xx: Some(UInt32Value { value: 1 }),
                ..Default::default()
            }),
            load_assignment: Some(ClusterLoadAssignment {
                cluster_name: "c".into(),
                endpoints: vec![LocalityLbEndpoints {
                    lb_endpoints: (4001..=4003).map(|p| host("127.0.0.1", p)).collect(),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        };
        compile(&c)
    }

    #[tokio::test(start_paused = true)]
    async fn a_tripped_detector_ejects_on_the_clusters_task_not_the_requests() {
        let c = cluster();
        watch(&c);
        let before = c.built().expect("static hosts are built at once");
        let h = before.endpoints[0].health.clone().expect("tracked");
        report(&c, Some(&h), Observation::Status(503));
        assert!(Arc::ptr_eq(&before, &c.built().unwrap()), "the request rebuilt the endpoint set");
        assert!(h.available(), "the request ejected the host itself");
        // The outlier task takes it from there (bounded: it needs one turn).
        for _ in 0..100 {
            if !Arc::ptr_eq(&before, &c.built().unwrap()) {
                break;
            }
            tokio::task::yield_now().await;
        }
        let after = c.built().unwrap();
        assert!(!Arc::ptr_eq(&before, &after), "the outlier task did not rebuild the set");
        assert!(!h.available());
        assert_eq!(after.available(), 2);
    }

    #[tokio::test]
    async fn dns_names_resolve_on_the_clusters_task_not_the_config_path() {
        let c = compile(&ClusterProto {
            name: "dns".into(),
            cluster_discovery_type: Some(ClusterDiscoveryType::Type(DiscoveryType::StrictDns as i32)),
            load_assignment: Some(ClusterLoadAssignment {
                cluster_name: "dns".into(),
                endpoints: vec![LocalityLbEndpoints {
                    lb_endpoints: vec![host("localhost", 4100)],
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        });
        // Compiled without a lookup: no address yet, and not ready.
        assert_eq!(c.built().unwrap().endpoints.len(), 0, "the name was resolved while the config compiled");
        assert!(!c.dns_ready());
        watch(&c);
        tokio::time::timeout(std::time::Duration::from_secs(10), c.dns_resolved()).await.expect("resolved");
        let set = c.built().unwrap();
        let addrs: Vec<String> = set.endpoints.iter().map(|e| e.addr.to_string()).collect();
        assert_eq!(addrs, vec!["127.0.0.1:4100"], "IPv4 first");
        assert!(c.dns_ready());
    }
}
