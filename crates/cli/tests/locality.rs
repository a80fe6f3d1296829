//! Locality load balancing and slow start with real instances: a caller
//! stays in its zone until that zone's instances fail, fails over to the
//! next zone, and comes back; `distribute` splits traffic by locality; a
//! readmitted instance ramps up its share instead of taking it all at once.

mod common;
use common::*;
use std::collections::HashMap;

/// Service `name` with one WorkloadEntry per (port, locality).
fn zoned(name: &str, instances: &[(u16, &str)]) -> String {
    let mut y = format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}}}\nspec:\n  selector: {{app: {name}}}\n  ports: [{{name: http, port: 80}}]\n"
    );
    for (port, loc) in instances {
        y += &format!(
            "---\napiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {{name: {name}-{port}}}\nspec: {{address: 127.0.0.1, ports: {{http: {port}}}, labels: {{app: {name}}}, locality: {loc}}}\n"
        );
    }
    y
}

/// Who answered `n` requests, by instance.
async fn spread(out: &str, host: &str, n: usize) -> HashMap<String, usize> {
    let mut seen = HashMap::new();
    for _ in 0..n {
        let (status, who) = call(out, host).await;
        assert_eq!(status, 200, "{who}");
        *seen.entry(who).or_default() += 1;
    }
    seen
}

