//! A request's place in a trace, read from and written to its headers:
//! W3C `traceparent` (with `tracestate` left as it came), B3 in its
//! single `b3` header and its `x-b3-*` headers. A request carrying either
//! keeps its trace through any hop; the proxy writes both, so an app that
//! forwards only one format still stays in the trace.

use http::{HeaderMap, HeaderName, HeaderValue};

// Names made once: a `&str` key is parsed on every lookup.
const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const B3: HeaderName = HeaderName::from_static("b3");
const B3_TRACE: HeaderName = HeaderName::from_static("x-b3-traceid");
const B3_SPAN: HeaderName = HeaderName::from_static("x-b3-spanid");
const B3_PARENT: HeaderName = HeaderName::from_static("x-b3-parentspanid");
const B3_SAMPLED: HeaderName = HeaderName::from_static("x-b3-sampled");
const B3_FLAGS: HeaderName = HeaderName::from_static("x-b3-flags");

/// Where a request came from in its trace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Parent {
    pub trace_id: u128,
    pub span_id: u64,
    /// The caller's sampling decision, when it made one.
    pub sampled: Option<bool>,
}

fn hex_u128(s: &str) -> Option<u128> {
    // B3 allows 64-bit trace ids: they are the low half.
    (matches!(s.len(), 16 | 32) && s.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| u128::from_str_radix(s, 16).ok())
        .flatten()
        .filter(|v| *v != 0)
}

fn hex_u64(s: &str) -> Option<u64> {
    (s.len() == 16 && s.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| u64::from_str_radix(s, 16).ok())
        .flatten()
        .filter(|v| *v != 0)
}

/// `00-<trace>-<parent>-<flags>`; another version is read the same way
/// (W3C: a reader of version 00 takes the first four fields).
fn traceparent(s: &str) -> Option<Parent> {
    let mut parts = s.split('-');
    let (version, trace, span, flags) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if version.len() != 2 || version == "ff" || trace.len() != 32 || flags.len() != 2 {
        return None;
    }
    if version == "00" && parts.next().is_some() {
        return None;
    }
    let flags = u8::from_str_radix(flags, 16).ok()?;
    Some(Parent { trace_id: hex_u128(trace)?, span_id: hex_u64(span)?, sampled: Some(flags & 1 == 1) })
}

/// `<trace>-<span>[-<sampled>[-<parent>]]`; a lone `0`, `1` or `d` is a
/// decision without a context, which the caller gets as none.
fn b3_single(s: &str) -> Option<Parent> {
    let mut parts = s.split('-');
    let (trace, span) = (parts.next()?, parts.next()?);
    let sampled = match parts.next() {
        None => None,
        Some("1" | "d") => Some(true),
        Some("0") => Some(false),
        Some(_) => return None,
    };
    Some(Parent { trace_id: hex_u128(trace)?, span_id: hex_u64(span)?, sampled })
}

/// The trace headers a request carries, found in one pass over its
/// headers: a request has few, and one pass costs less than the nine
/// hashed lookups it replaces (traceparent, b3, x-b3-*, the request ids).
#[derive(Default)]
pub struct Seen<'a> {
    traceparent: Option<&'a str>,
    b3: Option<&'a str>,
    b3_trace: Option<&'a str>,
    b3_span: Option<&'a str>,
    b3_sampled: Option<&'a str>,
    b3_flags: Option<&'a str>,
    /// `x-request-id` is there.
    pub request_id: bool,
    /// `x-client-trace-id` is there (a trace the client forces).
    pub client_trace_id: bool,
}

/// One pass over `h` for the trace headers (the first of each name).
pub fn scan(h: &HeaderMap) -> Seen<'_> {
    let mut s = Seen::default();
    for (name, value) in h {
        let slot = match name.as_str() {
            "traceparent" => &mut s.traceparent,
            "b3" => &mut s.b3,
            "x-b3-traceid" => &mut s.b3_trace,
            "x-b3-spanid" => &mut s.b3_span,
            "x-b3-sampled" => &mut s.b3_sampled,
            "x-b3-flags" => &mut s.b3_flags,
            "x-request-id" => {
                s.request_id = true;
                continue;
            }
            "x-client-trace-id" => {
                s.client_trace_id = true;
                continue;
            }
            _ => continue,
        };
        if slot.is_none() {
            *slot = value.to_str().ok().map(str::trim);
        }
    }
    s
}

