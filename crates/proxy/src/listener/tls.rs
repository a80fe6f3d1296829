//! Mutual TLS on a sidecar's inbound listener (PERMISSIVE: a connection
//! that opens with a TLS record is TLS, anything else plaintext).

use super::replay::Replay;
use crate::config::listener::ListenerKind;
use crate::config::terminate::{ServerTls, Terminate};
use crate::conn::{ConnCtx, Peer};
use crate::mtls::MeshTls;
use std::sync::Arc;
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

/// A TLS record's first byte when it carries a handshake (a ClientHello,
/// first): no HTTP request starts with it.
pub const TLS_HANDSHAKE: u8 = 0x16;

/// How long a client may take over its TLS handshake (Envoy's
/// `transport_socket_connect_timeout` is 15 s; a sidecar's peer is local).
const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The handshake of a connection that opened with a TLS record: the
/// client must present a certificate of the mesh root (`mtls`), its SPIFFE
/// ID names the caller to the application, and ALPN says the protocol.
/// Returns the stream, the connection's context with the caller in it, and
/// whether ALPN chose HTTP/2; `None` when the handshake failed or stalled
/// (counted), which closes the connection.
pub async fn handshake(
    ctx: &ConnCtx,
    tls: &MeshTls,
    io: Replay<TcpStream>,
) -> Option<(TlsStream<Replay<TcpStream>>, Arc<ConnCtx>, bool)> {
    let accept = tokio_rustls::TlsAcceptor::from(tls.server.clone()).accept(io);
    let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, accept)
        .await
        .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()));
    let stream = match handshake {
        Ok(s) => s,
        Err(e) => {
            ctx.state.metrics.tls_handshake_failures.inc();
            tracing::debug!(peer = %ctx.peer, error = %e, "inbound TLS handshake failed");
            return None;
        }
    };
    let conn = stream.get_ref().1;
    let h2 = conn.alpn_protocol() == Some(b"h2");
    let cert = conn.peer_certificates().and_then(|c| c.first());
    let identity = cert.and_then(crate::mtls::peer_identity);
    let namespace = identity.as_deref().and_then(crate::mtls::spiffe_namespace).map(Box::from);
    let client_cert = cert.and_then(|c| client_cert_header(ctx, &tls.identity, c, identity.as_deref()));
    let server_name = conn.server_name().map(Box::from);
    ctx.state.metrics.mtls_connections.inc();
    let ctx = Arc::new(ConnCtx {
        state: ctx.state.clone(),
        listener: ctx.listener.clone(),
        peer: ctx.peer,
        activity: Default::default(),
        client_cert,
        mtls_peer: Some(Peer { namespace, identity: identity.map(Box::from), server_name }),
        secure: true,
        peer_ip: Default::default(),
    });
    Some((stream, ctx, h2))
}

/// The `x-forwarded-client-cert` element naming this caller, as Envoy
/// writes it: `By=<us>;Hash=<SHA-256 of its certificate, hex>`, then
/// `;URI=<its SPIFFE ID>` when the listener asks for the URI.
fn client_cert_header(ctx: &ConnCtx, ours: &str, cert: &[u8], identity: Option<&str>) -> Option<http::HeaderValue> {
    use std::fmt::Write;
    let config = ctx.state.config.load();
    let uri = config.listeners.iter().find(|l| l.name == ctx.listener).is_some_and(|l| match &l.kind {
        ListenerKind::Http(h) => h.client_cert_uri,
        ListenerKind::Tcp(_) => false,
    });
    let mut v = format!("By={ours};Hash=");
    for b in ring::digest::digest(&ring::digest::SHA256, cert).as_ref() {
        let _ = write!(v, "{b:02x}");
    }
    if let Some(id) = identity.filter(|_| uri) {
        let _ = write!(v, ";URI={id}");
    }
    http::HeaderValue::from_str(&v).ok()
}

/// The handshake of a gateway's HTTPS connection: the server configuration
/// its ClientHello's server name picks (`Terminate::pick`). Returns the
/// stream, its context and whether ALPN chose HTTP/2; `None` (counted)
/// when no chain takes the name or the handshake failed.
pub async fn terminate(
    ctx: &ConnCtx,
    term: &Terminate,
    io: Replay<TcpStream>,
) -> Option<(TlsStream<Replay<TcpStream>>, Arc<ConnCtx>, bool)> {
    let fail = |why: &dyn std::fmt::Display| {
        ctx.state.metrics.tls_handshake_failures.inc();
        tracing::debug!(peer = %ctx.peer, listener = %ctx.listener, error = %why, "HTTPS handshake failed");
    };
    let lazy = tokio_rustls::LazyConfigAcceptor::new(rustls::server::Acceptor::default(), io);
    let start = in_time(lazy).await.map_err(|e| fail(&e)).ok()?;
    let name = start.client_hello().server_name().map(str::to_owned);
    let (config, names) = match term.pick(name.as_deref()) {
        Some(ServerTls::Fixed(c)) => (c.clone(), None),
        Some(ServerTls::Mesh(sans)) => match ctx.state.tls().load_full() {
            Some(mesh) => (mesh.server.clone(), Some(sans.clone())),
            None => {
                fail(&"an ISTIO_MUTUAL server before this proxy has its mesh certificate");
                return None;
            }
        },
        None => {
            fail(&format!("no HTTPS server for the name {name:?}"));
            return None;
        }
    };
    let stream = in_time(start.into_stream(config)).await.map_err(|e| fail(&e)).ok()?;
    let conn = stream.get_ref().1;
    let h2 = conn.alpn_protocol() == Some(b"h2");
    let cert = conn.peer_certificates().and_then(|c| c.first());
    if let Some(sans) = names.filter(|s| !s.is_empty()) {
        let shown = cert.map(crate::config::certs::cert_names).unwrap_or_default();
        if !sans.iter().any(|s| s.matches(&shown)) {
            fail(&"the client's identity is not one the server's subjectAltNames name");
            return None;
        }
    }
    // A verified client certificate names the caller to the policies.
    let identity = cert.and_then(crate::mtls::peer_identity);
    let mtls_peer = cert.map(|_| Peer {
        namespace: identity.as_deref().and_then(crate::mtls::spiffe_namespace).map(Box::from),
        identity: identity.map(Box::from),
        server_name: name.map(Box::from),
    });
    let ctx = Arc::new(ConnCtx {
        state: ctx.state.clone(),
        listener: ctx.listener.clone(),
        peer: ctx.peer,
        activity: Default::default(),
        client_cert: None,
        mtls_peer,
        secure: true,
        peer_ip: Default::default(),
    });
    Some((stream, ctx, h2))
}

/// A handshake's step, within the handshake timeout; the error as text.
async fn in_time<T, E: std::fmt::Display>(step: impl Future<Output = Result<T, E>>) -> Result<T, String> {
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, step).await {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(_) => Err("timed out".into()),
    }
}
