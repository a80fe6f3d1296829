//! Every way an instance can be known: Kubernetes Endpoints and
//! EndpointSlices (selectorless Services), ServiceEntry with static
//! addresses, with DNS names, and with a workloadSelector over WorkloadEntries;
//! and which of them count as inside the mesh.

mod common;
use common::*;

#[test]
fn endpoints_slices_and_service_entries_all_route() {
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let (_a, pa) = demo("from-endpoints", "v1").await;
        let (_b, pb) = demo("from-slice", "v1").await;
        let (_c, pc) = demo("from-static", "v1").await;
        let (_d, pd) = demo("from-dns", "v1").await;
        let (_e, pe) = demo("from-selector", "v1").await;
        let yaml = format!(
            r#"apiVersion: v1
kind: Service
metadata: {{name: legacy}}
spec:
  ports: [{{name: http, port: 80}}]
---
apiVersion: v1
kind: Endpoints
metadata: {{name: legacy}}
subsets:
  - addresses: [{{ip: 127.0.0.1}}]
    ports: [{{name: http, port: {pa}}}]
---
apiVersion: v1
kind: Service
metadata: {{name: sliced}}
spec:
  ports: [{{name: http, port: 80}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: sliced-abc
  labels: {{kubernetes.io/service-name: sliced}}
addressType: IPv4
ports: [{{name: http, port: {pb}}}]
endpoints:
  - addresses: [127.0.0.1]
    conditions: {{ready: true}}
  - addresses: [127.0.0.9]
    conditions: {{ready: false}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: static-api}}
spec:
  hosts: [api.static.internal]
  ports: [{{number: 80, name: http, protocol: HTTP}}]
  location: MESH_EXTERNAL
  resolution: STATIC
  endpoints: [{{address: 127.0.0.1, ports: {{http: {pc}}}}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: dns-api}}
spec:
  hosts: [api.dns.internal]
  ports: [{{number: 80, name: http, protocol: HTTP}}]
  resolution: DNS
  endpoints: [{{address: localhost, ports: {{http: {pd}}}}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: vm-api}}
spec:
  hosts: [vm.internal]
  ports: [{{number: 80, name: http, protocol: HTTP}}]
  location: MESH_INTERNAL
  resolution: STATIC
  workloadSelector: {{labels: {{app: vm}}}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: vm-1}}
spec: {{address: 127.0.0.1, ports: {{http: {pe}}}, labels: {{app: vm}}}}
"#
        );
        std::fs::write(dir.path().join("mesh.yaml"), yaml).unwrap();
        let control = Control::start(dir.path()).await;
        let sc = Sidecar::start(&control.xds, "client").await;
        for (host, want) in [
            ("legacy", "from-endpoints"),
            ("sliced.default.svc.cluster.local", "from-slice"),
            ("api.static.internal", "from-static"),
            ("api.dns.internal", "from-dns"),
            ("vm.internal", "from-selector"),
        ] {
            for _ in 0..5 {
                let r = request(&sc.outbound, "GET", &format!("http://{host}/"), &[], Default::default()).await;
                assert_eq!(r.status, 200, "{host}: {}", String::from_utf8_lossy(&r.body));
                assert_eq!(r.json()["service"], want, "{host}");
            }
        }
        // The not-ready slice endpoint is left out.
        let dump = sc.config_dump().await;
        let sliced = dump["clusters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "outbound|80||sliced.default.svc.cluster.local")
            .unwrap();
        assert_eq!(sliced["endpoints"].as_array().unwrap().len(), 1, "{sliced}");
    });
}

/// A caller's identity (`x-weft-source`) reaches only endpoints with a
/// sidecar: those labelled `security.istio.io/tlsMode: istio` (as sidecars
/// label the instances they register). An external service or a plain
/// WorkloadEntry never sees it.
#[test]
fn only_endpoints_in_the_mesh_learn_who_calls() {
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let (_a, inside) = demo("inside", "v1").await;
        let (_b, outside) = demo("outside", "v1").await;
        let (_c, external) = demo("external", "v1").await;
        let yaml = format!(
            r#"apiVersion: v1
kind: Service
metadata: {{name: inside}}
spec:
  selector: {{app: inside}}
  ports: [{{name: http, port: 80}}]
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: inside-1}}
spec:
  address: 127.0.0.1
  ports: {{http: {inside}}}
  labels: {{app: inside, security.istio.io/tlsMode: istio}}
---
{}---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: external}}
spec:
  hosts: [api.external.example]
  ports: [{{number: 80, name: http, protocol: HTTP}}]
  location: MESH_EXTERNAL
  resolution: STATIC
  endpoints: [{{address: 127.0.0.1, ports: {{http: {external}}}}}]
"#,
            backend_yaml("outside", outside)
        );
        std::fs::write(dir.path().join("mesh.yaml"), yaml).unwrap();
        let control = Control::start(dir.path()).await;
        let sc = Sidecar::start(&control.xds, "client").await;
        // `workload.namespace;canonical service;canonical revision;app;version`
        let ours = Some("client.default;client;latest;unknown;unknown");
        for (host, source) in [("inside", ours), ("outside", None), ("api.external.example", None)] {
            let r = request(&sc.outbound, "GET", &format!("http://{host}/"), &[], Default::default()).await;
            assert_eq!(r.status, 200, "{host}: {}", String::from_utf8_lossy(&r.body));
            assert_eq!(r.json()["headers"]["x-weft-source"].as_str(), source, "{host}: {}", r.json()["headers"]);
        }
        // The admin view says which endpoints are in the mesh.
        let dump = sc.config_dump().await;
        let mesh = |cluster: &str| {
            let c = dump["clusters"].as_array().unwrap().iter().find(|c| c["name"] == cluster).unwrap();
            c["endpoints"][0]["mesh"].as_bool().unwrap()
        };
        assert!(mesh("outbound|80||inside.default.svc.cluster.local"));
        assert!(!mesh("outbound|80||outside.default.svc.cluster.local"));
    });
}

