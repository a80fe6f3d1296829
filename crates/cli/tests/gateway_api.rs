//! The Kubernetes Gateway API end to end: `weft up` runs a gateway for a
//! `Gateway`, and its `HTTPRoute`s route real requests to demo backends
//! with the specification's semantics (the cases follow the conformance
//! suite's: path, header, query and method matches and their precedence,
//! header modifiers, redirects, rewrites, weights, unresolved backends);
//! a route whose parent is a `Service` routes mesh traffic (GAMMA); what a
//! route cannot take is said by `weft validate` as its status.

mod common;
use common::*;

trait ServedBy {
    fn served_by(&self) -> String;
}

impl ServedBy for Resp {
    /// The demo service that answered, or the proxy's own answer.
    fn served_by(&self) -> String {
        serde_json::from_slice::<serde_json::Value>(&self.body)
            .ok()
            .and_then(|v| v["service"].as_str().map(str::to_owned))
            .unwrap_or_else(|| format!("{}: {}", self.status, String::from_utf8_lossy(&self.body).trim()))
    }
}

const GATEWAY: &str = r#"apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: weft}
spec: {controllerName: weft.dev/gateway-controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: edge}
spec:
  gatewayClassName: weft
  listeners:
    - {name: http, port: 80, protocol: HTTP}
    - name: admin
      port: 80
      protocol: HTTP
      hostname: "*.admin.example.com"
      allowedRoutes: {namespaces: {from: All}, kinds: [{kind: HTTPRoute}]}
    - name: teams
      port: 80
      protocol: HTTP
      hostname: "*.teams.example.com"
      allowedRoutes:
        namespaces:
          from: Selector
          selector:
            matchLabels: {team: shop}
            matchExpressions: [{key: env, operator: NotIn, values: [prod]}]
---
apiVersion: v1
kind: Namespace
metadata: {name: shop-dev, labels: {team: shop, env: dev}}
---
apiVersion: v1
kind: Namespace
metadata: {name: shop-prod, labels: {team: shop, env: prod}}
"#;

