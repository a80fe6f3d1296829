//! Istio's `Sidecar` resource through real sidecars: a sidecar gets only
//! the services its Sidecar's egress hosts allow (the one selecting its
//! labels, else its namespace's, else the root namespace's), and a host it
//! may not reach gets 404 like any host outside the registry.

mod common;
use common::*;

const SCOPES: &str = r#"---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default}
spec:
  egress:
    - hosts: ["./a.default.svc.cluster.local"]
  outboundTrafficPolicy: {mode: REGISTRY_ONLY}
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: special}
spec:
  workloadSelector: {labels: {app: special}}
  egress:
    - hosts: ["*/*"]
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: istio-system}
spec:
  egress:
    - hosts: ["*/b.default.svc.cluster.local"]
"#;

async fn status(sc: &Sidecar, host: &str) -> u16 {
    request(&sc.outbound, "GET", &format!("http://{host}/"), &[], Default::default()).await.status
}

#[test]
fn a_sidecar_resource_scopes_what_each_sidecar_reaches() {
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let (_a, a) = demo("a", "v1").await;
        let (_b, b) = demo("b", "v1").await;
        let yaml = backend_yaml("a", a) + "---\n" + &backend_yaml("b", b) + SCOPES;
        let diags = weft_api::validate(&weft_api::parse_str("mesh.yaml", &yaml).resources);
        assert!(diags.is_empty(), "{diags:#?}");
        std::fs::write(dir.path().join("mesh.yaml"), yaml).unwrap();
        let control = Control::start(dir.path()).await;

        // The namespace's Sidecar: `a` only.
        let plain = Sidecar::start(&control.xds, "plain").await;
        assert_eq!(status(&plain, "a").await, 200);
        assert_eq!(status(&plain, "b").await, 404, "b is outside this sidecar's egress hosts");
        let clusters = plain.config_dump().await["clusters"].to_string();
        assert!(clusters.contains("a.default.svc") && !clusters.contains("b.default.svc"), "{clusters}");

        // The Sidecar selecting its labels: everything.
        let special = Sidecar::start_with(&control.xds, "special", &["--labels", "app=special"]).await;
        assert_eq!((status(&special, "a").await, status(&special, "b").await), (200, 200));

        // Another namespace: the root namespace's Sidecar, `b` only.
        let other = Sidecar::start_with(&control.xds, "other", &["--namespace", "other"]).await;
        assert_eq!(status(&other, "b.default.svc.cluster.local").await, 200);
        assert_eq!(status(&other, "a.default.svc.cluster.local").await, 404);
    });
}
