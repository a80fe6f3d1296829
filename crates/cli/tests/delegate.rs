//! VirtualService delegation through a real sidecar: a root's rule hands
//! its requests to a delegate in another namespace, whose rules are merged
//! under the root's match and settings (Istio's rules). A delegate's rule
//! outside the root's match, and a rule whose delegate is missing, are
//! left out with a warning; requests they would match go on.

mod common;
use common::*;

const ROUTES: &str = r#"---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: shop}
spec:
  hosts: [shop]
  http:
    - match: [{uri: {prefix: /team}}]
      headers: {request: {set: {x-root: "1"}}}
      delegate: {name: team-routes, namespace: team}
    - match: [{uri: {prefix: /gone}}]
      delegate: {name: missing}
    - route: [{destination: {host: shop, subset: v1}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: team-routes, namespace: team}
spec:
  exportTo: [default]
  http:
    - match: [{uri: {prefix: /team/b}}]
      route: [{destination: {host: shop.default.svc.cluster.local, subset: v2}}]
    - match: [{uri: {prefix: /elsewhere}}]
      directResponse: {status: 418}
    - match: [{headers: {x-team: {exact: b}}}]
      route: [{destination: {host: shop.default.svc.cluster.local, subset: v2}}]
    - headers: {response: {set: {x-child: "1"}}}
      route: [{destination: {host: shop.default.svc.cluster.local, subset: v1}}]
"#;

#[test]
fn a_delegate_serves_the_roots_match_under_istios_merge_rules() {
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let (_v1, p1) = demo("shop", "v1").await;
        let (_v2, p2) = demo("shop", "v2").await;
        let yaml = two_versions_yaml("shop", p1, p2) + ROUTES;

        let loaded = weft_api::parse_str("mesh.yaml", &yaml);
        let diags = weft_api::validate(&loaded.resources);
        let warned: Vec<&str> = diags.iter().map(|d| d.path.as_str()).collect();
        assert_eq!(warned, ["spec.http[1].delegate", "spec.http[1].match"], "{diags:#?}");
        assert!(diags[0].message.contains("no VirtualService `missing`") && !diags[0].is_error(), "{}", diags[0]);
        assert!(
            diags[1].message.contains("left out")
                && diags[1].resource.as_deref() == Some("VirtualService/team/team-routes")
        );

        std::fs::write(dir.path().join("mesh.yaml"), yaml).unwrap();
        let control = Control::start(dir.path()).await;
        let sc = Sidecar::start(&control.xds, "client").await;
        let call = |path: &'static str, headers: &'static [(&'static str, &'static str)]| {
            let out = sc.outbound.clone();
            async move { request(&out, "GET", &format!("http://shop{path}"), headers, Default::default()).await }
        };
        // The delegate's prefix under the root's; the root's header op inherited.
        let j = call("/team/b/x", &[]).await.json();
        assert_eq!((j["version"].as_str(), j["headers"]["x-root"].as_str()), (Some("v2"), Some("1")), "{j}");
        // A header match, narrowed by the root's prefix.
        assert_eq!(call("/team/a", &[("x-team", "b")]).await.json()["version"], "v2");
        assert_eq!(call("/other", &[("x-team", "b")]).await.json()["version"], "v1", "outside /team");
        // A rule without match takes the root's; its own headers replace the root's.
        let r = call("/team/a", &[]).await;
        assert_eq!(r.headers.get("x-child").map(|v| v.to_str().unwrap()), Some("1"));
        let j = r.json();
        assert_eq!((j["version"].as_str(), j["headers"].get("x-root")), (Some("v1"), None), "{j}");
        // Left out: the delegate's rule outside /team, the missing delegate.
        for path in ["/elsewhere", "/gone"] {
            let r = call(path, &[]).await;
            assert_eq!((r.status, r.json()["version"].as_str()), (200, Some("v1")), "{path}");
        }
        let dump = sc.config_dump().await;
        assert!(dump["lastNack"].is_null(), "the proxy refused config: {}", dump["lastNack"]);
    });
}
