//! Per-route features end to end through a real sidecar and demo backends:
//! rewrite, header set/add/remove (a rule's and a destination's), timeouts,
//! retries, redirects.

mod common;
use common::*;
use std::time::{Duration, Instant};

fn mesh(port: u16, flaky: u16) -> String {
    backend_yaml("echo", port)
        + "---\n"
        + &backend_yaml("flaky", flaky)
        + "---\n"
        + r#"apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: echo}
spec:
  hosts: [echo]
  http:
    - match: [{uri: {prefix: /api/}}]
      rewrite: {uri: /v2/}
      headers:
        request:
          set: {x-set: forced}
          add: {x-added: "yes"}
          remove: [x-secret]
        response:
          set: {x-resp: "1"}
      route: [{destination: {host: echo}}]
    - match: [{uri: {prefix: /slow}}]
      timeout: 150ms
      route: [{destination: {host: echo}}]
    - match: [{uri: {prefix: /moved}}]
      redirect: {uri: /here, authority: example.com, redirectCode: 302}
    - match: [{uri: {prefix: /regex/}}]
      rewrite: {uriRegexRewrite: {match: '^/regex/([a-z]+)/(.*)$', rewrite: '/r/\2/\1'}, authority: rewritten.example}
      route: [{destination: {host: echo}}]
    - match: [{uri: {prefix: /old-prefix/}}]
      redirect: {prefixRewrite: /new-prefix/, scheme: https, port: 8443}
    - match: [{uri: {prefix: /derived-request}}]
      redirect: {authority: other.example, derivePort: FROM_REQUEST_PORT}
    - match: [{uri: {prefix: /derived-default}}]
      redirect: {authority: other.example, scheme: https, derivePort: FROM_PROTOCOL_DEFAULT}
    - match: [{uri: {prefix: /dest}}]
      headers:
        request: {add: {x-rule: "r"}}
      route:
        - destination: {host: echo}
          headers:
            request: {set: {x-dest: "d"}, remove: [x-drop]}
            response: {add: {x-dest-resp: "r"}, remove: [content-type]}
    - route: [{destination: {host: echo}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: flaky}
spec:
  hosts: [flaky]
  http:
    - retries: {attempts: 6, retryOn: "503"}
      route: [{destination: {host: flaky}}]
"#
}

#[test]
fn rewrite_headers_timeout_retries_and_redirect() {
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let (_echo, port) = demo("echo", "v1").await;
        let (_flaky, flaky) = demo("flaky", "v1").await;
        // The flaky backend answers 503 half the time.
        let b = serde_json::json!({"failPercent": 50, "failStatus": 503});
        assert_eq!(
            request(&format!("127.0.0.1:{flaky}"), "POST", "/admin/behavior", &[], b.to_string().into()).await.status,
            200
        );
        std::fs::write(dir.path().join("mesh.yaml"), mesh(port, flaky)).unwrap();
        let control = Control::start(dir.path()).await;
        let sc = Sidecar::start(&control.xds, "client").await;
        let out = sc.outbound.as_str();

        let r = get(out, "/api/books?id=7", &[("host", "echo"), ("x-secret", "s"), ("x-set", "mine")]).await;
        assert_eq!(r.status, 200);
        let j = r.json();
        assert_eq!(j["path"], "/v2/books", "prefix rewritten: {j}");
        assert_eq!(j["query"], "id=7", "query kept: {j}");
        assert_eq!(j["headers"]["x-set"], "forced", "set overrides: {j}");
        assert_eq!(j["headers"]["x-added"], "yes", "{j}");
        assert!(j["headers"].get("x-secret").is_none(), "removed: {j}");
        assert_eq!(r.headers.get("x-resp").unwrap(), "1");

        let start = Instant::now();
        let r = get(out, "/slow?delay=2s", &[("host", "echo")]).await;
        assert_eq!(r.status, 504, "{}", String::from_utf8_lossy(&r.body));
        assert!(start.elapsed() < Duration::from_millis(1500), "the timeout cut the 2 s wait: {:?}", start.elapsed());
        assert_eq!(get(out, "/slow?delay=10ms", &[("host", "echo")]).await.status, 200, "within the timeout");

        // A regex rewrite with capture groups, and the authority rewritten.
        let j = get(out, "/regex/ab/cd/e", &[("host", "echo")]).await.json();
        assert_eq!((j["path"].as_str(), j["host"].as_str()), (Some("/r/cd/e/ab"), Some("rewritten.example")), "{j}");
        // A redirect keeping the rest of the path, to another scheme and port.
        let r = get(out, "/old-prefix/x?y=1", &[("host", "echo")]).await;
        assert_eq!(r.status, 301);
        assert_eq!(r.headers.get("location").unwrap(), "https://echo:8443/new-prefix/x?y=1");
        // `derivePort`: the port the request came to (the service's, 80), or none.
        let r = get(out, "/derived-request", &[("host", "echo")]).await;
        assert_eq!(r.headers.get("location").unwrap(), "http://other.example:80/derived-request");
        let r = get(out, "/derived-default", &[("host", "echo:80")]).await;
        assert_eq!(r.headers.get("location").unwrap(), "https://other.example/derived-default");

        // A single destination's own headers apply, beside the rule's.
        let r = get(out, "/dest", &[("host", "echo"), ("x-drop", "1")]).await;
        let j = r.json();
        assert_eq!((j["headers"]["x-dest"].as_str(), j["headers"]["x-rule"].as_str()), (Some("d"), Some("r")), "{j}");
        assert!(j["headers"].get("x-drop").is_none(), "removed: {j}");
        assert_eq!(r.headers.get("x-dest-resp").map(|v| v.to_str().unwrap()), Some("r"));
        assert!(r.headers.get("content-type").is_none(), "the app's content-type removed: {:?}", r.headers);

        let r = get(out, "/moved", &[("host", "echo")]).await;
        assert_eq!(r.status, 302);
        assert_eq!(r.headers.get("location").unwrap(), "http://example.com/here");

        // 50% 503s; with 6 retries on 503 (Istio's bare status code) the chance a request still fails is 1/128.
        let (mut ok, n) = (0, 200);
        for _ in 0..n {
            ok += (get(out, "/", &[("host", "flaky")]).await.status == 200) as u32;
        }
        println!("flaky with retries: {ok} of {n} succeeded");
        assert!(ok >= n - 8, "retries should hide nearly all 503s: {ok} of {n}");
        // A body of unknown length (chunked) is streamed upstream and kept
        // as it goes, so it is retried too, and sent again whole.
        let chunk = "x".repeat(1000);
        let (mut ok, n) = (0, 40);
        for _ in 0..n {
            let mut s = tokio::net::TcpStream::connect(out).await.unwrap();
            let head = "POST / HTTP/1.1\r\nhost: flaky\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n";
            let req = format!("{head}3e8\r\n{chunk}\r\n3e8\r\n{chunk}\r\n0\r\n\r\n");
            tokio::io::AsyncWriteExt::write_all(&mut s, req.as_bytes()).await.unwrap();
            let mut resp = String::new();
            tokio::io::AsyncReadExt::read_to_string(&mut s, &mut resp).await.unwrap();
            if resp.starts_with("HTTP/1.1 200") {
                ok += 1;
                assert!(resp.contains(r#""bodyBytes":2000"#), "the body arrived whole: {resp}");
            }
        }
        assert!(ok >= n - 2, "chunked requests are retried too: {ok} of {n}");
        // Without a route that retries on 5xx, the failures show.
        let direct = format!("127.0.0.1:{flaky}");
        let mut failed = 0;
        for _ in 0..100 {
            failed += (get(&direct, "/", &[]).await.status == 503) as u32;
        }
        assert!(failed > 20, "the backend really fails about half the time: {failed} of 100");
    });
}

/// Mirroring: the main request is answered by the primary; a copy goes to the
/// mirror (its answer discarded), all of the time or a percentage of it.
#[test]
fn mirror_copies_traffic_and_discards_the_answer() {
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let (_p, primary) = demo("primary", "v1").await;
        let (_s, shadow) = demo("shadow", "v1").await;
        let (_h, half) = demo("half", "v1").await;
        let (_q, quarter) = demo("quarter", "v1").await;
        let mut yaml = String::new();
        for (name, port) in [("primary", primary), ("shadow", shadow), ("half", half), ("quarter", quarter)] {
            yaml.push_str("---\n");
            yaml.push_str(&backend_yaml(name, port));
        }
        yaml.push_str("---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: primary}\nspec:\n  hosts: [primary]\n  http:\n    - route: [{destination: {host: primary}}]\n      mirrors:\n        - destination: {host: shadow}\n        - destination: {host: half}\n          percentage: {value: 50}\n");
        // The older single `mirror` with `mirrorPercentage`, for another host.
        yaml.push_str("---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: half}\nspec:\n  hosts: [half]\n  http:\n    - route: [{destination: {host: half}}]\n      mirror: {host: quarter, port: {number: 80}}\n      mirrorPercentage: {value: 25}\n");
        std::fs::write(dir.path().join("mesh.yaml"), yaml).unwrap();
        let control = Control::start(dir.path()).await;
        let sc = Sidecar::start(&control.xds, "client").await;
        let n = 200;
        for _ in 0..n {
            let r = request(&sc.outbound, "GET", "http://primary/", &[], Default::default()).await;
            assert_eq!(r.json()["service"], "primary", "the answer comes from the primary");
        }
        let count = |port: u16| async move { get(&format!("127.0.0.1:{port}"), "/admin/stats", &[]).await.json()["requests"].as_u64().unwrap() };
        eventually(10, "every mirrored copy to arrive", || async move { count(shadow).await == n }).await;
        let halves = count(half).await;
        println!("mirror at 50%: {halves} of {n}");
        // Binomial(200, 0.5): sd ≈ 7; 65..=135 is beyond 4.9 sd.
        assert!((65..=135).contains(&halves), "about half should be mirrored: {halves} of {n}");
        assert_eq!(count(primary).await, n);

        let before = count(half).await;
        for _ in 0..n {
            let r = request(&sc.outbound, "GET", "http://half/", &[], Default::default()).await;
            assert_eq!(r.json()["service"], "half");
        }
        eventually(10, "the direct calls to arrive", || async move { count(half).await >= before + n }).await;
        // Binomial(200, 0.25): sd ≈ 6.1; 20..=80 is beyond 4.9 sd.
        eventually(10, "a quarter mirrored", || async move { count(quarter).await >= 20 }).await;
        let quarters = count(quarter).await;
        println!("mirror at 25%: {quarters} of {n}");
        assert!(quarters <= 80, "about a quarter should be mirrored: {quarters} of {n}");
    });
}

