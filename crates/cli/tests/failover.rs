//! Failover with real instances: outlier ejection (and its cap, and panic
//! routing when everything fails), active health checks.

mod common;
use common::*;
use std::collections::HashMap;

#[test]
fn outlier_detection_ejects_caps_and_panics() {
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let (_a, pa) = demo("od", "v1").await;
        let (_b, pb) = demo("od", "v1").await;
        let (_c, pc) = demo("od", "v1").await;
        let rule = |max: u32| {
            format!("---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: od}}\nspec:\n  host: od\n  trafficPolicy:\n    outlierDetection: {{consecutive5xxErrors: 3, interval: 500ms, baseEjectionTime: 60s, maxEjectionPercent: {max}}}\n")
        };
        let path = dir.path().join("mesh.yaml");
        std::fs::write(&path, service_yaml("od", &[pa, pb, pc]) + &rule(30)).unwrap();
        let control = Control::start(dir.path()).await;
        let sc = Sidecar::start(&control.xds, "client").await;
        let cluster = "outbound|80||od.default.svc.cluster.local";

        // c answers 503 half the time: three in a row eject it.
        behave(pc, r#"{"failPercent": 50}"#).await;
        let (mut sent, mut failed) = (0, 0);
        while !flags(&sc, cluster, pc).await.contains("failed_outlier_check") {
            assert!(sent < 600, "c was not ejected after {sent} requests");
            sent += 1;
            failed += usize::from(call(&sc.outbound, "od").await.0 != 200);
        }
        eprintln!("c ejected after {sent} requests ({failed} failed)");
        let mut seen: HashMap<String, u32> = HashMap::new();
        for _ in 0..200 {
            let (status, who) = call(&sc.outbound, "od").await;
            assert_eq!(status, 200, "{who}");
            *seen.entry(who).or_default() += 1;
        }
        assert!(!seen.contains_key(&format!("od-{pc}")), "the ejected instance got traffic: {seen:?}");
        assert_eq!(seen.len(), 2, "{seen:?}");

        // b fails every request too, but ejecting it would pass 30%.
        behave(pb, r#"{"failPercent": 100}"#).await;
        let mut b_failures = 0;
        for _ in 0..60 {
            let (status, who) = call(&sc.outbound, "od").await;
            b_failures += u32::from(status == 503 && who == format!("od-{pb}"));
        }
        assert!(b_failures >= 20, "b should keep getting its share: {b_failures}");
        assert_eq!(flags(&sc, cluster, pb).await, "healthy", "maxEjectionPercent 30 allows one of three");

        // Everything fails and may be ejected: the proxy spreads over all
        // of them (panic) rather than answering "no healthy upstream".
        behave(pa, r#"{"failPercent": 100}"#).await;
        std::fs::write(&path, service_yaml("od", &[pa, pb, pc]) + &rule(100)).unwrap();
        eventually(10, "a and b ejected", || async {
            call(&sc.outbound, "od").await;
            flags(&sc, cluster, pa).await.contains("outlier") && flags(&sc, cluster, pb).await.contains("outlier")
        })
        .await;
        assert_eq!(sc.clusters_line(&format!("{cluster}::panic::")).await.as_deref(), Some("true"));
        let mut reached = HashMap::new();
        for _ in 0..60 {
            let (status, who) = call(&sc.outbound, "od").await;
            assert!(!who.starts_with("proxy"), "the proxy answered itself: {status} {who}");
            *reached.entry(who).or_insert(0) += 1;
        }
        assert_eq!(reached.len(), 3, "panic spreads over every instance: {reached:?}");
    });
}

#[test]
fn active_health_checks_keep_users_off_a_failing_instance() {
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let (_a, pa) = demo("hc", "v1").await;
        let (_b, pb) = demo("hc", "v1").await;
        // b's health endpoint fails before the mesh even starts.
        behave(pb, r#"{"healthFail": true}"#).await;
        let rule = "---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n  name: hc\n  annotations:\n    health-check.weft.dev/path: /health\n    health-check.weft.dev/interval: 200ms\n    health-check.weft.dev/timeout: 100ms\n    health-check.weft.dev/unhealthy-threshold: \"2\"\n    health-check.weft.dev/healthy-threshold: \"2\"\nspec:\n  host: hc\n";
        std::fs::write(dir.path().join("mesh.yaml"), service_yaml("hc", &[pa, pb]) + rule).unwrap();
        let control = Control::start(dir.path()).await;
        let sc = Sidecar::start(&control.xds, "client").await;
        let cluster = "outbound|80||hc.default.svc.cluster.local";
        assert_eq!(flags(&sc, cluster, pb).await, "/failed_active_hc");
        // The control plane's view gathers it from the proxy.
        let view = get(&control.api, "/debug/health", &[("authorization", &control.admin())]).await.json();
        let host = |port: u16| {
            view["hosts"].as_array().unwrap().iter().find(|h| h["cluster"] == cluster && h["address"] == format!("127.0.0.1:{port}")).cloned().unwrap_or_else(|| panic!("{port} missing: {view}"))
        };
        assert_eq!(host(pb)["unhealthyIn"][0]["health"], "/failed_active_hc", "{view}");
        assert_eq!((host(pa)["healthyIn"].as_u64(), host(pa)["seenBy"].as_u64()), (Some(1), Some(1)), "{view}");
        assert_eq!(view["summary"]["unhealthySomewhere"], 1, "{view}");

        for _ in 0..100 {
            let (status, who) = call(&sc.outbound, "hc").await;
            assert_eq!((status, who.as_str()), (200, format!("hc-{pa}").as_str()), "only a is healthy");
        }
        // b recovers: two passing checks bring it back.
        behave(pb, r#"{"healthFail": false}"#).await;
        eventually(10, "b readmitted", || async { flags(&sc, cluster, pb).await == "healthy" }).await;
        let mut seen = HashMap::new();
        for _ in 0..20 {
            *seen.entry(call(&sc.outbound, "hc").await.1).or_insert(0) += 1;
        }
        assert_eq!(seen.len(), 2, "{seen:?}");
        // a's health fails: it is taken out without a single failed user request.
        behave(pa, r#"{"healthFail": true}"#).await;
        eventually(10, "a out", || async { flags(&sc, cluster, pa).await == "/failed_active_hc" }).await;
        for _ in 0..50 {
            assert_eq!(call(&sc.outbound, "hc").await.1, format!("hc-{pb}"));
        }
    });
}

#[test]
fn circuit_breakers_refuse_at_once_and_limit_connections() {
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let (_s, port) = demo("cb", "v1").await;
        let rule = "---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: cb}\nspec:\n  host: cb\n  trafficPolicy:\n    connectionPool:\n      tcp: {maxConnections: 1}\n      http: {http1MaxPendingRequests: 1, maxRequestsPerConnection: 2}\n";
        std::fs::write(dir.path().join("mesh.yaml"), service_yaml("cb", &[port]) + rule).unwrap();
        let control = Control::start(dir.path()).await;
        let sc = Sidecar::start(&control.xds, "client").await;
        let cluster = "outbound|80||cb.default.svc.cluster.local";

        // Two connections' worth of requests per connection: 6 requests, 3 connections.
        for _ in 0..6 {
            assert_eq!(call(&sc.outbound, "cb").await.0, 200);
        }
        let opened = sc.clusters_line(&format!("{cluster}::127.0.0.1:{port}::cx_total::")).await;
        assert_eq!(opened.as_deref(), Some("3"), "maxRequestsPerConnection 2");

        // One slow request holds the only connection, one waits, the third is refused.
        let slow = |out: String| {
            tokio::spawn(async move {
                request(&out, "GET", "http://cb/?delay=600ms", &[], Default::default()).await.status
            })
        };
        let first = slow(sc.outbound.clone());
        eventually(5, "first request in flight", || async {
            sc.clusters_line(&format!("{cluster}::circuit_breakers::rq_active::")).await.as_deref() == Some("1")
        })
        .await;
        let second = slow(sc.outbound.clone());
        eventually(5, "second request pending", || async {
            sc.clusters_line(&format!("{cluster}::circuit_breakers::rq_pending::")).await.as_deref() == Some("1")
        })
        .await;
        let started = std::time::Instant::now();
        let r = request(&sc.outbound, "GET", "http://cb/", &[], Default::default()).await;
        let took = started.elapsed();
        assert_eq!(r.status, 503, "{}", String::from_utf8_lossy(&r.body));
        assert!(String::from_utf8_lossy(&r.body).contains("overflow"));
        assert!(!first.is_finished(), "the refusal came while the slow request still held the connection");
        eprintln!("overflow answered in {took:?}");
        assert_eq!((first.await.unwrap(), second.await.unwrap()), (200, 200), "the pending request was served");
        assert_eq!(
            sc.clusters_line(&format!("{cluster}::circuit_breakers::overflows::")).await.as_deref(),
            Some("1")
        );
    });
}

