//! The TLS a sidecar speaks to its upstreams, through real proxies: the
//! server's identity checked against its service's accounts (a server with
//! a valid mesh certificate of another service is refused), DestinationRule
//! `tls` ISTIO_MUTUAL and DISABLE, and TLS origination to services outside
//! the mesh (SIMPLE and MUTUAL, CA, SNI, subject alt names,
//! `insecureSkipVerify`, `credentialName`), for HTTP and TCP ports.

mod common;
use common::https::{Pki, pki, tls_secret};
use common::origin::{answers, external, tls_server, write_pem};
use common::*;

const REVIEWS_SVC: &str = "apiVersion: v1\nkind: Service\nmetadata: {name: reviews}\nspec:\n  selector: {app: reviews}\n  ports: [{name: http, port: 80}]\n";

fn reviews_entry(inbound: u16, account: &str) -> String {
    format!(
        "---\napiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {{name: reviews-1}}\nspec:\n  address: 127.0.0.1\n  ports: {{http: {inbound}}}\n  labels: {{app: reviews, security.istio.io/tlsMode: istio}}\n  serviceAccount: {account}\n"
    )
}

fn reviews_rule(tls: &str) -> String {
    format!(
        "---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: reviews}}\nspec:\n  host: reviews\n  trafficPolicy:\n    tls: {tls}\n"
    )
}

#[test]
fn a_server_showing_another_services_identity_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("mesh.yaml");
    rt().block_on(async {
        // The server's sidecar holds a valid mesh certificate, for `ratings`;
        // the mesh says `reviews` runs as `reviews`.
        let (_app, app) = demo("reviews", "v1").await;
        let inbound = free_port();
        std::fs::write(&config, format!("{REVIEWS_SVC}{}", reviews_entry(inbound, "reviews"))).unwrap();
        let control = Control::start(dir.path()).await;
        let (a, i) = (app.to_string(), inbound.to_string());
        let server: Vec<&str> = ["--app-port", &a, "--inbound-port", &i, "--service-account", "ratings"]
            .into_iter()
            .chain(control.ca_args())
            .collect();
        let _server = Sidecar::start_with(&control.xds, "impostor", &server).await;
        let client: Vec<&str> = ["--service-account", "productpage"].into_iter().chain(control.ca_args()).collect();
        let sc = Sidecar::start_with(&control.xds, "productpage", &client).await;

        // Refused in the handshake, before a byte of the request is sent.
        let body = answers(&sc.outbound, "reviews", 503, "TLS handshake").await;
        assert!(body.contains("spiffe://cluster.local/ns/default/sa/ratings"), "names what it showed: {body}");
        let dump = sc.config_dump().await;
        let cluster = dump["clusters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "outbound|80||reviews.default.svc.cluster.local")
            .cloned()
            .unwrap_or_default();
        assert!(cluster.to_string().contains("spiffe://cluster.local/ns/default/sa/reviews"), "{cluster}");

        // The account it runs as, told to the mesh: served, over mutual TLS.
        std::fs::write(&config, format!("{REVIEWS_SVC}{}", reviews_entry(inbound, "ratings"))).unwrap();
        let body = answers(&sc.outbound, "reviews", 200, "x-forwarded-client-cert").await;
        assert!(body.contains("sa/productpage"), "the server learns its caller: {body}");

        // A DestinationRule's ISTIO_MUTUAL with subjectAltNames decides whom
        // to accept; DISABLE speaks plaintext (the server is PERMISSIVE).
        let mut yaml = format!("{REVIEWS_SVC}{}", reviews_entry(inbound, "ratings"));
        yaml += &reviews_rule("{mode: ISTIO_MUTUAL, subjectAltNames: [spiffe://cluster.local/ns/default/sa/details]}");
        std::fs::write(&config, yaml).unwrap();
        answers(&sc.outbound, "reviews", 503, "is not one its service runs as").await;
        let mut yaml = format!("{REVIEWS_SVC}{}", reviews_entry(inbound, "ratings"));
        yaml += &reviews_rule("{mode: DISABLE}");
        std::fs::write(&config, yaml).unwrap();
        let plain = answers(&sc.outbound, "reviews", 200, "\"headers\"").await;
        assert!(!plain.contains("x-forwarded-client-cert"), "DISABLE is plaintext: {plain}");

        // A ServiceEntry's servers: its endpoints' accounts, and its own
        // `subjectAltNames` beside them.
        let entry = |sans: &str| {
            format!(
                "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: ledger}}\nspec:\n  hosts: [ledger.internal.example]\n  location: MESH_INTERNAL\n  resolution: STATIC\n  ports: [{{number: 80, name: http, protocol: HTTP}}]\n  endpoints: [{{address: 127.0.0.1, ports: {{http: {inbound}}}, labels: {{security.istio.io/tlsMode: istio}}, serviceAccount: ledger}}]\n  subjectAltNames: [{sans}]\n"
            )
        };
        std::fs::write(&config, entry("spiffe://cluster.local/ns/default/sa/billing")).unwrap();
        let body = answers(&sc.outbound, "ledger.internal.example", 503, "TLS handshake").await;
        assert!(body.contains("sa/ratings"), "{body}");
        std::fs::write(&config, entry("spiffe://cluster.local/ns/default/sa/ratings")).unwrap();
        answers(&sc.outbound, "ledger.internal.example", 200, "x-forwarded-client-cert").await;
    });
}

