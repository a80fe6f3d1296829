//! Pooled upstream connections, one pool per endpoint address and protocol.
//!
//! Pools outlive config versions (the registry hands the same pool to the
//! recompiled endpoint), so a config push does not drop warm connections.
//! HTTP/1.1 connections are lent out one request at a time and come back
//! when the response body ends; HTTP/2 shares one multiplexed connection.

use bytes::Bytes;
use http_body::Frame;
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

pub use super::body::{BoxError, ProxyBody as Body};

const MAX_IDLE: usize = 256;

/// How long and how much a connection may be used: from the cluster's
/// `idleTimeout`, `maxRequestsPerConnection` and `maxConnectionDuration`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ConnPolicy {
    /// Idle connections older than this are closed rather than reused
    /// (60 s unless the cluster says otherwise).
    pub idle_timeout: Duration,
    pub max_requests: Option<u32>,
    pub max_age: Option<Duration>,
}

impl Default for ConnPolicy {
    fn default() -> Self {
        ConnPolicy { idle_timeout: Duration::from_secs(60), max_requests: None, max_age: None }
    }
}

impl ConnPolicy {
    /// Whether a connection opened at `born` that has served `served`
    /// requests may take another.
    fn usable(&self, born: Instant, served: u32) -> bool {
        self.max_requests.is_none_or(|m| served < m) && self.max_age.is_none_or(|a| born.elapsed() < a)
    }
}

/// An HTTP/1.1 connection and its history.
#[derive(Debug)]
struct H1Conn {
    sender: http1::SendRequest<Body>,
    born: Instant,
    served: u32,
}

/// The shared HTTP/2 connection.
#[derive(Debug)]
struct H2Conn {
    sender: http2::SendRequest<Body>,
    born: Instant,
    served: u32,
    last_used: Instant,
}

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("connect to {0} failed: {1}")]
    Connect(SocketAddr, std::io::Error),
    #[error("connect to {0} timed out")]
    ConnectTimeout(SocketAddr),
    #[error("handshake with {0} failed: {1}")]
    Handshake(SocketAddr, hyper::Error),
    /// The request may not have reached the upstream (safe to retry).
    #[error("upstream {0} closed the connection before the request was sent: {1}")]
    NotSent(SocketAddr, hyper::Error),
    #[error("upstream {0} reset: {1}")]
    Reset(SocketAddr, hyper::Error),
}

impl UpstreamError {
    pub fn is_connect(&self) -> bool {
        matches!(self, UpstreamError::Connect(..) | UpstreamError::ConnectTimeout(_) | UpstreamError::Handshake(..))
    }
}

#[derive(Debug, Default)]
pub struct EndpointPool {
    addr: Option<SocketAddr>,
    /// Idle HTTP/1.1 connections and when each went idle.
    idle: Mutex<Vec<(H1Conn, Instant)>>,
    h2: Mutex<Option<H2Conn>>,
    pub connections: AtomicU64,
    pub opened: AtomicU64,
}

/// Connection pools by endpoint, shared across config versions.
#[derive(Default)]
pub struct PoolRegistry {
    pools: Mutex<HashMap<SocketAddr, Weak<EndpointPool>>>,
}

impl PoolRegistry {
    /// The pool for `addr`, creating it if needed. Called at config compile
    /// time, never per request.
    pub fn get(&self, addr: SocketAddr) -> Arc<EndpointPool> {
        let mut pools = self.pools.lock().expect("pool registry");
        if let Some(p) = pools.get(&addr).and_then(Weak::upgrade) {
            return p;
        }
        pools.retain(|_, w| w.strong_count() > 0);
        let p = Arc::new(EndpointPool::new(addr));
        pools.insert(addr, Arc::downgrade(&p));
        p
    }
}

async fn dial(addr: SocketAddr, timeout: Duration) -> Result<TokioIo<TcpStream>, UpstreamError> {
    let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
        .await
        .map_err(|_| UpstreamError::ConnectTimeout(addr))?
        .map_err(|e| UpstreamError::Connect(addr, e))?;
    let _ = stream.set_nodelay(true);
    Ok(TokioIo::new(stream))
}

impl EndpointPool {
    pub fn new(addr: SocketAddr) -> Self {
        EndpointPool { addr: Some(addr), ..Default::default() }
    }

    fn addr(&self) -> SocketAddr {
        self.addr.unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    /// Sends over HTTP/1.1: a pooled idle connection if there is one, else a
    /// new one. `reused` tells the caller whether a stale-connection failure
    /// is possible (the keep-alive race).
    pub async fn send_h1(
        self: &Arc<Self>,
        req: http::Request<Body>,
        connect_timeout: Duration,
        policy: &ConnPolicy,
    ) -> Result<(http::Response<PooledBody>, bool), UpstreamError> {
        let addr = self.addr();
        let pooled = {
            let mut idle = self.idle.lock().expect("pool");
            let mut found = None;
            while let Some((c, since)) = idle.pop() {
                if !c.sender.is_closed()
                    && c.sender.is_ready()
                    && since.elapsed() < policy.idle_timeout
                    && policy.usable(c.born, c.served)
                {
                    found = Some(c);
                    break;
                }
            }
            found
        };
        let (mut conn, reused) = match pooled {
            Some(c) => (c, true),
            // Boxed: dialing and the handshake are the cold path, and their
            // state would otherwise make every request's future larger.
            None => (Box::pin(self.open_h1(connect_timeout)).await?, false),
        };
        conn.served += 1;
        match conn.sender.send_request(req).await {
            Ok(resp) => {
                // Back to the pool when the body ends, if it may serve more.
                let back = policy.usable(conn.born, conn.served).then(|| (Arc::downgrade(self), conn));
                Ok((resp.map(|b| PooledBody { inner: b, back, hold: None }), reused))
            }
            Err(e) if e.is_canceled() || (reused && e.is_incomplete_message()) => Err(UpstreamError::NotSent(addr, e)),
            Err(e) => Err(UpstreamError::Reset(addr, e)),
        }
    }

    /// Runs a new connection's driver, counted while it lives.
    fn drive<F: std::future::Future + Send + 'static>(self: &Arc<Self>, conn: F) {
        self.opened.fetch_add(1, Ordering::Relaxed);
        self.connections.fetch_add(1, Ordering::Relaxed);
        let me = self.clone();
        tokio::spawn(async move {
            let _ = conn.await;
            me.connections.fetch_sub(1, Ordering::Relaxed);
        });
    }

