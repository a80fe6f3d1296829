//! One HTTP connection: the protocol told from its first bytes (HTTP/1.1,
//! HTTP/2 prior knowledge, or on a sidecar's inbound listener a TLS
//! handshake), served by hyper with the connection's timeouts and a
//! graceful shutdown when the proxy drains.

use super::coalesce;
use super::idle::{Activity, Expired, Idle};
use super::replay::{self, Replay};
use super::tls::TLS_HANDSHAKE;
use crate::config::listener::Transport;
use crate::config::terminate::Terminate;
use crate::conn::ConnCtx;
use crate::http::body::ProxyBody;
use crate::http::handle::handle;
use crate::mtls::MeshTls;
use crate::state::ProxyState;
use bytes::BytesMut;
use hyper_util::rt::TokioIo;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// Spawns each HTTP/2 stream's task with its future boxed. A stream's
/// future holds the whole request path (kilobytes); tokio's spawn moves a
/// future by value through several calls, so boxing it first turns three
/// copies of it into one, plus an allocation. HTTP/1.1 spawns nothing per
/// request and is unaffected.
#[derive(Clone, Copy)]
struct SpawnBoxed;

impl<F> hyper::rt::Executor<F> for SpawnBoxed
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, fut: F) {
        tokio::spawn(Box::pin(fut));
    }
}

/// Serves one downstream connection. When the proxy starts draining, the
/// connection shuts down gracefully: an idle keep-alive connection closes
/// at once, a busy one after its response (HTTP/1.1 `connection: close`,
/// HTTP/2 GOAWAY), so callers stop reusing it before the process exits.
///
/// The protocol is told from the first bytes the client sends, read (not
/// peeked: hyper would read them again, one more syscall a connection)
/// and handed back to hyper first (`Replay`). The connection goes straight
/// to hyper's HTTP/1.1 or HTTP/2 server, not to hyper-util's
/// auto-detecting one, which would serve every later read through a
/// rewinding wrapper of its own. HTTP/2 (prior knowledge) writes through
/// `coalesce`: what its streams write in one turn leaves in one syscall.
/// On a sidecar's `inbound` listener, a TLS handshake is mutual TLS; a
/// connection of a kind the listener does not take (`transport`: STRICT
/// refuses plaintext, DISABLE TLS) is closed before a byte reaches the app.
pub async fn serve_http(ctx: Arc<ConnCtx>, mut stream: TcpStream, takes: Takes) {
    let Takes { inbound, transport, terminate } = takes;
    let timeouts = ctx.state.timeouts;
    // Not registered with the timer until first polled.
    let tick = tokio::time::sleep(timeouts.tick().unwrap_or_default());
    tokio::pin!(tick);
    let mut idle = Idle::new(tick.as_mut(), timeouts);
    let mut first = BytesMut::with_capacity(FIRST_READ);
    // Until the bytes tell: the preface's first 12, or fewer that differ
    // from it (a client may send the preface in pieces).
    let h2 = loop {
        let started = !first.is_empty();
        let read = tokio::select! {
            biased;
            r = stream.read_buf(&mut first) => r,
            // A connection that has not sent a request's first bytes closes at once on drain.
            _ = ctx.state.drained() => return,
            e = expired(&mut idle, started) => {
                if e == Expired::Idle {
                    ctx.state.metrics.idle_timeouts.inc();
                    tracing::debug!(peer = %ctx.peer, "closing a connection that sent nothing for its idle timeout");
                } else {
                    ctx.state.metrics.request_head_timeouts.inc();
                    tracing::debug!(peer = %ctx.peer, "closing a connection whose first bytes did not end in time");
                }
                return;
            }
        };
        match read {
            Ok(0) => return, // closed before a request: nothing to answer
            Ok(_) => {}
            Err(e) => {
                tracing::debug!(error = %e, "connection failed before its first request");
                return;
            }
        }
        if let Some(term) = terminate {
            if first[0] != TLS_HANDSHAKE {
                ctx.state.metrics.tls_handshake_failures.inc();
                tracing::debug!(peer = %ctx.peer, listener = %ctx.listener, "plaintext on an HTTPS port; closing");
                return;
            }
            return Box::pin(serve_terminated(ctx, term, Replay::new(first, stream), idle)).await;
        }
        if first[0] == TLS_HANDSHAKE && transport == Transport::Plaintext {
            ctx.state.metrics.tls_handshake_failures.inc();
            tracing::debug!(peer = %ctx.peer, listener = %ctx.listener, "a TLS handshake came where PeerAuthentication says DISABLE (plaintext only); closing");
            return;
        }
        if first[0] != TLS_HANDSHAKE && transport == Transport::Tls {
            ctx.state.metrics.plaintext_refused.inc();
            tracing::debug!(peer = %ctx.peer, listener = %ctx.listener, "plaintext came where PeerAuthentication says STRICT (mutual TLS only); closing");
            return;
        }
        if first[0] == TLS_HANDSHAKE {
            // Mutual TLS is between sidecars: their inbound listeners take it.
            let Some(tls) = ctx.state.tls().load_full().filter(|_| inbound) else {
                // No HTTP request starts so; hyper would answer 400 to a handshake.
                ctx.state.metrics.tls_handshake_failures.inc();
                tracing::debug!(peer = %ctx.peer, listener = %ctx.listener, "a TLS handshake came where this proxy has no mesh certificate (a sidecar's inbound listener, started with --ca, takes mutual TLS); closing");
                return;
            };
            // Boxed: a plaintext connection's future does not carry its room.
            return Box::pin(serve_tls(ctx, tls, Replay::new(first, stream), idle)).await;
        }
        let n = first.len().min(PREFACE.len());
        if first[..n] != PREFACE[..n] {
            break false;
        }
        if n == PREFACE.len() {
            break true;
        }
    };
    if h2 {
        let (io, mut flusher) = coalesce::split(first, stream);
        report(coalesce::run(serve_h2(ctx, io, idle), &mut flusher).await.unwrap_or_else(|e| Err(e.into())));
    } else {
        report(serve_h1(ctx, first, stream, idle).await);
    }
}

