//! How an exchange with an upstream host failed: what the request path
//! turns into a status and Envoy's response flags (`http::error`).

use std::net::SocketAddr;

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("connect to {0} failed: {1}")]
    Connect(SocketAddr, std::io::Error),
    #[error("connect to {0} timed out")]
    ConnectTimeout(SocketAddr),
    #[error("handshake with {0} failed: {1}")]
    Handshake(SocketAddr, hyper::Error),
    #[error("TLS handshake with {0} failed: {1}")]
    Tls(SocketAddr, std::io::Error),
    /// The request may not have reached the upstream (safe to retry).
    #[error("upstream {0} closed the connection before the request was sent: {1}")]
    NotSent(SocketAddr, hyper::Error),
    #[error("upstream {0} reset: {1}")]
    Reset(SocketAddr, hyper::Error),
}

impl UpstreamError {
    pub fn is_connect(&self) -> bool {
        matches!(
            self,
            UpstreamError::Connect(..)
                | UpstreamError::ConnectTimeout(_)
                | UpstreamError::Handshake(..)
                | UpstreamError::Tls(..)
        )
    }
}

/// What a failed HTTP/1.1 exchange means for a retry: a request the
/// upstream cannot have seen (cancelled before sending, or a reused
/// connection that turned out closed: the keep-alive race) may be resent.
pub(super) fn h1_error(addr: SocketAddr, reused: bool, e: hyper::Error) -> UpstreamError {
    if e.is_canceled() || (reused && e.is_incomplete_message()) {
        UpstreamError::NotSent(addr, e)
    } else {
        UpstreamError::Reset(addr, e)
    }
}
