//! Headers the proxy adds, removes or reads on every request: the
//! caller's identity (`x-weft-source`, `x-forwarded-client-cert`) and the
//! hop-by-hop headers that stay on their hop.

use crate::config::listener::{ClientCert, Direction, HttpListener};
use crate::conn::ConnCtx;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Request, Version};

/// Header the outbound side adds so the inbound side can name the caller in
/// its metrics (`workload.namespace`); removed before the application sees it.
/// A `HeaderName` constant: inserting a `&str` name converts (and allocates) per request.
pub const SOURCE_HEADER: http::HeaderName = http::HeaderName::from_static("x-weft-source");

const XFF: http::HeaderName = http::HeaderName::from_static("x-forwarded-for");

/// Envoy's header naming the client certificates a request came through.
pub const XFCC: http::HeaderName = http::HeaderName::from_static("x-forwarded-client-cert");

/// A request's headers about its client, as its listener says
/// (`HttpListener::client_cert`, `remote_address`): the caller's
/// certificate in `x-forwarded-client-cert` on mutual TLS, that header
/// removed wherever a client could forge it, the client's address in
/// `x-forwarded-for` at the edge. On inbound, returns the caller's name
/// header (`SOURCE_HEADER`), taken off.
pub fn client_headers(ctx: &ConnCtx, hl: &HttpListener, h: &mut http::HeaderMap) -> Option<http::HeaderValue> {
    let ours = ctx.client_cert.as_ref();
    match (hl.client_cert, ours) {
        (ClientCert::AlwaysForwardOnly, _) | (ClientCert::ForwardOnly, Some(_)) => {}
        (ClientCert::AppendForward, Some(ours)) => {
            let joined = match h.get(&XFCC) {
                Some(prev) => {
                    let mut v = Vec::with_capacity(prev.len() + 1 + ours.len());
                    v.extend_from_slice(prev.as_bytes());
                    v.push(b',');
                    v.extend_from_slice(ours.as_bytes());
                    http::HeaderValue::from_bytes(&v).unwrap_or_else(|_| ours.clone())
                }
                None => ours.clone(),
            };
            h.insert(XFCC, joined);
        }
        (ClientCert::SanitizeSet, Some(ours)) => {
            h.insert(XFCC, ours.clone());
        }
        _ => {
            h.remove(&XFCC);
        }
    }
    if hl.remote_address {
        append_forwarded_for(ctx, h);
    }
    match hl.direction {
        Direction::Inbound => h.remove(&SOURCE_HEADER),
        Direction::Outbound => None,
    }
}

/// Envoy's `use_remote_address`: the peer's address appended to
/// `x-forwarded-for`, and `x-forwarded-proto` set to how it connected.
fn append_forwarded_for(ctx: &ConnCtx, h: &mut http::HeaderMap) {
    let ip = ctx.peer_ip.get_or_init(|| {
        let text = ctx.peer.ip().to_canonical().to_string();
        HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static("unknown"))
    });
    let value = match h.get(XFF) {
        Some(prev) if !prev.is_empty() => {
            let mut v = Vec::with_capacity(prev.len() + 1 + ip.len());
            v.extend_from_slice(prev.as_bytes());
            v.extend_from_slice(b",");
            v.extend_from_slice(ip.as_bytes());
            HeaderValue::from_bytes(&v).ok()
        }
        _ => Some(ip.clone()),
    };
    if let Some(v) = value {
        h.insert(XFF, v);
    }
    let scheme = if ctx.secure { "https" } else { "http" };
    h.insert(header::HeaderName::from_static("x-forwarded-proto"), HeaderValue::from_static(scheme));
}

/// Hop-by-hop headers (RFC 9110 §7.6.1), in a static so that no copy is
/// built and dropped per message. The first two are kept when upgrading
/// (`UPGRADING`); `te` is kept when it is `trailers` (gRPC needs it).
static HOP_BY_HOP: [header::HeaderName; 8] = [
    header::CONNECTION,
    header::UPGRADE,
    header::TE,
    header::HeaderName::from_static("keep-alive"),
    header::HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TRANSFER_ENCODING,
];
const UPGRADING: u8 = 0b11;
const TE_AT: usize = 2;
/// The lengths of those names, as bits: most names are passed over on their
/// length alone.
const HOP_BY_HOP_LENGTHS: u32 = 1 << 10 | 1 << 7 | 1 << 2 | 1 << 16 | 1 << 18 | 1 << 19 | 1 << 17;

