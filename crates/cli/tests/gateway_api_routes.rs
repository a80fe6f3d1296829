//! The Gateway API's other routes: TLSRoutes and a TCPRoute through a real
//! gateway, with the same checks Istio's `tls`/`tcp` rules get
//! (`common::l4::check`); a TCPRoute and a GRPCRoute on a Service (GAMMA)
//! through a sidecar.

mod common;
use common::*;

const ROUTES: &str = r#"apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: edge}
spec:
  gatewayClassName: istio
  listeners:
    - {name: tls, port: 443, protocol: TLS, hostname: "*.example.com", tls: {mode: Passthrough}}
    - name: tcp
      port: TCP_PORT
      protocol: TCP
      allowedRoutes: {kinds: [{group: gateway.networking.k8s.io, kind: TCPRoute}]}
---
apiVersion: gateway.networking.k8s.io/v1alpha2
kind: TLSRoute
metadata: {name: pay}
spec:
  parentRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: edge, namespace: default, sectionName: tls, port: 443}]
  hostnames: [pay.example.com]
  rules: [{backendRefs: [{group: "", kind: Service, name: pay, namespace: default, port: 443}]}]
---
apiVersion: gateway.networking.k8s.io/v1alpha2
kind: TLSRoute
metadata: {name: shop}
spec:
  parentRefs: [{name: edge}]
  hostnames: ["*.example.com"]
  rules: [{backendRefs: [{name: shop, port: 443, weight: 1}, {name: pay, port: 443, weight: 0}]}]
---
apiVersion: gateway.networking.k8s.io/v1alpha2
kind: TCPRoute
metadata: {name: db}
spec:
  parentRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: edge, namespace: default, sectionName: tcp}]
  rules:
    - name: all
      backendRefs:
        - {group: "", kind: Service, name: db, namespace: default, port: 5432, weight: 1}
        - {name: shop, port: 443, weight: 0}
---
apiVersion: gateway.networking.k8s.io/v1alpha2
kind: TCPRoute
metadata: {name: misplaced}
spec:
  parentRefs: [{name: edge, sectionName: tls}]
  rules: [{backendRefs: [{name: db, port: 5432}]}]
"#;

#[test]
fn tls_and_tcp_routes_pass_connections_through_a_gateway() {
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let (offset, tcp_port) = l4::ports();
        let (pay, shop, db) = (l4::backend("pay").await, l4::backend("shop").await, l4::backend("db").await);
        let yaml = l4::service("pay", "tls", 443, pay)
            + &l4::service("shop", "tls", 443, shop)
            + &l4::service("db", "tcp", 5432, db)
            + &ROUTES.replace("TCP_PORT", &tcp_port.to_string());
        std::fs::write(dir.path().join("mesh.yaml"), yaml).unwrap();
        let control = Control::start(dir.path()).await;
        let _gw = gateway(&control, "gateway.networking.k8s.io/gateway-name=edge", offset, &[]);
        let (tls, tcp) = (format!("127.0.0.1:{}", 443 + offset), format!("127.0.0.1:{}", tcp_port + offset));
        let t = tcp.clone();
        eventually(20, "the gateway's TCP listener", || {
            let t = t.clone();
            async move { up_at(&t).await }
        })
        .await;
        l4::check(&tls, &tcp).await;
        let config = get(&control.api, "/debug/config", &[("authorization", &control.admin())]).await.json();
        let warnings = config["warnings"].to_string();
        let said =
            "Accepted=False (NotAllowedByListeners): the listeners of Gateway `default/edge` do not allow TCPRoutes";
        assert!(warnings.contains(said), "{warnings}");
    });
}

/// GAMMA for TCP: a TCPRoute on a Service sends the mesh's connections to
/// it elsewhere.
#[test]
fn a_tcp_route_on_a_service_moves_its_connections() {
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let (old, new) = (l4::backend("old").await, l4::backend("new").await);
        let (db, next) = (free_port(), free_port());
        let yaml = l4::service("db", "tcp", db, old)
            + &l4::service("db-next", "tcp", next, new)
            + &format!(
                r#"apiVersion: gateway.networking.k8s.io/v1alpha2
kind: TCPRoute
metadata: {{name: db}}
spec:
  parentRefs: [{{group: "", kind: Service, name: db, port: {db}}}]
  rules: [{{backendRefs: [{{name: db-next, port: {next}}}]}}]
"#
            );
        std::fs::write(dir.path().join("mesh.yaml"), yaml).unwrap();
        let control = Control::start(dir.path()).await;
        let _sc = Sidecar::start(&control.xds, "client").await;
        let addr = format!("127.0.0.1:{db}");
        let a = addr.clone();
        eventually(20, "the sidecar's listener for db", || {
            let a = a.clone();
            async move { up_at(&a).await }
        })
        .await;
        assert_eq!(l4::exchange(&addr, b"ping").await, "new tls=false", "db's connections go to db-next");
    });
}

