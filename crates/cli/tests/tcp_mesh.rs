//! A TCP service behind a weft sidecar: its inbound listener is TCP (the
//! service's ports are), the client's sidecar speaks mutual TLS to it and
//! checks its identity, and the server's sidecar holds connections to the
//! workload's PeerAuthentication and AuthorizationPolicies before a byte
//! reaches the app (Istio's rules for TCP: an ALLOW rule with HTTP-only
//! fields allows nothing, a DENY rule loses them and denies more).

mod common;
use common::*;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

/// One line through `addr`: what came back, or None when the connection
/// closed without an answer (refused somewhere along the way).
async fn echo(addr: &str, line: &str) -> Option<String> {
    let s = tokio::net::TcpStream::connect(addr).await.ok()?;
    let (r, mut w) = s.into_split();
    w.write_all(format!("{line}\n").as_bytes()).await.ok()?;
    let mut back = String::new();
    let read = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        tokio::io::BufReader::new(r).read_line(&mut back).await
    });
    match read.await {
        Ok(Ok(n)) if n > 0 => Some(back.trim_end().to_owned()),
        _ => None,
    }
}

/// `echo`: a Service with one TCP port whose instance is the echo app's
/// sidecar at 127.0.0.2 (its own loopback address, as `weft up` gives each
/// workload), running as `account`.
fn mesh(svc: u16, app: u16, inbound: u16, account: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: echo}}\nspec:\n  selector: {{app: echo}}\n  ports: [{{name: tcp-echo, port: {svc}, targetPort: {app}}}]\n---\napiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {{name: echo}}\nspec: {{address: 127.0.0.2, ports: {{tcp-echo: {inbound}}}, labels: {{app: echo, security.istio.io/tlsMode: istio}}, serviceAccount: {account}}}\n"
    )
}

const PA: &str = "---\napiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: default}\n";
const AP: &str = "---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n";

/// The echo sidecar's inbound listener, as its admin page shows it.
async fn inbound(admin: &str) -> serde_json::Value {
    let dump = get(admin, "/config_dump", &[]).await.json();
    dump["listeners"].as_array().unwrap().iter().find(|l| l["name"] == "inbound").cloned().unwrap_or_default()
}

/// Waits until the echo sidecar's inbound listener satisfies `ok`.
async fn until(admin: &str, what: &str, ok: impl Fn(&serde_json::Value) -> bool) {
    eventually(20, what, || {
        let admin = admin.to_owned();
        let ok = &ok;
        async move { ok(&inbound(&admin).await) }
    })
    .await;
}

/// Waits until the client's clusters expect a server running as `account`.
async fn expects(client: &Sidecar, account: &str) {
    let want = format!("sa/{account}");
    eventually(20, &format!("the client's cluster to expect {want}"), || {
        let (a, want) = (client.admin.clone(), want.clone());
        async move { get(&a, "/config_dump", &[]).await.json()["clusters"].to_string().contains(&want) }
    })
    .await;
}

