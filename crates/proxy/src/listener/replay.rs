//! A downstream socket whose first bytes the proxy has already read.
//!
//! The listener tells HTTP/1.1 from HTTP/2 by the first bytes a client
//! sends. Reading them (rather than peeking, which leaves them in the
//! socket for hyper to read again) saves a syscall a connection; hyper then
//! gets them back from here before anything else is read from the socket.

use bytes::{Buf, BytesMut};
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

pub struct Replay<S, N = ()> {
    /// What was read and not yet handed on; empty (no allocation) once it has been.
    first: BytesMut,
    io: S,
    /// Told of every read that brings bytes, the replayed ones included.
    note: N,
}

/// Told when a read brings bytes (the request-head timeout watches them).
pub trait OnRead {
    fn on_read(&self);
}

impl OnRead for () {
    fn on_read(&self) {}
}

impl<S> Replay<S> {
    pub fn new(first: BytesMut, io: S) -> Self {
        Self { first, io, note: () }
    }
}

impl<S, N: OnRead> Replay<S, N> {
    /// A replay that tells `note` of each read bringing bytes.
    pub fn noting(first: BytesMut, io: S, note: N) -> Self {
        Self { first, io, note }
    }
}

impl<S: AsyncRead + Unpin, N: OnRead + Unpin> AsyncRead for Replay<S, N> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if this.first.is_empty() {
            let before = buf.filled().len();
            let read = Pin::new(&mut this.io).poll_read(cx, buf);
            if buf.filled().len() > before {
                this.note.on_read();
            }
            return read;
        }
        // Bytes the proxy read before hyper: a read that brought them.
        this.note.on_read();
        let n = this.first.len().min(buf.remaining());
        buf.put_slice(&this.first[..n]);
        this.first.advance(n);
        if this.first.is_empty() {
            // Frees the buffer: the connection may live long after.
            this.first = BytesMut::new();
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin, N: Unpin> AsyncWrite for Replay<S, N> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn the_first_bytes_come_back_before_the_socket_is_read() {
        let (mut peer, io) = tokio::io::duplex(64);
        peer.write_all(b" world").await.unwrap();
        drop(peer);
        let mut r = Replay::new(BytesMut::from(&b"hello"[..]), io);
        let mut small = [0u8; 3];
        r.read_exact(&mut small).await.unwrap();
        assert_eq!(&small, b"hel", "a read smaller than what was kept takes part of it");
        let mut rest = Vec::new();
        r.read_to_end(&mut rest).await.unwrap();
        assert_eq!(rest, b"lo world");
        assert_eq!(r.first.capacity(), 0, "the buffer is freed once replayed");
    }

    #[tokio::test]
    async fn reads_that_bring_bytes_are_noted_the_replayed_ones_too() {
        struct Count(std::cell::Cell<u32>);
        impl OnRead for Count {
            fn on_read(&self) {
                self.0.set(self.0.get() + 1);
            }
        }
        let (mut peer, io) = tokio::io::duplex(64);
        let mut r = Replay::noting(BytesMut::from(&b"GET"[..]), io, Count(Default::default()));
        let mut buf = [0u8; 16];
        assert_eq!(r.read(&mut buf).await.unwrap(), 3);
        peer.write_all(b" /").await.unwrap();
        assert_eq!(r.read(&mut buf).await.unwrap(), 2);
        drop(peer);
        assert_eq!(r.read(&mut buf).await.unwrap(), 0, "the end");
        assert_eq!(r.note.0.get(), 2, "the replayed bytes and the socket's; not the end");
    }
}
