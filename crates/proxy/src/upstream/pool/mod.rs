//! Pooled upstream connections, one pool per endpoint address and protocol.
//!
//! Pools outlive config versions (the registry hands the same pool to the
//! recompiled endpoint), so a config push does not drop warm connections.
//! HTTP/1.1 connections are lent out one request at a time and come back
//! when the response body ends; HTTP/2 shares one multiplexed connection.
//!
//! An HTTP/1.1 connection has no task of its own: whoever holds it (the
//! request, then its response body) drives it. Reading the response and
//! writing it downstream then happen in one task, with no wake-up of a
//! second task and no hop through a scheduler queue per request; an idle
//! connection costs no task either. Upgrades (WebSocket) are the exception:
//! the upgraded connection outlives the request, so it gets a task.

use bytes::Bytes;
use http_body::Frame;
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::Instant;

use crate::config::cluster::{ConnPolicy, Keepalive, Protocol};
use crate::config::upstream_tls::UpstreamTls;
use crate::mtls::Slot;

pub mod body;
mod dial;
mod error;
pub use body::{BoxError, RequestBody as Body, Tee, Teed};
pub use dial::UpstreamIo;
use dial::{Secure, dial};
pub use error::UpstreamError;
use error::h1_error;

const MAX_IDLE: usize = 256;

type H1Driver = http1::Connection<TokioIo<UpstreamIo>, Body>;

/// An HTTP/1.1 connection and its history.
struct H1Conn {
    sender: http1::SendRequest<Body>,
    /// The connection's I/O, polled by whoever holds the connection; `None`
    /// once it has ended. Boxed: it is large and moves with the response body.
    driver: Option<Box<H1Driver>>,
    born: Instant,
    served: u32,
    count: Counted,
}

impl std::fmt::Debug for H1Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H1Conn").field("served", &self.served).field("open", &self.driver.is_some()).finish()
    }
}

impl H1Conn {
    /// Drives the connection until `ready` (which only the driver can make
    /// ready) is.
    ///
    /// The driver runs without our waker first: it leaves its wakers in
    /// the connection (the body channel, the request queue), and ours
    /// there would wake this task again for nothing when the body is taken
    /// or the next request queued. Only if `ready` is still pending does
    /// it run again with our waker, so that the upstream's next bytes wake us.
    fn drive_until<T>(&mut self, cx: &mut Context<'_>, mut ready: impl FnMut(&mut Context<'_>) -> Poll<T>) -> Poll<T> {
        let mut noop = noop();
        self.drive(&mut noop);
        if let Poll::Ready(t) = ready(&mut noop) {
            return Poll::Ready(t);
        }
        self.drive(cx);
        ready(&mut noop)
    }

    /// Lets the connection do its I/O (write the request, read the
    /// response); an ended connection is dropped, which fails whatever
    /// request was still waiting on it.
    fn drive(&mut self, cx: &mut Context<'_>) {
        if let Some(d) = self.driver.as_mut()
            && Pin::new(&mut **d).poll(cx).is_ready()
        {
            self.driver = None;
        }
    }
}

/// A context whose waker does nothing: for polling a connection's driver
/// and the futures only it completes, which must not leave this task's
/// waker behind (see `H1Conn::drive_until`).
fn noop() -> Context<'static> {
    Context::from_waker(std::task::Waker::noop())
}

/// Counts a connection in its pool's `connections` while it lives (weak:
/// the pool holds its idle connections).
struct Counted(Weak<EndpointPool>);

