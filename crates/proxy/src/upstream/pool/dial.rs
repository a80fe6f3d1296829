//! Opening an upstream connection: TCP (no delay, keepalive as the cluster
//! says), then the TLS its cluster gives the endpoint: mesh mutual TLS
//! (the server's SPIFFE ID checked against its service's), or TLS
//! origination (`config::upstream_tls`).

use super::UpstreamError;
use crate::config::certs::SanMatch;
use crate::config::cluster::{Keepalive, Protocol};
use crate::config::upstream_tls::{TlsKind, UpstreamTls, check_mesh_server};
use crate::mtls::Slot;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;

/// An upstream connection's socket: plain TCP or TLS, boxed (rustls' state
/// is kilobytes, and most upstreams are plain).
pub type UpstreamIo = tokio_util::either::Either<TcpStream, Box<tokio_rustls::client::TlsStream<TcpStream>>>;

/// How an endpoint pool's connections are secured.
#[derive(Debug)]
pub(super) enum Secure {
    /// With the proxy's certificate (`slot`), once it has one.
    Mesh {
        slot: Arc<Slot>,
        sans: Arc<[SanMatch]>,
        sni: Option<ServerName<'static>>,
    },
    Origin(Arc<crate::config::upstream_tls::Origin>),
}

/// What one connection's handshake takes.
pub(super) struct Client {
    config: Arc<rustls::ClientConfig>,
    /// None: the endpoint's address (no SNI).
    name: Option<ServerName<'static>>,
    /// A mesh server's SPIFFE ID must be one of these.
    sans: Option<Arc<[SanMatch]>>,
}

impl Secure {
    pub(super) fn new(tls: &UpstreamTls, slot: &Arc<Slot>) -> Self {
        match &tls.kind {
            TlsKind::Mesh { sans, sni } => Secure::Mesh { slot: slot.clone(), sans: sans.clone(), sni: sni.clone() },
            TlsKind::Origin(o) => Secure::Origin(o.clone()),
        }
    }

    /// The handshake for a connection speaking `protocol` (None: TCP);
    /// None when it is plaintext (mesh TLS before the first certificate).
    pub(super) fn client(&self, protocol: Option<Protocol>) -> Option<Client> {
        match self {
            Secure::Mesh { slot, sans, sni } => {
                let tls = slot.load();
                let tls = tls.as_deref()?;
                let config = if protocol == Some(Protocol::Http2) { &tls.client_h2 } else { &tls.client_h1 };
                // The chain is checked against the mesh root
                // (`mtls::ServerChain`), the identity here; the SNI only
                // names the destination (for an east-west gateway).
                Some(Client { config: config.clone(), name: sni.clone(), sans: Some(sans.clone()) })
            }
            Secure::Origin(o) => {
                let config = match protocol {
                    Some(Protocol::Http2) => &o.h2,
                    Some(_) => &o.h1,
                    None => &o.raw,
                };
                Some(Client { config: config.clone(), name: Some(o.server_name.clone()), sans: None })
            }
        }
    }
}

/// Connects, over TLS with `tls`; the connect timeout covers the handshake.
pub(super) async fn dial(
    addr: SocketAddr,
    timeout: Duration,
    keepalive: Option<&Keepalive>,
    tls: Option<Client>,
) -> Result<TokioIo<UpstreamIo>, UpstreamError> {
    let connect = async {
        let stream = TcpStream::connect(addr).await.map_err(|e| UpstreamError::Connect(addr, e))?;
        let _ = stream.set_nodelay(true);
        if let Some(k) = keepalive {
            k.apply(&stream);
        }
        let Some(tls) = tls else { return Ok(UpstreamIo::Left(stream)) };
        let name = tls.name.unwrap_or_else(|| ServerName::IpAddress(addr.ip().into()));
        let s = match tokio_rustls::TlsConnector::from(tls.config).connect(name, stream).await {
            Ok(s) => s,
            Err(e) => return Err(UpstreamError::Tls(addr, e)),
        };
        if let Some(sans) = &tls.sans {
            let cert = s.get_ref().1.peer_certificates().and_then(|c| c.first());
            // Refused before a byte of the request is written.
            check_mesh_server(sans, cert).map_err(|e| UpstreamError::Tls(addr, std::io::Error::other(e)))?;
        }
        Ok(UpstreamIo::Right(Box::new(s)))
    };
    let io = tokio::time::timeout(timeout, connect).await.map_err(|_| UpstreamError::ConnectTimeout(addr))??;
    Ok(TokioIo::new(io))
}