/// A mirror to one subset of a service, at the older integer
/// `mirrorPercent`: copies reach that subset's instance alone, about as
/// often as the percentage says.
#[test]
fn a_mirror_goes_to_its_subset_at_the_older_percent() {
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let (_m, main) = demo("main", "v1").await;
        let (_a, v1) = demo("copy", "v1").await;
        let (_b, v2) = demo("copy", "v2").await;
        let yaml = backend_yaml("main", main)
            + &format!(
                r#"---
apiVersion: v1
kind: Service
metadata: {{name: copy}}
spec: {{selector: {{app: copy}}, ports: [{{name: http, port: 80}}]}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: copy-v1}}
spec: {{address: 127.0.0.1, ports: {{http: {v1}}}, labels: {{app: copy, version: v1}}}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: copy-v2}}
spec: {{address: 127.0.0.1, ports: {{http: {v2}}}, labels: {{app: copy, version: v2}}}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: copy}}
spec:
  host: copy
  subsets: [{{name: v1, labels: {{version: v1}}}}, {{name: v2, labels: {{version: v2}}}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: main}}
spec:
  hosts: [main]
  http:
    - route: [{{destination: {{host: main}}}}]
      mirror: {{host: copy, subset: v2}}
      mirrorPercent: 50
"#
            );
        std::fs::write(dir.path().join("mesh.yaml"), yaml).unwrap();
        let control = Control::start(dir.path()).await;
        let sc = Sidecar::start(&control.xds, "client").await;
        let n = 200;
        for _ in 0..n {
            let r = request(&sc.outbound, "GET", "http://main/", &[], Default::default()).await;
            assert_eq!(r.json()["service"], "main");
        }
        let count = |port: u16| async move {
            get(&format!("127.0.0.1:{port}"), "/admin/stats", &[]).await.json()["requests"].as_u64().unwrap()
        };
        // Binomial(200, 0.5): 65..=135 is beyond 4.9 sd.
        eventually(10, "about half mirrored", || async move { count(v2).await >= 65 }).await;
        let copies = count(v2).await;
        assert!(copies <= 135, "about half should be mirrored: {copies} of {n}");
        assert_eq!(count(v1).await, 0, "no copy outside the subset");
    });
}