async fn hello(
    ch: tonic::transport::Channel,
    canary: bool,
) -> Result<tonic::Response<weft_demo::grpc::HelloReply>, tonic::Status> {
    use weft_demo::grpc::{HELLO_PATH, HelloReply, HelloRequest};
    let mut client = tonic::client::Grpc::new(ch);
    client.ready().await.unwrap();
    let mut request = tonic::Request::new(HelloRequest { name: "n".into() });
    if canary {
        request.metadata_mut().insert("x-canary", "yes".parse().unwrap());
    }
    let codec = tonic_prost::ProstCodec::<HelloRequest, HelloReply>::default();
    client.unary(request, http::uri::PathAndQuery::from_static(HELLO_PATH), codec).await
}

/// A GRPCRoute on a Service: the exact method with a header wins over a
/// service matched by a regular expression; a method no rule matches goes
/// to the last rule's backend.
#[test]
fn a_grpc_route_routes_by_method_and_header() {
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let ((_a, a), (_b, b)) = (demo("greeter", "v1").await, demo("canary", "v1").await);
        let (g, c) = (free_port(), free_port());
        let yaml = l4::service("greeter", "grpc", g, a)
            + &l4::service("canary", "grpc", c, b)
            + &format!(
                r#"apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {{name: greeter}}
spec:
  parentRefs: [{{group: "", kind: Service, name: greeter, port: {g}}}]
  rules:
    - matches:
        - method: {{service: weft.demo.v1.Demo, method: Hello}}
          headers: [{{name: x-canary, value: "yes"}}]
      backendRefs: [{{name: canary, port: {c}}}]
    - matches: [{{method: {{type: RegularExpression, service: 'weft\.demo\..*'}}}}]
      backendRefs: [{{name: greeter, port: {g}}}]
    - matches: [{{method: {{method: Other}}}}]
      backendRefs: [{{name: canary, port: {c}}}]
"#
            );
        std::fs::write(dir.path().join("mesh.yaml"), yaml).unwrap();
        let control = Control::start(dir.path()).await;
        let sc = Sidecar::start(&control.xds, "client").await;
        let ch = grpc_channel(&format!("greeter:{g}"), sc.outbound.clone()).await;
        for _ in 0..5 {
            assert_eq!(hello(ch.clone(), false).await.expect("a gRPC call").into_inner().service, "greeter");
            assert_eq!(hello(ch.clone(), true).await.expect("a gRPC call").into_inner().service, "canary");
        }
    });
}