/// Serves HTTP/1.1 on `io`, whose first bytes (`first`) were read already,
/// with upgrades. The request-head timeout counts its reads.
async fn serve_h1<S>(ctx: Arc<ConnCtx>, first: BytesMut, io: S, idle: Option<Idle<'_>>) -> Result<(), BoxError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let state = ctx.state.clone();
    let held = ctx.clone();
    let io = TokioIo::new(Replay::noting(first, io, held.clone()));
    let conn = hyper::server::conn::http1::Builder::new()
        .max_buf_size(MAX_H1_HEAD)
        .max_headers(MAX_H1_HEADERS)
        .serve_connection(io, http_service(ctx));
    serve(&state, Box::pin(conn.with_upgrades()), |c| c.graceful_shutdown(), Watch::new(idle, held)).await
}

/// An HTTP/1.1 request head's bytes and header count, past which hyper
/// answers 431: Envoy's defaults (60 KiB, 100), set here rather than left
/// to hyper's (~400 KiB of buffer). The buffer bounds body reads too; 64 KiB
/// reads keep large bodies moving at full speed.
const MAX_H1_HEAD: usize = 64 << 10;
const MAX_H1_HEADERS: usize = 100;

/// The most header bytes one HTTP/2 request may carry (Envoy's default,
/// and hyper's today; set here so that a library's change cannot move it).
const MAX_H2_HEADER_LIST: u32 = 16 << 10;

/// Serves HTTP/2 on `io`, watched by the idle timeout alone (`Idle::for_http2`).
async fn serve_h2<I>(ctx: Arc<ConnCtx>, io: I, idle: Option<Idle<'_>>) -> Result<(), BoxError>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let state = ctx.state.clone();
    let held = ctx.clone();
    let conn = Box::pin(
        hyper::server::conn::http2::Builder::new(SpawnBoxed)
            .max_header_list_size(MAX_H2_HEADER_LIST)
            .serve_connection(io, http_service(ctx)),
    );
    serve(&state, conn, |c| c.graceful_shutdown(), Watch::new(idle.and_then(Idle::for_http2), held)).await
}

/// A connection's HTTP service: each request counted in the connection's
/// activity (its timeouts watch it), then handled.
fn http_service(
    ctx: Arc<ConnCtx>,
) -> impl hyper::service::Service<
    hyper::Request<hyper::body::Incoming>,
    Response = hyper::Response<ProxyBody>,
    Error = std::convert::Infallible,
    Future: Send + 'static,
> {
    hyper::service::service_fn(move |req| {
        Activity::bump(&ctx.activity.requests);
        handle(ctx.clone(), req)
    })
}

impl replay::OnRead for Arc<ConnCtx> {
    fn on_read(&self) {
        Activity::bump(&self.activity.reads);
    }
}

/// What an HTTP listener takes: whether it is a sidecar's inbound one, the
/// transports its PeerAuthentication allows, and TLS it terminates.
pub struct Takes {
    pub inbound: bool,
    pub transport: Transport,
    pub terminate: Option<Arc<Terminate>>,
}

