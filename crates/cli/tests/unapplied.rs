//! Configuration weft accepts but cannot apply never breaks the traffic
//! around it: a rule whose delegate does not exist is left out (requests go
//! on to the next rule) and an entry with no address is left out of its
//! service, where a proxy would otherwise refuse the whole route table or
//! endpoint set. `weft validate` warns of both.

mod common;
use common::*;

#[test]
fn a_delegating_rule_and_an_entry_without_address_break_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let (_app, port) = demo("shop", "v1").await;
        let mut yaml = backend_yaml("shop", port);
        yaml.push_str(
            r#"---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: shop-far}
spec: {network: network-2, ports: {http: 9080}, labels: {app: shop}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: shop}
spec:
  hosts: [shop]
  http:
    - match: [{uri: {prefix: /team}}]
      delegate: {name: team-routes}
    - route: [{destination: {host: shop}}]
"#,
        );
        std::fs::write(dir.path().join("mesh.yaml"), yaml).unwrap();
        let control = Control::start(dir.path()).await;
        let sc = Sidecar::start(&control.xds, "client").await;
        for path in ["/", "/team/x", "/other"] {
            for _ in 0..5 {
                let r = request(&sc.outbound, "GET", &format!("http://shop{path}"), &[], Default::default()).await;
                assert_eq!((r.status, r.json()["service"].as_str()), (200, Some("shop")), "{path}: {}", r.instance());
            }
        }
        let dump = sc.config_dump().await;
        assert!(dump["lastNack"].is_null(), "the proxy refused config: {}", dump["lastNack"]);
    });
}
