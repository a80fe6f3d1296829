//! Interop: a real Envoy, bootstrapped with nothing but an ADS cluster
//! pointing at `weft control`, routes demo traffic per the VirtualService and
//! DestinationRule weft serves. If weft's xDS is right, Envoy follows it.

mod common;
use common::envoy::*;
use common::*;

/// A Sidecar resource for the Envoy client that leaves out a service
/// outside the cluster domain.
fn scoped(port: u16) -> String {
    format!(
        "---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: hidden}}\nspec:\n  hosts: [hidden.example.com]\n  ports: [{{number: 80, name: http, protocol: HTTP}}]\n  resolution: STATIC\n  endpoints: [{{address: 127.0.0.1, ports: {{http: {port}}}}}]\n---\napiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {{name: envoy-client}}\nspec:\n  workloadSelector: {{labels: {{app: envoy-client}}}}\n  egress: [{{hosts: [\"*/*.svc.cluster.local\"]}}]\n"
    )
}

/// A service whose sessions stick by a cookie the proxy issues.
fn sticky(p1: u16, p2: u16) -> String {
    let entry = |p: u16| {
        format!(
            "---\napiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {{name: sticky-{p}}}\nspec: {{address: 127.0.0.1, ports: {{http: {p}}}, labels: {{app: sticky}}}}\n"
        )
    };
    "---\napiVersion: v1\nkind: Service\nmetadata: {name: sticky}\nspec:\n  selector: {app: sticky}\n  ports: [{name: http, port: 80}]\n---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: sticky}\nspec:\n  host: sticky\n  trafficPolicy: {loadBalancer: {consistentHash: {httpCookie: {name: sid, ttl: 60s, path: /}}}}\n".to_owned()
        + &entry(p1)
        + &entry(p2)
}

/// A service with every failover setting weft translates, so Envoy has to
/// accept outlier detection, health checks, circuit breakers, retry budgets
/// and connection options as weft writes them.
fn guarded(port: u16) -> String {
    format!(
        r#"---
apiVersion: v1
kind: Service
metadata: {{name: guarded}}
spec: {{selector: {{app: guarded}}, ports: [{{name: http, port: 80}}]}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: guarded}}
spec: {{address: 127.0.0.1, ports: {{http: {port}}}, labels: {{app: guarded}}}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: guarded
  annotations:
    health-check.weft.dev/path: /health
    health-check.weft.dev/jitter: 100ms
    outlier.weft.dev/success-rate: "true"
    outlier.weft.dev/failure-percentage: "90"
spec:
  host: guarded
  trafficPolicy:
    connectionPool:
      tcp: {{maxConnections: 10, maxConnectionDuration: 60s}}
      http: {{http1MaxPendingRequests: 5, http2MaxRequests: 20, maxRetries: 2, maxRequestsPerConnection: 100, idleTimeout: 30s}}
    outlierDetection: {{consecutive5xxErrors: 3, consecutiveGatewayErrors: 2, splitExternalLocalOriginErrors: true, consecutiveLocalOriginFailures: 4, interval: 1s, baseEjectionTime: 10s, maxEjectionPercent: 50, minHealthPercent: 20}}
    retryBudget: {{percent: 25, minRetryConcurrency: 5}}
"#
    )
}

/// A service with an instance in Envoy's zone and one in another zone,
/// with locality failover (on with outlier detection) and slow start.
fn zoned(here: u16, there: u16) -> String {
    let entry = |name: &str, port: u16, zone: &str| {
        format!(
            "---\napiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {{name: {name}}}\nspec: {{address: 127.0.0.1, ports: {{http: {port}}}, labels: {{app: zoned}}, locality: eu/{zone}}}\n"
        )
    };
    "---\napiVersion: v1\nkind: Service\nmetadata: {name: zoned}\nspec: {selector: {app: zoned}, ports: [{name: http, port: 80}]}\n---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: zoned}\nspec:\n  host: zoned\n  trafficPolicy:\n    loadBalancer: {simple: ROUND_ROBIN, warmup: {duration: 10s, minimumPercent: 20}}\n    outlierDetection: {consecutive5xxErrors: 3}\n".to_owned()
        + &entry("zoned-here", here, "zone-a")
        + &entry("zoned-there", there, "zone-b")
}

