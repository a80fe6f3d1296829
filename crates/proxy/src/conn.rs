//! A downstream connection as its requests see it: the listener that
//! accepted it, the peer, the caller's certificate and the activity its
//! timeouts watch (`crate::listener::idle`).

use crate::listener::idle::Activity;
use crate::state::ProxyState;
use crate::telemetry::peer::Claimed;
use std::net::SocketAddr;
use std::sync::Arc;

/// Per connection: which listener accepted it and from whom.
pub struct ConnCtx {
    pub state: Arc<ProxyState>,
    pub listener: Arc<str>,
    pub peer: SocketAddr,
    pub activity: Activity,
    /// On a mutual-TLS connection, the `x-forwarded-client-cert` element
    /// that names the caller (`By=<us>;Hash=<its certificate's SHA-256>;URI=<its SPIFFE ID>`), made once
    /// per connection.
    pub client_cert: Option<http::HeaderValue>,
    /// On a mutual-TLS connection, the namespace of the caller's SPIFFE ID
    /// (`None` with no SPIFFE ID): who called, as the certificate proves.
    pub mtls_peer: Option<Peer>,
    /// The connection is TLS (mutual TLS, or a gateway's HTTPS).
    pub secure: bool,
    /// The peer's address as header text (`x-forwarded-for`), made at the
    /// first request that needs it: formatting an address costs a
    /// request ~1,500 instructions.
    pub peer_ip: std::sync::OnceLock<http::HeaderValue>,
}

/// What a mutual-TLS connection's client certificate proves.
pub struct Peer {
    /// The namespace of its SPIFFE ID, if it has one.
    pub namespace: Option<Box<str>>,
    /// Its SPIFFE ID (authorization policies' principals), if it has one.
    pub identity: Option<Box<str>>,
    /// The server name the client asked for (SNI), if any.
    pub server_name: Option<Box<str>>,
}

impl ConnCtx {
    /// Who called, for metrics: the workload and namespace the caller's
    /// proxy names (`x-weft-source`), checked against the certificate on
    /// mutual TLS. There the namespace is the certificate's, and a named
    /// workload of another namespace is not believed (`unknown`); on
    /// plaintext the header is all there is.
    pub fn caller<'a>(&'a self, claimed: Option<&'a http::HeaderValue>) -> Claimed<'a> {
        let claimed = claimed.and_then(|v| v.to_str().ok()).and_then(Claimed::parse);
        match &self.mtls_peer {
            None => claimed.unwrap_or(Claimed::UNKNOWN),
            Some(Peer { namespace: None, .. }) => Claimed::UNKNOWN,
            Some(Peer { namespace: Some(ns), .. }) => match claimed {
                Some(c) if c.namespace == &**ns => Claimed { namespace: ns, ..c },
                _ => Claimed { namespace: ns, ..Claimed::UNKNOWN },
            },
        }
    }
}
