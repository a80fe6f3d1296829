//! What every control API request passes before it is handled: a `Host`
//! that names this server, a JSON body on every call that changes
//! something, a body within the size limit.
//!
//! A web page the operator opens can send requests to 127.0.0.1:15014. A
//! cross-site form posts `text/plain` or a form type, and a page that
//! rebinds its own DNS name to 127.0.0.1 sends that name as `Host`:
//! refusing both keeps a browser from driving the mesh.

use super::{Resp, error};
use crate::hub::Hub;
use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};

/// Admits a request (`None`) or answers why not.
pub fn refuse(req: &Request<Incoming>, hub: &Hub) -> Option<Resp> {
    let host = req.headers().get(hyper::header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
    if !host_is_ours(host, &hub.limits.api_hosts) {
        hub.metrics.refused("host");
        return Some(error(
            StatusCode::FORBIDDEN,
            &format!(
                "Host `{host}` is not this control plane's: address it by IP or as localhost, or name it \
                 with --api-host (other names are refused so that a web page cannot rebind its own to it)"
            ),
        ));
    }
    if let Some(origin) = req.headers().get(hyper::header::ORIGIN)
        && origin.to_str().ok().and_then(|o| o.split_once("://")).is_none_or(|(_, o)| o != host)
    {
        hub.metrics.refused("origin");
        return Some(error(
            StatusCode::FORBIDDEN,
            &format!(
                "Origin `{}` is not this control plane's (`{host}`): requests from web pages are refused; \
                 a client of the API sends no Origin, or this one",
                origin.to_str().unwrap_or("?")
            ),
        ));
    }
    let changes = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if changes && !is_json(req) {
        hub.metrics.refused("content_type");
        return Some(error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "a request that changes something must say `Content-Type: application/json`",
        ));
    }
    None
}

/// `localhost`, an IP address or one of `names`, with or without a port.
fn host_is_ours(host: &str, names: &[String]) -> bool {
    let name = match host.rsplit_once(':') {
        // `[::1]:15014`, `127.0.0.1:15014`, `localhost:15014`; a bare IPv6 address has more colons.
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) && !name.ends_with(':') => name,
        _ => host,
    };
    let name = name.trim_start_matches('[').trim_end_matches(']');
    name.eq_ignore_ascii_case("localhost")
        || name.parse::<std::net::IpAddr>().is_ok()
        || names.iter().any(|n| n.eq_ignore_ascii_case(name))
}

fn is_json(req: &Request<Incoming>) -> bool {
    req.headers()
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
}

/// A request's whole body, up to the limit, or the error that says why not.
pub async fn body(req: Request<Incoming>, hub: &Hub) -> Result<Bytes, Resp> {
    let limit = hub.limits.max_request_bytes;
    match Limited::new(req.into_body(), limit).collect().await {
        Ok(b) => Ok(b.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            hub.metrics.refused("request_bytes");
            Err(error(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("the request body is over {limit} bytes (raise it with --max-request-bytes)"),
            ))
        }
        Err(e) => Err(error(StatusCode::BAD_REQUEST, &format!("cannot read the request body: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::host_is_ours;

    #[test]
    fn hosts_by_ip_or_localhost_are_ours_and_names_are_not() {
        for ok in ["127.0.0.1:15014", "127.0.0.1", "localhost:15014", "LOCALHOST", "[::1]:15014", "::1", "10.1.2.3:80"]
        {
            assert!(host_is_ours(ok, &[]), "{ok}");
        }
        for bad in ["", "evil.example:15014", "evil.example", "127.0.0.1.nip.io:15014", "localhost.evil:1"] {
            assert!(!host_is_ours(bad, &[]), "{bad}");
        }
        let named = ["control.mesh.internal".to_owned()];
        assert!(host_is_ours("control.mesh.internal:15014", &named));
        assert!(!host_is_ours("control.mesh.internal.evil:15014", &named));
    }
}
