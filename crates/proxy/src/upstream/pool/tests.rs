//! The pool's unit tests (its module is near the size a file should keep).

use super::*;
use http_body_util::BodyExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Reads one request head (the tests' requests have no body).
async fn read_head(s: &mut TcpStream) {
    let mut buf = [0u8; 1024];
    let mut got = Vec::new();
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = s.read(&mut buf).await.unwrap();
        got.extend_from_slice(&buf[..n]);
    }
}

/// An upstream that answers one keep-alive request per connection and
/// then closes it once told to.
async fn upstream() -> (SocketAddr, tokio::sync::mpsc::Sender<()>) {
    let sock = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = sock.local_addr().unwrap();
    let (close_tx, mut close_rx) = tokio::sync::mpsc::channel::<()>(1);
    tokio::spawn(async move {
        let (mut s, _) = sock.accept().await.unwrap();
        read_head(&mut s).await;
        s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").await.unwrap();
        let _ = close_rx.recv().await;
    });
    (addr, close_tx)
}

/// A large body arrives over many reads (the driver waits with our
/// waker between them); the connection then serves the next request.
#[tokio::test]
async fn a_large_body_streams_through_and_its_connection_is_reused() {
    const SIZE: usize = 4 << 20;
    let sock = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = sock.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut s, _) = sock.accept().await.unwrap();
        for _ in 0..2 {
            read_head(&mut s).await;
            s.write_all(format!("HTTP/1.1 200 OK\r\ncontent-length: {SIZE}\r\n\r\n").as_bytes()).await.unwrap();
            for chunk in vec![b'x'; SIZE].chunks(64 * 1024) {
                s.write_all(chunk).await.unwrap();
            }
        }
    });
    let pool = Arc::new(EndpointPool::new(addr));
    for round in 0..2 {
        let req = http::Request::builder().uri("/").header("host", "x").body(Body::Full(None)).unwrap();
        let (resp, reused) = pool.send_h1(req, Duration::from_secs(1), &ConnPolicy::default()).await.unwrap();
        assert_eq!(reused, round == 1);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert!(body.len() == SIZE && body.iter().all(|&b| b == b'x'), "round {round}: {} bytes", body.len());
    }
    assert_eq!(pool.opened.load(Ordering::Relaxed), 1, "one connection for both");
}

#[tokio::test]
async fn a_connection_is_pooled_after_its_body_and_swept_once_the_upstream_closes_it() {
    let (addr, close) = upstream().await;
    let registry = PoolRegistry::default();
    let pool = registry.get(addr, None);
    let req = http::Request::builder().uri("/").header("host", "x").body(Body::Full(None)).unwrap();
    let (resp, reused) = pool.send_h1(req, Duration::from_secs(1), &ConnPolicy::default()).await.unwrap();
    assert!(!reused);
    assert_eq!(resp.into_body().collect().await.unwrap().to_bytes(), "ok");
    assert_eq!((pool.idle(), pool.connections.load(Ordering::Relaxed)), (1, 1), "pooled once the body ended");
    assert_eq!(registry.sweep(), 0, "an open idle connection stays");

    drop(close); // the upstream closes its end
    let mut swept = 0;
    for _ in 0..200 {
        swept += registry.sweep();
        if swept > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(swept, 1, "the closed connection is swept");
    assert_eq!((pool.idle(), pool.connections.load(Ordering::Relaxed)), (0, 0));
}
