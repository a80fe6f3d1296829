//! Cross-origin requests on a route with a CORS policy (Envoy's CORS
//! filter): a preflight from an allowed origin is answered here; an actual
//! request from one gets the allow headers on whatever answers it.

use super::body::ProxyBody as Body;
use crate::config::route::cors::Cors;
use http::header::{
    ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE, ACCESS_CONTROL_REQUEST_METHOD,
    CONTENT_LENGTH, ORIGIN,
};
use http::{HeaderMap, HeaderValue, Method};
use hyper::Response;

/// What the policy makes of a request.
pub enum Step {
    /// Not a cross-origin request this policy allows: it goes on untouched.
    Pass,
    /// The proxy answers (a preflight).
    Answer(Response<Body>),
    /// An allowed cross-origin request: its answer gets the allow headers
    /// for this origin. Boxed: the request future holds it while it waits,
    /// and most requests are not cross-origin.
    Allow(Box<HeaderValue>),
}

pub fn on_request(cors: &Cors, method: &Method, headers: &HeaderMap) -> Step {
    let Some(origin) = headers.get(ORIGIN).filter(|o| !o.is_empty()) else { return Step::Pass };
    let preflight =
        method == Method::OPTIONS && headers.get(ACCESS_CONTROL_REQUEST_METHOD).is_some_and(|m| !m.is_empty());
    if !origin.to_str().is_ok_and(|o| cors.allows(o)) {
        if preflight && !cors.forward_not_matching_preflights {
            return Step::Answer(empty_ok());
        }
        return Step::Pass;
    }
    if !preflight {
        return Step::Allow(Box::new(origin.clone()));
    }
    let mut resp = empty_ok();
    let h = resp.headers_mut();
    h.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
    if cors.allow_credentials {
        h.insert(ACCESS_CONTROL_ALLOW_CREDENTIALS, HeaderValue::from_static("true"));
    }
    for (name, value) in [
        (ACCESS_CONTROL_ALLOW_METHODS, &cors.allow_methods),
        (ACCESS_CONTROL_ALLOW_HEADERS, &cors.allow_headers),
        (ACCESS_CONTROL_MAX_AGE, &cors.max_age),
    ] {
        if let Some(v) = value {
            h.insert(name, v.clone());
        }
    }
    Step::Answer(resp)
}

/// The allow headers on the answer to an allowed cross-origin request.
pub fn on_response(cors: &Cors, origin: HeaderValue, headers: &mut HeaderMap) {
    headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    if cors.allow_credentials {
        headers.insert(ACCESS_CONTROL_ALLOW_CREDENTIALS, HeaderValue::from_static("true"));
    }
    if let Some(v) = &cors.expose_headers {
        headers.insert(ACCESS_CONTROL_EXPOSE_HEADERS, v.clone());
    }
}

fn empty_ok() -> Response<Body> {
    let mut r = Response::new(Body::empty());
    r.headers_mut().insert(CONTENT_LENGTH, 0.into());
    r
}
