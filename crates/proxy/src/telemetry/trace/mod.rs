//! Distributed tracing: a request's place in its trace (`context`, read
//! from and written to its headers) and its span, exported over OTLP
//! (`export`). The decision and the span are made on the request path
//! (`crate::http::observe`); nothing here waits on a collector.

pub mod context;
mod export;

pub use export::{Attr, Exporter, Exporters, QUEUE_SPANS, Resolver, Span};

/// A new id: random and never zero (zero means none to both formats).
pub fn new_id() -> u64 {
    loop {
        let id = rand::random::<u64>();
        if id != 0 {
            return id;
        }
    }
}

/// A new trace id.
pub fn new_trace_id() -> u128 {
    (u128::from(new_id()) << 64) | u128::from(rand::random::<u64>())
}

/// A version-4 UUID, for a request that arrives without `x-request-id`.
pub fn new_request_id() -> String {
    let v = (new_trace_id() & !(0xf << 76) & !(0x3 << 62)) | (0x4 << 76) | (0x2 << 62);
    let h = format!("{v:032x}");
    format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
}

#[cfg(test)]
mod tests {
    #[test]
    fn request_ids_are_uuid_v4() {
        let id = super::new_request_id();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4", "{id}");
        assert!(matches!(&id[19..20], "8" | "9" | "a" | "b"), "{id}");
        assert_ne!(id, super::new_request_id());
    }
}
