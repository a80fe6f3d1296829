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
/// retries and mirrors: a body of unknown length (gRPC's, chunked) is sent
/// as it comes, never held back, and can be sent again once it ended
/// within `limit`. A body past the limit, or with trailers, cannot be.
pub struct Tee {
    _hold: Arc<dyn std::any::Any + Send + Sync>,
    limit: u64,
    /// The parts so far and their length; None once it ended or spoiled.
    parts: parking_lot::Mutex<Option<(Vec<Bytes>, u64)>>,
    /// How it ended, for mirrors waiting on it.
    done: tokio::sync::watch::Sender<Teed>,
}

/// How a tee stands.
#[derive(Clone)]
pub enum Teed {
    Open,
    Whole(Bytes),
    Spoiled,
}

impl Tee {
    pub fn new(limit: u64, hold: Arc<dyn std::any::Any + Send + Sync>) -> Arc<Tee> {
        let parts = parking_lot::Mutex::new(Some((Vec::new(), 0)));
        Arc::new(Tee { _hold: hold, limit, parts, done: tokio::sync::watch::Sender::new(Teed::Open) })
    }

    fn push(&self, data: &Bytes) {
        let mut parts = self.parts.lock();
        if let Some((v, len)) = &mut *parts {
            *len += data.len() as u64;
            if *len > self.limit {
                *parts = None;
                self.done.send_replace(Teed::Spoiled);
            } else {
                v.push(data.clone());
            }
        }
    }

    fn end(&self) {
        if let Some((v, len)) = self.parts.lock().take() {
            let mut whole = bytes::BytesMut::with_capacity(len as usize);
            for p in &v {
                whole.extend_from_slice(p);
            }
            self.done.send_replace(Teed::Whole(whole.freeze()));
        }
    }

    fn spoil(&self) {
        if self.parts.lock().take().is_some() {
            self.done.send_replace(Teed::Spoiled);
        }
    }

    /// The whole body, once it ended within the limit.
    pub fn replay(&self) -> Option<Bytes> {
        match &*self.done.borrow() {
            Teed::Whole(b) => Some(b.clone()),
            _ => None,
        }
    }

    /// How it ends, for one that waits (a mirror); closed when the tee goes.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<Teed> {
        self.done.subscribe()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tee_keeps_a_body_that_ended_within_its_limit() {
        let hold: Arc<dyn std::any::Any + Send + Sync> = Arc::new(());
        let tee = Tee::new(10, hold.clone());
        let mut waiting = tee.subscribe();
        tee.push(&Bytes::from_static(b"hello "));
        assert!(tee.replay().is_none(), "not before it ends");
        assert!(matches!(&*waiting.borrow_and_update(), Teed::Open));
        tee.push(&Bytes::from_static(b"you"));
        tee.end();
        assert_eq!(tee.replay().as_deref(), Some(&b"hello you"[..]));
        assert!(matches!(&*waiting.borrow_and_update(), Teed::Whole(b) if b == "hello you"));

        // Past the limit, or with trailers (spoiled), it cannot be sent again.
        let tee = Tee::new(4, hold.clone());
        tee.push(&Bytes::from_static(b"hello"));
        tee.end();
        assert!(tee.replay().is_none());
        let tee = Tee::new(10, hold);
        let waiting = tee.subscribe();
        tee.push(&Bytes::from_static(b"a"));
        tee.spoil();
        tee.end();
        assert!(tee.replay().is_none());
        assert!(matches!(&*waiting.borrow(), Teed::Spoiled));
    }
}
