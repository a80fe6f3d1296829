//! Proxyless gRPC: grpcio's own xDS client (Python, no weft code in it,
//! `tests/grpc_xds/client.py`) dials `xds:///hello.default.svc.cluster.local:7070`
//! against `weft control` and balances across demo gRPC servers by weft's
//! listeners, route tables, clusters and endpoints: a weighted split, a
//! route by header, an injected fault, a ring hash, and an instance
//! removed at run time.

mod common;
use common::*;
use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

fn mesh(v1: &[u16], v2: u16) -> String {
    let mut y = String::from(
        r#"apiVersion: v1
kind: Service
metadata: {name: hello}
spec:
  selector: {app: hello}
  ports: [{name: grpc, port: 7070}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: hello}
spec:
  host: hello
  subsets:
    - name: v1
      labels: {version: v1}
      trafficPolicy: {loadBalancer: {consistentHash: {httpHeaderName: x-user}}}
    - {name: v2, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: hello}
spec:
  hosts: [hello]
  http:
    - match: [{headers: {x-pin: {exact: v2}}}]
      route: [{destination: {host: hello, subset: v2}}]
    - match: [{headers: {x-fault: {exact: abort}}}]
      fault: {abort: {grpcStatus: RESOURCE_EXHAUSTED, percentage: {value: 100}}}
      route: [{destination: {host: hello, subset: v2}}]
    - match: [{headers: {x-user: {}}}]
      route: [{destination: {host: hello, subset: v1}}]
    - route:
        - {destination: {host: hello, subset: v1}, weight: 80}
        - {destination: {host: hello, subset: v2}, weight: 20}
"#,
    );
    let entry = |v: &str, port: u16| {
        format!(
            "---\napiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {{name: hello-{port}}}\nspec: {{address: 127.0.0.1, ports: {{grpc: {port}}}, labels: {{app: hello, version: {v}}}}}\n"
        )
    };
    for p in v1 {
        y += &entry("v1", *p);
    }
    y + &entry("v2", v2)
}

/// The Python client, one channel for the whole test.
struct Client {
    child: std::process::Child,
    out: BufReader<std::process::ChildStdout>,
}

impl Client {
    fn start(bootstrap: &std::path::Path, target: &str) -> Client {
        let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/grpc_xds/client.py");
        let mut child = Command::new("python3")
            .arg(script)
            .arg(target)
            .env("GRPC_XDS_BOOTSTRAP", bootstrap)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 with grpcio (scripts/setup installs it)");
        let out = BufReader::new(child.stdout.take().unwrap());
        Client { child, out }
    }

    /// `n` calls with `metadata`: counts by version, instance and error.
    fn calls(&mut self, n: u32, metadata: &[(&str, &str)]) -> Value {
        let cmd = serde_json::json!({"n": n, "metadata": metadata});
        writeln!(self.child.stdin.as_mut().unwrap(), "{cmd}").unwrap();
        let mut line = String::new();
        self.out.read_line(&mut line).unwrap();
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("client said {line:?}: {e}"))
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn count(v: &Value, key: &str) -> u64 {
    v.get(key).and_then(Value::as_u64).unwrap_or(0)
}

#[test]
fn grpc_clients_with_xds_balance_split_and_follow_removals() {
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let (_a, a) = demo("hello", "v1").await;
        let (_b, b) = demo("hello", "v1").await;
        let (_c, c) = demo("hello", "v2").await;
        std::fs::write(dir.path().join("mesh.yaml"), mesh(&[a, b], c)).unwrap();
        let control = Control::start(dir.path()).await;
        let client_dir = tempfile::tempdir().unwrap();
        let bootstrap = client_dir.path().join("bootstrap.json");
        let boot = serde_json::json!({
            "xds_servers": [{"server_uri": control.xds, "channel_creds": [{"type": "insecure"}], "server_features": ["xds_v3"]}],
            "node": {"id": "sidecar~127.0.0.1~grpc-client.default~default.svc.cluster.local",
                     "metadata": {"GENERATOR": "grpc", "NAMESPACE": "default"}}
        });
        std::fs::write(&bootstrap, boot.to_string()).unwrap();
        let mut client = Client::start(&bootstrap, "xds:///hello.default.svc.cluster.local:7070");

        // 80/20 by weight; binomial(500, 0.2): sd ≈ 9, so 60..=140 is beyond 4 sd.
        let r = client.calls(500, &[]);
        println!("split: {r}");
        assert!(r["errors"].as_object().unwrap().is_empty(), "{r}");
        let v2 = count(&r["versions"], "v2");
        assert!((60..=140).contains(&v2), "v2 got {v2} of 500: {r}");
        // Both v1 instances take part (round robin within the subset).
        for p in [a, b] {
            assert!(count(&r["instances"], &format!("hello-{p}")) > 100, "instance {p}: {r}");
        }

        // A route by header.
        let r = client.calls(50, &[("x-pin", "v2")]);
        assert_eq!(count(&r["versions"], "v2"), 50, "{r}");

        // Fault injection, as gRPC's fault filter reads weft's config.
        let r = client.calls(10, &[("x-fault", "abort")]);
        assert_eq!(r["errors"].as_object().unwrap().keys().collect::<Vec<_>>().len(), 1, "{r}");
        assert!(r["errors"].as_object().unwrap().keys().all(|k| k.starts_with("RESOURCE_EXHAUSTED")), "{r}");
        // A ring hash on `x-user`: one user sticks to one instance; users spread.
        let mut seen = std::collections::BTreeSet::new();
        for user in 0..24 {
            let user = format!("user-{user}");
            let r = client.calls(10, &[("x-user", &user)]);
            let instances = r["instances"].as_object().unwrap();
            assert_eq!(instances.len(), 1, "{user} moved between instances: {r}");
            seen.extend(instances.keys().cloned());
        }
        // 24 users on one of two instances by chance: 2^-23.
        assert_eq!(seen.len(), 2, "every user hashed to one instance: {seen:?}");

        // An instance removed at run time stops getting calls.
        std::fs::write(dir.path().join("mesh.yaml"), mesh(&[a], c)).unwrap();
        let gone = format!("hello-{b}");
        let mut last = Value::Null;
        for _ in 0..50 {
            last = client.calls(100, &[]);
            if count(&last["instances"], &gone) == 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert_eq!(count(&last["instances"], &gone), 0, "the removed instance still gets calls: {last}");
        assert!(last["errors"].as_object().unwrap().is_empty(), "{last}");
        assert!(count(&last["instances"], &format!("hello-{a}")) > 50, "{last}");

        // The client ACKed every type.
        let proxies = get(&control.api, "/debug/proxies", &[("authorization", &control.admin())]).await.json();
        let me = proxies.as_array().unwrap().iter().find(|p| p["id"].as_str().unwrap().contains("grpc-client")).unwrap().clone();
        for t in ["Listener", "RouteConfiguration", "Cluster", "ClusterLoadAssignment"] {
            assert!(me["acked"][t].is_string(), "gRPC did not ACK {t}: {me}");
        }
        assert!(me["last_nack"].is_null(), "gRPC NACKed: {me}");
    });
}
