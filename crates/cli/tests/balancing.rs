//! Load balancing against real instances: WorkloadEntry weights,
//! consistent hashing (header, query, cookie, source address; ring and
//! maglev), and least request versus a slow instance.

mod common;
use common::*;
use std::collections::HashMap;

fn entries(ports: &[(u16, u32)]) -> String {
    let mut y = "apiVersion: v1\nkind: Service\nmetadata: {name: lb}\nspec:\n  selector: {app: lb}\n  ports: [{name: http, port: 80}]\n".to_owned();
    for (i, (p, w)) in ports.iter().enumerate() {
        y.push_str(&format!("---\napiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {{name: lb-{i}}}\nspec: {{address: 127.0.0.1, ports: {{http: {p}}}, weight: {w}, labels: {{app: lb}}}}\n"));
    }
    y
}

fn rule(policy: &str) -> String {
    format!(
        "---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: lb}}\nspec:\n  host: lb\n  trafficPolicy:\n    loadBalancer: {policy}\n"
    )
}

async fn instance_of(out: &str, headers: &[(&str, &str)]) -> String {
    let r = request(out, "GET", "http://lb/", headers, Default::default()).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    r.json()["instance"].as_str().unwrap().to_owned()
}

#[test]
fn weights_and_consistent_hash() {
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let (_a, pa) = demo("lb", "v1").await;
        let (_b, pb) = demo("lb", "v1").await;
        let (_c, pc) = demo("lb", "v1").await;
        let path = dir.path().join("mesh.yaml");
        std::fs::write(&path, entries(&[(pa, 3), (pb, 1), (pc, 0)]) + &rule("{simple: ROUND_ROBIN}")).unwrap();
        let control = Control::start(dir.path()).await;
        let sc = Sidecar::start(&control.xds, "client").await;

        // Weights 3:1 (weight 0 counts as 1, as in Envoy) → 3:1:1, exactly, by smooth round robin.
        let mut counts: HashMap<String, u32> = HashMap::new();
        for _ in 0..500 {
            *counts.entry(instance_of(&sc.outbound, &[]).await).or_default() += 1;
        }
        let got = [counts[&format!("lb-{pa}")], counts[&format!("lb-{pb}")], counts[&format!("lb-{pc}")]];
        assert_eq!(got, [300, 100, 100], "{counts:?}");

        // Consistent hash on a header: each user sticks to one instance; users spread.
        std::fs::write(
            &path,
            entries(&[(pa, 1), (pb, 1), (pc, 1)]) + &rule("{consistentHash: {httpHeaderName: x-user}}"),
        )
        .unwrap();
        let out = sc.outbound.clone();
        eventually(10, "ring hash to be applied", || {
            let s = &sc;
            async move { s.config_dump().await["clusters"].to_string().contains("RingHash") }
        })
        .await;
        let mut owners = HashMap::new();
        for u in 0..60 {
            let user = format!("user-{u}");
            let first = instance_of(&out, &[("x-user", &user)]).await;
            for _ in 0..5 {
                assert_eq!(instance_of(&out, &[("x-user", &user)]).await, first, "{user} moved");
            }
            *owners.entry(first).or_insert(0) += 1;
        }
        assert_eq!(owners.len(), 3, "60 users should land on all three instances: {owners:?}");
        assert!(owners.values().all(|n| *n >= 8), "spread: {owners:?}");

        // The same stickiness hashing a query parameter, a cookie (on a
        // maglev table) and the caller's address.
        let policies = [
            ("{consistentHash: {httpQueryParameterName: u}}", "query"),
            ("{consistentHash: {httpCookie: {name: sid}, maglev: {tableSize: 1009}}}", "cookie"),
            ("{consistentHash: {useSourceIp: true, ringHash: {minimumRingSize: 2048}}}", "source"),
        ];
        for (policy, by) in policies {
            let version = sc.config_dump().await["version"].clone();
            std::fs::write(&path, entries(&[(pa, 1), (pb, 1), (pc, 1)]) + &rule(policy)).unwrap();
            eventually(10, "the new hash policy applied", || {
                let (s, v) = (&sc, version.clone());
                async move { s.config_dump().await["version"] != v }
            })
            .await;
            let mut owners = HashMap::new();
            for u in 0..30 {
                let user = format!("user-{u}");
                let cookie = format!("sid={user}");
                let call = || async {
                    let (path, headers): (String, Vec<(&str, &str)>) = match by {
                        "query" => (format!("http://lb/?u={user}"), vec![]),
                        "cookie" => ("http://lb/".into(), vec![("cookie", cookie.as_str())]),
                        _ => ("http://lb/".into(), vec![]),
                    };
                    let r = request(&out, "GET", &path, &headers, Default::default()).await;
                    r.json()["instance"].as_str().unwrap().to_owned()
                };
                let first = call().await;
                for _ in 0..3 {
                    assert_eq!(call().await, first, "{by}: {user} moved");
                }
                *owners.entry(first).or_insert(0) += 1;
            }
            // One caller address: every request on one instance; keys spread.
            let want = if by == "source" { 1 } else { 3 };
            assert_eq!(owners.len(), want, "{by}: {owners:?}");
        }
    });
}