#[test]
fn a_destination_rule_originates_tls_to_services_outside_the_mesh() {
    let dir = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    let config = dir.path().join("external.yaml");
    let Pki { server_ca, shop, client_ca, client, .. } = pki();
    let ca = write_pem(files.path(), "ca.pem", &server_ca);
    let wrong_ca = write_pem(files.path(), "wrong-ca.pem", &client_ca);
    let cert = write_pem(files.path(), "client.pem", &client.0);
    let key = write_pem(files.path(), "client-key.pem", &client.1);
    rt().block_on(async {
        // Two HTTPS servers for shop.example: one takes anyone, one asks
        // for a client certificate.
        let open = tls_server(&shop, None).await;
        let mutual = tls_server(&shop, Some(&client_ca)).await;
        let tcp_port = free_port();
        let simple = format!("{{mode: SIMPLE, caCertificates: {ca}}}");
        std::fs::write(&config, external("shop.example", open, tcp_port, &simple)).unwrap();
        let control = Control::start(dir.path()).await;
        let sc = Sidecar::start(&control.xds, "client").await;

        // The app speaks plaintext; its sidecar speaks TLS, with the SNI of
        // the host, and checks the server's chain and name.
        answers(&sc.outbound, "shop.example", 200, "tls sni=shop.example client=no").await;
        // The same over a TCP port: the splice is TLS on the upstream side.
        let mut s = None;
        for _ in 0..100 {
            if let Ok(c) = tokio::net::TcpStream::connect(("127.0.0.1", tcp_port)).await {
                s = Some(c);
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let mut s = s.expect("the sidecar's TCP listener");
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        s.write_all(b"GET / HTTP/1.1\r\nhost: shop.example\r\nconnection: close\r\n\r\n").await.unwrap();
        let mut back = String::new();
        s.read_to_string(&mut back).await.unwrap();
        assert!(back.contains("tls sni=shop.example client=no"), "{back}");

        // A server the rule's CA did not sign, or whose name is not the
        // one asked for, is refused; insecureSkipVerify takes any.
        let tls = format!("{{mode: SIMPLE, caCertificates: {wrong_ca}}}");
        std::fs::write(&config, external("shop.example", open, tcp_port, &tls)).unwrap();
        answers(&sc.outbound, "shop.example", 503, "TLS handshake").await;
        let tls = format!("{{mode: SIMPLE, caCertificates: {ca}, subjectAltNames: [api.example]}}");
        std::fs::write(&config, external("shop.example", open, tcp_port, &tls)).unwrap();
        answers(&sc.outbound, "shop.example", 503, "TLS handshake").await;
        let tls = format!("{{mode: SIMPLE, caCertificates: {wrong_ca}, insecureSkipVerify: true, sni: other.example}}");
        std::fs::write(&config, external("shop.example", open, tcp_port, &tls)).unwrap();
        answers(&sc.outbound, "shop.example", 200, "tls sni=other.example").await;

        // MUTUAL: the server wants a client certificate. SIMPLE has none to
        // show; MUTUAL shows the files' or the Secret's.
        std::fs::write(&config, external("shop.example", mutual, tcp_port, &simple)).unwrap();
        answers(&sc.outbound, "shop.example", 503, "").await;
        let tls = format!("{{mode: MUTUAL, caCertificates: {ca}, clientCertificate: {cert}, privateKey: {key}}}");
        std::fs::write(&config, external("shop.example", mutual, tcp_port, &tls)).unwrap();
        answers(&sc.outbound, "shop.example", 200, "client=yes").await;
        let yaml = external("shop.example", mutual, tcp_port, "{mode: MUTUAL, credentialName: shop-client}")
            + &tls_secret("shop-client", &client, Some(&server_ca));
        // Back to SIMPLE first, so that the Secret's rule is seen to work.
        std::fs::write(&config, external("shop.example", mutual, tcp_port, &simple)).unwrap();
        answers(&sc.outbound, "shop.example", 503, "").await;
        std::fs::write(&config, &yaml).unwrap();
        answers(&sc.outbound, "shop.example", 200, "client=yes").await;
    });
}

#[test]
fn client_tls_settings_that_cannot_work_are_refused_by_validation() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("{mode: MUTUAL}", "MUTUAL needs a client certificate"),
        ("{mode: SIMPLE, credentialName: nowhere}", "no Secret `nowhere`"),
        ("{mode: MUTUAL, clientCertificate: /c.pem}", "`clientCertificate` is set without `privateKey`"),
        ("{mode: STRICT}", "unknown TLS mode `STRICT`"),
    ];
    for (tls, want) in cases {
        std::fs::write(dir.path().join("x.yaml"), external("shop.example", 443, 5000, tls)).unwrap();
        let out = std::process::Command::new(weft()).arg("validate").arg(dir.path()).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{tls} validated: {text}");
        assert!(text.contains(want) && text.contains("trafficPolicy.tls"), "{tls}: {text}");
    }
    // Fields the mode does not use are accepted and said to be unused.
    for (tls, want) in [
        ("{mode: ISTIO_MUTUAL, caCertificates: /ca.pem}", "`caCertificates` is not applied: ISTIO_MUTUAL"),
        ("{sni: shop.example}", "with no `mode` the rule is DISABLE"),
    ] {
        std::fs::write(dir.path().join("x.yaml"), external("shop.example", 443, 5000, tls)).unwrap();
        let out = std::process::Command::new(weft()).arg("validate").arg(dir.path()).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success() && text.contains(want), "{tls}: {text}");
    }
}