/// Fault injection: aborts (HTTP and gRPC status) and delays for their
/// percentage of requests; a slow mirror never holds the main request up.
#[test]
fn faults_abort_and_delay_and_a_slow_mirror_does_not_slow_the_request() {
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let (_e, echo) = demo("echo", "v1").await;
        let (_s, shadow) = demo("shadow", "v1").await;
        let yaml = backend_yaml("echo", echo)
            + "---\n"
            + &backend_yaml("shadow", shadow)
            + r#"---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: echo}
spec:
  hosts: [echo]
  http:
    - match: [{headers: {x-fault: {exact: teapot}}}]
      fault: {abort: {httpStatus: 418}}
      route: [{destination: {host: echo}}]
    - match: [{headers: {x-fault: {exact: half}}}]
      fault: {abort: {httpStatus: 503, percentage: {value: 50}}}
      route: [{destination: {host: echo}}]
    - match: [{headers: {x-fault: {exact: grpc}}}]
      fault: {abort: {grpcStatus: UNAVAILABLE}}
      route: [{destination: {host: echo}}]
    - match: [{headers: {x-fault: {exact: slow}}}]
      fault: {delay: {fixedDelay: 300ms, percentage: {value: 100}}}
      route: [{destination: {host: echo}}]
    - match: [{headers: {x-fault: {exact: old-slow}}}]
      fault: {delay: {fixedDelay: 300ms, percent: 100}}
      route: [{destination: {host: echo}}]
    - route: [{destination: {host: echo}}]
      mirror: {host: shadow}
"#;
        std::fs::write(dir.path().join("mesh.yaml"), yaml).unwrap();
        let control = Control::start(dir.path()).await;
        let sc = Sidecar::start(&control.xds, "client").await;
        let call = |fault: &'static str| {
            let out = sc.outbound.clone();
            async move { request(&out, "GET", "http://echo/", &[("x-fault", fault)], Default::default()).await }
        };
        assert_eq!(call("teapot").await.status, 418);
        let n = 400;
        let mut aborted = 0;
        for _ in 0..n {
            let r = call("half").await;
            aborted += u32::from(r.status == 503);
        }
        println!("abort at 50%: {aborted} of {n}");
        // Binomial(400, 0.5): sd = 10; 150..=250 is 5 sd.
        assert!((150..=250).contains(&aborted), "{aborted} of {n}");
        let g = call("grpc").await;
        assert_eq!((g.status, g.headers["grpc-status"].to_str().unwrap()), (200, "14"));
        let t = Instant::now();
        let r = call("slow").await;
        assert_eq!(r.status, 200);
        assert!(t.elapsed() >= Duration::from_millis(300), "delayed by the fault: {:?}", t.elapsed());
        // The older integer `percent` of a delay.
        let t = Instant::now();
        assert_eq!(call("old-slow").await.status, 200);
        assert!(t.elapsed() >= Duration::from_millis(300), "delayed by `percent`: {:?}", t.elapsed());

        // The mirror answers after 2 s; five main requests do not wait for it.
        let b = request(&format!("127.0.0.1:{shadow}"), "POST", "/admin/behavior", &[], r#"{"delayMs": 2000}"#.into())
            .await;
        assert_eq!(b.status, 200);
        let t = Instant::now();
        for _ in 0..5 {
            assert_eq!(request(&sc.outbound, "GET", "http://echo/", &[], Default::default()).await.status, 200);
        }
        assert!(t.elapsed() < Duration::from_secs(2), "main requests waited for the mirror: {:?}", t.elapsed());
    });
}