impl Drop for Counted {
    fn drop(&mut self) {
        if let Some(pool) = self.0.upgrade() {
            pool.connections.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// The shared HTTP/2 connection.
#[derive(Debug)]
struct H2Conn {
    sender: http2::SendRequest<Body>,
    born: Instant,
    served: u32,
    last_used: Instant,
}

#[derive(Debug, Default)]
pub struct EndpointPool {
    addr: Option<SocketAddr>,
    /// Idle HTTP/1.1 connections and when each went idle.
    idle: Mutex<Vec<(H1Conn, Instant)>>,
    /// Boxed: most endpoints never speak HTTP/2, and a sidecar holds thousands.
    h2: Mutex<Option<Box<H2Conn>>>,
    pub connections: AtomicU64,
    pub opened: AtomicU64,
    /// How its connections are secured; None: plaintext.
    tls: Option<Secure>,
}

/// By address and the key of the TLS its connections use (0: plaintext).
type PoolsByEndpoint = HashMap<(SocketAddr, u64), Weak<EndpointPool>>;

/// Connection pools by endpoint, shared across config versions.
#[derive(Default)]
pub struct PoolRegistry {
    /// By address and transport, with the map's size after its last purge.
    pools: Mutex<(PoolsByEndpoint, usize)>,
    /// The proxy's certificate (`ProxyState::tls`, which reads it here), for mesh endpoints' pools.
    pub tls: Arc<Slot>,
}

impl PoolRegistry {
    /// The pool for `addr` over `tls` (None: plaintext), creating it if
    /// needed. Called when an endpoint set is built (a cluster's first use,
    /// an update), never per request. Mesh mutual TLS waits for the proxy's
    /// certificate: until it has one, connections are plaintext.
    pub fn get(&self, addr: SocketAddr, tls: Option<&UpstreamTls>) -> Arc<EndpointPool> {
        let key = (addr, tls.map_or(0, |t| t.key.max(1)));
        let mut guard = self.pools.lock();
        let (pools, purged_at) = &mut *guard;
        if let Some(p) = pools.get(&key).and_then(Weak::upgrade) {
            return p;
        }
        crate::names::purge_dead(pools, purged_at);
        let tls = tls.map(|t| Secure::new(t, &self.tls));
        let p = Arc::new(EndpointPool { addr: Some(addr), tls, ..Default::default() });
        pools.insert(key, Arc::downgrade(&p));
        p
    }

    /// Closes idle HTTP/1.1 connections the upstream has closed. Nothing
    /// drives an idle connection, so without this a closed one would sit in
    /// the pool (its socket in CLOSE_WAIT) until a request picked it.
    /// Returns how many were closed.
    pub fn sweep(&self) -> usize {
        let pools: Vec<_> = self.pools.lock().0.values().filter_map(Weak::upgrade).collect();
        pools.iter().map(|p| p.sweep()).sum()
    }

    /// Sweeps every `every` until the proxy drains.
    pub async fn sweep_every(&self, every: Duration, drained: impl std::future::Future<Output = ()>) {
        tokio::pin!(drained);
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => { self.sweep(); }
                _ = &mut drained => return,
            }
        }
    }
}

impl EndpointPool {
    pub fn new(addr: SocketAddr) -> Self {
        EndpointPool { addr: Some(addr), ..Default::default() }
    }

    /// A new TCP connection to the endpoint for a splice, over the
    /// cluster's TLS to it: mesh mutual TLS (the server's identity checked)
    /// or TLS it originates.
    pub async fn connect_tcp(&self, timeout: Duration, ka: Option<&Keepalive>) -> Result<UpstreamIo, UpstreamError> {
        let tls = self.tls.as_ref().and_then(|s| s.client(None));
        Ok(dial(self.addr(), timeout, ka, tls).await?.into_inner())
    }

