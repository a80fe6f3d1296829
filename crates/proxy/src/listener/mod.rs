//! Binds and unbinds the listeners the config asks for. An HTTP listener
//! serves HTTP/1.1 and h2c (prior knowledge) with upgrades; a TCP listener
//! splices bytes to an endpoint of its cluster.

pub mod coalesce;
pub mod idle;
pub mod replay;
mod serve;
mod sni;
mod tcp;
mod tcp_inbound;
mod tls;

use serve::serve_http;
use tcp::tcp_proxy;

use crate::config::listener::{Direction, ListenerKind, Transport};
use crate::conn::ConnCtx;
use crate::state::ProxyState;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::net::{TcpListener, TcpSocket};
use tokio::task::JoinHandle;

struct Running {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

/// Follows config updates until the proxy drains.
pub async fn run(state: Arc<ProxyState>) {
    let mut updates = state.updates.subscribe();
    let mut running: HashMap<Arc<str>, Running> = HashMap::new();
    let mut retry = false;
    loop {
        let all_bound = reconcile(&state, &mut running, retry).await;
        retry = tokio::select! {
            changed = updates.changed() => if changed.is_err() { break } else { false },
            _ = state.drained() => break,
            // A port another process held may be free now.
            _ = tokio::time::sleep(BIND_RETRY), if !all_bound => true,
        };
    }
    for (_, r) in running.drain() {
        r.task.abort();
    }
}

/// How soon a listener that could not bind (or waits for its routes) tries again.
const BIND_RETRY: std::time::Duration = std::time::Duration::from_secs(1);

/// How long a listener waits for its route table before it serves without
/// one (Envoy's `initial_fetch_timeout`).
const WARM_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

/// Binds what the config adds and unbinds what it removes; false while a
/// listener could not bind. A `retry` (no config change) logs a failure
/// again only at debug level.
async fn reconcile(state: &Arc<ProxyState>, running: &mut HashMap<Arc<str>, Running>, retry: bool) -> bool {
    let cfg = state.config.load_full();
    running.retain(|name, r| {
        let keep = cfg.listeners.iter().any(|l| l.name == *name && l.addr == r.addr);
        if !keep {
            tracing::info!(listener = %name, addr = %r.addr, "listener removed");
            r.task.abort();
        }
        keep
    });
    let mut all_bound = true;
    for l in &cfg.listeners {
        if running.contains_key(&l.name) {
            continue;
        }
        // As Envoy warms a listener: bound once its route table is here (or
        // after Envoy's initial fetch timeout), so no early request meets a 404.
        let awaiting_routes = matches!(&l.kind, ListenerKind::Http(h) if h.routes.is_none());
        if awaiting_routes && state.started.elapsed() < WARM_TIMEOUT {
            all_bound = false;
            continue;
        }
        match bind(l.addr) {
            Ok(sock) => {
                tracing::info!(listener = %l.name, addr = %l.addr, "listening");
                let task = tokio::spawn(accept_loop(state.clone(), l.name.clone(), sock));
                running.insert(l.name.clone(), Running { addr: l.addr, task });
            }
            Err(e) if retry => {
                all_bound = false;
                tracing::debug!(listener = %l.name, addr = %l.addr, error = %e, "cannot bind listener yet");
            }
            Err(e) => {
                all_bound = false;
                tracing::error!(listener = %l.name, addr = %l.addr, error = %e, "cannot bind listener; is another process using this port? It is retried every second");
            }
        }
    }
    if all_bound && state.xds_complete.load(Ordering::Acquire) && !state.listening.swap(true, Ordering::AcqRel) {
        tracing::info!(version = %cfg.version, "proxy ready");
    }
    all_bound
}

/// A listening socket whose accepted connections have TCP_NODELAY on
/// (responses leave at once, not after the last segment's ACK). Set here,
/// Linux copies it into every accepted socket: one setsockopt a listener
/// instead of one a connection.
fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let sock = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    // As TcpListener::bind does: a restarted proxy rebinds at once.
    sock.set_reuseaddr(true)?;
    sock.set_nodelay(true)?;
    sock.bind(addr)?;
    sock.listen(1024)
}

async fn accept_loop(state: Arc<ProxyState>, name: Arc<str>, sock: TcpListener) {
    loop {
        let (stream, peer) = match sock.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(listener = %name, error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        // Linux hands the listener's TCP_NODELAY to every socket it accepts (`bind`).
        #[cfg(not(target_os = "linux"))]
        let _ = stream.set_nodelay(true);
        let ctx = Arc::new(ConnCtx {
            state: state.clone(),
            listener: name.clone(),
            peer,
            activity: Default::default(),
            client_cert: None,
            mtls_peer: None,
            secure: false,
            peer_ip: Default::default(),
        });
        // For HTTP: whether it is a sidecar's inbound listener, the
        // transports it takes, the TLS it terminates.
        match state.config.load().listeners.iter().find(|l| l.name == name).map(|l| &l.kind) {
            Some(ListenerKind::Tcp(t)) => match t.inbound {
                // Boxed: an outbound splice's future does not carry a handshake's room.
                Some(transport) => tokio::spawn(Box::pin(tcp_inbound::accept(ctx, transport, stream))),
                None => tokio::spawn(tcp_proxy(ctx, stream)),
            },
            Some(ListenerKind::Http(h)) => {
                let inbound = h.direction == Direction::Inbound;
                let takes = serve::Takes { inbound, transport: h.transport, terminate: h.terminate.clone() };
                tokio::spawn(serve_http(ctx, stream, takes))
            }
            None => {
                let takes = serve::Takes { inbound: false, transport: Transport::Any, terminate: None };
                tokio::spawn(serve_http(ctx, stream, takes))
            }
        };
    }
}

#[cfg(test)]
mod tests {
    /// What `bind` relies on: an accepted socket has the listener's TCP_NODELAY.
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn accepted_connections_have_nodelay_from_the_listener() {
        let sock = super::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let _client = tokio::net::TcpStream::connect(sock.local_addr().unwrap()).await.unwrap();
        let (accepted, _) = sock.accept().await.unwrap();
        assert!(accepted.nodelay().unwrap());
    }
}