#[test]
fn envoy_follows_weft_routes_and_weighted_split() {
    let envoy = envoy_bin();
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let (_v1, p1) = demo("echo", "v1").await;
        let (_v2, p2) = demo("echo", "v2").await;
        let yaml = two_versions_yaml("echo", p1, p2)
            + r#"---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: echo}
spec:
  hosts: [echo]
  http:
    - match: [{headers: {x-pin: {exact: v2}}}]
      route: [{destination: {host: echo, subset: v2}}]
    - match: [{uri: {prefix: /gone}}]
      directResponse: {status: 410, body: {string: gone}}
    - match: [{uri: {prefix: /fault}}]
      fault: {abort: {httpStatus: 418}}
      route: [{destination: {host: echo, subset: v1}}]
    - match: [{uri: {prefix: /cors}}]
      corsPolicy: {allowOrigins: [{exact: "https://shop.example"}], allowMethods: [GET, POST], maxAge: 1h, exposeHeaders: [x-trace]}
      route: [{destination: {host: echo, subset: v1}}]
    - route:
        - {destination: {host: echo, subset: v1}, weight: 75}
        - {destination: {host: echo, subset: v2}, weight: 25}
      retries: {attempts: 2, retryOn: 5xx, retryRemoteLocalities: true}
"# + &guarded(p1)
            + &zoned(p1, p2)
            + &sticky(p1, p2)
            + &scoped(p1);
        std::fs::write(dir.path().join("mesh.yaml"), yaml).unwrap();
        let control = Control::start(dir.path()).await;
        let xds_port = control.xds_port();
        let (admin, outbound) = (free_port(), free_port());
        let (_envoy, _envoy_dir) = start_envoy(&envoy, &bootstrap(xds_port, admin, outbound));
        let out = format!("127.0.0.1:{outbound}");
        let o = out.clone();
        eventually(30, "Envoy's outbound listener from weft's LDS", || {
            let o = o.clone();
            async move { up_at(&o).await }
        })
        .await;
        let o = out.clone();
        eventually(30, "Envoy to route to echo", || {
            let o = o.clone();
            async move { request(&o, "GET", "/", &[("host", "echo")], Default::default()).await.status == 200 }
        })
        .await;

        // Envoy ACKed every type (its ACKs may reach the control plane just
        // after it serves) and NACKed nothing.
        let status = || async {
            let proxies = get(&control.api, "/debug/proxies", &[("authorization", &control.admin())]).await.json();
            let found = proxies.as_array().unwrap().iter().find(|p| p["id"] == "envoy-client~127.0.0.1").cloned();
            found.expect("envoy is connected")
        };
        let types = ["Listener", "RouteConfiguration", "Cluster", "ClusterLoadAssignment"];
        eventually(10, "Envoy's ACKs of every type", || async {
            let s = status().await;
            types.iter().all(|t| s["acked"][t].is_string())
        })
        .await;
        let envoy_status = status().await;
        assert!(envoy_status["last_nack"].is_null(), "Envoy NACKed: {envoy_status}");

        let n = 400;
        let mut v2 = 0;
        for _ in 0..n {
            let r = request(&out, "GET", "/", &[("host", "echo")], Default::default()).await;
            assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
            v2 += (r.json()["version"] == "v2") as u32;
        }
        // 25% of 400 = 100, sd ≈ 8.7: 70..=130 is beyond 3.4 sd.
        println!("Envoy split: {v2} of {n} to v2 (expected 100)");
        assert!((70..=130).contains(&v2), "v2 got {v2} of {n}");
        for _ in 0..10 {
            let r = request(
                &out,
                "GET",
                "/",
                &[("host", "echo.default.svc.cluster.local:80"), ("x-pin", "v2")],
                Default::default(),
            )
            .await;
            assert_eq!(r.json()["version"], "v2");
        }
        let r = request(&out, "GET", "/gone/x", &[("host", "echo:80")], Default::default()).await;
        assert_eq!((r.status, &r.body[..]), (410, &b"gone"[..]));
        let r = request(&out, "GET", "/fault", &[("host", "echo")], Default::default()).await;
        assert_eq!(r.status, 418, "Envoy applies weft's fault config");
        // Envoy's CORS filter reads weft's policy as weft's proxy does (tests/cors.rs).
        let cors = |method: &'static str, origin: &'static str| {
            let o = out.clone();
            async move {
                let h = [("host", "echo"), ("origin", origin), ("access-control-request-method", "POST")];
                request(&o, method, "/cors", &h, Default::default()).await
            }
        };
        let header = |r: &Resp, name: &str| r.headers.get(name).map(|v| v.to_str().unwrap().to_owned());
        let r = cors("OPTIONS", "https://shop.example").await;
        assert_eq!((r.status, r.body.len()), (200, 0), "Envoy answers the preflight: {:?}", r.headers);
        assert_eq!(header(&r, "access-control-allow-origin").as_deref(), Some("https://shop.example"));
        assert_eq!(header(&r, "access-control-allow-methods").as_deref(), Some("GET,POST"));
        assert_eq!(header(&r, "access-control-max-age").as_deref(), Some("3600"));
        let r = cors("GET", "https://shop.example").await;
        assert_eq!(r.json()["path"], "/cors");
        assert_eq!(header(&r, "access-control-expose-headers").as_deref(), Some("x-trace"));
        let r = cors("OPTIONS", "https://evil.example").await;
        assert_eq!((r.json()["method"].as_str(), header(&r, "access-control-allow-origin")), (Some("OPTIONS"), None));
        // A cookie hash with a ttl: Envoy issues the cookie as weft's proxy
        // does (tests/balancing.rs), and the session sticks from its first request.
        for _ in 0..5 {
            let first = request(&out, "GET", "/", &[("host", "sticky")], Default::default()).await;
            let set = first.headers.get("set-cookie").expect("Envoy issues the cookie").to_str().unwrap().to_owned();
            assert!(set.starts_with("sid=\"") && set.ends_with("; Max-Age=60; Path=/; HttpOnly"), "{set}");
            let cookie = set.split(';').next().unwrap().to_owned();
            let owner = first.json()["instance"].clone();
            for _ in 0..3 {
                let r = request(&out, "GET", "/", &[("host", "sticky"), ("cookie", &cookie)], Default::default()).await;
                assert_eq!(r.json()["instance"], owner, "{cookie} moved");
            }
        }
        // The Sidecar resource scopes Envoy as it scopes weft's sidecars
        // (tests/sidecar_scope.rs): no route and no cluster for the hidden host.
        let r = request(&out, "GET", "/", &[("host", "hidden.example.com")], Default::default()).await;
        assert_eq!(r.status, 404, "{}", String::from_utf8_lossy(&r.body));
        let clusters = get(&format!("127.0.0.1:{admin}"), "/clusters", &[]).await;
        let clusters = String::from_utf8_lossy(&clusters.body);
        assert!(clusters.contains("sticky.default.svc") && !clusters.contains("hidden.example.com"), "{clusters}");
        // Envoy in zone-a keeps to the zone-a instance (priority 0); the
        // zone-b one is its failover (priority 1).
        for _ in 0..40 {
            let r = request(&out, "GET", "/", &[("host", "zoned")], Default::default()).await;
            assert_eq!(r.json()["instance"], format!("echo-{p1}"), "Envoy stays in its zone");
        }

        // A regex RE2 refuses (program size over Envoy's limit of 100) but the
        // config is otherwise fine: Envoy NACKs, weft records why, and Envoy
        // keeps routing with its last good config.
        let big = "/(alpha|beta|gamma|delta|epsilon|zeta|eta|theta|iota|kappa|lambda|mu){1,20}";
        let mesh = std::fs::read_to_string(dir.path().join("mesh.yaml")).unwrap();
        let edited = mesh.replace("    - match: [{uri: {prefix: /gone}}]", &format!("    - match: [{{uri: {{regex: \"{big}\"}}}}]\n      directResponse: {{status: 200}}\n    - match: [{{uri: {{prefix: /gone}}}}]"));
        assert_ne!(edited, mesh);
        std::fs::write(dir.path().join("mesh.yaml"), edited).unwrap();
        let (api, admin) = (control.api.clone(), control.admin());
        let auth = admin.as_str();
        eventually(15, "Envoy to NACK the route table", || { let a = api.clone(); async move {
            get(&a, "/debug/proxies", &[("authorization", auth)]).await.json().as_array().unwrap().iter().any(|p| p["id"] == "envoy-client~127.0.0.1" && p["last_nack"].is_string())
        }}).await;
        let proxies = get(&control.api, "/debug/proxies", &[("authorization", &control.admin())]).await.json();
        let nack = proxies.as_array().unwrap().iter().find(|p| p["id"] == "envoy-client~127.0.0.1").unwrap()["last_nack"].as_str().unwrap().to_owned();
        println!("Envoy NACKed: {nack}");
        assert!(nack.starts_with("RouteConfiguration") && nack.contains("program size"), "{nack}");
        let r = request(&out, "GET", "/gone/x", &[("host", "echo:80")], Default::default()).await;
        assert_eq!(r.status, 410, "Envoy still serves its last good routes");
    });
}

