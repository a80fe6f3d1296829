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
    (svc_port, Control::start(dir).await)
}

#[test]
fn tcp_service_port_is_spliced_to_an_instance() {
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let (svc_port, control) = echo_mesh(dir.path()).await;
        let sc = Sidecar::start(&control.xds, "client").await;
        let dump = sc.config_dump().await;
        assert!(dump["listeners"].to_string().contains(&format!("127.0.0.1:{svc_port}")), "tcp listener: {dump}");
        for i in 0..20 {
            let mut s = tokio::net::TcpStream::connect(("127.0.0.1", svc_port)).await.unwrap();
            let msg = format!("hello {i} through the mesh\n");
            s.write_all(msg.as_bytes()).await.unwrap();
            s.shutdown().await.unwrap();
            let mut back = String::new();
            s.read_to_string(&mut back).await.unwrap();
            assert_eq!(back, msg);
        }
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
