//! Plain TCP for tcp ports: a sidecar listens on the service port (on its
//! listen IP) and splices bytes to an instance, here a TCP echo server.

mod common;
use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn echo_server() -> u16 {
    tcp_server(|mut s| async move {
        let (mut r, mut w) = s.split();
        let _ = tokio::io::copy(&mut r, &mut w).await;
    })
    .await
}

/// A control plane serving `echo-tcp`, a tcp service whose one instance is
/// an echo server; the service's port.
async fn echo_mesh(dir: &std::path::Path) -> (u16, Control) {
    let echo = echo_server().await;
    let svc_port = free_port();
    let yaml = format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: echo-tcp}}\nspec:\n  selector: {{app: echo-tcp}}\n  ports: [{{name: tcp-echo, port: {svc_port}}}]\n---\napiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {{name: e}}\nspec: {{address: 127.0.0.1, ports: {{tcp-echo: {echo}}}, labels: {{app: echo-tcp}}}}\n"
    );
    std::fs::write(dir.join("mesh.yaml"), yaml).unwrap();
    (svc_port, Control::start_with(dir, &["--stats-interval", "0.2"]).await)
}

#[test]
fn tcp_service_port_is_spliced_to_an_instance() {
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let (svc_port, control) = echo_mesh(dir.path()).await;
        let sc = Sidecar::start(&control.xds, "client").await;
        let dump = sc.config_dump().await;
        assert!(dump["listeners"].to_string().contains(&format!("127.0.0.1:{svc_port}")), "tcp listener: {dump}");
        let mut sent = 0;
        for i in 0..20 {
            let mut s = tokio::net::TcpStream::connect(("127.0.0.1", svc_port)).await.unwrap();
            let msg = format!("hello {i} through the mesh\n");
            s.write_all(msg.as_bytes()).await.unwrap();
            s.shutdown().await.unwrap();
            let mut back = String::new();
            s.read_to_string(&mut back).await.unwrap();
            assert_eq!(back, msg);
            sent += msg.len() as u64;
        }
        // Istio's TCP metrics, by the source: counted as each splice ends.
        let value = |text: &str, family: &str| -> Option<u64> {
            let line = text.lines().find(|l| {
                l.starts_with(&format!("{family}{{"))
                    && l.contains("destination_service=\"echo-tcp.default.svc.cluster.local\"")
                    && l.contains("source_workload=\"client\"")
                    && l.contains("request_protocol=\"tcp\"")
                    && l.contains("destination_canonical_service=\"echo-tcp\"")
                    && l.contains("source_cluster=\"Kubernetes\"")
            })?;
            line.rsplit(' ').next()?.parse().ok()
        };
        let admin = sc.admin.clone();
        eventually(10, "20 TCP connections closed in the metrics", || {
            let admin = admin.clone();
            async move {
                let text = String::from_utf8(get(&admin, "/stats/prometheus", &[]).await.body.to_vec()).unwrap();
                value(&text, "istio_tcp_connections_closed_total") == Some(20)
            }
        })
        .await;
        let text = String::from_utf8(get(&sc.admin, "/stats/prometheus", &[]).await.body.to_vec()).unwrap();
        assert_eq!(value(&text, "istio_tcp_connections_opened_total"), Some(20), "{text}");
        assert_eq!(value(&text, "istio_tcp_received_bytes_total"), Some(sent));
        assert_eq!(value(&text, "istio_tcp_sent_bytes_total"), Some(sent), "the echo sends it all back");
        // `weft stat`'s TCP column: the control plane reads the source's counts.
        let (api, admin) = (control.api.clone(), control.admin());
        let auth = admin.as_str();
        eventually(20, "20 connections on the edge in the control plane's window", || {
            let api = api.clone();
            async move {
                let v = get(&api, "/debug/stats?by=edge&window=60", &[("authorization", auth)]).await.json();
                v["rows"].as_array().unwrap().iter().any(|r| {
                    r["service"] == "echo-tcp.default.svc.cluster.local"
                        && r["source"] == "client.default"
                        && r["tcpConnections"] == 20
                })
            }
        })
        .await;
    });
}

#[test]
fn an_idle_tcp_connection_is_closed_after_the_idle_timeout() {
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let (svc_port, control) = echo_mesh(dir.path()).await;
        let _sc = Sidecar::start_with(&control.xds, "client", &["--idle-timeout-seconds", "1"]).await;
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", svc_port)).await.unwrap();
        // Bytes every 300 ms keep it open past the timeout.
        let mut buf = [0u8; 64];
        for i in 0..6 {
            let msg = format!("ping {i}\n");
            s.write_all(msg.as_bytes()).await.unwrap();
            let n = s.read(&mut buf).await.unwrap();
            assert_eq!(&buf[..n], msg.as_bytes(), "echoed while in use");
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        }
        // Then quiet: the proxy closes it.
        let start = std::time::Instant::now();
        let n = tokio::time::timeout(std::time::Duration::from_secs(10), s.read(&mut buf))
            .await
            .expect("an idle tcp connection is closed");
        assert_eq!(n.unwrap_or(0), 0, "closed, nothing more read");
        assert!(
            start.elapsed() >= std::time::Duration::from_millis(600),
            "not before its timeout: {:?}",
            start.elapsed()
        );
    });
}