/// Envoy as weft's ingress gateway: TLS passed through by SNI and TCP by
/// port, from the same config and checks as weft's gateway (tests/gateway_l4.rs).
#[test]
fn envoy_as_a_gateway_routes_tls_by_sni_and_tcp_by_port() {
    let envoy = envoy_bin();
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let (offset, tcp_port) = l4::ports();
        std::fs::write(dir.path().join("mesh.yaml"), l4::mesh(tcp_port).await).unwrap();
        let control = Control::start(dir.path()).await;
        let xds_port = control.xds_port();
        let admin = free_port();
        let node = format!(
            r#"id: envoy-gateway~127.0.0.1
  cluster: envoy-gateway
  metadata: {{ROLE: gateway, NAMESPACE: default, WORKLOAD_NAME: envoy-gateway, LISTEN_IP: 127.0.0.1, PORT_OFFSET: "{offset}", LABELS: {{istio: ingressgateway}}}}"#
        );
        let (_envoy, _envoy_dir) = start_envoy(&envoy, &bootstrap_for(&node, xds_port, admin));
        let (tls, tcp) = (format!("127.0.0.1:{}", 443 + offset), format!("127.0.0.1:{}", tcp_port + offset));
        for addr in [&tls, &tcp] {
            let a = addr.clone();
            eventually(30, "Envoy's gateway listeners from weft's LDS", || {
                let a = a.clone();
                async move { up_at(&a).await }
            })
            .await;
        }
        l4::check(&tls, &tcp).await;
        assert_no_nack(&control, "envoy-gateway~127.0.0.1").await;
    });
}