/// An upstream written out by hand, so that its responses carry the
/// hop-by-hop headers real servers send: `Connection: keep-alive, x-hop`
/// (or `close` for `/close`), `Keep-Alive` and the `X-Hop` it names.
async fn hop_by_hop_upstream() -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    tcp_server(|mut s| async move {
        let (mut buf, mut chunk) = (Vec::new(), [0u8; 4096]);
        loop {
            let end = loop {
                if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    break i + 4;
                }
                match s.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            };
            let close = String::from_utf8_lossy(&buf[..end]).starts_with("GET /close");
            buf.drain(..end);
            let conn = if close { "close" } else { "keep-alive, x-hop" };
            let resp = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: {conn}\r\nKeep-Alive: timeout=5\r\nX-Hop: 1\r\nX-End: kept\r\n\r\nok"
            );
            if s.write_all(resp.as_bytes()).await.is_err() || close {
                return;
            }
        }
    })
    .await
}

#[test]
fn an_upstreams_hop_by_hop_response_headers_stay_on_its_hop() {
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let port = hop_by_hop_upstream().await;
        std::fs::write(dir.path().join("mesh.yaml"), backend_yaml("hop", port)).unwrap();
        let control = Control::start(dir.path()).await;
        let sc = Sidecar::start(&control.xds, "client").await;
        // `Connection` names `x-hop` on `/` only; on `/close` it is end to end.
        for (path, x_hop) in [("/", None), ("/close", Some("1"))] {
            let r = get(&sc.outbound, path, &[("host", "hop")]).await;
            assert_eq!(r.status, 200, "{path}: {}", String::from_utf8_lossy(&r.body));
            assert_eq!(r.headers.get("x-end").unwrap(), "kept", "{path}: end-to-end headers pass");
            for h in ["connection", "keep-alive"] {
                assert!(r.headers.get(h).is_none(), "{path}: the upstream's {h} reached the client: {:?}", r.headers);
            }
            assert_eq!(r.headers.get("x-hop").map(|v| v.to_str().unwrap()), x_hop, "{path}: {:?}", r.headers);
        }
    });
}
