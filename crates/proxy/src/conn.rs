//! A downstream connection as its requests see it: the listener that
//! accepted it, the peer, the caller's certificate and the activity its
//! timeouts watch (`crate::listener::idle`).

use crate::listener::idle::Activity;
use crate::state::ProxyState;
use std::net::SocketAddr;
use std::sync::Arc;

/// Per connection: which listener accepted it and from whom.
pub struct ConnCtx {
    pub state: Arc<ProxyState>,
    pub listener: Arc<str>,
    pub peer: SocketAddr,
    pub activity: Activity,
    /// On a mutual-TLS connection, the `x-forwarded-client-cert` element
    /// that names the caller (`By=<us>;URI=<its SPIFFE ID>`), made once
    /// per connection.
    pub client_cert: Option<http::HeaderValue>,
}