impl Seen<'_> {
    /// The trace the request is part of: `traceparent`, else `b3`, else `x-b3-*`.
    pub fn parent(&self) -> Option<Parent> {
        self.traceparent.and_then(traceparent).or_else(|| self.b3.and_then(b3_single)).or_else(|| self.b3_multi())
    }

    fn b3_multi(&self) -> Option<Parent> {
        let trace_id = hex_u128(self.b3_trace?)?;
        let span_id = hex_u64(self.b3_span?)?;
        let sampled = match (self.b3_flags, self.b3_sampled) {
            (Some("1"), _) => Some(true),
            (_, Some("1" | "true")) => Some(true),
            (_, Some("0" | "false")) => Some(false),
            _ => None,
        };
        Some(Parent { trace_id, span_id, sampled })
    }

    /// A sampling decision a caller sent without a trace (`b3: 0`, `x-b3-sampled: 1`).
    pub fn decision_only(&self) -> Option<bool> {
        match self.b3 {
            Some("0") => return Some(false),
            Some("1" | "d") => return Some(true),
            _ => {}
        }
        match self.b3_sampled {
            Some("1" | "true") => Some(true),
            Some("0" | "false") => Some(false),
            _ => None,
        }
    }

    /// Whether the request carries B3 headers.
    pub fn has_b3(&self) -> bool {
        self.b3.is_some() || self.b3_trace.is_some()
    }
}

/// The trace a request is part of (`Seen::parent`).
pub fn extract(h: &HeaderMap) -> Option<Parent> {
    scan(h).parent()
}

/// Each byte's two lowercase hex digits.
const HEX_PAIRS: [[u8; 2]; 256] = {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut t = [[0u8; 2]; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = [DIGITS[i >> 4], DIGITS[i & 0xf]];
        i += 1;
    }
    t
};

/// Lowercase hex of the low `out.len() * 4` bits of `v`, into `out`. Ids
/// are written per request: `format!` costs several times as much, and a
/// digit at a time twice as much as a byte's pair from a table.
pub fn hex(v: u128, out: &mut [u8]) {
    debug_assert!(out.len().is_multiple_of(2) && out.len() <= 32);
    let bytes = v.to_be_bytes();
    let from = 16 - out.len() / 2;
    for (pair, b) in out.chunks_exact_mut(2).zip(&bytes[from..]) {
        pair.copy_from_slice(&HEX_PAIRS[usize::from(*b)]);
    }
}

/// Trace headers for the next hop kept out of the request's own header
/// map: each attempt's request (and each mirror's) gets them as it is
/// built. Added to the map, they would grow it (hyper sizes it to the
/// headers that came) and be copied again into every attempt.
#[derive(Default)]
pub struct NextHop {
    pub request_id: Option<HeaderValue>,
    pub traceparent: Option<HeaderValue>,
}

impl NextHop {
    /// The headers by name, each when set.
    pub fn pairs(&self) -> [(HeaderName, Option<&HeaderValue>); 2] {
        [(REQUEST_ID, self.request_id.as_ref()), (TRACEPARENT, self.traceparent.as_ref())]
    }

    /// Writes them into a request being built from the original's headers
    /// (replacing a `traceparent` that came).
    pub fn write(&self, h: &mut HeaderMap) {
        for (name, value) in self.pairs() {
            if let Some(v) = value {
                h.insert(name, v.clone());
            }
        }
    }
}

/// `traceparent` for span `span_id` of trace `trace_id`, in a value whose
/// clones share one allocation.
pub fn traceparent_value(trace_id: u128, span_id: u64, sampled: bool) -> HeaderValue {
    let mut tp = *b"00-00000000000000000000000000000000-0000000000000000-00";
    hex(trace_id, &mut tp[3..35]);
    hex(u128::from(span_id), &mut tp[36..52]);
    tp[54] = if sampled { b'1' } else { b'0' };
    shared(tp)
}

/// A value of hex digits and dashes whose clones share it: one allocation,
/// where a copied value is copied again by its first clone.
pub fn shared<const N: usize>(bytes: [u8; N]) -> HeaderValue {
    HeaderValue::from_maybe_shared(bytes::Bytes::from_owner(bytes)).unwrap_or_else(|_| HeaderValue::from_static("0"))
}

fn value(bytes: &[u8]) -> HeaderValue {
    // Hex digits and dashes only: always a valid header value.
    HeaderValue::from_bytes(bytes).unwrap_or_else(|_| HeaderValue::from_static("0"))
}

