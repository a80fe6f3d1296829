//! VirtualService `corsPolicy` end to end through a real sidecar and demo
//! backend, with Envoy's CORS filter semantics: a preflight from an allowed
//! origin is answered at the proxy; an allowed actual request gets the
//! allow headers on the app's answer; anything else passes untouched,
//! except an unmatched preflight under `unmatchedPreflights: IGNORE`.

mod common;
use common::*;

fn mesh(port: u16) -> String {
    backend_yaml("echo", port)
        + r#"---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: echo}
spec:
  hosts: [echo]
  http:
    - match: [{uri: {prefix: /api}}]
      corsPolicy:
        allowOrigins:
          - exact: https://shop.example
          - prefix: https://dev.
          - regex: 'https://[a-z]+\.test'
        allowMethods: [GET, POST]
        allowHeaders: [x-token, content-type]
        exposeHeaders: [x-trace]
        maxAge: 24h
        allowCredentials: true
      route: [{destination: {host: echo}}]
    - match: [{uri: {prefix: /strict}}]
      corsPolicy:
        allowOrigin: [https://shop.example]
        unmatchedPreflights: IGNORE
      route: [{destination: {host: echo}}]
    - match: [{uri: {prefix: /any}}]
      corsPolicy:
        allowOrigins: [{exact: "*"}]
      directResponse: {status: 204}
    - route: [{destination: {host: echo}}]
"#
}

fn header<'a>(r: &'a Resp, name: &str) -> Option<&'a str> {
    r.headers.get(name).map(|v| v.to_str().unwrap())
}

#[test]
fn cors_preflights_are_answered_and_allowed_origins_get_the_headers() {
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let (_echo, port) = demo("echo", "v1").await;
        std::fs::write(dir.path().join("mesh.yaml"), mesh(port)).unwrap();
        let control = Control::start(dir.path()).await;
        let sc = Sidecar::start(&control.xds, "client").await;
        let out = sc.outbound.as_str();
        let preflight = |path: &'static str, origin: &'static str| async move {
            let h = [("host", "echo"), ("origin", origin), ("access-control-request-method", "POST")];
            request(out, "OPTIONS", path, &h, Default::default()).await
        };

        // A preflight from an allowed origin: answered here, never reaching the app.
        let r = preflight("/api/cart", "https://shop.example").await;
        assert_eq!((r.status, r.body.len()), (200, 0), "{:?}", r.headers);
        assert_eq!(header(&r, "access-control-allow-origin"), Some("https://shop.example"));
        assert_eq!(header(&r, "access-control-allow-methods"), Some("GET,POST"));
        assert_eq!(header(&r, "access-control-allow-headers"), Some("x-token,content-type"));
        assert_eq!(header(&r, "access-control-max-age"), Some("86400"));
        assert_eq!(header(&r, "access-control-allow-credentials"), Some("true"));
        assert_eq!(header(&r, "access-control-expose-headers"), None, "exposed on actual answers only");

        // An actual request from an origin allowed by prefix, then by regex.
        for origin in ["https://dev.shop.example", "https://staging.test"] {
            let r = get(out, "/api/cart", &[("host", "echo"), ("origin", origin)]).await;
            assert_eq!(r.json()["path"], "/api/cart", "the app answered");
            assert_eq!(header(&r, "access-control-allow-origin"), Some(origin));
            assert_eq!(header(&r, "access-control-allow-credentials"), Some("true"));
            assert_eq!(header(&r, "access-control-expose-headers"), Some("x-trace"));
        }

        // An origin not allowed: the request passes untouched, no allow
        // headers; its preflight goes on to the app (`FORWARD`, the default).
        let r = get(out, "/api/cart", &[("host", "echo"), ("origin", "https://evil.example")]).await;
        assert_eq!((r.status, header(&r, "access-control-allow-origin")), (200, None));
        let r = preflight("/api/cart", "https://evil.example").await;
        assert_eq!(r.json()["method"], "OPTIONS", "forwarded to the app");
        assert_eq!(header(&r, "access-control-allow-origin"), None);
        // The regex matches whole origins only.
        let r = get(out, "/api", &[("host", "echo"), ("origin", "https://a.test.evil")]).await;
        assert_eq!(header(&r, "access-control-allow-origin"), None);

        // `IGNORE`: the proxy answers an unmatched preflight itself, bare.
        let r = preflight("/strict", "https://evil.example").await;
        assert_eq!((r.status, r.body.len(), header(&r, "access-control-allow-origin")), (200, 0, None));
        let r = preflight("/strict", "https://shop.example").await;
        assert_eq!(header(&r, "access-control-allow-origin"), Some("https://shop.example"), "deprecated allowOrigin");
        assert_eq!(header(&r, "access-control-allow-credentials"), None);

        // `exact: "*"` allows every origin, on a direct response too.
        let r = get(out, "/any", &[("host", "echo"), ("origin", "https://anyone.example")]).await;
        assert_eq!((r.status, header(&r, "access-control-allow-origin")), (204, Some("https://anyone.example")));

        // No Origin, or a route without a policy: not CORS at all.
        let r = get(out, "/api", &[("host", "echo")]).await;
        assert_eq!(header(&r, "access-control-allow-origin"), None);
        let r = preflight("/other", "https://shop.example").await;
        assert_eq!(r.json()["method"], "OPTIONS", "no policy, so the app answers");
    });
}
