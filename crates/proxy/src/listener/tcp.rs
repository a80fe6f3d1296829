//! A TCP listener's connections: the filter chain (by TLS server name when
//! the listener routes by it), an endpoint of its cluster (by weight when
//! split), tried up to three, and the bytes spliced both ways until either
//! side closes or the connection idles out.

use super::idle::Idle;
use super::replay::Replay;
use crate::config::listener::ListenerKind;
use crate::conn::ConnCtx;
use crate::upstream::health::Observation;
use crate::upstream::watch;
use bytes::BytesMut;
use std::sync::Arc;
use std::task::Poll;
use tokio::net::TcpStream;

pub async fn tcp_proxy(ctx: Arc<ConnCtx>, mut down: TcpStream) {
    let cfg = ctx.state.config.load_full();
    let Some(ListenerKind::Tcp(routes)) = cfg.listeners.iter().find(|l| l.name == ctx.listener).map(|l| &l.kind) else {
        return;
    };
    // Routed by TLS server name: the ClientHello is read, then replayed upstream.
    let (sni, first) = if routes.by_sni() { super::sni::read(&mut down).await } else { (None, BytesMut::new()) };
    let Some(target) = routes.pick(sni.as_deref()) else {
        tracing::debug!(peer = %ctx.peer, sni = ?sni, "no filter chain takes this connection; closing");
        return;
    };
    let mut down = Replay::new(first, down);
    let cluster = match cfg.clusters.pick(target) {
        Ok(p) => p.cluster,
        Err(name) => {
            tracing::warn!(cluster = %name, "tcp listener's cluster is unknown; closing");
            return;
        }
    };
    let mut tried = Vec::new();
    let set = cluster.endpoints();
    for _ in 0..set.endpoints.len().min(3) {
        let Some(i) = set.pick(None, &tried) else { break };
        tried.push(i);
        let ep = &set.endpoints[i];
        let Ok(Ok(mut up)) = tokio::time::timeout(cluster.settings.connect_timeout, TcpStream::connect(ep.addr)).await
        else {
            watch::report(cluster, ep.health.as_ref(), Observation::LocalFailure(503));
            continue;
        };
        watch::report(cluster, ep.health.as_ref(), Observation::Status(200));
        let _ = up.set_nodelay(true);
        if let Some(k) = &cluster.settings.conn_policy.keepalive {
            k.apply(&up);
        }
        let _guard = ep.start();
        let _tunnel = crate::telemetry::Held::new(&ctx.state.metrics.active_tunnels);
        splice(&ctx, &mut down, &mut up).await;
        return;
    }
}

/// Copies both ways until either side closes, or the connection has moved
/// no byte for its idle timeout (Envoy's `tcp_proxy` default is the same
/// hour): then both sockets are closed.
async fn splice<D>(ctx: &ConnCtx, down: &mut D, up: &mut TcpStream)
where
    D: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let timeouts = ctx.state.timeouts.idle_only();
    let tick = tokio::time::sleep(timeouts.tick().unwrap_or_default());
    tokio::pin!(tick);
    let mut idle = Idle::new(tick.as_mut(), timeouts);
    let mut copy = std::pin::pin!(tokio::io::copy_bidirectional(down, up));
    let idled = std::future::poll_fn(|cx| {
        if copy.as_mut().poll(cx).is_ready() {
            return Poll::Ready(false);
        }
        // A splice is never busy without bytes moving: any byte polls it.
        let expired = idle.as_mut().and_then(|i| i.poll(cx, &ctx.activity, || false));
        if expired.is_some() { Poll::Ready(true) } else { Poll::Pending }
    })
    .await;
    if idled {
        ctx.state.metrics.idle_timeouts.inc();
        tracing::debug!(peer = %ctx.peer, "closing a tcp connection idle for its timeout");
    }
}
