//! The ADS stream's transport: requests go out through tonic's encoder;
//! responses are read here, each message decoded from the body's own
//! chunks and the chunks let go as it is decoded.
//!
//! Why not tonic's `Streaming`: it reads every message into one `BytesMut`
//! that keeps, for the life of the stream, the size of the largest message
//! seen (`BytesMut` never shrinks, and reuses the allocation once the message
//! is dropped). A sidecar's largest xDS message is its route table, about
//! 0.5 KB per service in the mesh, so that buffer was ~15% of what every
//! service in the config cost a proxy, held long after the table was
//! compiled. Here the only buffers are the HTTP/2 frames in flight.
//!
//! The framing is gRPC's: a 1-byte compressed flag and a 4-byte big-endian
//! length before each message; the status comes in the trailers (or in the
//! headers of a trailers-only response).

use bytes::{Buf, Bytes};
use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use http_body_util::BodyExt;
use prost::Message;
use std::collections::VecDeque;
use tokio_stream::{Stream, StreamExt};
use tonic::Status;
use tonic::body::Body;
use tonic::client::GrpcService;
use tonic::codec::{Codec, EncodeBody};
use tonic::transport::Channel;

const PATH: &str = "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources";
/// Bytes before each message: compressed flag and length.
const PREFIX: usize = 5;

/// Opens the ADS stream on `channel`, sending `requests`.
pub async fn open(
    channel: &mut Channel,
    requests: impl Stream<Item = DiscoveryRequest> + Send + 'static,
    max_message: usize,
) -> anyhow::Result<Responses> {
    let mut codec = tonic_prost::ProstCodec::<DiscoveryRequest, DiscoveryResponse>::default();
    let body = EncodeBody::new_client(codec.encoder(), requests.map(Ok::<_, Status>), None, Some(max_message));
    let request = http::Request::builder()
        .method(http::Method::POST)
        .version(http::Version::HTTP_2)
        .uri(PATH)
        .header(http::header::TE, "trailers")
        .header(http::header::CONTENT_TYPE, "application/grpc")
        .body(Body::new(body))?;
    std::future::poll_fn(|cx| channel.poll_ready(cx)).await?;
    let response = channel.call(request).await?;
    if let Some(status) = Status::from_header_map(response.headers()) {
        // A trailers-only response: the stream ended before it began.
        anyhow::bail!("the control plane refused the stream: {}", describe(&status));
    }
    if response.status() != http::StatusCode::OK {
        anyhow::bail!("the control plane answered HTTP {} (is it an xDS server?)", response.status());
    }
    Ok(Responses { body: response.into_body(), decoder: Decoder::new(max_message) })
}

fn describe(status: &Status) -> String {
    format!("{:?}: {}", status.code(), status.message())
}

/// The responses of an open ADS stream.
pub struct Responses {
    body: Body,
    decoder: Decoder,
}

impl Responses {
    /// The next response; `None` when the control plane ends the stream
    /// cleanly.
    pub async fn message(&mut self) -> anyhow::Result<Option<DiscoveryResponse>> {
        loop {
            if let Some(resp) = self.decoder.next_message()? {
                return Ok(Some(resp));
            }
            match self.body.frame().await {
                Some(frame) => match frame?.into_data() {
                    Ok(data) => self.decoder.push(data),
                    Err(frame) => {
                        let status = frame.trailers_ref().and_then(Status::from_header_map);
                        let unread = self.decoder.unread();
                        return match status {
                            Some(s) if s.code() != tonic::Code::Ok => {
                                anyhow::bail!("the control plane ended the stream: {}", describe(&s))
                            }
                            Some(_) if unread == 0 => Ok(None),
                            Some(_) => {
                                anyhow::bail!(
                                    "the control plane ended the stream inside a message ({unread} bytes unread)"
                                )
                            }
                            None => anyhow::bail!("the control plane ended the stream without a gRPC status"),
                        };
                    }
                },
                None => anyhow::bail!("the control plane closed the stream without a gRPC status"),
            }
        }
    }
}

/// The stream's gRPC framing, decoded from the body's frames as they come:
/// whole messages out, no buffer kept beyond the frames in flight. Pure,
/// so it is fuzzed (`fuzz/fuzz_targets/xds_transport.rs`).
pub struct Decoder {
    chunks: Chunks,
    max_message: usize,
}

impl Decoder {
    pub fn new(max_message: usize) -> Self {
        Decoder { chunks: Chunks::default(), max_message }
    }

    /// Takes a frame's bytes.
    pub fn push(&mut self, data: Bytes) {
        self.chunks.push(data);
    }