/// Envoy as `web`'s sidecar enforces the RBAC filters weft translates from
/// AuthorizationPolicies, deciding each plaintext row of the authorization
/// matrix as weft's sidecar does (tests/authz.rs; Envoy gets no mesh
/// certificate from weft yet, so rows that need one are weft's alone).
#[test]
fn envoy_enforces_the_same_authorization_policies() {
    let envoy = envoy_bin();
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let (_app, app) = demo("web", "v1").await;
        let inbound = free_port();
        std::fs::write(dir.path().join("mesh.yaml"), authz::mesh(app, inbound)).unwrap();
        let control = Control::start(dir.path()).await;
        let xds_port = control.xds_port();
        let admin = free_port();
        let node = web_sidecar_node(app, inbound);
        let (_envoy, _envoy_dir) = start_envoy(&envoy, &bootstrap_for(&node, xds_port, admin));
        let addr = format!("127.0.0.1:{inbound}");
        let a = addr.clone();
        eventually(30, "Envoy's inbound listener", || {
            let a = a.clone();
            async move { up_at(&a).await }
        })
        .await;
        let mut failures = Vec::new();
        let rows: Vec<_> = authz::matrix().into_iter().filter(|r| matches!(r.who, authz::Who::Plain)).collect();
        assert!(rows.len() >= 8, "the matrix has plaintext rows");
        for r in rows {
            match tls::send(&addr, false, None, &r.call).await {
                Ok((status, _)) if status == r.want => {}
                got => failures.push(format!(
                    "{} {} {:?}: {got:?}, want {} ({})",
                    r.call.method, r.call.path, r.call.headers, r.want, r.why
                )),
            }
        }
        assert!(failures.is_empty(), "Envoy decided {} rows otherwise:\n{}", failures.len(), failures.join("\n"));
        let (status, body) =
            tls::send(&addr, false, None, &tls::Call { path: "/secret", ..Default::default() }).await.unwrap();
        assert_eq!((status, body.trim()), (403, "RBAC: access denied"), "weft's denial is Envoy's");
        assert_no_nack(&control, "envoy-web~127.0.0.1").await;
    });
}