/// A GRPCRoute on a Gateway of another namespace, by listener
/// (`sectionName`) and hostname: its header modifiers reach the app and the
/// client, its mirrors get a copy of each call or about half (by percent, by
/// fraction), its backends share calls by weight, one with a filter of its
/// own; another host gets no route.
#[test]
fn a_grpc_route_on_a_gateway_filters_mirrors_and_splits() {
    let dir = tempfile::tempdir().unwrap();
    let rt = rt();
    let ((_a, a), (_b, b), (_m, m), (_n, half)) = rt.block_on(async {
        (demo("greeter", "v1").await, demo("canary", "v1").await, demo("copy", "v1").await, demo("half", "v1").await)
    });
    let (g, c, p, q) = (free_port(), free_port(), free_port(), free_port());
    let yaml = l4::service("greeter", "grpc", g, a)
        + &l4::service("canary", "grpc", c, b)
        + &l4::service("copy", "grpc", p, m)
        + &l4::service("half", "grpc", q, half)
        + &format!(
            r#"apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {{name: weft}}
spec: {{controllerName: weft.dev/gateway-controller}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: edge, namespace: infra}}
spec:
  gatewayClassName: weft
  listeners:
    - {{name: grpc, port: 80, protocol: HTTP, hostname: "*.example.com", allowedRoutes: {{namespaces: {{from: All}}}}}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {{name: greeter}}
spec:
  parentRefs: [{{group: gateway.networking.k8s.io, kind: Gateway, name: edge, namespace: infra, sectionName: grpc}}]
  hostnames: [grpc.example.com]
  rules:
    - filters:
        - type: RequestHeaderModifier
          requestHeaderModifier: {{set: [{{name: x-set, value: forced}}], add: [{{name: x-added, value: "yes"}}], remove: [x-secret]}}
        - type: ResponseHeaderModifier
          responseHeaderModifier: {{set: [{{name: x-resp, value: "1"}}]}}
        - type: RequestMirror
          requestMirror: {{backendRef: {{name: copy, port: {p}}}, percent: 100}}
        - type: RequestMirror
          requestMirror: {{backendRef: {{name: half, port: {q}}}, fraction: {{numerator: 1, denominator: 2}}}}
      backendRefs:
        - {{group: "", kind: Service, name: greeter, namespace: default, port: {g}, weight: 3}}
        - name: canary
          port: {c}
          weight: 1
          filters: [{{type: ResponseHeaderModifier, responseHeaderModifier: {{add: [{{name: x-backend, value: canary}}]}}}}]
"#
        );
    std::fs::write(dir.path().join("mesh.yaml"), yaml).unwrap();
    let mut up = Up::start(dir.path());
    rt.block_on(async {
        let gw = format!("127.0.0.1:{}", up.gateway_port);
        let call = |authority: &'static str| {
            let gw = gw.clone();
            async move {
                use weft_demo::grpc::{HELLO_PATH, HelloReply, HelloRequest};
                let mut client = tonic::client::Grpc::new(grpc_channel(authority, gw).await);
                client.ready().await.unwrap();
                let mut request = tonic::Request::new(HelloRequest { name: "n".into() });
                request.metadata_mut().insert("x-secret", "s".parse().unwrap());
                request.metadata_mut().insert("x-set", "mine".parse().unwrap());
                let codec = tonic_prost::ProstCodec::<HelloRequest, HelloReply>::default();
                client.unary(request, http::uri::PathAndQuery::from_static(HELLO_PATH), codec).await
            }
        };
        let mut served = std::collections::HashMap::new();
        let n = 40;
        for _ in 0..n {
            let r = call("grpc.example.com").await.expect("a call through the gateway");
            let md = r.metadata().clone();
            let got = |k: &str| md.get(k).map(|v| v.to_str().unwrap().to_owned());
            assert_eq!(got("echo-x-set").as_deref(), Some("forced"), "{md:?}");
            assert_eq!(got("echo-x-added").as_deref(), Some("yes"), "{md:?}");
            assert_eq!(got("echo-x-secret"), None, "removed before the app: {md:?}");
            assert_eq!(got("x-resp").as_deref(), Some("1"), "{md:?}");
            let service = r.into_inner().service;
            let tagged = if service == "canary" { Some("canary") } else { None };
            assert_eq!(got("x-backend").as_deref(), tagged, "the canary backend's own filter: {md:?}");
            *served.entry(service).or_insert(0) += 1;
        }
        let (greeter, canary) =
            (served.get("greeter").copied().unwrap_or(0), served.get("canary").copied().unwrap_or(0));
        assert_eq!(greeter + canary, n, "{served:?}");
        assert!(greeter > canary && canary > 0, "3:1 by weight: {served:?}");
        let copies = |port: u16| async move {
            get(&format!("127.0.0.1:{port}"), "/admin/stats", &[]).await.json()["requests"].as_u64().unwrap()
        };
        eventually(10, "a copy of every call at the mirror", || async move { copies(m).await == n as u64 }).await;
        // Binomial(40, 1/2): 5..=35 is beyond 4.7 sd.
        eventually(10, "about half the calls at the mirror at 1/2", || async move { copies(half).await >= 5 }).await;
        let halves = copies(half).await;
        assert!(halves <= 35, "a mirror at 1/2 gets about half: {halves} of {n}");
        let err = call("other.example.com").await.expect_err("no route for another host");
        assert_eq!(err.code(), tonic::Code::Unimplemented, "{err:?}");
    });
    up.stop();
}
