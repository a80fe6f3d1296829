//! How connections end: on SIGTERM a sidecar stops accepting, lets the
//! requests in flight and open tunnels finish, then exits (graceful drain); a connection
//! idle for its timeout is closed.

mod common;
use common::*;
use std::time::{Duration, Instant};

#[test]
fn sigterm_lets_in_flight_requests_finish() {
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let (_b, _control, mut sc) = slow_mesh(dir.path(), &[]).await;
        let out = sc.outbound.clone();
        let in_flight =
            tokio::spawn(
                async move { request(&out, "GET", "http://slow/?delay=800ms", &[], Default::default()).await },
            );
        // And one over HTTP/2, whose streams run in their connection's task:
        // the connection must keep them going while it closes.
        let (mut h2, h2_conn) = h2_handshake(&sc.outbound).await;
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

type H1Send = hyper::client::conn::http1::SendRequest<http_body_util::Empty<bytes::Bytes>>;

/// An HTTP/1.1 connection to `addr`: its sender, and its task, which ends
/// when the proxy closes the connection.
async fn h1_handshake(addr: &str) -> (H1Send, tokio::task::JoinHandle<()>) {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (send, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await.unwrap();
    (send, tokio::spawn(async move { conn.await.unwrap_or_default() }))
}

/// `GET path` from the `slow` service, origin-form.
/// A WebSocket open when the sidecar is told to stop keeps working until
/// it closes (within the drain time), then the sidecar exits: a short
/// session is not cut by a rollout.
#[test]
fn sigterm_lets_an_open_websocket_finish() {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let (_b, _control, mut sc) = slow_mesh(dir.path(), &[]).await;
        let stream = tokio::net::TcpStream::connect(&sc.outbound).await.unwrap();
        let (mut ws, _) = tokio_tungstenite::client_async("ws://slow/ws", stream).await.expect("upgraded");
        ws.send(Message::text("before")).await.unwrap();
        assert_eq!(ws.next().await.unwrap().unwrap().into_text().unwrap().as_str(), "slow: before");
        std::process::Command::new("kill").args(["-TERM", &sc.proc.0.id().to_string()]).status().unwrap();
        eventually(10, "the sidecar stops accepting", || {
            let out = sc.outbound.clone();
            async move { !up_at(&out).await }
        })
        .await;
        for i in 0..5 {
            ws.send(Message::text(format!("draining {i}"))).await.expect("the tunnel still carries");
            let back = ws.next().await.expect("an answer").expect("no reset");
            assert_eq!(back.into_text().unwrap().as_str(), format!("slow: draining {i}"));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        ws.close(None).await.unwrap();
        while ws.next().await.is_some_and(|m| m.is_ok()) {}
        drop(ws);
        // With the tunnel closed nothing holds the drain: the sidecar exits.
        let deadline = Instant::now() + Duration::from_secs(10);
        while sc.proc.0.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "the sidecar did not exit after its last tunnel closed");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
}

fn slow_get(path: &str) -> http::Request<http_body_util::Empty<bytes::Bytes>> {
    http::Request::get(path).header("host", "slow").body(http_body_util::Empty::new()).unwrap()
}

/// The `slow` demo service and a control plane serving it, and a client
/// sidecar started with `extra` arguments; the demo's process is kept
/// alive with them.
async fn slow_mesh(dir: &std::path::Path, extra: &[&str]) -> (Proc, Control, Sidecar) {
    let (backend, port) = demo("slow", "v1").await;
    std::fs::write(dir.join("mesh.yaml"), backend_yaml("slow", port)).unwrap();
    let control = Control::start(dir).await;
    let sc = Sidecar::start_with(&control.xds, "client", extra).await;
    (backend, control, sc)
}

/// Sends a request on an HTTP/1.1 connection of its own. Returns its status,
/// the connection's sender (dropping it would close the connection from our
/// side) and its task, which ends when the proxy closes the connection.
async fn h1_conn(addr: &str, path: &str) -> (u16, H1Send, tokio::task::JoinHandle<()>) {
    let (mut send, task) = h1_handshake(addr).await;
    let resp = send.send_request(slow_get(path)).await.expect("answered");
    let status = resp.status().as_u16();
    use http_body_util::BodyExt;
    resp.into_body().collect().await.expect("its whole body");
    (status, send, task)
}

#[test]
fn idle_connections_are_closed_after_the_idle_timeout() {
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let (_b, _control, sc) = slow_mesh(dir.path(), &["--idle-timeout-seconds", "1"]).await;
        let out = sc.outbound.clone();
        let timeouts = &sc.config_dump().await["downstreamTimeouts"];
        assert_eq!(
            (timeouts["idle"].as_f64(), timeouts["requestHead"].as_f64()),
            (Some(1.0), Some(60.0)),
            "{timeouts}"
        );
        let bound = Duration::from_secs(10);

        // A connection that never sends a byte.
        let start = Instant::now();
        let mut silent = tokio::net::TcpStream::connect(&out).await.unwrap();
        let mut buf = [0u8; 64];
        use tokio::io::AsyncReadExt;
        let n = tokio::time::timeout(bound, silent.read(&mut buf)).await.expect("a silent connection is closed");
        assert_eq!(n.unwrap_or(0), 0, "closed, not answered");
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(900), "not before its timeout: {took:?}");

        // A keep-alive connection after its request.
        let (status, _send, conn) = h1_conn(&out, "/").await;
        assert_eq!(status, 200);
        let start = Instant::now();
        tokio::time::timeout(bound, conn).await.expect("an idle keep-alive connection is closed").unwrap();
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(900), "not before its timeout: {took:?}");

        // A request that takes longer than the timeout is in flight, not idle.
        // Were it closed as idle, it would answer with `connection: close`
        // and refuse the next request.
        let (status, mut send, _conn) = h1_conn(&out, "/?delay=2500ms").await;
        assert_eq!(status, 200, "a slow request is answered");
        send.ready().await.expect("its connection is kept for the next request");
        let resp = send.send_request(slow_get("/")).await.expect("the next request is answered");
        assert_eq!(resp.status(), 200);

        // A connection used every 300 ms stays open past the timeout.
        let (mut send, conn) = h1_handshake(&out).await;
        for i in 0..8 {
            send.ready().await.unwrap_or_else(|e| panic!("a busy connection is kept for request {i}: {e}"));
            let resp = send
                .send_request(slow_get("/"))
                .await
                .unwrap_or_else(|e| panic!("request {i} on a busy connection: {e}"));
            use http_body_util::BodyExt;
            resp.into_body().collect().await.expect("its whole body");
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        assert!(!conn.is_finished(), "a connection in use is not closed");

        // HTTP/2: the idle connection ends with a GOAWAY, then closes.
        let (mut h2, conn) = h2_handshake(&out).await;
        let req = http::Request::get("http://slow/").body(http_body_util::Empty::<bytes::Bytes>::new());
        assert_eq!(h2.send_request(req.unwrap()).await.expect("answered").status(), 200);
        let start = Instant::now();
        tokio::time::timeout(bound, conn).await.expect("an idle HTTP/2 connection is closed").unwrap().ok();
        assert!(start.elapsed() >= Duration::from_millis(900), "not before its timeout");

        // HTTP/2 pings start no stream: a client that pings every 100 ms
        // (a gRPC keep-alive, say) and sends nothing else is idle too, as
        // Envoy counts it. Were pings activity, every tick would see one.
        let stream = tokio::net::TcpStream::connect(&out).await.unwrap();
        let (mut h2, conn) = hyper::client::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
            .timer(hyper_util::rt::TokioTimer::new())
            .keep_alive_interval(Duration::from_millis(100))
            .keep_alive_while_idle(true)
            .handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
        let conn = tokio::spawn(conn);
        let req = http::Request::get("http://slow/").body(http_body_util::Empty::<bytes::Bytes>::new());
        assert_eq!(h2.send_request(req.unwrap()).await.expect("answered").status(), 200);
        let start = Instant::now();
        tokio::time::timeout(bound, conn).await.expect("a connection that only pings is closed").unwrap().ok();
        assert!(start.elapsed() >= Duration::from_millis(900), "not before its timeout");

        let closed = counter(&sc.admin, "weft_downstream_idle_timeouts_total").await;
        assert!(closed >= 4, "four connections closed idle, counted: {closed}");
    });
}

