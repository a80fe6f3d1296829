//! The body of every response the proxy sends downstream: one it made
//! (errors, direct responses) or the upstream's, streamed. An enum rather
//! than a boxed trait object, so a response allocates no body box.

use crate::upstream::pool::PooledBody;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::task::{Context, Poll};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

pub enum ProxyBody {
    /// A body in memory (errors the proxy writes, direct responses).
    Full(Option<Bytes>),
    /// A response streamed from upstream (returns its connection to the pool).
    Upstream(PooledBody),
}

impl ProxyBody {
    pub fn full(b: Bytes) -> Self {
        ProxyBody::Full((!b.is_empty()).then_some(b))
    }

    pub fn empty() -> Self {
        ProxyBody::Full(None)
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            ProxyBody::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            ProxyBody::Upstream(u) => Pin::new(u).poll_frame(cx).map_err(Into::into),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ProxyBody::Full(b) => b.is_none(),
            ProxyBody::Upstream(u) => u.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ProxyBody::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            ProxyBody::Upstream(u) => u.size_hint(),
        }
    }
}
