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
        tokio::time::sleep(Duration::from_millis(200)).await;
        let start = Instant::now();
        std::process::Command::new("kill").args(["-TERM", &sc.proc.0.id().to_string()]).status().unwrap();
        let r = in_flight.await.unwrap();
        assert_eq!(r.status, 200, "the in-flight request completed: {}", String::from_utf8_lossy(&r.body));
        assert!(start.elapsed() >= Duration::from_millis(400), "it really was in flight");
        // Once drained the proxy exits, and nothing listens any more.
        let deadline = Instant::now() + Duration::from_secs(10);
        while sc.proc.0.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "the sidecar did not exit after draining");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(!up_at(&sc.outbound).await, "no longer accepting");
    });
}