/// Reads one HTTP/1.1 response with a `content-length` off `s`: its status.
async fn read_response(s: &mut tokio::net::TcpStream) -> u16 {
    use tokio::io::AsyncReadExt;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = s.read(&mut buf).await.expect("a response");
        assert!(n > 0, "closed before a whole response: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got).to_string();
        if let Some(end) = text.find("\r\n\r\n") {
            let length: usize = text[..end]
                .lines()
                .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap()))
                .expect("content-length");
            if got.len() >= end + 4 + length {
                return text[9..12].parse().unwrap();
            }
        }
    }
}

#[test]
fn a_request_head_that_does_not_end_in_time_closes_its_connection() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let (_b, _control, sc) = slow_mesh(dir.path(), &["--request-head-timeout-seconds", "1"]).await;
        let out = sc.outbound.clone();

        // A head sent a line every 300 ms (slowloris): never idle, cut.
        let s = tokio::net::TcpStream::connect(&out).await.unwrap();
        let (mut r, mut w) = s.into_split();
        let start = Instant::now();
        let closed = tokio::spawn(async move {
            let mut buf = [0u8; 256];
            matches!(r.read(&mut buf).await, Ok(0) | Err(_))
        });
        w.write_all(b"GET / HTTP/1.1\r\nhost: slow\r\n").await.unwrap();
        for i in 0..33 {
            if closed.is_finished() || w.write_all(format!("x-slow-{i}: a\r\n").as_bytes()).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        let closed = tokio::time::timeout(Duration::from_secs(10), closed).await.expect("the slow head is cut");
        assert!(closed.unwrap(), "closed, not answered");
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(900), "not before its timeout: {took:?}");
        assert!(took < Duration::from_secs(8), "long before the 10 s of the slow head: {took:?}");

        // A request whose body arrives slowly is in flight, not a slow head;
        // then its connection, idle between requests, is kept.
        let mut s = tokio::net::TcpStream::connect(&out).await.unwrap();
        s.write_all(b"POST / HTTP/1.1\r\nhost: slow\r\ncontent-length: 20\r\n\r\n").await.unwrap();
        for _ in 0..10 {
            tokio::time::sleep(Duration::from_millis(150)).await;
            s.write_all(b"ab").await.unwrap();
        }
        assert_eq!(read_response(&mut s).await, 200, "the slowly sent body's request is answered");
        tokio::time::sleep(Duration::from_millis(2500)).await;
        s.write_all(b"GET / HTTP/1.1\r\nhost: slow\r\n\r\n").await.unwrap();
        assert_eq!(read_response(&mut s).await, 200, "a keep-alive connection idle between requests is kept");

        // The first bytes of an HTTP/2 preface, and no more: the protocol
        // is not known yet, and the head timeout holds there too (the idle
        // one, an hour, would keep the socket that long).
        let mut s = tokio::net::TcpStream::connect(&out).await.unwrap();
        s.write_all(b"PRI * HT").await.unwrap();
        let start = Instant::now();
        let mut buf = [0u8; 64];
        let read = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf)).await;
        assert!(matches!(read.expect("a preface that does not end is cut"), Ok(0) | Err(_)), "closed, not answered");
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(900), "not before its timeout: {took:?}");

        let cut = counter(&sc.admin, "weft_downstream_request_head_timeouts_total").await;
        assert_eq!(cut, 2, "the slow head and the preface cut");
    });
}