#[test]
fn a_zone_keeps_its_traffic_until_its_instances_fail_then_gets_it_back() {
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let (_a1, a1) = demo("zoned", "v1").await;
        let (_a2, a2) = demo("zoned", "v1").await;
        let (_b1, b1) = demo("zoned", "v1").await;
        let (_b2, b2) = demo("zoned", "v1").await;
        let rule = "---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: zoned}\nspec:\n  host: zoned\n  trafficPolicy:\n    outlierDetection: {consecutive5xxErrors: 2, interval: 200ms, baseEjectionTime: 2s, maxEjectionPercent: 100}\n";
        let services = zoned("zoned", &[(a1, "eu/zone-a"), (a2, "eu/zone-a"), (b1, "eu/zone-b"), (b2, "eu/zone-b")]);
        let retry = "---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: zoned}\nspec:\n  hosts: [zoned]\n  http:\n    - route: [{destination: {host: zoned}}]\n      retries: {attempts: 3, retryOn: 5xx}\n";
        std::fs::write(dir.path().join("mesh.yaml"), services + rule + retry).unwrap();
        let control = Control::start(dir.path()).await;
        let in_a = Sidecar::start_with(&control.xds, "client-a", &["--locality", "eu/zone-a"]).await;
        let in_b = Sidecar::start_with(&control.xds, "client-b", &["--locality", "eu/zone-b"]).await;
        let cluster = "outbound|80||zoned.default.svc.cluster.local";
        let name = |p: u16| format!("zoned-{p}");

        // Each caller stays in its own zone.
        let seen = spread(&in_a.outbound, "zoned", 100).await;
        assert_eq!(seen.get(&name(a1)).copied().unwrap_or(0) + seen.get(&name(a2)).copied().unwrap_or(0), 100, "{seen:?}");
        assert_eq!(seen.len(), 2, "both zone-a instances share the load: {seen:?}");
        let seen = spread(&in_b.outbound, "zoned", 100).await;
        assert!(seen.keys().all(|k| *k == name(b1) || *k == name(b2)), "{seen:?}");
        assert_eq!(in_a.clusters_line(&format!("{cluster}::127.0.0.1:{b1}::priority::")).await.as_deref(), Some("1"));

        // Zone a fails: its instances are ejected and zone b takes over,
        // with retries covering the requests that found out.
        behave(a1, r#"{"failPercent": 100}"#).await;
        behave(a2, r#"{"failPercent": 100}"#).await;
        let mut sent = 0;
        while !(flags(&in_a, cluster, a1).await.contains("outlier") && flags(&in_a, cluster, a2).await.contains("outlier"))
        {
            assert!(sent < 200, "zone a was not ejected after {sent} requests");
            assert_eq!(call(&in_a.outbound, "zoned").await.0, 200, "retries hide the failing zone");
            sent += 1;
        }
        eprintln!("zone a ejected after {sent} requests");
        let seen = spread(&in_a.outbound, "zoned", 100).await;
        assert!(seen.keys().all(|k| *k == name(b1) || *k == name(b2)), "zone b took over: {seen:?}");
        assert_eq!(in_a.clusters_line(&format!("{cluster}::priority_load::1::")).await.as_deref(), Some("100"));

        // Zone a heals: once readmitted, traffic goes back to it.
        behave(a1, r#"{"failPercent": 0}"#).await;
        behave(a2, r#"{"failPercent": 0}"#).await;
        eventually(15, "zone a readmitted", || async {
            flags(&in_a, cluster, a1).await == "healthy" && flags(&in_a, cluster, a2).await == "healthy"
        })
        .await;
        let seen = spread(&in_a.outbound, "zoned", 100).await;
        assert!(seen.keys().all(|k| *k == name(a1) || *k == name(a2)), "back in zone a: {seen:?}");
        // Zone b's caller never left zone b.
        let seen = spread(&in_b.outbound, "zoned", 50).await;
        assert!(seen.keys().all(|k| *k == name(b1) || *k == name(b2)), "{seen:?}");
    });
}

/// Istio's `retryRemoteLocalities`: a retry after a failure in the
/// caller's zone stays in the zone (another host there), unless the route
/// says to go elsewhere, when it goes to the next zone.
#[test]
fn retries_leave_the_locality_only_when_told_to() {
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let (_bad, bad) = demo("zoned", "v1").await;
        let (_good, good) = demo("zoned", "v1").await;
        let (_far, far) = demo("zoned", "v1").await;
        behave(bad, r#"{"failPercent": 100, "failStatus": 503}"#).await;
        let instances = [(bad, "eu/zone-a"), (good, "eu/zone-a"), (far, "eu/zone-b")];
        let mut yaml = String::new();
        for (host, remote) in [("stay", false), ("roam", true)] {
            yaml += &zoned(host, &instances);
            // Outlier detection turns locality balancing on (Istio's rule);
            // its threshold is out of reach, so the failing host stays in.
            yaml += &format!(
                "---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: {host}}}\nspec:\n  host: {host}\n  trafficPolicy:\n    outlierDetection: {{consecutive5xxErrors: 1000, interval: 10s, baseEjectionTime: 1s}}\n---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: {host}}}\nspec:\n  hosts: [{host}]\n  http:\n    - route: [{{destination: {{host: {host}}}}}]\n      retries: {{attempts: 1, retryOn: 5xx, retryRemoteLocalities: {remote}}}\n---\n"
            );
        }
        std::fs::write(dir.path().join("mesh.yaml"), yaml).unwrap();
        let control = Control::start(dir.path()).await;
        let sc = Sidecar::start_with(&control.xds, "client", &["--locality", "eu/zone-a"]).await;
        // Every request succeeds, the failing host's retried.
        let stay = spread(&sc.outbound, "stay", 40).await;
        assert_eq!(stay, HashMap::from([(format!("zoned-{good}"), 40)]), "retries stay in zone a");
        let roam = spread(&sc.outbound, "roam", 40).await;
        let (near, away) = (format!("zoned-{good}"), format!("zoned-{far}"));
        assert_eq!(roam.len(), 2, "{roam:?}");
        assert!(roam[&near] > 0 && roam[&away] > 0, "a retry after the failing host goes to zone b: {roam:?}");
    });
}

/// A ServiceEntry whose endpoints (on 127.0.0.1) carry locality and weight,
/// with a DestinationRule's `trafficPolicy` and a VirtualService retrying 5xx.
fn external(name: &str, endpoints: &[(u16, &str, u32)], policy: &str) -> String {
    let eps: Vec<String> = endpoints
        .iter()
        .map(|(port, loc, w)| format!("{{address: 127.0.0.1, ports: {{http: {port}}}, locality: {loc}, weight: {w}}}"))
        .collect();
    format!(
        "---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: {name}}}\nspec:\n  hosts: [{name}.example.internal]\n  ports: [{{number: 80, name: http, protocol: HTTP}}]\n  resolution: STATIC\n  endpoints: [{}]\n---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: {name}}}\nspec:\n  host: {name}.example.internal\n  trafficPolicy: {policy}\n---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: {name}}}\nspec:\n  hosts: [{name}.example.internal]\n  http:\n    - route: [{{destination: {{host: {name}.example.internal}}}}]\n      retries: {{attempts: 2, retryOn: 5xx}}\n",
        eps.join(", ")
    )
}

/// `localityLbSetting.failover` picks where a region's traffic goes when it
/// fails (not every other region alike), `enabled: false` spreads over all
/// localities by weight; the endpoints are a ServiceEntry's, with their
/// own `locality` and `weight`.
#[test]
fn failover_follows_the_rule_and_a_disabled_setting_spreads_by_weight() {
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let (_a, a) = demo("ext", "v1").await;
        let (_b, b) = demo("ext", "v1").await;
        let (_c, c) = demo("ext", "v1").await;
        let eps = [(a, "eu-west/zone-a", 2), (b, "eu-east/zone-b", 1), (c, "us-east/zone-c", 1)];
        let outlier = "{consecutive5xxErrors: 1, interval: 100ms, baseEjectionTime: 60s, maxEjectionPercent: 100}";
        let yaml = external(
            "failover",
            &eps,
            &format!("{{outlierDetection: {outlier}, loadBalancer: {{localityLbSetting: {{failover: [{{from: eu-west, to: us-east}}]}}}}}}"),
        ) + &external(
            "flat",
            &eps,
            &format!("{{outlierDetection: {outlier}, loadBalancer: {{simple: ROUND_ROBIN, localityLbSetting: {{enabled: false}}}}}}"),
        );
        std::fs::write(dir.path().join("mesh.yaml"), yaml).unwrap();
        let control = Control::start(dir.path()).await;
        let sc = Sidecar::start_with(&control.xds, "client", &["--locality", "eu-west/zone-a"]).await;
        let name = |p: u16| format!("ext-{p}");

        // Locality off: every endpoint by its weight, 2:1:1, whatever its place.
        let seen = spread(&sc.outbound, "flat.example.internal", 80).await;
        assert_eq!((seen[&name(a)], seen[&name(b)], seen[&name(c)]), (40, 20, 20), "{seen:?}");

        // Locality on: the caller's region only, until it fails; then the
        // region the rule names, not the other one as near.
        let seen = spread(&sc.outbound, "failover.example.internal", 20).await;
        assert_eq!(seen, HashMap::from([(name(a), 20)]), "the caller's region");
        behave(a, r#"{"failPercent": 100}"#).await;
        let cluster = "outbound|80||failover.example.internal";
        let mut sent = 0;
        while !flags(&sc, cluster, a).await.contains("outlier") {
            assert!(sent < 50, "eu-west was not ejected after {sent} requests");
            call(&sc.outbound, "failover.example.internal").await;
            sent += 1;
        }
        let seen = spread(&sc.outbound, "failover.example.internal", 40).await;
        assert_eq!(seen, HashMap::from([(name(c), 40)]), "failover to us-east, not eu-east");
    });
}