#[test]
fn least_request_avoids_the_slow_instance() {
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let (_a, fast) = demo("lb", "v1").await;
        let (_b, slow) = demo("lb", "v1").await;
        let b = serde_json::json!({"delayMs": 200});
        assert_eq!(
            request(&format!("127.0.0.1:{slow}"), "POST", "/admin/behavior", &[], b.to_string().into()).await.status,
            200
        );
        let path = dir.path().join("mesh.yaml");
        std::fs::write(&path, entries(&[(fast, 1), (slow, 1)]) + &rule("{simple: LEAST_REQUEST}")).unwrap();
        let control = Control::start(dir.path()).await;
        let sc = Sidecar::start(&control.xds, "client").await;

        // 16 concurrent clients: the slow instance holds its requests longer,
        // so least request sends it far fewer than half.
        let mut tasks = Vec::new();
        for _ in 0..16 {
            let out = sc.outbound.clone();
            tasks.push(tokio::spawn(async move {
                let mut to_slow = 0;
                for _ in 0..25 {
                    to_slow += (instance_of(&out, &[]).await.ends_with(&format!("-{slow}"))) as u32;
                }
                to_slow
            }));
        }
        let mut to_slow = 0;
        for t in tasks {
            to_slow += t.await.unwrap();
        }
        println!("least request: {to_slow} of 400 to the slow instance");
        assert!(to_slow < 80, "least request should avoid the slow instance: {to_slow} of 400");
    });
}

/// A cookie hash with a `ttl` issues the cookie when a request has none
/// (Envoy's behaviour): the first answer sets it, hashed as the requests
/// that carry it will be, so a session sticks from its first request.
#[test]
fn a_cookie_hash_issues_its_cookie_so_a_session_sticks_from_the_start() {
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let mut procs = Vec::new();
        let mut ports = Vec::new();
        for _ in 0..3 {
            let (p, port) = demo("lb", "v1").await;
            procs.push(p);
            ports.push((port, 1));
        }
        let policy = "{consistentHash: {httpCookie: {name: session, ttl: 60s, path: /, attributes: [{name: SameSite, value: Strict}, {name: Secure}]}}}";
        std::fs::write(dir.path().join("mesh.yaml"), entries(&ports) + &rule(policy)).unwrap();
        let control = Control::start(dir.path()).await;
        let sc = Sidecar::start(&control.xds, "client").await;
        let mut owners = HashMap::new();
        for _ in 0..30 {
            // Each session starts on a fresh connection, without the cookie.
            let first = request(&sc.outbound, "GET", "http://lb/", &[], Default::default()).await;
            let set = first.headers.get("set-cookie").expect("the cookie is issued").to_str().unwrap().to_owned();
            assert!(set.starts_with("session=\"") && set.ends_with("; Max-Age=60; Path=/; HttpOnly; SameSite=Strict; Secure"), "{set}");
            let cookie = set.split(';').next().unwrap().to_owned();
            let owner = first.json()["instance"].as_str().unwrap().to_owned();
            for _ in 0..3 {
                let r = request(&sc.outbound, "GET", "http://lb/", &[("cookie", &cookie)], Default::default()).await;
                assert_eq!(r.json()["instance"], owner.as_str(), "{cookie} moved");
                assert!(r.headers.get("set-cookie").is_none(), "a request with the cookie gets no new one");
            }
            *owners.entry(owner).or_insert(0) += 1;
        }
        assert_eq!(owners.len(), 3, "sessions spread over the instances: {owners:?}");
    });
}