/// Envoy as web's sidecar, on xDS over TLS with web's certificate, takes
/// its mesh certificate over SDS from `weft control`: under STRICT it
/// refuses plaintext, and it decides the whole authorization matrix (mesh
/// identities over mutual TLS included) as weft's sidecar does
/// (tests/authz.rs); a weft sidecar calls it over mutual TLS and checks
/// it is `web`.
#[test]
fn envoy_takes_its_certificate_over_sds_and_decides_the_matrix() {
    let envoy = envoy_bin();
    let dir = tempfile::tempdir().unwrap();
    let certs = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let (_app, app) = demo("web", "v1").await;
        let inbound = free_port();
        let strict = "---\napiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: web}\nspec: {selector: {matchLabels: {app: web}}, mtls: {mode: STRICT}}\n";
        std::fs::write(dir.path().join("mesh.yaml"), authz::mesh(app, inbound) + strict).unwrap();
        let control = Control::start(dir.path()).await;
        let cert = |ns: &str, sa: &str| tls::weft_cert(&control, certs.path(), ns, sa);
        let tls_port = control.tls_port();
        let admin = free_port();
        let node = web_sidecar_node(app, inbound);
        let web = cert("default", "web");
        let (_envoy, _envoy_dir) = start_envoy(&envoy, &bootstrap_tls(&node, tls_port, admin, Some(&web)));
        let addr = format!("127.0.0.1:{inbound}");
        let frontend = cert("default", "frontend");
        let call = tls::Call { path: "/api/x", ..Default::default() };
        eventually(30, "Envoy's inbound listener, with its SDS certificate", || {
            let (addr, frontend, call) = (addr.clone(), frontend.clone(), &call);
            async move { tls::send(&addr, true, Some(&frontend), call).await.is_ok_and(|(s, _)| s == 200) }
        })
        .await;
        assert!(tls::send(&addr, false, None, &call).await.is_err(), "STRICT: Envoy served plaintext");
        let (mut failures, mut checked) = (Vec::new(), 0);
        for r in authz::matrix() {
            let got = match r.who {
                authz::Who::Plain => continue,
                authz::Who::Id(ns, sa) => tls::send(&addr, true, Some(&cert(ns, sa)), &r.call).await,
            };
            checked += 1;
            match got {
                Ok((status, _)) if status == r.want => {}
                got => failures.push(format!("{} {}: {got:?}, want {} ({})", r.call.method, r.call.path, r.want, r.why)),
            }
        }
        assert!(failures.is_empty(), "Envoy decided {} rows otherwise:\n{}", failures.len(), failures.join("\n"));
        assert!(checked >= 10, "the matrix's rows with mesh identities: {checked}");
        // A weft sidecar calls Envoy over mutual TLS, and Envoy's SDS
        // certificate is `web`'s, as the service's instance runs as.
        let [c, api, t, token] = control.ca_args();
        let client = Sidecar::start_with(&control.xds, "frontend", &[c, api, t, token, "--service-account", "frontend"]).await;
        let out = client.outbound.clone();
        eventually(30, "frontend's sidecar to web's Envoy over mutual TLS", || {
            let out = out.clone();
            async move { get(&out, "/api/x", &[("host", "web")]).await.status == 200 }
        })
        .await;
        let r = get(&client.outbound, "/api/x", &[("host", "web")]).await;
        assert!(r.json()["headers"]["x-forwarded-client-cert"].as_str().is_some_and(|x| x.contains("sa/frontend")), "{}", r.json());
        assert_no_nack(&control, "envoy-web~127.0.0.1").await;
    });
}