#[test]
fn a_tcp_service_behind_a_sidecar_takes_mutual_tls_and_its_policies() {
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let (svc, app, inbound_port) = (free_port(), free_port(), free_port());
        let _app = spawn(&["demo", "--tcp", "--name", "echo", "--host", "127.0.0.1", "--port", &app.to_string()]);
        let base = mesh(svc, app, inbound_port, "echo");
        let write = |extra: &str| std::fs::write(dir.path().join("mesh.yaml"), base.clone() + extra).unwrap();
        write("");
        let control = Control::start(dir.path()).await;
        let (a, i) = (app.to_string(), inbound_port.to_string());
        let [c, api, t, token] = control.ca_args();
        let server = [c, api, t, token, "--app-port", &a, "--inbound-port", &i, "--listen-ip", "127.0.0.2"];
        let server = [&server[..], &["--labels", "app=echo", "--service-account", "echo"]].concat();
        let server = Sidecar::start_with(&control.xds, "echo", &server).await;
        let client = Sidecar::start_with(&control.xds, "client", &[c, api, t, token, "--service-account", "client"]).await;
        let via_client = format!("127.0.0.1:{svc}");
        let direct = format!("127.0.0.2:{inbound_port}");
        until(&server.admin, "a TCP inbound listener", |l| l["tcp"]["transport"] == "Any").await;
        for sc in [&server, &client] {
            let admin = sc.admin.clone();
            eventually(20, "the sidecars' certificates", || {
                let a = admin.clone();
                async move { get(&a, "/config_dump", &[]).await.json()["mtls"]["identity"].is_string() }
            })
            .await;
        }

        // PERMISSIVE: the client's sidecar speaks mutual TLS, the server's
        // terminates it and splices to the app, which answers.
        let mtls_before = counter(&server.admin, "weft_inbound_mtls_connections_total").await;
        let back = echo(&via_client, "hello").await;
        assert!(back.as_deref().is_some_and(|b| b.starts_with("echo v1") && b.ends_with(": hello")), "{back:?}");
        assert!(counter(&server.admin, "weft_inbound_mtls_connections_total").await > mtls_before);
        assert!(echo(&direct, "plain").await.is_some(), "PERMISSIVE takes plaintext too");
        // The destination counts the connection, with the caller's identity.
        let admin = server.admin.clone();
        eventually(10, "the destination's TCP metrics", || {
            let admin = admin.clone();
            async move {
                let text = String::from_utf8(get(&admin, "/stats/prometheus", &[]).await.body.to_vec()).unwrap();
                text.lines().any(|l| {
                    l.starts_with("istio_tcp_connections_closed_total{")
                        && l.contains(r#"reporter="destination""#)
                        && l.contains(r#"connection_security_policy="mutual_tls""#)
                        && l.contains(r#"source_principal="spiffe://cluster.local/ns/default/sa/client""#)
                        && l.contains(r#"destination_service="echo.default.svc.cluster.local""#)
                })
            }
        })
        .await;
        // The source counts it too, with the identity its mutual TLS proved.
        let admin = client.admin.clone();
        eventually(10, "the source's TCP metrics", || {
            let admin = admin.clone();
            async move {
                let text = String::from_utf8(get(&admin, "/stats/prometheus", &[]).await.body.to_vec()).unwrap();
                text.lines().any(|l| {
                    l.starts_with("istio_tcp_connections_closed_total{")
                        && l.contains(r#"reporter="source""#)
                        && l.contains(r#"destination_principal="spiffe://cluster.local/ns/default/sa/echo""#)
                })
            }
        })
        .await;

        // STRICT: plaintext is closed before the app sees it, and counted.
        write(&format!("{PA}spec: {{mtls: {{mode: STRICT}}}}\n"));
        until(&server.admin, "STRICT on the TCP inbound", |l| l["tcp"]["transport"] == "Tls").await;
        let refused = counter(&server.admin, "weft_inbound_plaintext_refused_total").await;
        assert_eq!(echo(&direct, "plain").await, None, "STRICT served plaintext");
        assert_eq!(counter(&server.admin, "weft_inbound_plaintext_refused_total").await, refused + 1);
        assert!(echo(&via_client, "strict").await.is_some(), "mutual TLS is served under STRICT");

        // A DENY policy on the caller's principal closes its connections.
        let deny = format!(
            "{AP}metadata: {{name: deny-client}}\nspec:\n  selector: {{matchLabels: {{app: echo}}}}\n  action: DENY\n  rules: [{{from: [{{source: {{principals: [cluster.local/ns/default/sa/client]}}}}]}}]\n"
        );
        write(&format!("{PA}spec: {{mtls: {{mode: STRICT}}}}\n{deny}"));
        until(&server.admin, "the DENY policy", |l| l["tcp"]["authz"].to_string().contains("deny-client")).await;
        assert_eq!(echo(&via_client, "denied").await, None, "the DENY policy let the client through");

        // An ALLOW rule that only a request could match (methods) allows
        // nothing on a TCP port; one that names the caller's principal does.
        let allow = |rules: &str| {
            format!("{AP}metadata: {{name: allow}}\nspec:\n  selector: {{matchLabels: {{app: echo}}}}\n  rules: {rules}\n")
        };
        write(&allow("[{to: [{operation: {methods: [GET]}}]}]"));
        until(&server.admin, "the ALLOW policy with only HTTP fields", |l| {
            l["tcp"]["authz"].to_string().contains("Allow") && !l["tcp"]["authz"].to_string().contains("allow")
        })
        .await;
        assert_eq!(echo(&via_client, "methods").await, None, "an HTTP-only ALLOW rule opened a TCP port");
        write(&allow(&format!(
            "[{{from: [{{source: {{principals: [cluster.local/ns/default/sa/client]}}}}], to: [{{operation: {{ports: [\"{app}\"], methods: [GET]}}}}]}}, {{from: [{{source: {{principals: [cluster.local/ns/default/sa/client]}}}}], to: [{{operation: {{ports: [\"{app}\"]}}}}]}}]"
        )));
        until(&server.admin, "the ALLOW policy on the principal", |l| l["tcp"]["authz"].to_string().contains("rule[1]"))
            .await;
        assert!(echo(&via_client, "allowed").await.is_some(), "the principal's ALLOW rule did not let it through");
        // A DENY rule's HTTP-only fields are dropped: it denies more.
        let deny_get = format!(
            "{AP}metadata: {{name: deny-get}}\nspec:\n  selector: {{matchLabels: {{app: echo}}}}\n  action: DENY\n  rules: [{{to: [{{operation: {{methods: [GET], ports: [\"{app}\"]}}}}]}}]\n"
        );
        write(&(allow(&format!("[{{to: [{{operation: {{ports: [\"{app}\"]}}}}]}}]")) + &deny_get));
        until(&server.admin, "the DENY policy with an HTTP field", |l| l["tcp"]["authz"].to_string().contains("deny-get"))
            .await;
        assert_eq!(echo(&via_client, "get").await, None, "a DENY rule's method kept it from denying a TCP connection");

        // The client checks the server is who the service runs as: an
        // instance said to run as `reviews` is refused with echo's certificate.
        std::fs::write(dir.path().join("mesh.yaml"), mesh(svc, app, inbound_port, "reviews")).unwrap();
        expects(&client, "reviews").await;
        assert_eq!(echo(&via_client, "impostor").await, None, "a server of another identity was accepted");
        std::fs::write(dir.path().join("mesh.yaml"), mesh(svc, app, inbound_port, "echo")).unwrap();
        expects(&client, "echo").await;
        assert!(echo(&via_client, "again").await.is_some());
    });
}

/// `weft authz check` on a TCP workload judges a connection as its sidecar
/// does (network RBAC; an ALLOW rule with only HTTP fields opens nothing),
/// and refuses request flags rather than ignoring them.
#[test]
fn authz_check_judges_a_tcp_workloads_connections() {
    let dir = tempfile::tempdir().unwrap();
    let policies = format!(
        "{AP}metadata: {{name: allow-web}}\nspec:\n  selector: {{matchLabels: {{app: echo}}}}\n  rules:\n    - from: [{{source: {{principals: [cluster.local/ns/default/sa/web]}}}}]\n    - to: [{{operation: {{methods: [GET]}}}}]\n"
    );
    std::fs::write(dir.path().join("mesh.yaml"), mesh(9000, 9001, 9002, "echo") + &policies).unwrap();
    let check = |extra: &[&str]| {
        let out = std::process::Command::new(weft())
            .args(["authz", "check"])
            .arg(dir.path())
            .args(["--labels", "app=echo", "--port", "9001"])
            .args(extra)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
        (out.status.code(), text)
    };
    let (code, text) = check(&["--from", "cluster.local/ns/default/sa/web"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("TCP workload") && text.contains("AuthorizationPolicy default/allow-web, rule 0"), "{text}");
    let (code, text) = check(&["--from", "cluster.local/ns/default/sa/other"]);
    assert_eq!(code, Some(1), "the GET-only rule opens nothing on TCP: {text}");
    assert!(text.contains("DENY: no ALLOW rule matches"), "{text}");
    let (code, text) = check(&["--path", "/x", "--claims", "{}"]);
    assert!(code != Some(0) && code != Some(1), "request flags on a TCP workload are an error: {text}");
    assert!(text.contains("--path, --claims") && text.contains("serves TCP"), "{text}");
}