const ROUTES: &str = r#"apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: edge-private}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: edge}]
  action: DENY
  rules: [{to: [{operation: {paths: ["/private/*"]}}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: shop}
spec:
  parentRefs: [{name: edge}]
  hostnames: [shop.example.com]
  rules:
    - matches: [{path: {type: PathPrefix, value: /api}}]
      filters:
        - type: URLRewrite
          urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /v2}}
        - type: RequestHeaderModifier
          requestHeaderModifier:
            set: [{name: X-Set, value: forced}]
            add: [{name: X-Added, value: "yes"}]
            remove: [x-secret]
        - type: ResponseHeaderModifier
          responseHeaderModifier:
            set: [{name: x-resp, value: "1"}]
            add: [{name: x-resp-added, value: "2"}]
            remove: [content-type]
      backendRefs: [{name: a, port: 80}]
    - matches: [{path: {type: Exact, value: /api/pinned}}]
      backendRefs: [{name: b, port: 80}]
    - matches:
        - path: {type: PathPrefix, value: /api}
          headers: [{name: x-canary, value: "yes"}]
        - path: {type: PathPrefix, value: /api}
          queryParams: [{name: canary, value: "1"}]
        - {path: {type: PathPrefix, value: /api}, method: DELETE}
      backendRefs: [{name: b, port: 80}]
    - matches: [{path: {type: PathPrefix, value: /old}}]
      filters:
        - type: RequestRedirect
          requestRedirect: {scheme: https, hostname: new.example.com, statusCode: 301, path: {type: ReplacePrefixMatch, replacePrefixMatch: /new}}
    - matches: [{path: {type: PathPrefix, value: /full}}]
      filters:
        - type: RequestRedirect
          requestRedirect: {port: 8443, path: {type: ReplaceFullPath, replaceFullPath: /fixed}}
    - matches: [{path: {type: PathPrefix, value: /host}}]
      filters:
        - type: URLRewrite
          urlRewrite: {hostname: rewritten.example, path: {type: ReplaceFullPath, replaceFullPath: /whole}}
      backendRefs: [{name: a, port: 80}]
    - matches: [{path: {type: PathPrefix, value: /slow}}]
      timeouts: {request: 150ms}
      backendRefs: [{name: a, port: 80}]
    - matches: [{path: {type: PathPrefix, value: /split}}]
      backendRefs:
        - {name: a, port: 80, weight: 0}
        - name: b
          port: 80
          weight: 3
          filters:
            - type: RequestHeaderModifier
              requestHeaderModifier: {set: [{name: x-backend, value: b}]}
    - matches: [{path: {type: PathPrefix, value: /gone}}]
      backendRefs: [{name: nowhere, port: 80}]
    - matches: [{path: {type: PathPrefix, value: /cors}}]
      filters:
        - type: CORS
          cors:
            allowOrigins: ["https://*.shop.example", https://app.example]
            allowMethods: [GET, POST]
            allowHeaders: [x-token]
            exposeHeaders: [x-trace]
            allowCredentials: true
            maxAge: 60
      backendRefs: [{name: a, port: 80}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: fallback}
spec:
  parentRefs: [{name: edge, sectionName: http}]
  rules:
    - backendRefs: [{name: a, port: 80}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: ops, namespace: other}
spec:
  parentRefs: [{name: edge, namespace: default}]
  rules:
    - matches: [{path: {value: /by-hostname}}]
      backendRefs: [{group: networking.istio.io, kind: Hostname, name: a.default.svc.cluster.local, port: 80}]
    - backendRefs: [{name: b, namespace: default, port: 80}]
---
# Lets HTTPRoutes of `other` send to Service b of `default`, and no other.
apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {name: other-to-b}
spec:
  from: [{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: other}]
  to: [{group: "", kind: Service, name: b}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: ungranted, namespace: other}
spec:
  parentRefs: [{name: edge, namespace: default, sectionName: admin}]
  hostnames: [ungranted.admin.example.com]
  rules:
    - backendRefs: [{name: a, namespace: default, port: 80}]
---
# The teams listener selects namespace shop-dev by its labels, not shop-prod.
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: dev, namespace: shop-dev}
spec:
  parentRefs: [{name: edge, namespace: default, sectionName: teams}]
  hostnames: [dev.teams.example.com]
  rules: [{backendRefs: [{group: networking.istio.io, kind: Hostname, name: b.default.svc.cluster.local, port: 80}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: prod, namespace: shop-prod}
spec:
  parentRefs: [{name: edge, namespace: default, sectionName: teams}]
  hostnames: [prod.teams.example.com]
  rules: [{backendRefs: [{group: networking.istio.io, kind: Hostname, name: b.default.svc.cluster.local, port: 80}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: orphan}
spec:
  rules: [{backendRefs: [{name: a, port: 80}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: stray}
spec:
  parentRefs: [{name: edge, sectionName: https}, {name: elsewhere}]
  rules:
    - filters: [{type: ExtensionRef, extensionRef: {group: example.com, kind: Plugin, name: p}}]
      backendRefs: [{name: a, port: 80}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: outsider, namespace: other}
spec:
  parentRefs: [{name: edge, namespace: default, sectionName: http}]
  rules:
    - backendRefs: [{group: networking.istio.io, kind: Hostname, name: a.default.svc.cluster.local, port: 80}]
"#;

#[test]
fn a_gateway_api_gateway_routes_by_httproutes() {
    let dir = tempfile::tempdir().unwrap();
    let rt = rt();
    let ((_a, a), (_b, b)) = rt.block_on(async { (demo("a", "v1").await, demo("b", "v1").await) });
    let backends = backend_yaml("a", a) + "---\n" + &backend_yaml("b", b);
    std::fs::write(dir.path().join("backends.yaml"), backends).unwrap();
    std::fs::write(dir.path().join("gateway.yaml"), GATEWAY).unwrap();
    std::fs::write(dir.path().join("routes.yaml"), ROUTES).unwrap();

    // Each route part that is not applied is said, with the Gateway API's reason.
    let out = std::process::Command::new(weft()).arg("validate").arg(dir.path()).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "warnings only: {text}");
    for said in [
        "ResolvedRefs=False (BackendNotFound): no Service `default/nowhere`",
        "Accepted=False (NoMatchingParent): Gateway `default/edge` has no listener of that sectionName",
        "Accepted=False (NoMatchingParent): no Gateway `default/elsewhere`",
        "Accepted=False (NotAllowedByListeners): the listeners of Gateway `default/edge` do not allow HTTPRoutes of namespace `other`",
        "Accepted=False (NoMatchingParent): the route names no `parentRefs`",
        "do not allow HTTPRoutes of namespace `shop-prod`",
        "`spec.rules[0].filters[0].type: ExtensionRef` is accepted but not applied",
        "ResolvedRefs=False (RefNotPermitted): backend `default/a` is in another namespace, and no ReferenceGrant there lets HTTPRoutes of `other` refer to it",
    ] {
        assert!(text.contains(said), "`{said}` in:\n{text}");
    }

    let mut up = Up::start(dir.path());
    assert_eq!(up.info["gateways"][0]["name"], "edge", "the gateway is named for its Gateway: {}", up.info);
    rt.block_on(async {
        let gw = format!("127.0.0.1:{}", up.gateway_port);
        let shop = [("host", "shop.example.com")];
        let with = |extra: (&'static str, &'static str)| [shop[0], extra];

        // The prefix is rewritten, request and response headers modified.
        let r = get(&gw, "/api/books?id=7", &[shop[0], ("x-secret", "s"), ("x-set", "mine")]).await;
        assert_eq!(r.status, 200, "{}", r.served_by());
        let j = r.json();
        assert_eq!(
            (j["service"].as_str(), j["path"].as_str(), j["query"].as_str()),
            (Some("a"), Some("/v2/books"), Some("id=7")),
            "{j}"
        );
        assert_eq!(
            (j["headers"]["x-set"].as_str(), j["headers"]["x-added"].as_str()),
            (Some("forced"), Some("yes")),
            "{j}"
        );
        assert!(j["headers"].get("x-secret").is_none(), "removed: {j}");
        assert_eq!(r.headers.get("x-resp").map(|v| v.to_str().unwrap()), Some("1"));
        assert_eq!(r.headers.get("x-resp-added").map(|v| v.to_str().unwrap()), Some("2"));
        assert!(r.headers.get("content-type").is_none(), "the app's content-type removed: {:?}", r.headers);
        // `/api` itself is the prefix: rewritten to `/v2`.
        assert_eq!(get(&gw, "/api", &shop).await.json()["path"], "/v2");

        // Precedence: an exact path, then matches with a header, a query
        // parameter or a method win over the same prefix alone.
        assert_eq!(get(&gw, "/api/pinned", &shop).await.served_by(), "b");
        assert_eq!(get(&gw, "/api/x", &with(("x-canary", "yes"))).await.served_by(), "b");
        assert_eq!(get(&gw, "/api/x?canary=1", &shop).await.served_by(), "b");
        assert_eq!(request(&gw, "DELETE", "/api/x", &shop, Default::default()).await.served_by(), "b");
        assert_eq!(get(&gw, "/api/x", &with(("x-canary", "no"))).await.served_by(), "a");
        // A prefix takes whole path segments: `/apix` is not under `/api`,
        // and no rule of shop.example.com takes it.
        assert_eq!(get(&gw, "/apix", &shop).await.status, 404);

        let r = get(&gw, "/old/page?q=1", &shop).await;
        assert_eq!(r.status, 301);
        assert_eq!(r.headers.get("location").unwrap(), "https://new.example.com/new/page?q=1");

        let r = get(&gw, "/full/x?q=1", &shop).await;
        assert_eq!(
            (r.status, r.headers.get("location").unwrap().to_str().unwrap()),
            (302, "http://shop.example.com:8443/fixed?q=1")
        );
        let j = get(&gw, "/host/x", &shop).await.json();
        assert_eq!((j["host"].as_str(), j["path"].as_str()), (Some("rewritten.example"), Some("/whole")), "{j}");
        assert_eq!(get(&gw, "/slow?delay=2s", &shop).await.status, 504, "the request timeout cut the 2 s wait");
        assert_eq!(get(&gw, "/slow?delay=10ms", &shop).await.status, 200);

        // Weight 0 sends nothing; a backend's own filter applies to it; a
        // backend that does not resolve answers 500.
        for _ in 0..10 {
            let j = get(&gw, "/split", &shop).await.json();
            assert_eq!((j["service"].as_str(), j["headers"]["x-backend"].as_str()), (Some("b"), Some("b")), "{j}");
        }
        assert_eq!(get(&gw, "/gone", &shop).await.status, 500);

        // The CORS filter: a preflight answered at the gateway for an
        // allowed origin (a wildcard's too), nothing allowed for another.
        let preflight = |origin: &'static str| {
            let gw = gw.clone();
            async move {
                let h = [shop[0], ("origin", origin), ("access-control-request-method", "POST")];
                request(&gw, "OPTIONS", "/cors/x", &h, Default::default()).await
            }
        };
        let r = preflight("https://m.shop.example").await;
        let h = |r: &Resp, n: &str| r.headers.get(n).map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(h(&r, "access-control-allow-origin").as_deref(), Some("https://m.shop.example"), "{:?}", r.headers);
        assert_eq!(
            (h(&r, "access-control-allow-methods"), h(&r, "access-control-max-age")),
            (Some("GET,POST".into()), Some("60".into()))
        );
        assert_eq!(h(&r, "access-control-allow-credentials").as_deref(), Some("true"));
        assert_eq!(h(&r, "access-control-allow-headers").as_deref(), Some("x-token"));
        assert_eq!(h(&preflight("https://evil.example").await, "access-control-allow-origin"), None);
        let r = get(&gw, "/cors/x", &[shop[0], ("origin", "https://app.example")]).await;
        assert_eq!((r.served_by(), h(&r, "access-control-expose-headers")), ("a".into(), Some("x-trace".into())));

        // The control plane shows the same status with the config in force.
        let api = up.info["control"]["api"].as_str().unwrap().to_owned();
        let config = get(&api, "/debug/config", &[("authorization", &up.admin())]).await.json();
        let warnings = config["warnings"].to_string();
        assert!(warnings.contains("Accepted=False (NoMatchingParent): no Gateway `default/elsewhere`"), "{warnings}");

        // A route with no hostnames takes every other host on the listener.
        assert_eq!(get(&gw, "/anything", &[("host", "other.example.org")]).await.served_by(), "a");
        // A policy attached to the Gateway by `targetRefs` is its gateway's.
        let r = get(&gw, "/private/x", &[("host", "other.example.org")]).await;
        assert_eq!(r.status, 403, "{}", r.served_by());
        assert_eq!(get(&gw, "/public/x", &[("host", "other.example.org")]).await.served_by(), "a");

        // The admin listener takes routes of every namespace, for its
        // hostnames alone: `ops` (namespace `other`) sends them to b.
        assert_eq!(get(&gw, "/", &[("host", "x.admin.example.com")]).await.served_by(), "b");
        assert_eq!(get(&gw, "/", &[("host", "admin.example.com")]).await.served_by(), "a");
        assert_eq!(get(&gw, "/by-hostname", &[("host", "x.admin.example.com")]).await.served_by(), "a");
        // Its ReferenceGrant names Service b alone: a route to a answers 500.
        assert_eq!(get(&gw, "/", &[("host", "ungranted.admin.example.com")]).await.status, 500);
        // The teams listener took the route of the namespace its selector
        // selects, and not the other's: that host falls to the catch-all.
        assert_eq!(get(&gw, "/", &[("host", "dev.teams.example.com")]).await.served_by(), "b");
        assert_eq!(get(&gw, "/", &[("host", "prod.teams.example.com")]).await.served_by(), "a");
    });
    up.stop();
}

const MESH: &str = r#"apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: a-canary}
spec:
  parentRefs: [{group: "", kind: Service, name: a, port: 80}]
  rules:
    - matches: [{headers: [{name: x-version, value: canary}]}]
      backendRefs: [{name: b, port: 80}]
    - matches: [{path: {value: /mirrored}}]
      filters:
        - {type: RequestMirror, requestMirror: {backendRef: {name: shadow, port: 80}, percent: 100}}
        - type: RequestMirror
          requestMirror: {backendRef: {kind: Service, group: "", name: half, port: 80}, fraction: {numerator: 1, denominator: 2}}
      backendRefs: [{name: a, port: 80}]
    - matches: [{path: {value: /flaky}}]
      retry: {attempts: 6, codes: [503]}
      timeouts: {backendRequest: 2s}
      backendRefs: [{name: flaky, port: 80}]
    - backendRefs: [{name: a, port: 80}]
"#;

/// GAMMA: an HTTPRoute whose parent is a Service routes the mesh's calls to it.
#[test]
fn an_httproute_on_a_service_routes_mesh_traffic() {
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let (_a, a) = demo("a", "v1").await;
        let (_b, b) = demo("b", "v1").await;
        let (_s, shadow) = demo("shadow", "v1").await;
        let (_h, half) = demo("half", "v1").await;
        let (_f, flaky) = demo("flaky", "v1").await;
        behave(flaky, r#"{"failPercent": 50, "failStatus": 503}"#).await;
        let mut config = String::new();
        for (name, port) in [("a", a), ("b", b), ("shadow", shadow), ("half", half), ("flaky", flaky)] {
            config += &(backend_yaml(name, port) + "---\n");
        }
        std::fs::write(dir.path().join("mesh.yaml"), config + MESH).unwrap();
        let control = Control::start(dir.path()).await;
        let sc = Sidecar::start(&control.xds, "client").await;
        let out = sc.outbound.as_str();
        assert_eq!(get(out, "/", &[("host", "a")]).await.served_by(), "a");
        assert_eq!(get(out, "/", &[("host", "a"), ("x-version", "canary")]).await.served_by(), "b");
        assert_eq!(get(out, "/", &[("host", "b"), ("x-version", "canary")]).await.served_by(), "b");

        // Mirrors: every request copied to shadow, about half to half.
        let n = 200;
        for _ in 0..n {
            assert_eq!(get(out, "/mirrored", &[("host", "a")]).await.served_by(), "a");
        }
        let count = |port: u16| async move {
            get(&format!("127.0.0.1:{port}"), "/admin/stats", &[]).await.json()["requests"].as_u64().unwrap()
        };
        eventually(10, "every mirrored copy to arrive", || async move { count(shadow).await == n }).await;
        let halves = count(half).await;
        // Binomial(200, 0.5): sd ≈ 7; 65..=135 is beyond 4.9 sd.
        assert!((65..=135).contains(&halves), "about half should be mirrored: {halves} of {n}");

        // 50% 503s; 6 retries on 503 leave 1 in 128 failing.
        let mut ok = 0;
        for _ in 0..n {
            ok += (get(out, "/flaky", &[("host", "a")]).await.status == 200) as u64;
        }
        assert!(ok >= n - 8, "retries should hide nearly all 503s: {ok} of {n}");
    });
}

/// An HTTPS listener terminates TLS with the Secret its `certificateRefs`
/// name; one naming a Secret of another namespace is not served, and its
/// status says why.
#[test]
fn an_https_listener_terminates_with_its_certificate_refs() {
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let offset = https::offset();
        let pki = https::pki();
        let (_web, port) = demo("web", "v1").await;
        let yaml = backend_yaml("web", port)
            + &https::tls_secret("shop-cert", &pki.shop, None)
            + &https::tls_secret("api-cert", &pki.api, None)
                .replace("{name: api-cert}", "{name: api-cert, namespace: certs}")
            + &https::tls_secret("old-cert", &pki.api, None)
                .replace("{name: old-cert}", "{name: old-cert, namespace: certs}")
            + r#"---
# Lets Gateways of `default` read Secret api-cert of `certs`, and no other.
apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {name: gateways-to-api-cert, namespace: certs}
spec:
  from: [{group: gateway.networking.k8s.io, kind: Gateway, namespace: default}]
  to: [{group: "", kind: Secret, name: api-cert}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: secure}
spec:
  gatewayClassName: istio
  listeners:
    - name: shop
      port: 443
      protocol: HTTPS
      hostname: shop.example
      tls: {mode: Terminate, certificateRefs: [{kind: Secret, group: "", name: shop-cert}]}
    - name: api
      port: 443
      protocol: HTTPS
      hostname: api.example
      tls: {certificateRefs: [{name: api-cert, namespace: certs}]}
    - name: old
      port: 443
      protocol: HTTPS
      hostname: old.example
      tls: {certificateRefs: [{name: old-cert, namespace: certs}]}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web}
spec:
  parentRefs: [{name: secure}]
  rules: [{backendRefs: [{name: web, port: 80}]}]
"#;
        std::fs::write(dir.path().join("mesh.yaml"), &yaml).unwrap();
        let control = Control::start(dir.path()).await;
        let _gw = gateway(&control, "gateway.networking.k8s.io/gateway-name=secure", offset, &[]);
        let addr = format!("127.0.0.1:{}", 443 + offset);
        eventually(30, "the HTTPS listener", || {
            let a = addr.clone();
            async move { up_at(&a).await }
        })
        .await;
        let r =
            https::https_get(&addr, "shop.example", &pki.server_ca, None).await.expect("shop's certificate, checked");
        assert_eq!(r.served_by(), "web");
        // Its ReferenceGrant lets the gateway read api-cert of `certs`...
        let r = https::https_get(&addr, "api.example", &pki.server_ca, None).await.expect("the granted certificate");
        assert_eq!(r.served_by(), "web");
        // ... and no other Secret there: that listener is not served.
        assert!(https::https_get(&addr, "old.example", &pki.server_ca, None).await.is_err(), "old is not served");
        let config = get(&control.api, "/debug/config", &[("authorization", &control.admin())]).await.json();
        let warnings = config["warnings"].to_string();
        assert!(
            warnings.contains("ResolvedRefs=False (RefNotPermitted): `certs/old-cert` is in another namespace"),
            "{warnings}"
        );
    });
}

/// A namespace selector Kubernetes would refuse is an error where it is.
#[test]
fn a_namespace_selector_kubernetes_would_refuse_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let gateway = r#"apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: edge}
spec:
  gatewayClassName: istio
  listeners:
    - name: http
      port: 80
      protocol: HTTP
      allowedRoutes:
        namespaces:
          from: Selector
          selector: {matchExpressions: [{key: team, operator: Equals, values: [shop]}]}
    - {name: other, port: 81, protocol: HTTP, allowedRoutes: {namespaces: {from: Selector}}}
"#;
    std::fs::write(dir.path().join("gateway.yaml"), gateway).unwrap();
    let out = std::process::Command::new(weft()).arg("validate").arg(dir.path()).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{text}");
    for said in [
        "gateway.yaml:13:53: error[WEFT0201]",
        "unknown operator `Equals`: use In, NotIn, Exists or DoesNotExist",
        "`from: Selector` needs a `selector`",
    ] {
        assert!(text.contains(said), "`{said}` in:\n{text}");
    }
}