    /// The next message if all of it has arrived; an error for a message
    /// that is compressed, over the limit or not a `DiscoveryResponse`.
    pub fn next_message(&mut self) -> anyhow::Result<Option<DiscoveryResponse>> {
        let Some(len) = self.chunks.message_len(self.max_message)? else { return Ok(None) };
        self.chunks.advance(PREFIX);
        let mut message = (&mut self.chunks).take(len);
        let resp = DiscoveryResponse::decode(&mut message)
            .map_err(|e| anyhow::anyhow!("{}", crate::config::wire::undecodable::<DiscoveryResponse>(e)))?;
        Ok(Some(resp))
    }

    /// Bytes received and not yet decoded.
    pub fn unread(&self) -> usize {
        self.chunks.remaining()
    }
}

/// Received bytes not yet decoded, as the frames they came in.
#[derive(Default)]
struct Chunks {
    list: VecDeque<Bytes>,
    len: usize,
}

impl Chunks {
    fn push(&mut self, b: Bytes) {
        if !b.is_empty() {
            self.len += b.len();
            self.list.push_back(b);
        }
    }

    /// The length of the next message once all of it has arrived.
    fn message_len(&self, max: usize) -> anyhow::Result<Option<usize>> {
        if self.len < PREFIX {
            return Ok(None);
        }
        let mut prefix = [0u8; PREFIX];
        let mut it = self.list.iter().flat_map(|c| c.iter());
        for b in &mut prefix {
            *b = *it.next().expect("len counted");
        }
        if prefix[0] != 0 {
            // weft asks for no compression, so a compressed message is a
            // server that ignores grpc-accept-encoding.
            anyhow::bail!(
                "the control plane sent a compressed message, which weft does not ask for and cannot read; configure it not to compress responses"
            );
        }
        let len = u32::from_be_bytes([prefix[1], prefix[2], prefix[3], prefix[4]]) as usize;
        if len > max {
            anyhow::bail!(
                "the control plane sent a message of {len} bytes; the limit is {max} (is the xDS address a gRPC xDS server?)"
            );
        }
        Ok((self.len >= PREFIX + len).then_some(len))
    }
}

impl Buf for Chunks {
    fn remaining(&self) -> usize {
        self.len
    }

    fn chunk(&self) -> &[u8] {
        self.list.front().map_or(&[], |b| b)
    }

    fn advance(&mut self, mut n: usize) {
        assert!(n <= self.len, "advance past the received bytes");
        self.len -= n;
        while n > 0 {
            let front = self.list.front_mut().expect("len counted");
            if n < front.len() {
                front.advance(n);
                return;
            }
            n -= front.len();
            // A frame fully decoded is freed now, not when the message is.
            self.list.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(m: &DiscoveryResponse) -> Vec<u8> {
        let body = m.encode_to_vec();
        let mut out = vec![0u8];
        out.extend_from_slice(&(body.len() as u32).to_be_bytes());
        out.extend_from_slice(&body);
        out
    }

    #[test]
    fn messages_split_anywhere_across_frames_decode_whole() {
        let a = DiscoveryResponse { version_info: "1".into(), nonce: "a".repeat(300), ..Default::default() };
        let b = DiscoveryResponse { version_info: "2".into(), type_url: "t".into(), ..Default::default() };
        let mut wire = framed(&a);
        wire.extend(framed(&b));
        for cut in [1, 3, 5, 7, 64, wire.len() - 1] {
            let mut d = Decoder::new(1 << 20);
            // Frames of `cut` bytes, so the prefix itself is split too.
            let mut got = Vec::new();
            for piece in wire.chunks(cut) {
                d.push(Bytes::copy_from_slice(piece));
                while let Some(m) = d.next_message().unwrap() {
                    got.push(m);
                }
            }
            assert_eq!(got, vec![a.clone(), b.clone()], "frames of {cut} bytes");
            assert_eq!(d.unread(), 0);
            assert!(d.chunks.list.is_empty(), "decoded frames are let go");
        }
    }

    #[test]
    fn oversized_and_compressed_messages_are_errors() {
        let mut c = Chunks::default();
        c.push(Bytes::from_static(&[0, 0, 1, 0, 0]));
        let e = c.message_len(100).unwrap_err().to_string();
        assert!(e.contains("65536 bytes; the limit is 100"), "{e}");
        let mut c = Chunks::default();
        c.push(Bytes::from_static(&[1, 0, 0, 0, 1, 0]));
        assert!(c.message_len(100).unwrap_err().to_string().contains("compressed"));
    }
}