/// One line through `addr`: what came back, or None when the connection
/// closed unanswered.
async fn echo_line(addr: &str, line: &str) -> Option<String> {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    let s = tokio::net::TcpStream::connect(addr).await.ok()?;
    let (r, mut w) = s.into_split();
    w.write_all(format!("{line}\n").as_bytes()).await.ok()?;
    let mut back = String::new();
    let mut reader = tokio::io::BufReader::new(r);
    match tokio::time::timeout(std::time::Duration::from_secs(10), reader.read_line(&mut back)).await {
        Ok(Ok(n)) if n > 0 => Some(back.trim_end().to_owned()),
        _ => None,
    }
}

/// Envoy as the sidecar of a TCP service, with its SDS certificate: its
/// inbound listener is TCP, takes mutual TLS only (STRICT) and judges each
/// connection by the network RBAC filters weft translates, as weft's own
/// sidecar does (tests/tcp_mesh.rs).
#[test]
fn envoy_serves_a_tcp_service_with_mutual_tls_and_its_policies() {
    let envoy = envoy_bin();
    let dir = tempfile::tempdir().unwrap();
    let certs = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let (svc, app, inbound) = (free_port(), free_port(), free_port());
        let _app = spawn(&["demo", "--tcp", "--name", "echo", "--host", "127.0.0.1", "--port", &app.to_string()]);
        let yaml = format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: echo}}\nspec:\n  selector: {{app: echo}}\n  ports: [{{name: tcp-echo, port: {svc}, targetPort: {app}}}]\n---\napiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {{name: echo}}\nspec: {{address: 127.0.0.2, ports: {{tcp-echo: {inbound}}}, labels: {{app: echo, security.istio.io/tlsMode: istio}}, serviceAccount: echo}}\n---\napiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {{name: echo}}\nspec: {{selector: {{matchLabels: {{app: echo}}}}, mtls: {{mode: STRICT}}}}\n---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {{name: no-batch}}\nspec:\n  selector: {{matchLabels: {{app: echo}}}}\n  action: DENY\n  rules: [{{from: [{{source: {{principals: [cluster.local/ns/default/sa/batch]}}}}]}}]\n"
        );
        std::fs::write(dir.path().join("mesh.yaml"), yaml).unwrap();
        let control = Control::start(dir.path()).await;
        let out = tls::weft_cert(&control, certs.path(), "default", "echo");
        let tls_port = control.tls_port();
        let (admin, outbound) = (free_port(), free_port());
        let node = format!(
            r#"id: envoy-echo~127.0.0.2
  cluster: envoy-echo
  metadata: {{ROLE: sidecar, NAMESPACE: default, WORKLOAD_NAME: echo, LISTEN_IP: 127.0.0.2, OUTBOUND_PORT: "{outbound}", INBOUND_PORT: "{inbound}", APP_PORT: "{app}", LABELS: {{app: echo}}}}"#
        );
        let (_envoy, _envoy_dir) = start_envoy(&envoy, &bootstrap_tls(&node, tls_port, admin, Some(&out)));
        let [c, api, t, token] = control.ca_args();
        let frontend = Sidecar::start_with(&control.xds, "frontend", &[c, api, t, token, "--service-account", "frontend"]).await;
        let via = format!("127.0.0.1:{svc}");
        eventually(30, "frontend to echo through Envoy over mutual TLS", || {
            let via = via.clone();
            async move { echo_line(&via, "hello").await.is_some_and(|b| b.ends_with(": hello")) }
        })
        .await;
        assert_eq!(echo_line(&format!("127.0.0.2:{inbound}"), "plain").await, None, "STRICT: Envoy spliced plaintext");
        drop(frontend);
        let ca = [c, api, t, token, "--service-account", "batch", "--listen-ip", "127.0.0.3"];
        let _batch = Sidecar::start_with(&control.xds, "batch", &ca).await;
        let via = format!("127.0.0.3:{svc}");
        let a = via.clone();
        eventually(20, "batch's TCP listener", || {
            let a = a.clone();
            async move { up_at(&a).await }
        })
        .await;
        assert_eq!(echo_line(&via, "denied").await, None, "Envoy let batch through its DENY policy");
        assert_no_nack(&control, "envoy-echo~127.0.0.2").await;
    });
}

