//! The demo's gRPC service, `weft.demo.v1.Demo/Hello`:
//!
//! ```proto
//! service Demo { rpc Hello(HelloRequest) returns (HelloReply); }
//! message HelloRequest { string name = 1; }
//! message HelloReply { string service = 1; string version = 2; string instance = 3; string message = 4; }
//! ```
//! A name `fail-N` answers with gRPC status N (e.g. `fail-14` = UNAVAILABLE),
//! so tests can check that status and trailers cross the mesh intact; the
//! request's `x-*` metadata comes back in the response's as `echo-x-*`.

use std::future::Future;
use std::pin::Pin;

pub const HELLO_PATH: &str = "/weft.demo.v1.Demo/Hello";

#[derive(Clone, PartialEq, prost::Message)]
pub struct HelloRequest {
    #[prost(string, tag = "1")]
    pub name: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct HelloReply {
    #[prost(string, tag = "1")]
    pub service: String,
    #[prost(string, tag = "2")]
    pub version: String,
    #[prost(string, tag = "3")]
    pub instance: String,
    #[prost(string, tag = "4")]
    pub message: String,
}

/// Who answers: copied into every reply.
#[derive(Clone)]
pub struct Hello {
    pub service: String,
    pub version: String,
    pub instance: String,
}

impl tonic::server::UnaryService<HelloRequest> for Hello {
    type Response = HelloReply;
    type Future = Pin<Box<dyn Future<Output = Result<tonic::Response<HelloReply>, tonic::Status>> + Send>>;

    fn call(&mut self, req: tonic::Request<HelloRequest>) -> Self::Future {
        let me = self.clone();
        // The request's `x-*` metadata comes back as `echo-x-*`, so tests see
        // what reached the app.
        let echo: Vec<(tonic::metadata::MetadataKey<tonic::metadata::Ascii>, tonic::metadata::AsciiMetadataValue)> =
            req.metadata()
                .iter()
                .filter_map(|kv| match kv {
                    tonic::metadata::KeyAndValueRef::Ascii(k, v) if k.as_str().starts_with("x-") => {
                        tonic::metadata::MetadataKey::from_bytes(format!("echo-{}", k.as_str()).as_bytes())
                            .ok()
                            .map(|k| (k, v.clone()))
                    }
                    _ => None,
                })
                .collect();
        Box::pin(async move {
            let name = req.into_inner().name;
            if let Some(code) = name.strip_prefix("fail-").and_then(|c| c.parse::<i32>().ok()) {
                return Err(tonic::Status::new(tonic::Code::from(code), format!("asked to fail with {code}")));
            }
            let mut resp = tonic::Response::new(HelloReply {
                service: me.service,
                version: me.version,
                instance: me.instance,
                message: format!("hello {name}"),
            });
            for (k, v) in echo {
                resp.metadata_mut().append(k, v);
            }
            Ok(resp)
        })
    }
}

/// Serves one gRPC request (HTTP/2, `content-type: application/grpc`).
pub async fn serve<B>(hello: Hello, req: http::Request<B>) -> http::Response<tonic::body::Body>
where
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>> + Send,
{
    if req.uri().path() != HELLO_PATH {
        return tonic::Status::unimplemented(format!("no method {}", req.uri().path())).into_http();
    }
    let mut grpc = tonic::server::Grpc::new(tonic_prost::ProstCodec::<HelloReply, HelloRequest>::default());
    grpc.unary(hello, req).await
}
