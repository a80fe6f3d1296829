//! One write per turn for an HTTP/2 connection.
//!
//! h2 writes each DATA frame of 256 bytes or more with a syscall of its
//! own, so a connection multiplexing many small responses paid one
//! `writev` per response, where HAProxy and nginx send the responses of a
//! whole event-loop turn together. Here hyper's writes only gather bytes;
//! the connection's task sends them once it has polled the connection
//! (`run`), so every frame produced in one turn, across all its streams,
//! leaves in one syscall. No write waits longer than the turn it was made
//! in. Downstream HTTP/2 only: hyper's HTTP/2 client drives its connection
//! in a task of its own, which could not send what it gathered.

use super::replay::Replay;
use bytes::{Buf, BytesMut};
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use std::io::IoSlice;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use tokio::io::AsyncWrite;
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

/// Gathered bytes beyond which writes wait for the socket (backpressure).
const LIMIT: usize = 256 * 1024;

#[derive(Default)]
struct Shared {
    out: Mutex<BytesMut>,
    /// A write was refused for `LIMIT`; the connection must be polled
    /// again once some is sent (nothing else wakes it).
    blocked: AtomicBool,
    shutdown: AtomicBool,
}

/// The connection's side, given to hyper: reads from the socket, gathers writes.
pub struct Gathering {
    read: TokioIo<Replay<OwnedReadHalf>>,
    shared: Arc<Shared>,
}

/// The task's side: sends what was gathered.
pub struct Flusher {
    write: OwnedWriteHalf,
    shared: Arc<Shared>,
}

/// `first`: what was read from `stream` already, which hyper reads first.
pub fn split(first: BytesMut, stream: TcpStream) -> (Gathering, Flusher) {
    let (r, w) = stream.into_split();
    let shared = Arc::new(Shared::default());
    (Gathering { read: TokioIo::new(Replay::new(first, r)), shared: shared.clone() }, Flusher { write: w, shared })
}

impl Read for Gathering {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: ReadBufCursor<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().read).poll_read(cx, buf)
    }
}

impl Gathering {
    fn gather(&self, bufs: &[IoSlice<'_>]) -> Poll<std::io::Result<usize>> {
        let mut out = self.shared.out.lock();
        if out.len() >= LIMIT {
            self.shared.blocked.store(true, Ordering::Relaxed);
            return Poll::Pending;
        }
        let mut n = 0;
        for b in bufs {
            out.extend_from_slice(b);
            n += b.len();
        }
        Poll::Ready(Ok(n))
    }
}

impl Write for Gathering {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        self.gather(&[IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        self.gather(bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    /// The task sends the bytes once this turn's polling is done.
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.shared.shutdown.store(true, Ordering::Relaxed);
        Poll::Ready(Ok(()))
    }
}

impl Flusher {
    /// Sends everything gathered. `Ready(Ok(true))` when the connection
    /// had a write refused and must be polled again now that there is room.
    pub fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<bool>> {
        let mut out = self.shared.out.lock();
        while !out.is_empty() {
            match Pin::new(&mut self.write).poll_write(cx, &out) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => out.advance(n),
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        drop(out);
        if self.shared.shutdown.swap(false, Ordering::Relaxed) {
            std::task::ready!(Pin::new(&mut self.write).poll_shutdown(cx))?;
        }
        Poll::Ready(Ok(self.shared.blocked.swap(false, Ordering::Relaxed)))
    }
}

/// Runs `fut` (a connection), sending what it wrote after each poll of it.
pub async fn run<F: Future>(fut: F, flusher: &mut Flusher) -> std::io::Result<F::Output> {
    tokio::pin!(fut);
    let mut done = None;
    std::future::poll_fn(|cx| {
        loop {
            if done.is_none()
                && let Poll::Ready(r) = fut.as_mut().poll(cx)
            {
                done = Some(r);
            }
            match flusher.poll_flush(cx) {
                // A write was refused for lack of room: there is room now.
                Poll::Ready(Ok(true)) if done.is_none() => continue,
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
            return match done.take() {
                Some(r) => Poll::Ready(Ok(r)),
                None => Poll::Pending,
            };
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn writes_gather_until_flushed_and_wait_beyond_the_limit() {
        let sock = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(sock.local_addr().unwrap()).await.unwrap();
        let (mut peer, _) = sock.accept().await.unwrap();
        let (mut g, mut f) = split(BytesMut::new(), client);
        let mut cx = Context::from_waker(std::task::Waker::noop());

        for part in [&b"one "[..], b"two"] {
            assert!(matches!(Pin::new(&mut g).poll_write(&mut cx, part), Poll::Ready(Ok(n)) if n == part.len()));
        }
        let mut buf = [0u8; 16];
        assert!(
            tokio::time::timeout(std::time::Duration::from_millis(50), peer.read(&mut buf)).await.is_err(),
            "nothing is sent before the flush"
        );
        assert!(matches!(std::future::poll_fn(|cx| f.poll_flush(cx)).await, Ok(false)));
        let mut got = vec![0u8; 7];
        peer.read_exact(&mut got).await.unwrap();
        assert_eq!(got, b"one two");

        let big = vec![b'x'; LIMIT];
        assert!(Pin::new(&mut g).poll_write(&mut cx, &big).is_ready());
        assert!(Pin::new(&mut g).poll_write(&mut cx, b"more").is_pending(), "past the limit a write waits");
        let reader = tokio::spawn(async move {
            let mut all = Vec::new();
            peer.read_to_end(&mut all).await.unwrap();
            all.len()
        });
        assert!(matches!(std::future::poll_fn(|cx| f.poll_flush(cx)).await, Ok(true)), "the refused write is reported");
        assert!(Pin::new(&mut g).poll_write(&mut cx, b"more").is_ready());
        assert!(Pin::new(&mut g).poll_shutdown(&mut cx).is_ready());
        assert!(matches!(std::future::poll_fn(|cx| f.poll_flush(cx)).await, Ok(false)));
        drop((g, f));
        assert_eq!(reader.await.unwrap(), LIMIT + 4);
    }
}