/// A DestinationRule with a `workloadSelector` applies to the callers it
/// selects (in its namespace) and to no other; they get the rule without
/// one. Here the selected caller hashes by a header, the other does not.
#[test]
fn a_rule_with_a_workload_selector_applies_to_the_callers_it_selects() {
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let (_a, pa) = demo("lb", "a").await;
        let (_b, pb) = demo("lb", "b").await;
        let picky = "---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: lb-picky}\nspec:\n  host: lb\n  workloadSelector: {matchLabels: {app: picky}}\n  trafficPolicy:\n    loadBalancer: {consistentHash: {httpHeaderName: x-user}}\n";
        let yaml = entries(&[(pa, 1), (pb, 1)]) + &rule("{simple: ROUND_ROBIN}") + picky;
        std::fs::write(dir.path().join("lb.yaml"), yaml).unwrap();
        let control = Control::start(dir.path()).await;
        let selected = Sidecar::start_with(&control.xds, "picky", &["--labels", "app=picky"]).await;
        let other = Sidecar::start_with(&control.xds, "other", &["--labels", "app=other"]).await;
        let user = [("x-user", "ada")];
        let seen = |out: String| async move {
            let mut seen = std::collections::BTreeSet::new();
            for _ in 0..12 {
                seen.insert(instance_of(&out, &user).await);
            }
            seen
        };
        let (pick, rest) = (selected.outbound.clone(), other.outbound.clone());
        eventually(20, "both sidecars route to lb", || {
            let (p, r) = (pick.clone(), rest.clone());
            async move {
                let ok = |o: String| async move { try_request(&o, "GET", "http://lb/", &[], Default::default()).await.is_ok_and(|r| r.status == 200) };
                ok(p).await && ok(r).await
            }
        })
        .await;
        assert_eq!(seen(pick).await.len(), 1, "the selected caller hashes x-user to one instance");
        assert_eq!(seen(rest).await.len(), 2, "the other caller gets the rule without a selector: round robin");
    });
}

/// A DestinationRule's `portLevelSettings` apply to their port alone: one
/// service, two ports on the same instances, round robin on one and a
/// consistent hash on the other.
#[test]
fn port_level_settings_apply_to_their_port_alone() {
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let (_a, pa) = demo("ported", "v1").await;
        let (_b, pb) = demo("ported", "v1").await;
        let mut yaml = "apiVersion: v1\nkind: Service\nmetadata: {name: ported}\nspec:\n  selector: {app: ported}\n  ports: [{name: http, port: 80}, {name: http-web, port: 8080}]\n".to_owned();
        for p in [pa, pb] {
            yaml += &format!("---\napiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {{name: ported-{p}}}\nspec: {{address: 127.0.0.1, ports: {{http: {p}, http-web: {p}}}, labels: {{app: ported}}}}\n");
        }
        yaml += "---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: ported}\nspec:\n  host: ported\n  trafficPolicy:\n    loadBalancer: {simple: ROUND_ROBIN}\n    portLevelSettings:\n      - port: {number: 8080}\n        loadBalancer: {consistentHash: {httpHeaderName: x-user}}\n";
        std::fs::write(dir.path().join("mesh.yaml"), yaml).unwrap();
        let control = Control::start(dir.path()).await;
        let sc = Sidecar::start(&control.xds, "client").await;
        let on = |url: &'static str| {
            let out = sc.outbound.clone();
            async move {
                let mut seen = std::collections::HashSet::new();
                for _ in 0..20 {
                    let r = request(&out, "GET", url, &[("x-user", "ann")], Default::default()).await;
                    assert_eq!(r.status, 200, "{url}");
                    seen.insert(r.json()["instance"].as_str().unwrap().to_owned());
                }
                seen.len()
            }
        };
        assert_eq!(on("http://ported/").await, 2, "port 80 takes turns");
        assert_eq!(on("http://ported:8080/").await, 1, "port 8080 hashes ann to one instance");
    });
}
