//! Responses a route answers with itself: direct responses and redirects
//! (errors are `error::ProxyError`'s).

use super::body::ProxyBody as Body;
use crate::config::route::{Redirect, Route};
use bytes::Bytes;
use hyper::Response;

pub fn direct(status: u16, body: Bytes) -> Response<Body> {
    let len = body.len();
    let mut r = Response::new(Body::full(body));
    *r.status_mut() = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::OK);
    r.headers_mut().insert(http::header::CONTENT_LENGTH, len.into());
    if len > 0 {
        r.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("text/plain"));
    }
    r
}

pub fn redirect(rd: &Redirect, route: &Route, scheme: &str, authority: &str, uri: &http::Uri) -> Response<Body> {
    let scheme = rd.scheme.as_deref().unwrap_or(scheme);
    let host = rd.host.as_deref().unwrap_or_else(|| authority.rsplit_once(':').map_or(authority, |(h, _)| h));
    let port = rd.port.map(|p| format!(":{p}")).unwrap_or_else(|| {
        if rd.host.is_none() && rd.scheme.is_none() {
            authority.rsplit_once(':').map(|(_, p)| format!(":{p}")).unwrap_or_default()
        } else {
            String::new()
        }
    });
    let path = match (&rd.path, &rd.prefix_rewrite) {
        (Some(p), _) => p.clone(),
        (None, Some(pr)) => route.rewrite_prefix(uri.path(), pr),
        (None, None) => uri.path().to_owned(),
    };
    let query = uri.query().filter(|_| !path.contains('?')).map(|q| format!("?{q}")).unwrap_or_default();
    let location = format!("{scheme}://{host}{port}{path}{query}");
    let mut r = Response::new(Body::empty());
    *r.status_mut() = http::StatusCode::from_u16(rd.code).unwrap_or(http::StatusCode::MOVED_PERMANENTLY);
    if let Ok(v) = http::HeaderValue::from_str(&location) {
        r.headers_mut().insert(http::header::LOCATION, v);
    }
    r.headers_mut().insert(http::header::CONTENT_LENGTH, 0.into());
    r
}

/// The answer to a plaintext request for a host that requires TLS (Envoy's
/// `require_tls`): 301 to the same host (its port dropped) and path over https.
pub fn to_https(authority: &str, uri: &http::Uri) -> Response<Body> {
    let host = crate::config::matcher::strip_port(authority);
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let mut r = Response::new(Body::empty());
    *r.status_mut() = http::StatusCode::MOVED_PERMANENTLY;
    if let Ok(v) = http::HeaderValue::from_str(&format!("https://{host}{path}")) {
        r.headers_mut().insert(http::header::LOCATION, v);
    }
    r.headers_mut().insert(http::header::CONTENT_LENGTH, 0.into());
    r
}
