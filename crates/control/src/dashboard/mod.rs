//! The live dashboard, served by the control plane at `/dashboard`: one
//! page and its script and style, embedded in the binary (no CDN, works
//! offline), drawing what the read API says (`/debug/stats`, `/debug/proxies`,
//! `/debug/certs`, `/debug/health`, `/debug/config`) and polling it.

use bytes::Bytes;
use http_body_util::Full;
use hyper::Response;
use hyper::header::{CONTENT_TYPE, HeaderValue};

const INDEX: &str = include_str!("index.html");
const APP: &str = include_str!("app.js");
const STYLE: &str = include_str!("style.css");

/// The asset at `/dashboard/{name}` (`""` is the page), or None.
pub fn asset(name: &str) -> Option<Response<Full<Bytes>>> {
    let (body, ctype) = match name {
        "" | "index.html" => (INDEX, "text/html; charset=utf-8"),
        "app.js" => (APP, "text/javascript; charset=utf-8"),
        "style.css" => (STYLE, "text/css; charset=utf-8"),
        _ => return None,
    };
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(ctype));
    // Only this origin's script, style and API: a value shown on the page
    // can never load or run anything else.
    h.insert(
        "content-security-policy",
        HeaderValue::from_static("default-src 'self'; img-src 'self' data:; frame-ancestors 'none'"),
    );
    h.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    Some(r)
}