    async fn open_h1(self: &Arc<Self>, connect_timeout: Duration) -> Result<H1Conn, UpstreamError> {
        let addr = self.addr();
        let io = dial(addr, connect_timeout).await?;
        let (sender, conn) = http1::handshake(io).await.map_err(|e| UpstreamError::Handshake(addr, e))?;
        self.drive(conn.with_upgrades());
        Ok(H1Conn { sender, born: Instant::now(), served: 0 })
    }

    async fn open_h2(self: &Arc<Self>, connect_timeout: Duration) -> Result<http2::SendRequest<Body>, UpstreamError> {
        let addr = self.addr();
        let io = dial(addr, connect_timeout).await?;
        let (sender, conn) = http2::Builder::new(TokioExecutor::new())
            .handshake(io)
            .await
            .map_err(|e| UpstreamError::Handshake(addr, e))?;
        self.drive(conn);
        let now = Instant::now();
        *self.h2.lock().expect("pool") = Some(H2Conn { sender: sender.clone(), born: now, served: 1, last_used: now });
        Ok(sender)
    }

    /// Sends over the endpoint's shared HTTP/2 connection, dialing it if
    /// needed (or if the current one is past its policy: it then finishes
    /// its streams and closes).
    pub async fn send_h2(
        self: &Arc<Self>,
        req: http::Request<Body>,
        connect_timeout: Duration,
        policy: &ConnPolicy,
    ) -> Result<(http::Response<PooledBody>, bool), UpstreamError> {
        let addr = self.addr();
        let existing = {
            let mut h2 = self.h2.lock().expect("pool");
            match h2.as_mut() {
                Some(c)
                    if !c.sender.is_closed()
                        && c.last_used.elapsed() < policy.idle_timeout
                        && policy.usable(c.born, c.served) =>
                {
                    c.served += 1;
                    c.last_used = Instant::now();
                    Some(c.sender.clone())
                }
                _ => None,
            }
        };
        let (mut sender, reused) = match existing {
            Some(s) => (s, true),
            None => (Box::pin(self.open_h2(connect_timeout)).await?, false),
        };
        if sender.ready().await.is_err() {
            *self.h2.lock().expect("pool") = None;
            return Err(UpstreamError::Connect(addr, std::io::Error::other("HTTP/2 connection closed")));
        }
        match sender.send_request(req).await {
            Ok(resp) => Ok((resp.map(|b| PooledBody { inner: b, back: None, hold: None }), reused)),
            Err(e) if e.is_canceled() => Err(UpstreamError::NotSent(addr, e)),
            Err(e) => Err(UpstreamError::Reset(addr, e)),
        }
    }

    fn give_back(&self, conn: H1Conn) {
        if conn.sender.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().expect("pool");
        if idle.len() < MAX_IDLE {
            idle.push((conn, Instant::now()));
        }
    }

    pub fn idle(&self) -> usize {
        self.idle.lock().map_or(0, |i| i.len())
    }
}

/// A response body that returns its HTTP/1.1 connection to the pool once
/// it has been read to the end (a body dropped early closes it instead).
pub struct PooledBody {
    inner: Incoming,
    back: Option<(Weak<EndpointPool>, H1Conn)>,
    /// The request's place in the cluster's circuit breakers, released
    /// when the body ends (or is dropped).
    hold: Option<crate::config::limits::Admission>,
}

impl PooledBody {
    fn finish(&mut self) {
        self.hold = None;
        if let Some((pool, conn)) = self.back.take()
            && let Some(pool) = pool.upgrade()
        {
            pool.give_back(conn);
        }
    }

    /// Keeps the request's circuit-breaker place until the body ends.
    pub fn hold(&mut self, admission: crate::config::limits::Admission) {
        self.hold = Some(admission);
    }
}

impl http_body::Body for PooledBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let r = Pin::new(&mut self.inner).poll_frame(cx);
        match &r {
            Poll::Ready(None) => self.finish(),
            Poll::Ready(Some(Ok(_))) if self.inner.is_end_stream() => self.finish(),
            Poll::Ready(Some(Err(_))) => {
                self.back = None;
                self.hold = None;
            }
            _ => {}
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl PooledBody {
    /// The underlying body, for protocol upgrades.
    pub fn into_inner(self) -> Incoming {
        self.inner
    }
}
