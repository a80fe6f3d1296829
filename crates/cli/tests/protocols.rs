//! Protocols through the mesh: gRPC over h2c with status and trailers
//! intact (client → sidecar → sidecar → app), WebSocket upgrades, and
//! HTTP/2 prior knowledge on the outbound listener.

mod common;
use common::*;
use futures::{SinkExt, StreamExt};
use weft_demo::grpc::{HELLO_PATH, HelloReply, HelloRequest};

/// A gRPC channel whose :authority is `authority` but whose bytes go to `via`.
async fn channel(authority: &str, via: String) -> tonic::transport::Channel {
    tonic::transport::Endpoint::from_shared(format!("http://{authority}"))
        .unwrap()
        .connect_with_connector(tower::service_fn(move |_: http::Uri| {
            let via = via.clone();
            async move { Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(tokio::net::TcpStream::connect(via).await?)) }
        }))
        .await
        .unwrap()
}

async fn hello(ch: tonic::transport::Channel, name: &str) -> Result<tonic::Response<HelloReply>, tonic::Status> {
    let mut client = tonic::client::Grpc::new(ch);
    client.ready().await.unwrap();
    let codec = tonic_prost::ProstCodec::<HelloRequest, HelloReply>::default();
    client
        .unary(
            tonic::Request::new(HelloRequest { name: name.into() }),
            http::uri::PathAndQuery::from_static(HELLO_PATH),
            codec,
        )
        .await
}

const MESH: &str = r#"apiVersion: v1
kind: Service
metadata: {name: greeter}
spec:
  selector: {app: greeter}
  ports: [{name: grpc, port: 9090}, {name: http, port: 80}]
---
apiVersion: weft.dev/v1alpha1
kind: Workload
metadata: {name: greeter}
spec:
  command: ["weft", "demo", "--name", "greeter", "--port", "${PORT}"]
  labels: {app: greeter}
  port: 9090
---
apiVersion: weft.dev/v1alpha1
kind: Workload
metadata: {name: client}
spec:
  command: ["weft", "demo", "--name", "client", "--port", "${PORT}"]
  labels: {app: client}
  port: 9091
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: greeter-grpc}
spec:
  hosts: [greeter]
  http:
    - match: [{port: 9090}]
      retries: {attempts: 3, retryOn: unavailable}
      route: [{destination: {host: greeter, port: {number: 9090}}}]
    - route: [{destination: {host: greeter, port: {number: 80}}}]
"#;

#[test]
fn grpc_websocket_and_h2c_through_two_sidecars() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("mesh.yaml"), MESH).unwrap();
    let mut up = Up::start(dir.path());
    let client = up.info["workloads"].as_array().unwrap().iter().find(|w| w["name"] == "client").unwrap().clone();
    let outbound = format!("{}:{}", client["ip"].as_str().unwrap(), client["outboundPort"]);
    rt().block_on(async {
        // gRPC: h2c to the client's sidecar, h2 to the greeter's sidecar, h2 to the app.
        let ch = channel("greeter:9090", outbound.clone()).await;
        for i in 0..20 {
            let r = hello(ch.clone(), &format!("n{i}")).await.expect("gRPC call through the mesh");
            let reply = r.into_inner();
            assert_eq!((reply.service.as_str(), reply.message.as_str()), ("greeter", format!("hello n{i}").as_str()));
        }
        // A failure status arrives in the trailers, code and message intact.
        let err = hello(ch.clone(), "fail-9").await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::FailedPrecondition);
        assert_eq!(err.message(), "asked to fail with 9");
        let err = hello(ch.clone(), "fail-14").await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::Unavailable, "retried, still unavailable: {err:?}");

        // WebSocket through both sidecars.
        let stream = tokio::net::TcpStream::connect(&outbound).await.unwrap();
        let (mut ws, resp) = tokio_tungstenite::client_async("ws://greeter/ws", stream)
            .await
            .expect("websocket upgrade through the mesh");
        assert_eq!(resp.status(), 101);
        for i in 0..5 {
            ws.send(tokio_tungstenite::tungstenite::Message::text(format!("ping {i}"))).await.unwrap();
            let msg = ws.next().await.unwrap().unwrap();
            assert_eq!(msg.into_text().unwrap().as_str(), format!("greeter: ping {i}"));
        }
        ws.close(None).await.unwrap();

        // Plain HTTP/2 with prior knowledge to the outbound listener.
        let stream = tokio::net::TcpStream::connect(&outbound).await.unwrap();
        let (mut sender, conn) = hyper::client::conn::http2::handshake(
            hyper_util::rt::TokioExecutor::new(),
            hyper_util::rt::TokioIo::new(stream),
        )
        .await
        .unwrap();
        tokio::spawn(conn);
        let req = http::Request::builder()
            .uri("http://greeter/h2")
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .unwrap();
        let resp = sender.send_request(req).await.unwrap();
        assert_eq!(resp.status(), 200);
        use http_body_util::BodyExt;
        let body: serde_json::Value =
            serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap();
        assert_eq!((body["service"].as_str(), body["path"].as_str()), (Some("greeter"), Some("/h2")));
    });
    up.stop();
}
