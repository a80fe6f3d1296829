//! The body of a request sent upstream: in memory (a buffered body that
//! may be replayed, or none) or streamed from downstream.

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// An enum rather than a boxed trait object, so a request allocates no body box.
pub enum RequestBody {
    Full(Option<Bytes>),
    /// Streamed from downstream, with a hold on the downstream connection's
    /// context: while it is held the connection has a request in flight
    /// (`crate::listener::idle`), though the response may have gone already.
    Streamed(Incoming, Arc<dyn std::any::Any + Send + Sync>),
}

impl RequestBody {
    pub fn full(b: Bytes) -> Self {
        RequestBody::Full((!b.is_empty()).then_some(b))
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            RequestBody::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            RequestBody::Streamed(i, _) => Pin::new(i).poll_frame(cx).map_err(Into::into),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            RequestBody::Full(b) => b.is_none(),
            RequestBody::Streamed(i, _) => i.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            RequestBody::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            RequestBody::Streamed(i, _) => i.size_hint(),
        }
    }
}