    fn addr(&self) -> SocketAddr {
        self.addr.unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    /// Sends over HTTP/1.1: a pooled idle connection if there is one, else a
    /// new one. `reused` tells the caller whether a stale-connection failure
    /// is possible (the keep-alive race).
    // A plain `fn` returning an `async move` block: an `async fn` keeps its
    // request argument twice in the future's state (see `forward::forward`).
    #[allow(clippy::manual_async_fn)]
    pub fn send_h1<'a>(
        self: &'a Arc<Self>,
        req: http::Request<Body>,
        connect_timeout: Duration,
        policy: &'a ConnPolicy,
    ) -> impl Future<Output = Result<(http::Response<PooledBody>, bool), UpstreamError>> + Send + 'a {
        async move {
            let addr = self.addr();
            let pooled = {
                let mut idle = self.idle.lock();
                let mut found = None;
                while let Some((c, since)) = idle.pop() {
                    if c.driver.is_some()
                        && !c.sender.is_closed()
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
                None => (Box::pin(self.open_h1(connect_timeout, policy.keepalive.as_ref())).await?, false),
            };
            conn.served += 1;
            if req.headers().contains_key(http::header::UPGRADE) {
                // Boxed: upgrades are rare, and their state would make every
                // request's future larger.
                return Box::pin(self.send_upgrade(conn, req, reused)).await;
            }
            let sent = conn.sender.send_request(req);
            tokio::pin!(sent);
            // Drive the connection until the response head is in.
            let result = std::future::poll_fn(|cx| conn.drive_until(cx, |noop| sent.as_mut().poll(noop))).await;
            match result {
                Ok(resp) => {
                    // The body drives the connection from here, and puts it
                    // back in the pool when it ends, if it may serve more.
                    let pool = policy.usable(conn.born, conn.served).then(|| Arc::downgrade(self));
                    Ok((resp.map(|b| PooledBody { inner: b, conn: Some(Box::new(conn)), pool, hold: None }), reused))
                }
                Err(e) => Err(h1_error(addr, reused, e)),
            }
        }
    }

    /// An upgrade request (WebSocket): the connection gets a task, since
    /// after `101 Switching Protocols` it outlives the request. It does not
    /// come back to the pool.
    async fn send_upgrade(
        &self,
        mut conn: H1Conn,
        req: http::Request<Body>,
        reused: bool,
    ) -> Result<(http::Response<PooledBody>, bool), UpstreamError> {
        let addr = self.addr();
        let Some(driver) = conn.driver.take() else {
            return Err(UpstreamError::Connect(
                addr,
                std::io::Error::other("the connection closed before the upgrade request was sent"),
            ));
        };
        let count = conn.count;
        tokio::spawn(async move {
            let _ = driver.with_upgrades().await;
            drop(count);
        });
        match conn.sender.send_request(req).await {
            Ok(resp) => Ok((resp.map(|b| PooledBody { inner: b, conn: None, pool: None, hold: None }), reused)),
            Err(e) => Err(h1_error(addr, reused, e)),
        }
    }

    /// Counts a new connection.
    fn counted(self: &Arc<Self>) -> Counted {
        self.opened.fetch_add(1, Ordering::Relaxed);
        self.connections.fetch_add(1, Ordering::Relaxed);
        Counted(Arc::downgrade(self))
    }

    async fn open_h1(self: &Arc<Self>, timeout: Duration, ka: Option<&Keepalive>) -> Result<H1Conn, UpstreamError> {
        let addr = self.addr();
        let io = dial(addr, timeout, ka, self.tls.as_ref().and_then(|s| s.client(Some(Protocol::Http1)))).await?;
        let (sender, driver) = http1::handshake(io).await.map_err(|e| UpstreamError::Handshake(addr, e))?;
        Ok(H1Conn { sender, driver: Some(Box::new(driver)), born: Instant::now(), served: 0, count: self.counted() })
    }

    async fn open_h2(
        self: &Arc<Self>,
        timeout: Duration,
        ka: Option<&Keepalive>,
    ) -> Result<http2::SendRequest<Body>, UpstreamError> {
        let addr = self.addr();
        let io = dial(addr, timeout, ka, self.tls.as_ref().and_then(|s| s.client(Some(Protocol::Http2)))).await?;
        let (sender, conn) = http2::Builder::new(TokioExecutor::new())
            .handshake(io)
            .await
            .map_err(|e| UpstreamError::Handshake(addr, e))?;
        let count = self.counted();
        tokio::spawn(async move {
            let _ = conn.await;
            drop(count);
        });
        let now = Instant::now();
        *self.h2.lock() = Some(Box::new(H2Conn { sender: sender.clone(), born: now, served: 1, last_used: now }));
        Ok(sender)
    }