/// A server that answers each connection with `tag` and closes.
async fn tagged(tag: &'static str) -> u16 {
    tcp_server(move |mut s| async move {
        let _ = s.write_all(tag.as_bytes()).await;
    })
    .await
}

/// A VirtualService's `tcp` routes: the service port's connections go where
/// its weighted route sends them (here all to `tcp-b`, none to its own).
#[test]
fn a_tcp_route_sends_connections_by_weight() {
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let (own, a, b) = (tagged("own").await, tagged("a").await, tagged("b").await);
        let svc_port = free_port();
        // Each service its own port: only `data` listens on `svc_port`.
        let entry = |name: &str, port: u16, svc_port: u16| {
            format!("---\napiVersion: v1\nkind: Service\nmetadata: {{name: {name}}}\nspec:\n  selector: {{app: {name}}}\n  ports: [{{name: tcp-data, port: {svc_port}}}]\n---\napiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {{name: {name}}}\nspec: {{address: 127.0.0.1, ports: {{tcp-data: {port}}}, labels: {{app: {name}}}}}\n")
        };
        let mut yaml = entry("data", own, svc_port) + &entry("tcp-a", a, free_port()) + &entry("tcp-b", b, free_port());
        yaml.push_str(&format!("---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: data}}\nspec:\n  hosts: [data]\n  tcp:\n    - match: [{{port: {svc_port}, sourceLabels: {{role: canary}}}}]\n      route: [{{destination: {{host: tcp-a}}}}]\n    - match: [{{port: {svc_port}, sourceNamespace: other}}]\n      route: [{{destination: {{host: tcp-a}}}}]\n    - match: [{{port: {svc_port}, gateways: [edge]}}]\n      route: [{{destination: {{host: tcp-a}}}}]\n    - match: [{{port: {svc_port}, sourceNamespace: default}}]\n      route:\n        - {{destination: {{host: tcp-a}}, weight: 0}}\n        - {{destination: {{host: tcp-b}}, weight: 100}}\n"));
        std::fs::write(dir.path().join("mesh.yaml"), yaml).unwrap();
        let control = Control::start(dir.path()).await;
        let _sc = Sidecar::start(&control.xds, "client").await;
        // A sidecar whose workload carries the labels a rule names takes it.
        let _canary = Sidecar::start_with(&control.xds, "canary", &["--labels", "role=canary", "--listen-ip", "127.0.0.2"]).await;
        let answer = |ip: &'static str| async move {
            let mut s = tokio::net::TcpStream::connect((ip, svc_port)).await.unwrap();
            let mut got = String::new();
            s.read_to_string(&mut got).await.unwrap();
            got
        };
        // Rules for other labels, callers of another namespace, or only for
        // a gateway, pass this sidecar by.
        for _ in 0..10 {
            assert_eq!(answer("127.0.0.1").await, "b", "the route's destination answered");
            assert_eq!(answer("127.0.0.2").await, "a", "the canary's rule by its labels");
        }
    });
}

/// A DestinationRule's `connectionPool.tcp.idleTimeout` closes a spliced
/// connection that moved no byte for that long (its tcp_proxy's idle
/// timeout); another service's connection, without one, stays open.
#[test]
fn a_tcp_connection_idle_past_its_timeout_is_closed() {
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        // Says hello, then holds the connection until the other side closes.
        let holder = || {
            tcp_server(|mut s| async move {
                let _ = s.write_all(b"hi").await;
                let mut b = [0u8; 16];
                while s.read(&mut b).await.is_ok_and(|n| n > 0) {}
            })
        };
        let (quiet, chatty) = (holder().await, holder().await);
        let (quiet_port, chatty_port) = (free_port(), free_port());
        let entry = |name: &str, port: u16, svc_port: u16| {
            format!("---\napiVersion: v1\nkind: Service\nmetadata: {{name: {name}}}\nspec:\n  selector: {{app: {name}}}\n  ports: [{{name: tcp-data, port: {svc_port}}}]\n---\napiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {{name: {name}}}\nspec: {{address: 127.0.0.1, ports: {{tcp-data: {port}}}, labels: {{app: {name}}}}}\n")
        };
        let yaml = entry("quiet", quiet, quiet_port)
            + &entry("chatty", chatty, chatty_port)
            + "---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: quiet}\nspec:\n  host: quiet\n  trafficPolicy: {connectionPool: {tcp: {idleTimeout: 300ms}}}\n";
        std::fs::write(dir.path().join("mesh.yaml"), yaml).unwrap();
        let control = Control::start(dir.path()).await;
        let _sc = Sidecar::start(&control.xds, "client").await;
        let open = |port: u16| async move {
            let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
            let mut hi = [0u8; 2];
            s.read_exact(&mut hi).await.unwrap();
            assert_eq!(&hi, b"hi");
            s
        };
        let (mut q, mut c) = (open(quiet_port).await, open(chatty_port).await);
        let mut b = [0u8; 8];
        let closed = tokio::time::timeout(std::time::Duration::from_secs(10), q.read(&mut b)).await;
        assert!(matches!(closed, Ok(Ok(0))), "the idle connection is closed: {closed:?}");
        let waiting = tokio::time::timeout(std::time::Duration::from_millis(20), c.read(&mut b)).await;
        assert!(waiting.is_err(), "the other is still open: {waiting:?}");
    });
}