/// Serves a gateway's HTTPS connection (`term`), from its first bytes.
async fn serve_terminated(ctx: Arc<ConnCtx>, term: Arc<Terminate>, io: Replay<TcpStream>, idle: Option<Idle<'_>>) {
    let Some((stream, ctx, h2)) = super::tls::terminate(&ctx, &term, io).await else { return };
    let served = if h2 {
        serve_h2(ctx, TokioIo::new(stream), idle).await
    } else {
        serve_h1(ctx, BytesMut::new(), stream, idle).await
    };
    report(served);
}

/// Serves a connection that opened with a TLS handshake (`tls`). Its
/// timeouts (`idle`) run on from its first bytes, the ClientHello's.
async fn serve_tls(ctx: Arc<ConnCtx>, tls: Arc<MeshTls>, io: Replay<TcpStream>, idle: Option<Idle<'_>>) {
    let Some((stream, ctx, h2)) = super::tls::handshake(&ctx, &tls, io).await else { return };
    let served = if h2 {
        serve_h2(ctx, TokioIo::new(stream), idle).await
    } else {
        serve_h1(ctx, BytesMut::new(), stream, idle).await
    };
    report(served);
}

/// Resolves once one of the connection's timeouts has run out before its
/// protocol is known (`Idle::expired`); never without one.
async fn expired(idle: &mut Option<Idle<'_>>, started: bool) -> Expired {
    match idle {
        Some(i) => i.expired(started).await,
        None => std::future::pending().await,
    }
}

/// What `serve` watches besides the drain: the connection's timeouts, and
/// its context, whose clones tell whether a request is in flight.
struct Watch<'a> {
    idle: Option<Idle<'a>>,
    ctx: Arc<ConnCtx>,
    baseline: usize,
}

impl<'a> Watch<'a> {
    /// Each request holds a clone of the connection's context while it is
    /// handled, so more clones than now means a request in flight.
    fn new(idle: Option<Idle<'a>>, ctx: Arc<ConnCtx>) -> Self {
        let baseline = Arc::strong_count(&ctx);
        Watch { idle, ctx, baseline }
    }

    /// Which of the connection's timeouts has run out, if one has.
    fn poll(&mut self, cx: &mut std::task::Context<'_>) -> Option<Expired> {
        let (ctx, baseline) = (&self.ctx, self.baseline);
        self.idle.as_mut()?.poll(cx, &ctx.activity, || Arc::strong_count(ctx) > baseline)
    }
}

/// The start of the HTTP/2 connection preface: enough to tell it from any
/// HTTP/1.1 request.
const PREFACE: &[u8; 12] = b"PRI * HTTP/2";

/// How much of a connection's first bytes is read to tell its protocol:
/// a whole request's head, mostly, which hyper then takes without a syscall.
const FIRST_READ: usize = 4096;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn report(result: Result<(), BoxError>) {
    if let Err(e) = result {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

/// Drives `conn` until it ends, shutting it down gracefully once the proxy
/// drains or the connection has been idle for its timeout (`shutdown`:
/// each connection type has its own method), dropping it when a request
/// head did not end in time. The
/// connection comes boxed: it is kilobytes (buffers, the dispatcher), and
/// by value it would be copied into this future and again into the
/// connection's task as tokio spawns it.
async fn serve<C, E>(
    state: &ProxyState,
    mut conn: Pin<Box<C>>,
    shutdown: impl FnOnce(Pin<&mut C>),
    mut watch: Watch<'_>,
) -> Result<(), BoxError>
where
    C: Future<Output = Result<(), E>>,
    E: Into<BoxError>,
{
    // The drain signal is polled once, which leaves this task's waker with
    // it; after that, a wake-up only looks at the flag. Polling the signal
    // on every wake-up (as `select!` does) is a cost every request paid.
    let drained = state.drained();
    tokio::pin!(drained);
    let mut armed = false;
    let early = std::future::poll_fn(|cx| {
        if let Poll::Ready(r) = conn.as_mut().poll(cx) {
            return Poll::Ready(Some(r));
        }
        if (!armed || *state.draining.borrow()) && drained.as_mut().poll(cx).is_ready() {
            return Poll::Ready(None);
        }
        armed = true;
        match watch.poll(cx) {
            None => Poll::Pending,
            Some(Expired::Idle) => {
                state.metrics.idle_timeouts.inc();
                tracing::debug!(peer = %watch.ctx.peer, "closing a connection idle for its timeout");
                Poll::Ready(None)
            }
            Some(Expired::RequestHead) => {
                state.metrics.request_head_timeouts.inc();
                tracing::debug!(peer = %watch.ctx.peer, "closing a connection whose request head did not end in time");
                // Dropped, not shut down: its half-read head is no request to finish.
                Poll::Ready(Some(Ok(())))
            }
        }
    })
    .await;
    let result = match early {
        Some(r) => r,
        None => {
            shutdown(conn.as_mut());
            conn.await
        }
    };
    result.map_err(Into::into)
}
