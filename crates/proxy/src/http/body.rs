//! The body of every response the proxy sends downstream: one it made
//! (errors, direct responses) or the upstream's, streamed. An enum rather
//! than a boxed trait object, so a response allocates no body box (but a
//! gRPC call's whose record waits for its trailers: `Watched`).

use crate::upstream::pool::PooledBody;
use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::task::{Context, Poll};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

pub enum ProxyBody {
    /// A body in memory (errors the proxy writes, direct responses).
    Full(Option<Bytes>),
    /// A response streamed from upstream (returns its connection to the pool).
    Upstream(PooledBody),
    /// A gRPC response streamed from upstream, its record made at its end.
    Watched(Box<Watched>),
}

/// What a watched body's end finishes (a request's record), given the
/// trailers it ended with and the bytes it carried.
pub trait Finish: Send {
    fn finish(&mut self, trailers: Option<&HeaderMap>, body_bytes: u64);
}

/// An upstream body whose end (trailers, its last frame, or its drop when
/// the call is cut short) calls `end` once. Boxed with `end` inline: one
/// allocation.
pub struct Watched<T: ?Sized + Finish = dyn Finish> {
    body: PooledBody,
    bytes: u64,
    done: bool,
    end: T,
}

impl<T: Finish> Watched<T> {
    pub fn new(body: PooledBody, end: T) -> Self {
        Watched { body, bytes: 0, done: false, end }
    }
}

impl<T: ?Sized + Finish> Watched<T> {
    fn end(&mut self, trailers: Option<&HeaderMap>) {
        if !std::mem::replace(&mut self.done, true) {
            self.end.finish(trailers, self.bytes);
        }
    }

    fn poll_frame(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx).map_err(Into::into);
        match &polled {
            Poll::Ready(Some(Ok(f))) => match (f.data_ref(), f.trailers_ref()) {
                (Some(d), _) => self.bytes += d.len() as u64,
                (None, trailers) => self.end(trailers),
            },
            Poll::Ready(_) => self.end(None),
            Poll::Pending => {}
        }
        polled
    }
}

impl<T: ?Sized + Finish> Drop for Watched<T> {
    fn drop(&mut self) {
        self.end(None);
    }
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
            ProxyBody::Watched(w) => w.poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ProxyBody::Full(b) => b.is_none(),
            ProxyBody::Upstream(u) => u.is_end_stream(),
            ProxyBody::Watched(w) => w.body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ProxyBody::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            ProxyBody::Upstream(u) => u.size_hint(),
            ProxyBody::Watched(w) => w.body.size_hint(),
        }
    }
}