/// A DestinationRule for `host` whose outlier detection has `od` and ejects
/// at once, for a minute, up to every host.
fn quick_ejection(host: &str, od: &str) -> String {
    format!(
        "---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: {host}}}\nspec:\n  host: {host}\n  trafficPolicy:\n    outlierDetection: {{{od}, interval: 100ms, baseEjectionTime: 60s, maxEjectionPercent: 100}}\n"
    )
}

/// Thresholds out of reach, so answers eject nothing.
const HIGH: &str = "consecutive5xxErrors: 100, consecutiveGatewayErrors: 100";

/// `consecutiveGatewayErrors` (and the older `consecutiveErrors`, its
/// alias) eject on 502, 503 and 504 alone: an instance answering 500 stays
/// in. `minHealthPercent`: below that share of healthy hosts, ejection no
/// longer counts and every host gets traffic again.
#[test]
fn gateway_errors_eject_and_min_health_percent_stops_ejection() {
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let (_a, pa) = demo("gw", "v1").await;
        let (_b, pb) = demo("gw", "v1").await;
        let (_c, pc) = demo("old", "v1").await;
        let (_d, pd) = demo("old", "v1").await;
        let yaml = service_yaml("gw", &[pa, pb])
            + &quick_ejection("gw", "consecutive5xxErrors: 0, consecutiveGatewayErrors: 2")
            + "---\n"
            + &service_yaml("old", &[pc, pd])
            + &quick_ejection("old", "consecutiveErrors: 2, minHealthPercent: 60");
        std::fs::write(dir.path().join("mesh.yaml"), yaml).unwrap();
        let control = Control::start(dir.path()).await;
        let sc = Sidecar::start(&control.xds, "client").await;
        let gw = "outbound|80||gw.default.svc.cluster.local";

        // 500s are not gateway errors: b stays in.
        behave(pb, r#"{"failPercent": 100, "failStatus": 500}"#).await;
        let mut fives = 0;
        for _ in 0..40 {
            fives += u32::from(call(&sc.outbound, "gw").await.0 == 500);
        }
        assert!(fives >= 10, "b answers its share with 500: {fives}");
        assert_eq!(flags(&sc, gw, pb).await, "healthy");
        // 503s are: b is ejected, a alone answers.
        behave(pb, r#"{"failPercent": 100, "failStatus": 503}"#).await;
        eventually(10, "b ejected on gateway errors", || async {
            call(&sc.outbound, "gw").await;
            flags(&sc, gw, pb).await.contains("outlier")
        })
        .await;
        for _ in 0..20 {
            assert_eq!(call(&sc.outbound, "gw").await, (200, format!("gw-{pa}")));
        }

        // Two hosts, one failing with 503: ejecting it leaves 50% healthy,
        // under the 60% floor, so traffic still reaches both.
        behave(pd, r#"{"failPercent": 100, "failStatus": 503}"#).await;
        let mut failed = 0;
        for _ in 0..60 {
            failed += u32::from(call(&sc.outbound, "old").await.0 == 503);
        }
        assert!(failed >= 15, "under minHealthPercent the failing host keeps its share: {failed} of 60");
    });
}

/// `splitExternalLocalOriginErrors` with `consecutiveLocalOriginFailures`:
/// failures to connect are counted on their own and eject a host that
/// refuses connections; counted with the answers, they stay under a high
/// 5xx threshold. Retries (Istio's default, on connect failures) hide them.
#[test]
fn local_origin_failures_eject_when_split() {
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let (_s, split_ok) = demo("split", "v1").await;
        let (_j, joined_ok) = demo("joined", "v1").await;
        let (split_dead, joined_dead) = (free_port(), free_port());
        let yaml = service_yaml("split", &[split_ok, split_dead])
            + &quick_ejection(
                "split",
                &format!("splitExternalLocalOriginErrors: true, consecutiveLocalOriginFailures: 2, {HIGH}"),
            )
            + "---\n"
            + &service_yaml("joined", &[joined_ok, joined_dead])
            + &quick_ejection("joined", HIGH);
        std::fs::write(dir.path().join("mesh.yaml"), yaml).unwrap();
        let control = Control::start(dir.path()).await;
        let sc = Sidecar::start(&control.xds, "client").await;
        for _ in 0..20 {
            assert_eq!(call(&sc.outbound, "split").await.0, 200);
            assert_eq!(call(&sc.outbound, "joined").await.0, 200);
        }
        let (split, joined) =
            ("outbound|80||split.default.svc.cluster.local", "outbound|80||joined.default.svc.cluster.local");
        eventually(10, "the refusing host ejected", || async {
            flags(&sc, split, split_dead).await.contains("outlier")
        })
        .await;
        assert_eq!(flags(&sc, joined, joined_dead).await, "healthy", "its failures count with the answers");
    });
}