/// `failoverPriority`: the endpoints whose labels match the caller's on the
/// labels it lists come first; each caller stays with its own tier.
#[test]
fn failover_priority_prefers_endpoints_labelled_like_the_caller() {
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let (_g, gold) = demo("tiered", "v1").await;
        let (_s, silver) = demo("tiered", "v1").await;
        let mut yaml = "apiVersion: v1\nkind: Service\nmetadata: {name: tiered}\nspec:\n  selector: {app: tiered}\n  ports: [{name: http, port: 80}]\n".to_owned();
        for (port, tier) in [(gold, "gold"), (silver, "silver")] {
            yaml += &format!("---\napiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {{name: tiered-{port}}}\nspec: {{address: 127.0.0.1, ports: {{http: {port}}}, labels: {{app: tiered, tier: {tier}}}}}\n");
        }
        yaml += "---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: tiered}\nspec:\n  host: tiered\n  trafficPolicy:\n    outlierDetection: {consecutive5xxErrors: 100}\n    loadBalancer: {localityLbSetting: {failoverPriority: [tier]}}\n";
        std::fs::write(dir.path().join("mesh.yaml"), yaml).unwrap();
        let control = Control::start(dir.path()).await;
        for (tier, port) in [("gold", gold), ("silver", silver)] {
            let labels = format!("tier={tier}");
            let sc = Sidecar::start_with(&control.xds, &format!("{tier}-client"), &["--labels", &labels]).await;
            let seen = spread(&sc.outbound, "tiered", 20).await;
            assert_eq!(seen, HashMap::from([(format!("tiered-{port}"), 20)]), "a {tier} caller stays with {tier}");
        }
    });
}