/// Envoy as the gateway terminates the same HTTPS servers from the
/// certificates weft sends inline: SIMPLE by server name, MUTUAL, and the
/// httpsRedirect (tests/gateway_l4.rs runs the checks on weft's gateway).
#[test]
fn envoy_as_a_gateway_terminates_https() {
    let envoy = envoy_bin();
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let offset = https::offset();
        let pki = https::pki();
        let (yaml, _web) = https::mesh(&pki).await;
        std::fs::write(dir.path().join("mesh.yaml"), yaml).unwrap();
        let control = Control::start(dir.path()).await;
        let xds_port = control.xds_port();
        let admin = free_port();
        let node = format!(
            r#"id: envoy-https~127.0.0.1
  cluster: envoy-https
  metadata: {{ROLE: gateway, NAMESPACE: default, WORKLOAD_NAME: envoy-https, LISTEN_IP: 127.0.0.1, PORT_OFFSET: "{offset}", LABELS: {{istio: ingressgateway}}}}"#
        );
        let (_envoy, _envoy_dir) = start_envoy(&envoy, &bootstrap_for(&node, xds_port, admin));
        https::check(offset, &pki).await;
        assert_no_nack(&control, "envoy-https~127.0.0.1").await;
    });
}

#[test]
fn envoy_originates_tls_as_the_destination_rule_says() {
    use common::origin::{answers, external, tls_server, write_pem};
    let envoy = envoy_bin();
    let dir = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    let config = dir.path().join("external.yaml");
    let pki = https::pki();
    let ca = write_pem(files.path(), "ca.pem", &pki.server_ca);
    let wrong_ca = write_pem(files.path(), "wrong-ca.pem", &pki.client_ca);
    let cert = write_pem(files.path(), "client.pem", &pki.client.0);
    let key = write_pem(files.path(), "client-key.pem", &pki.client.1);
    rt().block_on(async {
        let open = tls_server(&pki.shop, None).await;
        let mutual = tls_server(&pki.shop, Some(&pki.client_ca)).await;
        let tcp_port = free_port();
        std::fs::write(
            &config,
            external("shop.example", open, tcp_port, &format!("{{mode: SIMPLE, caCertificates: {ca}}}")),
        )
        .unwrap();
        let control = Control::start(dir.path()).await;
        let xds_port = control.xds_port();
        let (admin, outbound) = (free_port(), free_port());
        let (_envoy, _envoy_dir) = start_envoy(&envoy, &bootstrap(xds_port, admin, outbound));
        let out = format!("127.0.0.1:{outbound}");
        // The same transport sockets weft's sidecar takes: SNI of the host,
        // the rule's CA, the name checked; MUTUAL shows the client's files.
        answers(&out, "shop.example", 200, "tls sni=shop.example client=no").await;
        let tls = format!("{{mode: SIMPLE, caCertificates: {wrong_ca}}}");
        std::fs::write(&config, external("shop.example", open, tcp_port, &tls)).unwrap();
        answers(&out, "shop.example", 503, "").await;
        let tls = format!("{{mode: MUTUAL, caCertificates: {ca}, clientCertificate: {cert}, privateKey: {key}}}");
        std::fs::write(&config, external("shop.example", mutual, tcp_port, &tls)).unwrap();
        answers(&out, "shop.example", 200, "client=yes").await;
        assert_no_nack(&control, "envoy-client~127.0.0.1").await;
    });
}
