//! A sidecar's inbound TCP listener (a service whose ports are TCP): the
//! connection's first bytes say whether it is mutual TLS, terminated here
//! with the mesh certificate (the caller's SPIFFE ID then goes to the
//! policies and metrics), or plaintext; each is taken only where the
//! workload's PeerAuthentication allows it, before a byte reaches the app.
//! Then the bytes are spliced to the app (`tcp::serve`).

use super::replay::Replay;
use super::tls::TLS_HANDSHAKE;
use crate::config::Transport;
use crate::config::listener::ListenerCfg;
use crate::conn::ConnCtx;
use crate::snapshot::Snapshot;
use bytes::BytesMut;
use std::sync::Arc;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// How long PERMISSIVE waits for a client's first bytes before taking the
/// connection as plaintext: a server-first protocol's client (MySQL, SMTP)
/// sends nothing until the app greets it. STRICT and DISABLE never wait
/// on it, which is why Istio advises them for such protocols.
const FIRST_BYTES: std::time::Duration = std::time::Duration::from_secs(5);

pub async fn accept(ctx: Arc<ConnCtx>, transport: Transport, down: TcpStream) {
    let cfg = ctx.state.config.load_full();
    let Some(l) = cfg.listeners.iter().find(|l| l.name == ctx.listener) else { return };
    take(ctx.clone(), &cfg, l, transport, down).await
}

async fn take(ctx: Arc<ConnCtx>, cfg: &Snapshot, l: &ListenerCfg, transport: Transport, mut down: TcpStream) {
    if transport == Transport::Plaintext {
        // DISABLE: whatever comes is the app's, TLS included.
        return super::tcp::serve(&ctx, cfg, l, down, None).await;
    }
    let mut first = BytesMut::with_capacity(1024);
    let read = tokio::select! {
        r = tokio::time::timeout(FIRST_BYTES, down.read_buf(&mut first)) => r,
        _ = ctx.state.drained() => return,
    };
    let tls = match read {
        Ok(Ok(0)) | Ok(Err(_)) => return, // closed before a byte: nothing to splice
        Ok(Ok(_)) => first[0] == TLS_HANDSHAKE,
        Err(_) => false, // waiting on the server to speak first
    };
    if !tls && transport == Transport::Tls {
        ctx.state.metrics.plaintext_refused.inc();
        tracing::debug!(peer = %ctx.peer, listener = %l.name, "plaintext came where PeerAuthentication says STRICT (mutual TLS only); closing");
        return;
    }
    let io = Replay::new(first, down);
    if !tls {
        return super::tcp::serve(&ctx, cfg, l, io, None).await;
    }
    let Some(mesh) = ctx.state.tls().load_full() else {
        ctx.state.metrics.tls_handshake_failures.inc();
        tracing::debug!(peer = %ctx.peer, listener = %l.name, "a TLS handshake came before this proxy has its mesh certificate; closing");
        return;
    };
    let Some((stream, ctx, _)) = super::tls::handshake(&ctx, &mesh, io).await else { return };
    super::tcp::serve(&ctx, cfg, l, stream, None).await;
}