/// Writes the request's place for the next hop: span `span_id` of trace
/// `trace_id`, whose parent is `parent`. W3C always; B3 too with `b3` (the
/// request came with it, or goes to an app, whose tracer may read only B3).
pub fn inject(h: &mut HeaderMap, trace_id: u128, span_id: u64, parent: Option<u64>, sampled: bool, b3: bool) {
    let flag = if sampled { b'1' } else { b'0' };
    let mut tp = *b"00-00000000000000000000000000000000-0000000000000000-00";
    hex(trace_id, &mut tp[3..35]);
    hex(u128::from(span_id), &mut tp[36..52]);
    tp[54] = flag;
    h.insert(TRACEPARENT, value(&tp));
    if !b3 {
        return;
    }
    h.insert(B3_TRACE, value(&tp[3..35]));
    h.insert(B3_SPAN, value(&tp[36..52]));
    h.insert(B3_SAMPLED, HeaderValue::from_static(if sampled { "1" } else { "0" }));
    h.remove(B3_FLAGS);
    match parent {
        Some(p) => {
            let mut buf = [0u8; 16];
            hex(u128::from(p), &mut buf);
            h.insert(B3_PARENT, value(&buf))
        }
        None => h.remove(B3_PARENT),
    };
    if h.contains_key(&B3) {
        let mut single = [b'-'; 51];
        single[..32].copy_from_slice(&tp[3..35]);
        single[33..49].copy_from_slice(&tp[36..52]);
        single[50] = flag;
        h.insert(B3, value(&single));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs.iter().map(|(k, v)| (http::HeaderName::from_static(k), HeaderValue::from_static(v))).collect()
    }

    #[test]
    fn hex_writes_the_low_bits_of_a_number() {
        let mut long = [0u8; 32];
        hex(0x0af7651916cd43dd8448eb211c80319c, &mut long);
        assert_eq!(&long, b"0af7651916cd43dd8448eb211c80319c");
        let mut short = [0u8; 16];
        hex(0x0af7651916cd43dd8448eb211c80319c, &mut short);
        assert_eq!(&short, b"8448eb211c80319c");
    }

    #[test]
    fn reads_w3c_then_b3_single_then_b3_headers() {
        let w3c = headers(&[("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")]);
        assert_eq!(
            extract(&w3c),
            Some(Parent {
                trace_id: 0x0af7651916cd43dd8448eb211c80319c,
                span_id: 0xb7ad6b7169203331,
                sampled: Some(true)
            })
        );
        let single = headers(&[("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-0-05e3ac9a4f6e3b90")]);
        let p = extract(&single).unwrap();
        assert_eq!((p.span_id, p.sampled), (0xe457b5a2e4d86bd1, Some(false)));
        let multi =
            headers(&[("x-b3-traceid", "463ac35c9f6413ad"), ("x-b3-spanid", "a2fb4a1d1a96d312"), ("x-b3-flags", "1")]);
        let p = extract(&multi).unwrap();
        assert_eq!((p.trace_id, p.sampled), (0x463ac35c9f6413ad, Some(true)), "a 64-bit id; debug means sampled");
        assert_eq!(scan(&headers(&[("b3", "0")])).decision_only(), Some(false));
    }

    #[test]
    fn refuses_malformed_contexts() {
        for bad in [
            "00-00000000000000000000000000000000-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
            "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra",
            "00-xyz-b7ad6b7169203331-01",
        ] {
            let h = [(http::header::HeaderName::from_static("traceparent"), HeaderValue::from_static(bad))];
            assert_eq!(extract(&h.into_iter().collect()), None, "{bad}");
        }
    }

    #[test]
    fn writes_both_formats_and_rewrites_a_single_b3() {
        let mut h = headers(&[("b3", "1"), ("x-b3-flags", "1"), ("tracestate", "vendor=x")]);
        let b3 = scan(&h).has_b3();
        inject(&mut h, 0xabc, 0x1234, Some(0x99), true, b3);
        assert_eq!(h["traceparent"], "00-00000000000000000000000000000abc-0000000000001234-01");
        assert_eq!(h["x-b3-traceid"], "00000000000000000000000000000abc");
        assert_eq!(
            (&h["x-b3-spanid"], &h["x-b3-parentspanid"]),
            (&"0000000000001234".parse().unwrap(), &"0000000000000099".parse().unwrap())
        );
        assert_eq!(h["b3"], "00000000000000000000000000000abc-0000000000001234-1");
        assert_eq!(h["tracestate"], "vendor=x", "left as it came");
        assert!(!h.contains_key("x-b3-flags"));
        assert_eq!(extract(&h).unwrap(), Parent { trace_id: 0xabc, span_id: 0x1234, sampled: Some(true) });
        let mut w3c_only = HeaderMap::new();
        inject(&mut w3c_only, 0xabc, 0x1234, None, false, false);
        assert_eq!(w3c_only.len(), 1, "no B3 unless asked");
        assert_eq!(w3c_only["traceparent"], "00-00000000000000000000000000000abc-0000000000001234-00");
    }
}
