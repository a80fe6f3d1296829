//! Graceful drain: on SIGTERM a sidecar stops accepting, lets the requests
//! in flight finish, then exits.

mod common;
use common::*;
use std::time::{Duration, Instant};

#[test]
fn sigterm_lets_in_flight_requests_finish() {
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let (_b, port) = demo("slow", "v1").await;
        let yaml = backend_yaml("slow", port);
        std::fs::write(dir.path().join("mesh.yaml"), yaml).unwrap();
        let control = Control::start(dir.path()).await;
        let mut sc = Sidecar::start(&control.xds, "client").await;
        let out = sc.outbound.clone();
        let in_flight =
            tokio::spawn(
                async move { request(&out, "GET", "http://slow/?delay=800ms", &[], Default::default()).await },
            );
        // And one over HTTP/2, whose streams run in their connection's task:
        // the connection must keep them going while it closes.
        let stream = tokio::net::TcpStream::connect(&sc.outbound).await.unwrap();
        let (mut h2, conn) = hyper::client::conn::http2::handshake(
            hyper_util::rt::TokioExecutor::new(),
            hyper_util::rt::TokioIo::new(stream),
        )
        .await
        .unwrap();
        let h2_conn = tokio::spawn(conn);
        let req = http::Request::get("http://slow/?delay=800ms").body(http_body_util::Empty::<bytes::Bytes>::new());
        let h2_in_flight = tokio::spawn(h2.send_request(req.unwrap()));
        tokio::time::sleep(Duration::from_millis(200)).await;
        let start = Instant::now();
        std::process::Command::new("kill").args(["-TERM", &sc.proc.0.id().to_string()]).status().unwrap();
        let r = in_flight.await.unwrap();
        assert_eq!(r.status, 200, "the in-flight request completed: {}", String::from_utf8_lossy(&r.body));
        assert!(start.elapsed() >= Duration::from_millis(400), "it really was in flight");
        let r = h2_in_flight.await.unwrap().expect("the HTTP/2 request in flight is answered");
        assert_eq!(r.status(), 200);
        use http_body_util::BodyExt;
        let body = r.into_body().collect().await.expect("its whole body").to_bytes();
        assert!(body.starts_with(b"{"), "the demo's answer: {}", String::from_utf8_lossy(&body));
        // Then the proxy closes the connection (GOAWAY), which ends the client's side.
        tokio::time::timeout(Duration::from_secs(10), h2_conn)
            .await
            .expect("the HTTP/2 connection closes")
            .unwrap()
            .ok();
        // Once drained the proxy exits, and nothing listens any more.
        let deadline = Instant::now() + Duration::from_secs(10);
        while sc.proc.0.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "the sidecar did not exit after draining");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(!up_at(&sc.outbound).await, "no longer accepting");
    });
}

#[test]
fn the_control_plane_exits_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let mut control = Control::start(dir.path()).await;
        std::process::Command::new("kill").args(["-TERM", &control.proc.0.id().to_string()]).status().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let status = loop {
            if let Some(s) = control.proc.0.try_wait().unwrap() {
                break s;
            }
            assert!(Instant::now() < deadline, "the control plane did not exit on SIGTERM");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert!(status.success(), "a clean exit, not death by the signal: {status}");
        assert!(!up_at(&control.api).await, "no longer serving its API");
    });
}