    /// Sends over the endpoint's shared HTTP/2 connection, dialing it if
    /// needed (or if the current one is past its policy: it then finishes
    /// its streams and closes).
    #[allow(clippy::manual_async_fn)] // the request once in the state (see `send_h1`)
    pub fn send_h2<'a>(
        self: &'a Arc<Self>,
        req: http::Request<Body>,
        connect_timeout: Duration,
        policy: &'a ConnPolicy,
    ) -> impl Future<Output = Result<(http::Response<PooledBody>, bool), UpstreamError>> + Send + 'a {
        async move {
            let addr = self.addr();
            let existing = {
                let mut h2 = self.h2.lock();
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
                None => (Box::pin(self.open_h2(connect_timeout, policy.keepalive.as_ref())).await?, false),
            };
            if sender.ready().await.is_err() {
                *self.h2.lock() = None;
                return Err(UpstreamError::Connect(addr, std::io::Error::other("HTTP/2 connection closed")));
            }
            match sender.send_request(req).await {
                Ok(resp) => Ok((resp.map(|b| PooledBody { inner: b, conn: None, pool: None, hold: None }), reused)),
                Err(e) if e.is_canceled() => Err(UpstreamError::NotSent(addr, e)),
                Err(e) => Err(UpstreamError::Reset(addr, e)),
            }
        }
    }

    fn give_back(&self, mut conn: H1Conn) {
        // Leave no waker of ours in the idle connection: the next request's
        // send (or the upstream closing it) would wake this task for nothing.
        conn.drive(&mut noop());
        if conn.driver.is_none() || conn.sender.is_closed() {
            return;
        }
        let mut idle = self.idle.lock();
        if idle.len() < MAX_IDLE {
            idle.push((conn, Instant::now()));
        }
    }

    fn sweep(&self) -> usize {
        let mut idle = self.idle.lock();
        let before = idle.len();
        idle.retain_mut(|(c, _)| {
            // Reads the end of stream if there is one (no syscall otherwise:
            // tokio knows the socket is not readable).
            c.drive(&mut noop());
            c.driver.is_some() && !c.sender.is_closed()
        });
        before - idle.len()
    }

    pub fn idle(&self) -> usize {
        self.idle.lock().len()
    }
}

/// A response body. Over HTTP/1.1 it drives its connection while it is
/// read, and returns it to the pool once read to the end (a body dropped
/// early closes it instead).
pub struct PooledBody {
    inner: Incoming,
    /// The HTTP/1.1 connection this body arrives on (boxed: bodies move).
    conn: Option<Box<H1Conn>>,
    /// Where the connection goes back, if it may serve more requests.
    pool: Option<Weak<EndpointPool>>,
    /// The request's place in the cluster's circuit breakers, released
    /// when the body ends (or is dropped).
    hold: Option<crate::upstream::limits::Admission>,
}

impl PooledBody {
    fn finish(&mut self) {
        self.hold = None;
        if let (Some(conn), Some(pool)) = (self.conn.take(), self.pool.take().and_then(|p| p.upgrade())) {
            pool.give_back(*conn);
        }
    }

    /// Keeps the request's circuit-breaker place until the body ends.
    pub fn hold(&mut self, admission: crate::upstream::limits::Admission) {
        self.hold = Some(admission);
    }
}

impl http_body::Body for PooledBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        // Data only arrives while the driver runs, so the body channel
        // needs no waker; what is already in is taken without driving.
        let this = &mut *self;
        let inner = &mut this.inner;
        let r = match this.conn.as_mut() {
            Some(conn) => match Pin::new(&mut *inner).poll_frame(&mut noop()) {
                Poll::Pending => conn.drive_until(cx, |noop| Pin::new(&mut *inner).poll_frame(noop)),
                ready => ready,
            },
            None => Pin::new(inner).poll_frame(cx),
        };
        match &r {
            Poll::Ready(None) => self.finish(),
            Poll::Ready(Some(Ok(_))) if self.inner.is_end_stream() => self.finish(),
            Poll::Ready(Some(Err(_))) => {
                self.conn = None;
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

#[cfg(test)]
mod tests;
