//! Protocols through the mesh: gRPC over h2c with status and trailers
//! intact (client → sidecar → mutual TLS → sidecar → app), WebSocket upgrades, and
//! HTTP/2 prior knowledge on the outbound listener, also from clients
//! whose first bytes arrive in pieces.

mod common;
use common::*;
use futures::{SinkExt, StreamExt};
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use weft_demo::grpc::{HELLO_PATH, HelloReply, HelloRequest};

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
metadata: {name: nobody}
spec:
  selector: {app: nobody}
  ports: [{name: grpc, port: 9090}]
---
apiVersion: v1
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
    let greeter = up.info["workloads"].as_array().unwrap().iter().find(|w| w["name"] == "greeter").unwrap().clone();
    let greeter_admin = format!("127.0.0.1:{}", greeter["admin"]);
    rt().block_on(async {
        // gRPC: h2c to the client's sidecar, h2 to the greeter's sidecar, h2 to the app.
        let ch = grpc_channel("greeter:9090", outbound.clone()).await;
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
        // What the proxy answers itself, a gRPC client gets as a gRPC
        // status with the proxy's message (Envoy's local replies to gRPC).
        let err = hello(grpc_channel("nobody:9090", outbound.clone()).await, "x").await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::Unavailable, "{err:?}");
        assert!(err.message().starts_with("no healthy upstream for outbound|9090||nobody"), "{err:?}");
        let err = hello(grpc_channel("elsewhere:9090", outbound.clone()).await, "x").await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::Unimplemented, "{err:?}");
        assert!(err.message().starts_with("no route for host"), "{err:?}");
        // Istio's gRPC labels on both sides: the call's status from its
        // trailers, or from a trailers-only answer (the app's failures, the
        // proxy's own), and `request_protocol="grpc"`.
        let client_admin = format!("127.0.0.1:{}", client["admin"]);
        let calls = |page: &str, reporter: &str, status: &str| -> f64 {
            page.lines()
                .filter(|l| {
                    l.starts_with("istio_requests_total{")
                        && l.contains(&format!("reporter=\"{reporter}\""))
                        && l.contains("request_protocol=\"grpc\"")
                        && l.contains(&format!("grpc_response_status=\"{status}\""))
                })
                .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
                .sum()
        };
        let page = String::from_utf8(get(&client_admin, "/stats/prometheus", &[]).await.body.to_vec()).unwrap();
        let source: Vec<f64> = ["0", "9", "14", "12"].iter().map(|s| calls(&page, "source", s)).collect();
        assert_eq!(source, [20.0, 1.0, 2.0, 1.0], "ok, failed, unavailable (app and no upstream), no route: {page}");
        let page = String::from_utf8(get(&greeter_admin, "/stats/prometheus", &[]).await.body.to_vec()).unwrap();
        assert_eq!((calls(&page, "destination", "0"), calls(&page, "destination", "9")), (20.0, 1.0), "{page}");
        // A gRPC body has no length: kept as it streams, so the call retries.
        assert_eq!(calls(&page, "destination", "14"), 4.0, "the unavailable call, tried and retried thrice: {page}");
        // Sidecar to sidecar, that was HTTP/2 over mutual TLS (ALPN h2).
        assert!(counter(&greeter_admin, "weft_inbound_mtls_connections_total").await >= 1);

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
        let (mut sender, _conn) = h2_handshake(&outbound).await;
        assert_eq!(h2_get(&mut sender, "/h2").await, (Some("greeter".into()), Some("/h2".into())));
        // Istio names HTTP/2 that is not gRPC `http`.
        let page = String::from_utf8(get(&client_admin, "/stats/prometheus", &[]).await.body.to_vec()).unwrap();
        assert!(!page.contains("request_protocol=\"http2\""), "{page}");
        assert!(page.contains("request_protocol=\"http\""), "{page}");

        // The proxy tells the protocol from the first bytes: a client whose
        // HTTP/2 preface arrives in two pieces (the pause is the scenario)
        // is still served HTTP/2, and so is an HTTP/1.1 request in pieces.
        let mut stream = tokio::net::TcpStream::connect(&outbound).await.unwrap();
        stream.set_nodelay(true).unwrap();
        stream.write_all(&PREFACE[..8]).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let io = SentAlready { io: hyper_util::rt::TokioIo::new(stream), sent: 8 };
        let (mut sender, conn) =
            hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io).await.unwrap();
        tokio::spawn(conn);
        assert_eq!(h2_get(&mut sender, "/split").await, (Some("greeter".into()), Some("/split".into())));

        let mut stream = tokio::net::TcpStream::connect(&outbound).await.unwrap();
        stream.set_nodelay(true).unwrap();
        stream.write_all(b"GET /h1-split HT").await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        stream.write_all(b"TP/1.1\r\nhost: greeter\r\nconnection: close\r\n\r\n").await.unwrap();
        let mut resp = String::new();
        stream.read_to_string(&mut resp).await.unwrap();
        assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
        assert!(resp.contains(r#""path":"/h1-split""#), "{resp}");

        // A request head larger than what the proxy reads to tell the
        // protocol: hyper gets that part back, then reads the rest.
        let mut stream = tokio::net::TcpStream::connect(&outbound).await.unwrap();
        let big = "x".repeat(10_000);
        let head = format!("GET /h1-big HTTP/1.1\r\nhost: greeter\r\nx-big: {big}\r\nconnection: close\r\n\r\n");
        stream.write_all(head.as_bytes()).await.unwrap();
        let mut resp = String::new();
        stream.read_to_string(&mut resp).await.unwrap();
        assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
        assert!(resp.contains(r#""path":"/h1-big""#), "{resp}");
    });
    up.stop();
}

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// GET `path` from greeter over HTTP/2; the demo's service and path.
async fn h2_get(
    sender: &mut hyper::client::conn::http2::SendRequest<http_body_util::Empty<bytes::Bytes>>,
    path: &str,
) -> (Option<String>, Option<String>) {
    use http_body_util::BodyExt;
    let req = http::Request::builder()
        .uri(format!("http://greeter{path}"))
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let body: serde_json::Value =
        serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap();
    (body["service"].as_str().map(Into::into), body["path"].as_str().map(Into::into))
}

/// A connection whose first `sent` bytes the test wrote itself: hyper's
/// writes of them are dropped, the rest pass through.
struct SentAlready<I> {
    io: I,
    sent: usize,
}

impl<I: hyper::rt::Read + Unpin> hyper::rt::Read for SentAlready<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<I: hyper::rt::Write + Unpin> hyper::rt::Write for SentAlready<I> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        if self.sent > 0 {
            let n = self.sent.min(buf.len());
            self.sent -= n;
            return Poll::Ready(Ok(n));
        }
        Pin::new(&mut self.io).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// DestinationRule `connectionPool.http`: `h2UpgradePolicy: UPGRADE`
/// speaks HTTP/2 to an HTTP port's endpoints, `useClientProtocol` what the
/// caller spoke; by default HTTP/1.1 stays HTTP/1.1.
#[test]
fn a_destination_rule_picks_the_upstream_protocol() {
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let (_web, port) = demo("web", "v1").await;
        let base = backend_yaml("web", port);
        let write = |http: &str| {
            let dr = format!(
                "---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: web}}\nspec:\n  host: web\n  trafficPolicy: {{connectionPool: {{http: {http}}}}}\n"
            );
            std::fs::write(dir.path().join("mesh.yaml"), base.clone() + &dr).unwrap();
        };
        write("{}");
        let control = Control::start(dir.path()).await;
        let sc = Sidecar::start(&control.xds, "client").await;
        let h1 = || {
            let out = sc.outbound.clone();
            async move { get(&out, "/", &[("host", "web")]).await.json()["protocol"].as_str().unwrap_or("").to_owned() }
        };
        let h2 = || {
            let out = sc.outbound.clone();
            async move {
                use http_body_util::BodyExt;
                let (mut sender, _conn) = h2_handshake(&out).await;
                let req = http::Request::get("http://web/").body(http_body_util::Empty::<bytes::Bytes>::new()).unwrap();
                let body = sender.send_request(req).await.unwrap().into_body().collect().await.unwrap().to_bytes();
                serde_json::from_slice::<serde_json::Value>(&body).unwrap()["protocol"].as_str().unwrap_or("").to_owned()
            }
        };
        assert_eq!(h1().await, "HTTP/1.1");
        assert_eq!(h2().await, "HTTP/1.1", "by default an HTTP port's endpoints get HTTP/1.1");
        write("{h2UpgradePolicy: UPGRADE}");
        eventually(20, "HTTP/2 to web", || async { h1().await == "HTTP/2.0" }).await;
        write("{useClientProtocol: true}");
        eventually(20, "the caller's protocol to web", || async { h1().await == "HTTP/1.1" }).await;
        assert_eq!(h2().await, "HTTP/2.0", "an HTTP/2 caller's request goes on as HTTP/2");
    });
}