/// A Service port's `targetPort` is where its instances listen (a
/// WorkloadEntry naming no ports), and `appProtocol` outranks the port's
/// name: `tcp-data` with `appProtocol: http` is routed by Host.
#[test]
fn a_service_ports_target_port_and_app_protocol_are_followed() {
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let (_app, port) = demo("data", "v1").await;
        let yaml = format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: data}}\nspec:\n  selector: {{app: data}}\n  ports: [{{name: tcp-data, port: 9090, targetPort: {port}, appProtocol: http}}]\n---\napiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {{name: data}}\nspec: {{address: 127.0.0.1, labels: {{app: data}}}}\n"
        );
        std::fs::write(dir.path().join("mesh.yaml"), yaml).unwrap();
        let control = Control::start(dir.path()).await;
        let sc = Sidecar::start(&control.xds, "client").await;
        for _ in 0..5 {
            let r = request(&sc.outbound, "GET", "http://data:9090/x", &[], Default::default()).await;
            assert_eq!((r.status, r.json()["path"].as_str()), (200, Some("/x")), "{}", r.instance());
        }
    });
}

/// A `type: ExternalName` Service is its DNS name, resolved by the proxy;
/// `sessionAffinity: ClientIP` keeps a caller on one instance (a hash of its
/// address), where the same instances without it take turns.
#[test]
fn external_name_services_resolve_and_client_ip_affinity_sticks() {
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let (_ext, ext) = demo("external", "v1").await;
        let (_a, a) = demo("pair", "a").await;
        let (_b, b) = demo("pair", "b").await;
        let entries = |app: &str| {
            [a, b]
                .iter()
                .map(|p| format!("---\napiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {{name: {app}-{p}}}\nspec: {{address: 127.0.0.1, ports: {{http: {p}}}, labels: {{app: {app}}}}}\n"))
                .collect::<String>()
        };
        let yaml = format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: ext}}\nspec:\n  type: ExternalName\n  externalName: localhost\n  ports: [{{name: http, port: {ext}}}]\n---\napiVersion: v1\nkind: Service\nmetadata: {{name: sticky}}\nspec:\n  selector: {{app: sticky}}\n  sessionAffinity: ClientIP\n  ports: [{{name: http, port: 80}}]\n{}---\napiVersion: v1\nkind: Service\nmetadata: {{name: spread}}\nspec:\n  selector: {{app: spread}}\n  ports: [{{name: http, port: 80}}]\n{}",
            entries("sticky"),
            entries("spread")
        );
        let diags = weft_api::validate(&weft_api::parse_str("mesh.yaml", &yaml).resources);
        assert!(diags.is_empty(), "{diags:#?}");
        std::fs::write(dir.path().join("mesh.yaml"), yaml).unwrap();
        let control = Control::start(dir.path()).await;
        let sc = Sidecar::start(&control.xds, "client").await;
        let r = request(&sc.outbound, "GET", "http://ext/", &[], Default::default()).await;
        assert_eq!((r.status, r.json()["service"].as_str()), (200, Some("external")), "{}", r.instance());
        for (host, want) in [("sticky", 1), ("spread", 2)] {
            let mut seen = std::collections::BTreeSet::new();
            for _ in 0..20 {
                let r = request(&sc.outbound, "GET", &format!("http://{host}/"), &[], Default::default()).await;
                seen.insert(r.json()["version"].as_str().unwrap().to_owned());
            }
            assert_eq!(seen.len(), want, "{host}: {seen:?}");
        }
    });
}

/// EndpointSlice conditions as Kubernetes' proxies read them: a not-ready
/// endpoint gets no traffic, unless no endpoint is ready and it is still
/// serving while it terminates (the last pods of a rollout).
#[test]
fn terminating_endpoints_serve_only_while_none_is_ready() {
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let (_old, old) = demo("draining", "old").await;
        let (_new, new) = demo("draining", "new").await;
        let slice = |ready_new: bool| {
            format!(
                "apiVersion: v1\nkind: Service\nmetadata: {{name: draining}}\nspec:\n  ports: [{{name: http, port: 80}}]\n---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {{name: draining-old, labels: {{kubernetes.io/service-name: draining}}}}\naddressType: IPv4\nports: [{{name: http, port: {old}}}]\nendpoints:\n  - addresses: [127.0.0.1]\n    conditions: {{ready: false, serving: true, terminating: true}}\n---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {{name: draining-new, labels: {{kubernetes.io/service-name: draining}}}}\naddressType: IPv4\nports: [{{name: http, port: {new}}}]\nendpoints:\n  - addresses: [127.0.0.1]\n    conditions: {{ready: {ready_new}}}\n"
            )
        };
        std::fs::write(dir.path().join("mesh.yaml"), slice(false)).unwrap();
        let control = Control::start(dir.path()).await;
        let sc = Sidecar::start(&control.xds, "client").await;
        let version = || async { request(&sc.outbound, "GET", "http://draining/", &[], Default::default()).await.json()["version"].clone() };
        for _ in 0..5 {
            assert_eq!(version().await, "old", "no endpoint is ready: the terminating one still serves");
        }
        // Once the new endpoint is ready, the terminating one gets nothing.
        std::fs::write(dir.path().join("mesh.yaml"), slice(true)).unwrap();
        eventually(10, "the ready endpoint to take the traffic", || async { version().await == "new" }).await;
        for _ in 0..5 {
            assert_eq!(version().await, "new");
        }
    });
}
