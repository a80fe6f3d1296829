//! A DestinationRule's connection pool through real proxies: a connection
//! idle past `http.idleTimeout` (or `tcp.idleTimeout`), or older than
//! `tcp.maxConnectionDuration`, is not used again; without them one
//! connection serves every request. Retries in flight are held to
//! `http.maxRetries` or to the `retryBudget`.

mod common;
use common::*;

/// Connections the sidecar opened to the service's one endpoint.
async fn opened(sc: &Sidecar, service: &str, port: u16) -> u64 {
    let key = format!("outbound|80||{service}.default.svc.cluster.local::127.0.0.1:{port}::cx_total::");
    sc.clusters_line(&key).await.and_then(|v| v.parse().ok()).unwrap_or(0)
}

#[test]
fn idle_and_aged_connections_are_not_reused() {
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let (_i, idle) = demo("idle", "v1").await;
        let (_a, aged) = demo("aged", "v1").await;
        let (_k, keep) = demo("keep", "v1").await;
        let (_t, tidle) = demo("tidle", "v1").await;
        let rule = |host: &str, pool: &str| {
            format!("---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: {host}}}\nspec:\n  host: {host}\n  trafficPolicy:\n    connectionPool: {pool}\n")
        };
        let yaml = backend_yaml("idle", idle)
            + "---\n"
            + &backend_yaml("aged", aged)
            + "---\n"
            + &backend_yaml("keep", keep)
            + "---\n"
            + &backend_yaml("tidle", tidle)
            + &rule("idle", "{http: {idleTimeout: 200ms}}")
            + &rule("tidle", "{tcp: {idleTimeout: 200ms}}")
            + &rule("aged", "{tcp: {maxConnectionDuration: 300ms}}");
        std::fs::write(dir.path().join("mesh.yaml"), yaml).unwrap();
        let control = Control::start(dir.path()).await;
        let sc = Sidecar::start(&control.xds, "client").await;
        for host in ["idle", "aged", "keep", "tidle"] {
            assert_eq!(call(&sc.outbound, host).await.0, 200);
        }
        assert_eq!(
            (opened(&sc, "idle", idle).await, opened(&sc, "aged", aged).await, opened(&sc, "keep", keep).await),
            (1, 1, 1)
        );
        // The scenario: `aged` and `keep` busy every 50 ms for 600 ms (never
        // idle), `idle` left alone all that time.
        for _ in 0..12 {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            assert_eq!(call(&sc.outbound, "aged").await.0, 200);
            assert_eq!(call(&sc.outbound, "keep").await.0, 200);
        }
        assert_eq!(call(&sc.outbound, "idle").await.0, 200);
        assert_eq!(call(&sc.outbound, "tidle").await.0, 200);
        assert_eq!(opened(&sc, "idle", idle).await, 2, "the idle connection was not used again");
        assert_eq!(opened(&sc, "tidle", tidle).await, 2, "tcp.idleTimeout, where http sets none");
        assert!(opened(&sc, "aged", aged).await >= 2, "the aged connection was replaced");
        assert_eq!(opened(&sc, "keep", keep).await, 1, "without a limit, one connection serves all");
    });
}

/// Retries held to `connectionPool.http.maxRetries` in flight, or to a
/// `retryBudget`'s share: 20 calls at once to an instance that fails each
/// after 100 ms, each allowed three retries. Unlimited, every retry goes;
/// held to one retry at a time, few do.
#[test]
fn retries_in_flight_are_capped_by_max_retries_and_the_budget() {
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let (_c, capped) = demo("capped", "v1").await;
        let (_b, budget) = demo("budget", "v1").await;
        let (_f, free) = demo("free", "v1").await;
        let mut yaml = String::new();
        for (host, port, policy) in [
            ("capped", capped, "connectionPool: {http: {maxRetries: 1}}"),
            ("budget", budget, "retryBudget: {percent: 0, minRetryConcurrency: 1}"),
            ("free", free, "connectionPool: {}"),
        ] {
            behave(port, r#"{"failPercent": 100, "failStatus": 503, "delayMs": 100}"#).await;
            yaml += &backend_yaml(host, port);
            yaml += &format!("---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: {host}}}\nspec:\n  host: {host}\n  trafficPolicy: {{{policy}}}\n---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: {host}}}\nspec:\n  hosts: [{host}]\n  http:\n    - route: [{{destination: {{host: {host}}}}}]\n      retries: {{attempts: 3, retryOn: 5xx}}\n---\n");
        }
        std::fs::write(dir.path().join("mesh.yaml"), yaml).unwrap();
        let control = Control::start(dir.path()).await;
        let sc = Sidecar::start(&control.xds, "client").await;
        let served = |port: u16| async move { get(&format!("127.0.0.1:{port}"), "/admin/stats", &[]).await.json()["requests"].as_u64().unwrap() };
        for (host, port) in [("free", free), ("capped", capped), ("budget", budget)] {
            let calls = (0..20).map(|_| {
                let out = sc.outbound.clone();
                async move { call(&out, host).await.0 }
            });
            let statuses = futures::future::join_all(calls).await;
            assert!(statuses.iter().all(|s| *s == 503), "{host}: {statuses:?}");
            let n = served(port).await;
            eprintln!("{host}: the instance saw {n} requests for 20 calls");
            if host == "free" {
                assert_eq!(n, 80, "every call tried four times");
            } else {
                assert!(n < 40, "{host}: one retry in flight at a time, so few retries: {n}");
            }
        }
    });
}

/// `http.http2MaxRequests`, Envoy's `max_requests` (every protocol): ten
/// calls at once to an instance that answers after 300 ms, two in flight
/// at most; the rest are refused at once (503, `UO`) and never reach it.
#[test]
fn requests_in_flight_are_capped_by_http2_max_requests() {
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let (_s, slow) = demo("slow", "v1").await;
        behave(slow, r#"{"delayMs": 300}"#).await;
        let yaml = backend_yaml("slow", slow)
            + "---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: slow}\nspec:\n  host: slow\n  trafficPolicy: {connectionPool: {http: {http2MaxRequests: 2}}}\n";
        std::fs::write(dir.path().join("mesh.yaml"), yaml).unwrap();
        let control = Control::start(dir.path()).await;
        let sc = Sidecar::start(&control.xds, "client").await;
        let calls = (0..10).map(|_| {
            let out = sc.outbound.clone();
            async move { request(&out, "GET", "http://slow/", &[], Default::default()).await }
        });
        let answers = futures::future::join_all(calls).await;
        let ok = answers.iter().filter(|r| r.status == 200).count();
        let refused: Vec<_> = answers.iter().filter(|r| r.status == 503).collect();
        assert!((1..=4).contains(&ok), "two at a time: {ok} of 10 answered");
        assert_eq!(ok + refused.len(), 10);
        assert!(refused.iter().all(|r| r.headers.get("x-envoy-overloaded").is_some() || String::from_utf8_lossy(&r.body).contains("overflow")), "refused as an overflow");
        let served = get(&format!("127.0.0.1:{slow}"), "/admin/stats", &[]).await.json()["requests"].as_u64().unwrap();
        assert_eq!(served as usize, ok, "the refused never reached the instance");
    });
}