#[test]
fn distribute_splits_traffic_by_locality() {
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let (_a, a) = demo("dist", "v1").await;
        let (_b, b) = demo("dist", "v1").await;
        let (_c, c) = demo("dist", "v1").await;
        let rule = "---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: dist}\nspec:\n  host: dist\n  trafficPolicy:\n    loadBalancer:\n      localityLbSetting:\n        distribute:\n          - from: eu/zone-a/*\n            to: {\"eu/zone-a/*\": 80, \"eu/zone-b/*\": 20}\n";
        let services = zoned("dist", &[(a, "eu/zone-a"), (b, "eu/zone-b"), (c, "us/zone-c")]);
        std::fs::write(dir.path().join("mesh.yaml"), services + rule).unwrap();
        let control = Control::start(dir.path()).await;
        let sc = Sidecar::start_with(&control.xds, "client", &["--locality", "eu/zone-a"]).await;
        let seen = spread(&sc.outbound, "dist", 500).await;
        let share = |p: u16| seen.get(&format!("dist-{p}")).copied().unwrap_or(0);
        eprintln!("distribute 80/20: {seen:?}");
        assert_eq!(share(c), 0, "zone c is in no `to`: {seen:?}");
        assert!((380..=420).contains(&share(a)), "80% to zone a: {seen:?}");
        assert!((80..=120).contains(&share(b)), "20% to zone b: {seen:?}");
    });
}

#[test]
fn a_readmitted_instance_ramps_up_along_the_warmup_curve() {
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let (_a, a) = demo("warm", "v1").await;
        let (_b, b) = demo("warm", "v1").await;
        let rule = "---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: warm}\nspec:\n  host: warm\n  trafficPolicy:\n    loadBalancer:\n      simple: ROUND_ROBIN\n      warmup: {duration: 6s, minimumPercent: 10}\n    outlierDetection: {consecutive5xxErrors: 1, interval: 100ms, baseEjectionTime: 1s, maxEjectionPercent: 100}\n";
        std::fs::write(dir.path().join("mesh.yaml"), service_yaml("warm", &[a, b]) + rule).unwrap();
        let control = Control::start(dir.path()).await;
        let sc = Sidecar::start(&control.xds, "client").await;
        let cluster = "outbound|80||warm.default.svc.cluster.local";
        // Past the first window, both are at full weight.
        eventually(15, "initial warmup over", || async {
            sc.config_dump().await["clusters"].as_array().unwrap().iter().any(|c| c["name"] == cluster && c["warming"] == false)
        })
        .await;

        // b fails once and is ejected; it heals and comes back after 1 s.
        behave(b, r#"{"failPercent": 100}"#).await;
        eventually(10, "b ejected", || async {
            call(&sc.outbound, "warm").await;
            flags(&sc, cluster, b).await.contains("outlier")
        })
        .await;
        behave(b, r#"{"failPercent": 0}"#).await;
        eventually(10, "b readmitted", || async { flags(&sc, cluster, b).await == "healthy" }).await;

        // Its share of each 1.5 s slice rises from ~10% toward 50%.
        let mut shares = Vec::new();
        let start = std::time::Instant::now();
        for slice in 1..=5u32 {
            let (mut to_b, mut total) = (0, 0);
            while start.elapsed() < std::time::Duration::from_millis(1500) * slice {
                let (status, who) = call(&sc.outbound, "warm").await;
                assert_eq!(status, 200);
                total += 1;
                to_b += usize::from(who == format!("warm-{b}"));
            }
            shares.push(to_b as f64 / total as f64);
        }
        eprintln!("b's share per 1.5 s after readmission: {shares:.2?}");
        assert!(shares[0] < 0.25, "starts low: {shares:?}");
        assert!(shares[4] > 0.4, "ends near an equal share: {shares:?}");
        assert!(shares[0] < shares[2] && shares[2] < shares[4], "rises: {shares:?}");
    });
}