/// Removes hop-by-hop headers from a request or a response: those of
/// `HOP_BY_HOP` and those its `Connection` names.
pub fn strip_hop_by_hop(h: &mut HeaderMap, upgrading: bool) {
    // One pass over the message's few names finds which are present; only
    // those are removed, each removal being a hashed lookup. Most requests
    // carry none, most responses `connection` alone.
    let mut present = 0u8;
    for n in h.keys() {
        let len = n.as_str().len();
        if len < 32
            && HOP_BY_HOP_LENGTHS & (1 << len) != 0
            && let Some(i) = HOP_BY_HOP.iter().position(|x| x == n)
        {
            present |= 1 << i;
        }
    }
    if present == 0 {
        return;
    }
    if present & 1 != 0 {
        // Names `Connection` lists beyond the standard ones (`close` is an
        // option, not a name); parsed only when there are any.
        let mut named: smallvec::SmallVec<[header::HeaderName; 2]> = smallvec::SmallVec::new();
        let mut note = |v: &HeaderValue| {
            // What servers send nearly always, and names nothing.
            let b = v.as_bytes();
            if b.eq_ignore_ascii_case(b"keep-alive") || b.eq_ignore_ascii_case(b"close") {
                return;
            }
            for t in v.to_str().unwrap_or("").split(',').map(str::trim) {
                let known = t.is_empty()
                    || t.eq_ignore_ascii_case("close")
                    || HOP_BY_HOP.iter().any(|x| t.eq_ignore_ascii_case(x.as_str()));
                if !known && let Ok(n) = header::HeaderName::from_bytes(t.as_bytes()) {
                    named.push(n);
                }
            }
        };
        if upgrading {
            h.get_all(header::CONNECTION).iter().for_each(&mut note);
        } else if let header::Entry::Occupied(e) = h.entry(header::CONNECTION) {
            // Removed as it is read: one lookup.
            e.remove_entry_mult().1.for_each(|v| note(&v));
            present &= !1;
        }
        for n in named {
            h.remove(n);
        }
    }
    for (i, name) in HOP_BY_HOP.iter().enumerate() {
        if present & (1 << i) == 0 {
            continue;
        }
        let keep = match i {
            TE_AT => h.get(name).is_some_and(|v| v.as_bytes() == b"trailers"),
            _ => upgrading && UPGRADING & (1 << i) != 0,
        };
        if !keep {
            h.remove(name);
        }
    }
}

pub fn is_upgrade<B>(req: &Request<B>) -> bool {
    req.version() == Version::HTTP_11
        && req.headers().contains_key(header::UPGRADE)
        && req
            .headers()
            .get(header::CONNECTION)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.to_ascii_lowercase().contains("upgrade"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        pairs.iter().map(|(k, v)| (k.parse().unwrap(), HeaderValue::from_str(v).unwrap())).collect()
    }

    #[test]
    fn every_hop_by_hop_name_passes_the_length_filter() {
        for n in &HOP_BY_HOP {
            assert_ne!(HOP_BY_HOP_LENGTHS & (1 << n.as_str().len()), 0, "{n}");
        }
    }

    #[test]
    fn hop_by_hop_headers_and_those_connection_names_are_removed() {
        let mut h = headers(&[
            ("connection", "keep-alive, x-hop"),
            ("keep-alive", "timeout=5"),
            ("x-hop", "1"),
            ("proxy-connection", "keep-alive"),
            ("te", "gzip"),
            ("x-end", "kept"),
            ("host", "a"),
        ]);
        strip_hop_by_hop(&mut h, false);
        assert_eq!(h, headers(&[("x-end", "kept"), ("host", "a")]));

        let mut h = headers(&[("te", "trailers"), ("upgrade", "websocket"), ("connection", "upgrade")]);
        strip_hop_by_hop(&mut h, true);
        assert_eq!(h, headers(&[("te", "trailers"), ("upgrade", "websocket"), ("connection", "upgrade")]));

        // HTTP/1.1 senders of `te` list it in `Connection`; `trailers` stays.
        let mut h = headers(&[("connection", "TE, close"), ("te", "trailers"), ("x-end", "kept")]);
        strip_hop_by_hop(&mut h, false);
        assert_eq!(h, headers(&[("te", "trailers"), ("x-end", "kept")]));

        let plain = headers(&[("host", "a"), ("accept", "*/*"), ("user-agent", "t")]);
        let mut h = plain.clone();
        strip_hop_by_hop(&mut h, false);
        assert_eq!(h, plain);
    }
}
