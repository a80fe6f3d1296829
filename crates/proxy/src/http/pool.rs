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

/// Idle HTTP/1.1 connections older than this are closed rather than reused.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
const MAX_IDLE: usize = 256;

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
    idle: Mutex<Vec<(http1::SendRequest<Body>, Instant)>>,
    h2: Mutex<Option<http2::SendRequest<Body>>>,
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
    ) -> Result<(http::Response<PooledBody>, bool), UpstreamError> {
        let addr = self.addr();
        let pooled = {
            let mut idle = self.idle.lock().expect("pool");
            let mut found = None;
            while let Some((s, since)) = idle.pop() {
                if !s.is_closed() && s.is_ready() && since.elapsed() < IDLE_TIMEOUT {
                    found = Some(s);
                    break;
                }
            }
            found
        };
        let (mut sender, reused) = match pooled {
            Some(s) => (s, true),
            None => {
                let io = dial(addr, connect_timeout).await?;
                let (sender, conn) = http1::handshake(io).await.map_err(|e| UpstreamError::Handshake(addr, e))?;
                self.opened.fetch_add(1, Ordering::Relaxed);
                self.connections.fetch_add(1, Ordering::Relaxed);
                let me = self.clone();
                tokio::spawn(async move {
                    let _ = conn.with_upgrades().await;
                    me.connections.fetch_sub(1, Ordering::Relaxed);
                });
                (sender, false)
            }
        };
        match sender.send_request(req).await {
            Ok(resp) => {
                let back = Some((Arc::downgrade(self), sender));
                Ok((resp.map(|b| PooledBody { inner: b, back }), reused))
            }
            Err(e) if e.is_canceled() || (reused && e.is_incomplete_message()) => Err(UpstreamError::NotSent(addr, e)),
            Err(e) => Err(UpstreamError::Reset(addr, e)),
        }
    }

    /// Sends over the endpoint's shared HTTP/2 connection, dialing it if needed.
    pub async fn send_h2(
        self: &Arc<Self>,
        req: http::Request<Body>,
        connect_timeout: Duration,
    ) -> Result<(http::Response<PooledBody>, bool), UpstreamError> {
        let addr = self.addr();
        let existing = self.h2.lock().expect("pool").as_ref().filter(|s| !s.is_closed()).cloned();
        let (mut sender, reused) = match existing {
            Some(s) => (s, true),
            None => {
                let io = dial(addr, connect_timeout).await?;
                let (sender, conn) = http2::Builder::new(TokioExecutor::new())
                    .handshake(io)
                    .await
                    .map_err(|e| UpstreamError::Handshake(addr, e))?;
                self.opened.fetch_add(1, Ordering::Relaxed);
                self.connections.fetch_add(1, Ordering::Relaxed);
                let me = self.clone();
                tokio::spawn(async move {
                    let _ = conn.await;
                    me.connections.fetch_sub(1, Ordering::Relaxed);
                });
                *self.h2.lock().expect("pool") = Some(sender.clone());
                (sender, false)
            }
        };
        if sender.ready().await.is_err() {
            *self.h2.lock().expect("pool") = None;
            return Err(UpstreamError::Connect(addr, std::io::Error::other("HTTP/2 connection closed")));
        }
        match sender.send_request(req).await {
            Ok(resp) => Ok((resp.map(|b| PooledBody { inner: b, back: None }), reused)),
            Err(e) if e.is_canceled() => Err(UpstreamError::NotSent(addr, e)),
            Err(e) => Err(UpstreamError::Reset(addr, e)),
        }
    }

    fn give_back(&self, sender: http1::SendRequest<Body>) {
        if sender.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().expect("pool");
        if idle.len() < MAX_IDLE {
            idle.push((sender, Instant::now()));
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
    back: Option<(Weak<EndpointPool>, http1::SendRequest<Body>)>,
}

impl PooledBody {
    fn finish(&mut self) {
        if let Some((pool, sender)) = self.back.take()
            && let Some(pool) = pool.upgrade()
        {
            pool.give_back(sender);
        }
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
            Poll::Ready(Some(Err(_))) => self.back = None,
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
