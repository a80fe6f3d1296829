//! Opening an upstream connection: TCP (no delay, keepalive as the cluster
//! says), then mutual TLS when the endpoint is in the mesh.

use super::UpstreamError;
use crate::config::cluster::Keepalive;
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;

pub(super) type UpstreamIo = tokio_util::either::Either<TcpStream, Box<tokio_rustls::client::TlsStream<TcpStream>>>;

/// Connects, over TLS with `tls`; the connect timeout covers the handshake.
pub(super) async fn dial(
    addr: SocketAddr,
    timeout: Duration,
    keepalive: Option<&Keepalive>,
    tls: Option<Arc<rustls::ClientConfig>>,
) -> Result<TokioIo<UpstreamIo>, UpstreamError> {
    let connect = async {
        let stream = TcpStream::connect(addr).await.map_err(|e| UpstreamError::Connect(addr, e))?;
        let _ = stream.set_nodelay(true);
        if let Some(k) = keepalive {
            k.apply(&stream);
        }
        let Some(tls) = tls else { return Ok(UpstreamIo::Left(stream)) };
        // Mesh endpoints are dialled by address: the server's certificate
        // is checked against the mesh root, not a name (`mtls::MeshRoot`).
        let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
        match tokio_rustls::TlsConnector::from(tls).connect(name, stream).await {
            Ok(s) => Ok(UpstreamIo::Right(Box::new(s))),
            Err(e) => Err(UpstreamError::Tls(addr, e)),
        }
    };
    let io = tokio::time::timeout(timeout, connect).await.map_err(|_| UpstreamError::ConnectTimeout(addr))??;
    Ok(TokioIo::new(io))
}
