//! Distributed tracing: a request's place in its trace (`context`, read
//! from and written to its headers) and its span, exported over OTLP
//! (`export`). The decision and the span are made on the request path
//! (`crate::http::observe`); nothing here waits on a collector.

pub mod context;
mod export;

pub use export::{Attr, Exporter, Exporters, HttpTarget, Resolver, Span, Target, canonical_service};

/// One attempt of a request whose span is reported: a retried request's
/// span gets a child span for each.
pub struct Tried {
    pub start: std::time::SystemTime,
    pub end: std::time::SystemTime,
    pub endpoint: std::net::SocketAddr,
    /// The upstream's status, or why the attempt failed.
    pub answer: Result<u16, String>,
}

/// A new id: random and never zero (zero means none to both formats).
pub fn new_id() -> u64 {
    loop {
        let id = crate::rng::u64();
        if id != 0 {
            return id;
        }
    }
}

/// A new trace id.
pub fn new_trace_id() -> u128 {
    (u128::from(new_id()) << 64) | u128::from(crate::rng::u64())
}

/// A version-4 UUID, for a request that arrives without `x-request-id`.
pub fn new_request_id() -> [u8; 36] {
    let v = (new_trace_id() & !(0xf << 76) & !(0x3 << 62)) | (0x4 << 76) | (0x2 << 62);
    let mut h = [0u8; 32];
    context::hex(v, &mut h);
    let mut out = [b'-'; 36];
    for (from, to) in [(0..8, 0), (8..12, 9), (12..16, 14), (16..20, 19), (20..32, 24)] {
        out[to..to + from.len()].copy_from_slice(&h[from]);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn request_ids_are_uuid_v4() {
        let id = String::from_utf8(super::new_request_id().to_vec()).unwrap();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4", "{id}");
        assert!(matches!(&id[19..20], "8" | "9" | "a" | "b"), "{id}");
        assert_eq!(id.split('-').map(str::len).collect::<Vec<_>>(), [8, 4, 4, 4, 12]);
        assert_ne!(id.as_bytes(), super::new_request_id());
    }
}
