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

    // `weft cert` brings a process that is not a weft proxy into the mesh.
    let certs = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(weft())
        .args(["cert", "--ca", up.info["control"]["api"].as_str().unwrap(), "--service-account", "batch"])
        .arg("--out")
        .arg(certs.path())
        .output()
        .unwrap();
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
