//! Mutual TLS between the mesh's proxies, through `weft up` on the
//! bookinfo example: the control plane's CA issues each proxy a certificate
//! for its SPIFFE ID, sidecars and the gateway speak mutual TLS to mesh
//! endpoints, and the application learns its caller's identity from
//! `x-forwarded-client-cert`.

mod common;
use common::*;
use rustls::pki_types::CertificateDer;

const PRODUCTPAGE: &str = "spiffe://cluster.local/ns/default/sa/bookinfo-productpage";
const DETAILS: &str = "spiffe://cluster.local/ns/default/sa/default";
const GATEWAY: &str = "spiffe://cluster.local/ns/default/sa/ingressgateway-service-account";

#[test]
fn proxies_speak_mutual_tls_and_name_the_caller() {
    let mut up = Up::start(&repo().join("examples/bookinfo"));
    let gw = format!("127.0.0.1:{}", up.gateway_port);
    let workload =
        |name: &str| up.info["workloads"].as_array().unwrap().iter().find(|w| w["name"] == name).unwrap().clone();
    let details = workload("details");
    let details_admin = format!("127.0.0.1:{}", details["admin"]);
    let details_inbound = format!("{}:{}", details["ip"].as_str().unwrap(), details["inboundPort"]);
    rt().block_on(async {
        // Each proxy knows who it is.
        let dump = get(&details_admin, "/config_dump", &[]).await.json();
        assert_eq!(dump["mtls"]["identity"], DETAILS, "{}", dump["mtls"]);
        assert!(dump["mtls"]["expiresInSeconds"].as_u64().unwrap() > 3600);

        // gateway → productpage → details, each hop mutual TLS.
        let before = counter(&details_admin, "weft_inbound_mtls_connections_total").await;
        let r = get(&gw, "/", &[]).await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        let j = r.json();
        assert_xfcc(
            &j["headers"]["x-forwarded-client-cert"],
            PRODUCTPAGE,
            GATEWAY,
            "productpage learns the gateway called",
        );
        let calls = j["calls"].as_array().unwrap();
        let d = calls.iter().find(|c| c["target"] == "details:9080").unwrap();
        assert_xfcc(
            &d["body"]["headers"]["x-forwarded-client-cert"],
            DETAILS,
            PRODUCTPAGE,
            "details learns productpage called",
        );
        assert!(counter(&details_admin, "weft_inbound_mtls_connections_total").await > before);

        // Plaintext is still accepted (PERMISSIVE), but a client cannot
        // vouch for itself: its forged header is removed.
        let forged = get(&details_inbound, "/", &[("x-forwarded-client-cert", "URI=spiffe://evil")]).await;
        assert_eq!(forged.status, 200);
        assert_eq!(forged.json()["headers"].get("x-forwarded-client-cert"), None, "{}", forged.json());

        // TLS without a mesh certificate is refused in the handshake.
        let failures = counter(&details_admin, "weft_tls_handshake_failures_total").await;
        let refused = tls_get(&details_inbound, None, &[]).await;
        assert!(refused.is_err(), "a client without a certificate was served: {refused:?}");
        assert_eq!(counter(&details_admin, "weft_tls_handshake_failures_total").await, failures + 1);
    });

    // `weft cert` brings a process that is not a weft proxy into the mesh,
    // for an identity it proves: none, no certificate.
    let certs = tempfile::tempdir().unwrap();
    let api = up.info["control"]["api"].as_str().unwrap().to_owned();
    let cert = |extra: &[&str]| {
        std::process::Command::new(weft())
            .args(["cert", "--ca", &api, "--service-account", "batch"])
            .args(extra)
            .arg("--out")
            .arg(certs.path())
            .output()
            .unwrap()
    };
    let refused = cert(&[]);
    assert!(!refused.status.success(), "a certificate for anyone who asks");
    assert!(String::from_utf8_lossy(&refused.stderr).contains("proof of that identity"));
    let out = cert(&["--token-file", up.info["control"]["adminToken"].as_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(certs.path().join("key.pem")).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600, "the key is its owner's alone");
    rt().block_on(async {
        // It names itself a workload of another namespace: its certificate
        // says `default`, and that is what the callee's metrics believe.
        let forged = [("x-weft-source", "intruder.kube-system")];
        let body = tls_get(&details_inbound, Some(certs.path()), &forged)
            .await
            .expect("a client with a mesh certificate is served");
        let j: serde_json::Value = serde_json::from_str(&body).unwrap();
        // Hash= is the SHA-256 of the caller's certificate, as Envoy writes it.
        use rustls::pki_types::pem::PemObject;
        let der = CertificateDer::from_pem_file(certs.path().join("cert.pem")).unwrap();
        let hash: String =
            ring::digest::digest(&ring::digest::SHA256, &der).as_ref().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            j["headers"]["x-forwarded-client-cert"],
            format!("By={DETAILS};Hash={hash};URI=spiffe://cluster.local/ns/default/sa/batch"),
            "{j}"
        );
        let page = String::from_utf8(get(&details_admin, "/stats/prometheus", &[]).await.body.to_vec()).unwrap();
        let requests = |l: &&str| l.starts_with("istio_requests_total{") && l.contains(r#"reporter="destination""#);
        assert!(!page.lines().filter(requests).any(|l| l.contains("kube-system")), "{page}");
        assert!(
            page.lines().filter(requests).any(|l| l.contains(r#"source_workload="unknown""#)
                && l.contains(r#"source_workload_namespace="default""#)
                && l.contains(r#"connection_security_policy="mutual_tls""#)),
            "{page}"
        );
    });
    up.stop();
}

/// An `x-forwarded-client-cert` element as Envoy writes it: `By=<by>;Hash=<64
/// hex digits>;URI=<uri>`.
fn assert_xfcc(v: &serde_json::Value, by: &str, uri: &str, what: &str) {
    let v = v.as_str().unwrap_or_else(|| panic!("{what}: no x-forwarded-client-cert"));
    let hash = v.strip_prefix(&format!("By={by};Hash=")).and_then(|r| r.strip_suffix(&format!(";URI={uri}")));
    assert!(hash.is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit())), "{what}: {v}");
}

/// GET / over TLS with the certificate and key in `certs` (`weft cert`'s
/// files) or none; the body, or why it failed.
async fn tls_get(addr: &str, certs: Option<&std::path::Path>, headers: &[(&str, &str)]) -> Result<String, String> {
    let call = tls::Call { host: "details", headers, ..Default::default() };
    tls::send(addr, true, certs, &call).await.map(|(_, body)| body)
}

/// The CA signs only an identity its caller proves, and the API registers
/// instances only of it: no token, another identity's token, an expired
/// one, a registration or heartbeat under another service account are
/// each refused and counted; a proxy exchanges its bootstrap token for a
/// certificate on the TLS port and renews by that certificate after the
/// token expired.
#[test]
fn identities_are_proven_before_they_are_issued() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("svc.yaml"), service_yaml("web", &[])).unwrap();
    let files = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let control = Control::start_with(dir.path(), &["--workload-cert-ttl", "4s"]).await;
        let run = |args: &[&str]| std::process::Command::new(weft()).args(args).output().unwrap();
        let token = |sa: &str, ttl: &str| {
            let out = run(&["token", "create", "--control", &control.api, "--admin-token-file", &control.admin_token, "--service-account", sa, "--ttl", ttl]);
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            let file = files.path().join(format!("{sa}-{ttl}.token"));
            std::fs::write(&file, String::from_utf8(out.stdout).unwrap().trim()).unwrap();
            file.to_str().unwrap().to_owned()
        };
        let out = files.path().join("certs");
        let cert = |sa: &str, token: Option<&str>| {
            let mut args = vec!["cert", "--ca", &control.api, "--service-account", sa, "--out", out.to_str().unwrap()];
            args.extend(token.map(|t| ["--token-file", t]).into_iter().flatten());
            run(&args)
        };
        let web = token("web", "10m");
        assert!(!cert("web", None).status.success(), "no token");
        assert!(cert("web", Some(&web)).status.success(), "web's own token");
        let stolen = cert("db", Some(&web));
        assert!(!stolen.status.success(), "web's token for db");
        assert!(String::from_utf8_lossy(&stolen.stderr).contains("spiffe://cluster.local/ns/default/sa/db needs proof"));
        let brief = token("web", "1s");
        eventually(10, "a token past its expiry to be refused", || async { !cert("web", Some(&brief)).status.success() }).await;
        let not_admin = run(&["token", "create", "--control", &control.api, "--admin-token-file", &web, "--service-account", "db"]);
        assert!(!not_admin.status.success(), "a workload's token makes no tokens");

        // Registration: web's token registers web's instances only.
        let bearer = format!("Bearer {}", std::fs::read_to_string(&web).unwrap());
        let h = [("content-type", "application/json"), ("authorization", bearer.as_str())];
        let instance = |sa: &str| {
            serde_json::json!({"name": "web", "address": "127.0.0.1", "port": 9, "serviceAccount": sa, "ttlSeconds": 30}).to_string()
        };
        let r = request(&control.api, "POST", "/v1/instances", &h, instance("db").into()).await;
        assert_eq!(r.status, 401, "{}", String::from_utf8_lossy(&r.body));
        let r = request(&control.api, "POST", "/v1/instances", &h[..1], instance("web").into()).await;
        assert_eq!(r.status, 401, "no credential");
        let r = request(&control.api, "POST", "/v1/instances", &h, instance("web").into()).await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        let id = r.json()["id"].as_str().unwrap().to_owned();
        let other = format!("Bearer {}", std::fs::read_to_string(token("db", "10m")).unwrap());
        let beat = format!("/v1/instances/{id}/heartbeat");
        let r = request(&control.api, "PUT", &beat, &[h[0], ("authorization", &other)], Default::default()).await;
        assert_eq!(r.status, 401, "db keeps web's instance alive");
        let r = request(&control.api, "DELETE", &format!("/v1/instances/{id}"), &h[..1], Default::default()).await;
        assert_eq!(r.status, 401, "anyone removes web's instance");
        let page = String::from_utf8(get(&control.api, "/metrics", &[]).await.body.to_vec()).unwrap();
        let refused = |what: &str| {
            let label = format!("weft_control_unauthorized_total{{request=\"{what}\"}} ");
            page.lines().find_map(|l| l.strip_prefix(&label)).map_or(0, |v| v.trim().parse::<u64>().unwrap())
        };
        assert!(refused("certificate") >= 3 && refused("registration") >= 4 && refused("token") >= 1, "{page}");

        // A sidecar on the TLS port: its token (expiring in 3 s) gets the
        // first certificate; renewals (every 2 s) prove it by the certificate.
        let root = control.ca_dir.path().join("root-cert.pem");
        let short = token("web", "3s");
        let made = std::time::Instant::now();
        let args = ["--ca", &control.api_tls, "--ca-root", root.to_str().unwrap(), "--token-file", &short, "--service-account", "web"];
        let sc = Sidecar::start_with(&control.xds, "web", &args).await;
        eventually(30, "renewals after the token expired", || {
            let a = sc.admin.clone();
            async move { counter(&a, "weft_workload_certificates_total").await >= 4 }
        })
        .await;
        // Certificates at about 0, 2, 4 and 6 s: the last ones after the token's end.
        assert!(made.elapsed().as_secs_f64() > 3.0, "four certificates within the token's life");
    });
}
