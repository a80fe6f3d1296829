//! The body of a request sent upstream: in memory (a buffered body that
//! may be replayed, or none) or streamed from downstream, perhaps copied
//! as it goes (`Tee`) so that a retry can send it again.

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
    /// Streamed, and copied into the tee while it fits (the tee holds the
    /// downstream connection's context, as `Streamed` does).
    Teed(Incoming, Arc<Tee>),
}

/// A copy of a request body streamed upstream, as Envoy keeps one for
/// retries: a body of unknown length (gRPC's, chunked) is sent as it comes,
/// never held back, and can be sent again once it ended within `limit`.
/// A body past the limit, or with trailers, cannot be.
pub struct Tee {
    _hold: Arc<dyn std::any::Any + Send + Sync>,
    limit: u64,
    state: parking_lot::Mutex<TeeState>,
}

enum TeeState {
    Open(Vec<Bytes>, u64),
    Done(Bytes),
    Over,
}

impl Tee {
    pub fn new(limit: u64, hold: Arc<dyn std::any::Any + Send + Sync>) -> Arc<Tee> {
        Arc::new(Tee { _hold: hold, limit, state: parking_lot::Mutex::new(TeeState::Open(Vec::new(), 0)) })
    }

    fn push(&self, data: &Bytes) {
        let mut s = self.state.lock();
        if let TeeState::Open(parts, len) = &mut *s {
            *len += data.len() as u64;
            if *len > self.limit {
                *s = TeeState::Over;
            } else {
                parts.push(data.clone());
            }
        }
    }

    fn end(&self) {
        let mut s = self.state.lock();
        if let TeeState::Open(parts, len) = &mut *s {
            let mut whole = bytes::BytesMut::with_capacity(*len as usize);
            for p in parts.iter() {
                whole.extend_from_slice(p);
            }
            *s = TeeState::Done(whole.freeze());
        }
    }

    fn spoil(&self) {
        *self.state.lock() = TeeState::Over;
    }

    /// The whole body, once it ended within the limit.
    pub fn replay(&self) -> Option<Bytes> {
        match &*self.state.lock() {
            TeeState::Done(b) => Some(b.clone()),
            _ => None,
        }
    }
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
            RequestBody::Teed(i, tee) => {
                let polled = Pin::new(&mut *i).poll_frame(cx);
                match &polled {
                    Poll::Ready(Some(Ok(f))) => match f.data_ref() {
                        Some(d) => {
                            tee.push(d);
                            // The sender may stop at `is_end_stream`, not polling again.
                            if i.is_end_stream() {
                                tee.end();
                            }
                        }
                        None => tee.spoil(),
                    },
                    Poll::Ready(Some(Err(_))) => tee.spoil(),
                    Poll::Ready(None) => tee.end(),
                    Poll::Pending => {}
                }
                polled.map_err(Into::into)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            RequestBody::Full(b) => b.is_none(),
            RequestBody::Streamed(i, _) => i.is_end_stream(),
            RequestBody::Teed(i, tee) => {
                let ended = i.is_end_stream();
                if ended {
                    tee.end();
                }
                ended
            }
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            RequestBody::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            RequestBody::Streamed(i, _) | RequestBody::Teed(i, _) => i.size_hint(),
        }
    }
}
