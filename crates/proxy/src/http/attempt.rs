//! One attempt upstream: the request as an endpoint gets it, sent over
//! that endpoint's pool in the cluster's protocol.

use super::headers::SOURCE_HEADER;
use crate::telemetry::trace::context::NextHop;
use crate::upstream::cluster::Cluster;
use crate::upstream::endpoint::Endpoint;
use crate::upstream::pool::{Body, PooledBody, UpstreamError};
use http::header::{self, HeaderValue};
use http::uri::PathAndQuery;
use http::{Request, Response, Uri, Version};

/// Room for a small response's headers (nginx sends five with a body:
/// server, date, content type and length, connection); much more room
/// costs more than the regrowth it saves (bench/JOURNAL.md).
const TYPICAL_RESPONSE_HEADERS: usize = 6;

pub struct Attempt<'a> {
    pub parts: &'a http::request::Parts,
    pub pq: PathAndQuery,
    /// This proxy's identity, on outbound requests.
    pub source: Option<&'a HeaderValue>,
    /// The trace headers written for the next hop.
    pub next_hop: Option<&'a NextHop>,
}

impl Attempt<'_> {
    /// The request for one attempt: origin-form for HTTP/1.1; for HTTP/2 an
    /// absolute URI whose authority (from Host) becomes `:authority`. Only
    /// an endpoint in the mesh learns who calls (as Istio keeps its peer
    /// metadata from services outside the mesh).
    pub fn build(&self, body: Body, h2: bool, ep: &Endpoint) -> Request<Body> {
        let mut req = Request::new(body);
        *req.method_mut() = self.parts.method.clone();
        // hyper's HTTP/1.1 connection parses the response's headers into the
        // map its request went out with; one with room for a small
        // response's headers saves reallocations there (a clone has room
        // for exactly the request's).
        let headers = req.headers_mut();
        let added = self.next_hop.map_or(0, |n| n.pairs().len());
        headers.reserve((self.parts.headers.len() + added).max(TYPICAL_RESPONSE_HEADERS));
        for (name, value) in &self.parts.headers {
            headers.append(name.clone(), value.clone());
        }
        if let Some(n) = self.next_hop {
            n.write(headers);
        }
        if ep.mesh
            && let Some(v) = self.source
        {
            headers.insert(SOURCE_HEADER, v.clone());
        }
        let mut uri = http::uri::Parts::default();
        uri.path_and_query = Some(self.pq.clone());
        if h2 {
            let host = req.headers_mut().remove(header::HOST);
            uri.scheme = Some(http::uri::Scheme::HTTP);
            uri.authority = host
                .and_then(|h| http::uri::Authority::try_from(h.as_bytes()).ok())
                .or_else(|| Some(http::uri::Authority::from_static("localhost")));
        }
        *req.uri_mut() = Uri::from_parts(uri).unwrap_or_else(|_| Uri::from_static("/"));
        *req.version_mut() = if h2 { Version::HTTP_2 } else { Version::HTTP_11 };
        req
    }
}

/// Sends over the endpoint's pool in the upstream protocol: a choice
/// between the two sends, not an `async` wrapper around them, which would
/// hold the request once more in the request future (see `forward`).
pub fn send<'a>(
    cluster: &'a Cluster,
    ep: &'a Endpoint,
    req: Request<Body>,
    h2: bool,
) -> impl Future<Output = Result<Response<PooledBody>, UpstreamError>> + Send + 'a {
    use futures::future::{Either, FutureExt};
    let (timeout, policy) = (cluster.settings.connect_timeout, &cluster.settings.conn_policy);
    let sent = if h2 {
        Either::Left(ep.pool.send_h2(req, timeout, policy))
    } else {
        Either::Right(ep.pool.send_h1(req, timeout, policy))
    };
    sent.map(|r| r.map(|(resp, _reused)| resp))
}