/// `weft up`'s own Workload kind: its `locality` and `weight` reach the
/// callers' balancing, its `env` the process (the demo reads its version
/// from `WEFT_DEMO_VERSION`).
#[test]
fn workloads_carry_locality_weight_and_env() {
    let dir = tempfile::tempdir().unwrap();
    let workload = |name: &str, extra: &str| {
        format!(
            "---\napiVersion: weft.dev/v1alpha1\nkind: Workload\nmetadata: {{name: {name}}}\nspec:\n  command: [\"weft\", \"demo\", \"--name\", \"{name}\", \"--port\", \"${{PORT}}\"]\n  port: 9000\n{extra}"
        )
    };
    let yaml = "apiVersion: v1\nkind: Service\nmetadata: {name: w}\nspec:\n  selector: {app: w}\n  ports: [{name: http, port: 80, targetPort: 9000}]\n---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: w}\nspec:\n  host: w\n  trafficPolicy:\n    loadBalancer: {simple: ROUND_ROBIN}\n    outlierDetection: {consecutive5xxErrors: 100}\n".to_owned()
        + &workload("heavy", "  labels: {app: w}\n  locality: eu/zone-a\n  weight: 3\n  env: {WEFT_DEMO_VERSION: big}\n")
        + &workload("light", "  labels: {app: w}\n  locality: eu/zone-a\n  weight: 1\n  env: {WEFT_DEMO_VERSION: small}\n")
        + &workload("far", "  labels: {app: w}\n  locality: us/zone-b\n")
        + &workload("client", "  labels: {app: client}\n  locality: eu/zone-a\n");
    std::fs::write(dir.path().join("mesh.yaml"), yaml).unwrap();
    let mut up = Up::start(dir.path());
    let client = up.info["workloads"].as_array().unwrap().iter().find(|w| w["name"] == "client").unwrap().clone();
    let out = format!("{}:{}", client["ip"].as_str().unwrap(), client["outboundPort"]);
    rt().block_on(async {
        let version = |out: String| async move {
            let r = request(&out, "GET", "http://w/", &[], Default::default()).await;
            assert_eq!(r.status, 200);
            r.json()["version"].as_str().unwrap().to_owned()
        };
        eventually(30, "both of zone a's instances answer", || {
            let out = out.clone();
            async move {
                let mut seen = std::collections::HashSet::new();
                for _ in 0..8 {
                    seen.insert(version(out.clone()).await);
                }
                seen.contains("big") && seen.contains("small")
            }
        })
        .await;
        let mut seen: HashMap<String, u32> = HashMap::new();
        for _ in 0..400 {
            *seen.entry(version(out.clone()).await).or_default() += 1;
        }
        assert_eq!(
            seen,
            HashMap::from([("big".to_owned(), 300), ("small".to_owned(), 100)]),
            "3:1 in the caller's zone"
        );
    });
    up.stop();
}
