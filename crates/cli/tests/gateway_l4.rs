//! A gateway's TCP and TLS-passthrough servers through a real gateway
//! process: a TLS connection goes to the backend its ClientHello names
//! (VirtualService `tls` rules by `sniHosts`, exact and wildcard), with its
//! bytes passed through untouched; a TCP server's connections follow the
//! `tcp` rule bound to it. A connection no rule takes is closed.

mod common;
use common::*;

/// `yaml` validates with nothing said but information (and what `expected`
/// excuses), and is the control plane's config in `dir`.
async fn config(dir: &std::path::Path, yaml: &str, expected: impl Fn(&weft_api::Diagnostic) -> bool) -> Control {
    let diags = weft_api::validate(&weft_api::parse_str("mesh.yaml", yaml).resources);
    let said: Vec<_> = diags.iter().filter(|d| d.severity != weft_api::Severity::Info && !expected(d)).collect();
    assert!(said.is_empty(), "{said:#?}");
    std::fs::write(dir.join("mesh.yaml"), yaml).unwrap();
    Control::start(dir).await
}

/// Gateway `edge` (the ingress gateway's) with `servers` (YAML list
/// items, indented four spaces), every host of it routed to `web`.
fn edge(servers: &str) -> String {
    format!(
        "---\napiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {{name: edge}}\nspec:\n  selector: {{istio: ingressgateway}}\n  servers:\n{servers}---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: web}}\nspec:\n  hosts: [\"*\"]\n  gateways: [edge]\n  http: [{{route: [{{destination: {{host: web}}}}]}}]\n"
    )
}

#[test]
fn a_gateway_routes_tls_by_sni_and_tcp_by_port() {
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let (offset, tcp_port) = l4::ports();
        let yaml = l4::mesh(tcp_port).await;
        let diags = weft_api::validate(&weft_api::parse_str("mesh.yaml", &yaml).resources);
        assert!(diags.is_empty(), "{diags:#?}");
        std::fs::write(dir.path().join("mesh.yaml"), yaml).unwrap();
        let control = Control::start(dir.path()).await;
        let admin = free_port().to_string();
        let _gw = spawn(&[
            "gateway",
            "--xds",
            &control.xds,
            "--labels",
            "istio=ingressgateway",
            "--port-offset",
            &offset.to_string(),
            "--admin-port",
            &admin,
            "--metrics-port",
            "0",
            "--health-port",
            "0",
        ]);
        let (tls, tcp) = (format!("127.0.0.1:{}", 443 + offset), format!("127.0.0.1:{}", tcp_port + offset));
        let t = tcp.clone();
        eventually(20, "the gateway's TCP listener", || {
            let t = t.clone();
            async move { up_at(&t).await }
        })
        .await;
        l4::check(&tls, &tcp).await;
    });
}

/// On a sidecar, a TLS service port's `tls` rules route by SNI too; a
/// name no rule claims goes to the service itself.
#[test]
fn a_sidecar_routes_a_tls_port_by_sni() {
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let (api, pay) = (l4::backend("api").await, l4::backend("pay").await);
        let svc_port = free_port();
        let routes = format!(
            r#"apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: api}}
spec:
  hosts: [api]
  tls:
    - match: [{{sniHosts: [pay.example.com], port: {svc_port}}}]
      route: [{{destination: {{host: pay, port: {{number: {svc_port}}}}}}}]
    - match: [{{sniHosts: [shop.example.com], port: {svc_port}, sourceLabels: {{role: canary}}}}]
      route: [{{destination: {{host: api, port: {{number: {svc_port}}}}}}}]
    - match: [{{sniHosts: [shop.example.com], port: {svc_port}, sourceNamespace: other}}]
      route: [{{destination: {{host: api, port: {{number: {svc_port}}}}}}}]
    - match: [{{sniHosts: [shop.example.com], port: {svc_port}}}]
      route:
        - {{destination: {{host: api, port: {{number: {svc_port}}}}}, weight: 0}}
        - {{destination: {{host: pay, port: {{number: {svc_port}}}}}, weight: 100}}
"#
        );
        let yaml =
            l4::service("api", "tls-api", svc_port, api) + &l4::service("pay", "tls-api", svc_port, pay) + &routes;
        let diags = weft_api::validate(&weft_api::parse_str("mesh.yaml", &yaml).resources);
        assert!(diags.is_empty(), "{diags:#?}");
        std::fs::write(dir.path().join("mesh.yaml"), yaml).unwrap();
        let control = Control::start(dir.path()).await;
        let _sc = Sidecar::start(&control.xds, "client").await;
        let at = format!("127.0.0.1:{svc_port}");
        let a = at.clone();
        eventually(20, "the sidecar's TLS port", || {
            let a = a.clone();
            async move { up_at(&a).await }
        })
        .await;
        assert_eq!(l4::exchange(&at, &l4::client_hello("pay.example.com")).await, "pay tls=true");
        assert_eq!(l4::exchange(&at, &l4::client_hello("api.example.com")).await, "api tls=true");
        assert_eq!(l4::exchange(&at, b"not tls").await, "api tls=false", "the rest goes to the service");
        // By weight; a rule for other callers' labels or namespace passes
        // this one by, and a sidecar with those labels takes it.
        assert_eq!(l4::exchange(&at, &l4::client_hello("shop.example.com")).await, "pay tls=true");
        let _canary =
            Sidecar::start_with(&control.xds, "canary", &["--labels", "role=canary", "--listen-ip", "127.0.0.2"]).await;
        let canary = format!("127.0.0.2:{svc_port}");
        let c = canary.clone();
        eventually(20, "the canary's TLS port", || {
            let c = c.clone();
            async move { up_at(&c).await }
        })
        .await;
        assert_eq!(l4::exchange(&canary, &l4::client_hello("shop.example.com")).await, "api tls=true");
    });
}

/// HTTPS servers the gateway terminates: the certificate its ClientHello's
/// name picks (SIMPLE), a client certificate required where MUTUAL, both
/// from `kubernetes.io/tls` Secrets; plain HTTP redirected by `httpsRedirect`.
#[test]
fn a_gateway_terminates_https_by_server_name() {
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let offset = https::offset();
        let pki = https::pki();
        let (yaml, _web) = https::mesh(&pki).await;
        let control = config(dir.path(), &yaml, |_| false).await;
        let _gw = gateway(&control, "istio=ingressgateway", offset, &[]);
        https::check(offset, &pki).await;
    });
}

/// ISTIO_MUTUAL: the gateway shows its mesh certificate and takes clients
/// of the mesh, of the identities its `subjectAltNames` name (east-west
/// traffic). OPTIONAL_MUTUAL: a client certificate is checked when shown.
#[test]
fn a_gateway_terminates_istio_mutual_and_optional_mutual() {
    let dir = tempfile::tempdir().unwrap();
    let certs = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let offset = https::offset();
        let pki = https::pki();
        let (web, port) = demo("web", "v1").await;
        let yaml = backend_yaml("web", port)
            + &https::tls_secret("api-cert", &pki.api, Some(&pki.client_ca))
            + r#"---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: eastwest}
spec:
  selector: {istio: eastwestgateway}
  servers:
    - port: {number: 80, name: mesh, protocol: HTTPS}
      hosts: ["*"]
      tls: {mode: ISTIO_MUTUAL, subjectAltNames: [spiffe://cluster.local/ns/default/sa/frontend]}
    - port: {number: 443, name: api, protocol: HTTPS}
      hosts: [api.example]
      tls: {mode: OPTIONAL_MUTUAL, credentialName: api-cert}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web}
spec:
  hosts: ["*"]
  gateways: [eastwest]
  http: [{route: [{destination: {host: web}}]}]
"#;
        let control = config(dir.path(), &yaml, |_| false).await;
        let _gw = gateway(&control, "istio=eastwestgateway", offset, &control.ca_args());
        let (mesh, api) = (format!("127.0.0.1:{}", 80 + offset), format!("127.0.0.1:{}", 443 + offset));
        let frontend = common::tls::weft_cert(&control, certs.path(), "default", "frontend");
        let batch = common::tls::weft_cert(&control, certs.path(), "default", "batch");
        let call = common::tls::Call { host: "web", ..Default::default() };
        eventually(30, "the gateway's mesh listener, with its certificate", || {
            let (mesh, frontend, call) = (mesh.clone(), frontend.clone(), &call);
            async move { common::tls::send(&mesh, true, Some(&frontend), call).await.is_ok_and(|(s, _)| s == 200) }
        })
        .await;
        let refused = |r: Result<(u16, String), String>| r.is_err() || r.is_ok_and(|(s, _)| s >= 400);
        assert!(refused(common::tls::send(&mesh, true, Some(&batch), &call).await), "batch is not frontend");
        assert!(refused(common::tls::send(&mesh, true, None, &call).await), "a client without a mesh certificate");
        assert!(refused(common::tls::send(&mesh, false, None, &call).await), "plaintext on an ISTIO_MUTUAL port");

        // OPTIONAL_MUTUAL: no certificate, served; one of its CA, served;
        // one of another CA (the servers'), refused.
        let none = https::https_get(&api, "api.example", &pki.server_ca, None).await.expect("no client certificate");
        assert_eq!(none.status, 200);
        let good = https::https_get(&api, "api.example", &pki.server_ca, Some(&pki.client)).await;
        assert_eq!(good.expect("a certificate of the client CA").status, 200);
        let other = https::https_get(&api, "api.example", &pki.server_ca, Some(&pki.shop)).await;
        assert!(other.is_err() || other.is_ok_and(|r| r.status >= 400), "a certificate of another CA was taken");
        drop(web);
    });
}

/// An RSA key (rcgen on ring makes none), by Python's `cryptography`.
fn rsa_key() -> rcgen::KeyPair {
    let py = "from cryptography.hazmat.primitives.asymmetric import rsa\nfrom cryptography.hazmat.primitives import serialization as s\nk = rsa.generate_private_key(public_exponent=65537, key_size=2048)\nprint(k.private_bytes(s.Encoding.PEM, s.PrivateFormat.PKCS8, s.NoEncryption()).decode())";
    let out = std::process::Command::new("python3").args(["-c", py]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    rcgen::KeyPair::from_pem(&String::from_utf8(out.stdout).unwrap()).unwrap()
}

/// A CA and a leaf for `name` it signs (with `key`, else a new ECDSA key):
/// (CA PEM, (certificate PEM, key PEM)).
fn ca_and_leaf(ca_name: &str, name: &str, key: Option<rcgen::KeyPair>) -> (String, (String, String)) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(rcgen::DnType::CommonName, ca_name);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_pem = p.self_signed(&ca_key).unwrap().pem();
    let issuer = Issuer::new(p, ca_key);
    let key = key.unwrap_or_else(|| KeyPair::generate().unwrap());
    let leaf = CertificateParams::new(vec![name.to_owned()]).unwrap().signed_by(&key, &issuer).unwrap();
    (ca_pem, (leaf.pem(), key.serialize_pem()))
}

/// A server's certificate from files, read again when they change: new
/// connections get the new one, an open connection goes on; a pair caught
/// half-written is not taken. `credentialNames` with an RSA and an ECDSA
/// certificate: each client gets the one it can use; a Secret replaced in
/// the config reaches new connections while open ones go on.
#[test]
fn a_gateway_reloads_certificate_files_and_picks_rsa_or_ecdsa() {
    let dir = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let offset = https::offset();
        let (old_ca, old) = ca_and_leaf("old", "files.example", None);
        let (new_ca, new) = ca_and_leaf("new", "files.example", None);
        let (both_ca, ec) = ca_and_leaf("both", "both.example", None);
        // An RSA certificate of the same name.
        let rsa = ca_and_leaf("rsa", "both.example", Some(rsa_key()));
        let (cert_path, key_path) = (files.path().join("cert.pem"), files.path().join("key.pem"));
        std::fs::write(&cert_path, &old.0).unwrap();
        std::fs::write(&key_path, &old.1).unwrap();
        let (web, port) = demo("web", "v1").await;
        let yaml = backend_yaml("web", port)
            + &https::tls_secret("both-ec", &ec, None)
            + &https::tls_secret("both-rsa", &rsa.1, None)
            + &edge(&format!(
                "    - port: {{number: 443, name: files, protocol: HTTPS}}\n      hosts: [files.example]\n      tls: {{mode: SIMPLE, serverCertificate: {}, privateKey: {}}}\n    - port: {{number: 443, name: both, protocol: HTTPS}}\n      hosts: [both.example]\n      tls: {{mode: SIMPLE, credentialNames: [both-rsa, both-ec]}}\n",
                cert_path.display(),
                key_path.display()
            ));
        let control = config(dir.path(), &yaml, |_| false).await;
        let _gw = gateway(&control, "istio=ingressgateway", offset, &[]);
        let addr = format!("127.0.0.1:{}", 443 + offset);
        eventually(30, "the gateway's HTTPS listener", || {
            let (addr, ca) = (addr.clone(), old_ca.clone());
            async move { https::https_get(&addr, "files.example", &ca, None).await.is_ok_and(|r| r.status == 200) }
        })
        .await;

        // Both key types of one server, each to the client that can use it.
        use rustls::crypto::ring::cipher_suite::{
            TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 as ECDSA, TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 as RSA,
        };
        for (suite, ca, what) in [(ECDSA, &both_ca, "ECDSA"), (RSA, &rsa.0, "RSA")] {
            let r = https::https_get_offering(&addr, "both.example", ca, None, Some(suite)).await;
            assert_eq!(r.map(|r| r.status), Ok(200), "a TLS 1.2 client that takes {what} only");
        }

        // The files change: a connection opened before goes on; new ones
        // see the new certificate once it is whole.
        let mut open = https::connect(&addr, "files.example", https::client_config(&old_ca, None, None)).await.unwrap();
        assert_eq!(https::send(&mut open, "files.example").await.map(|r| r.status), Ok(200));
        std::fs::write(&cert_path, &new.0).unwrap();
        // Half-written: the new certificate with the old key is not taken.
        let half = https::https_get(&addr, "files.example", &old_ca, None).await;
        assert_eq!(half.map(|r| r.status), Ok(200), "the last whole pair stays while the key is not there yet");
        std::fs::write(&key_path, &new.1).unwrap();
        eventually(10, "new connections to show the new certificate", || {
            let (addr, ca) = (addr.clone(), new_ca.clone());
            async move { https::https_get(&addr, "files.example", &ca, None).await.is_ok_and(|r| r.status == 200) }
        })
        .await;
        assert!(https::https_get(&addr, "files.example", &old_ca, None).await.is_err(), "the old one is gone");
        assert_eq!(https::send(&mut open, "files.example").await.map(|r| r.status), Ok(200), "the open connection");

        // The ECDSA Secret replaced in the config: new connections get the
        // new certificate, one opened before goes on.
        let ec_client = |ca: &str| https::client_config(ca, None, Some(ECDSA));
        let mut open = https::connect(&addr, "both.example", ec_client(&both_ca)).await.unwrap();
        let (next_ca, next) = ca_and_leaf("next", "both.example", None);
        let replaced =
            yaml.replace(&https::tls_secret("both-ec", &ec, None), &https::tls_secret("both-ec", &next, None));
        assert_ne!(replaced, yaml);
        std::fs::write(dir.path().join("mesh.yaml"), replaced).unwrap();
        eventually(20, "new connections to show the replaced Secret's certificate", || {
            let (addr, cfg) = (addr.clone(), ec_client(&next_ca));
            async move {
                match https::connect(&addr, "both.example", cfg).await {
                    Ok(mut c) => https::send(&mut c, "both.example").await.is_ok_and(|r| r.status == 200),
                    Err(_) => false,
                }
            }
        })
        .await;
        assert_eq!(
            https::send(&mut open, "both.example").await.map(|r| r.status),
            Ok(200),
            "the connection from before"
        );
        drop(web);
    });
}

/// AUTO_PASSTHROUGH (an east-west gateway): a mesh client's mutual TLS,
/// naming `outbound_.<port>_.<subset>_.<host>`, goes through the gateway
/// still encrypted to an instance of that service (and subset), whose
/// sidecar terminates it and sees the caller's identity; a name no service
/// has is refused. A weft sidecar names its mesh connections so.
#[test]
fn an_auto_passthrough_gateway_routes_mesh_tls_by_server_name() {
    let dir = tempfile::tempdir().unwrap();
    let certs = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let offset = https::offset();
        let (_app, app) = demo("web", "v1").await;
        let inbound = free_port();
        let yaml = format!(
            r#"apiVersion: v1
kind: Service
metadata: {{name: web}}
spec: {{selector: {{app: web}}, ports: [{{name: http, port: 80, targetPort: {app}}}]}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: web}}
spec: {{address: 127.0.0.1, ports: {{http: {inbound}}}, labels: {{app: web, version: v1, security.istio.io/tlsMode: istio}}, serviceAccount: web}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: web}}
spec: {{host: web, subsets: [{{name: v1, labels: {{version: v1}}}}, {{name: v2, labels: {{version: v2}}}}]}}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: eastwest}}
spec:
  selector: {{istio: eastwestgateway}}
  servers:
    - port: {{number: 443, name: tls, protocol: TLS}}
      hosts: ["*.local"]
      tls: {{mode: AUTO_PASSTHROUGH}}
"#
        );
        // v2 is there to be missing: its instance-less subset is said.
        let control = config(dir.path(), &yaml, |d| d.path.contains("subsets[1]")).await;
        let (a, i) = (app.to_string(), inbound.to_string());
        let extra = ["--app-port", &a, "--inbound-port", &i, "--labels", "app=web,version=v1", "--service-account", "web"];
        let extra: Vec<&str> = extra.into_iter().chain(control.ca_args()).collect();
        let _web = Sidecar::start_with(&control.xds, "web", &extra).await;
        let _gw = gateway(&control, "istio=eastwestgateway", offset, &[]);
        let gw = format!("127.0.0.1:{}", 443 + offset);
        let frontend = common::tls::weft_cert(&control, certs.path(), "default", "frontend");
        let via = |sni: &'static str| {
            let (gw, frontend) = (gw.clone(), frontend.clone());
            async move {
                let call = common::tls::Call { sni: Some(sni), ..Default::default() };
                common::tls::send(&gw, true, Some(&frontend), &call).await
            }
        };
        const ALL: &str = "outbound_.80_._.web.default.svc.cluster.local";
        eventually(30, "the east-west gateway passing web's mutual TLS through", || {
            let r = via(ALL);
            async move { r.await.is_ok_and(|(s, _)| s == 200) }
        })
        .await;
        let (_, body) = via(ALL).await.unwrap();
        let j: serde_json::Value = serde_json::from_str(&body).unwrap();
        let xfcc = j["headers"]["x-forwarded-client-cert"].as_str().unwrap_or_default().to_owned();
        assert!(xfcc.contains("sa/frontend") && xfcc.contains("By=spiffe://cluster.local/ns/default/sa/web"), "web's sidecar ended the caller's TLS: {j}");
        assert_eq!(via("outbound_.80_.v1_.web.default.svc.cluster.local").await.map(|r| r.0), Ok(200), "a subset by name");
        let refused = |r: Result<(u16, String), String>| r.is_err();
        assert!(refused(via("outbound_.80_.v2_.web.default.svc.cluster.local").await), "v2 has no instance");
        assert!(refused(via("outbound_.81_._.web.default.svc.cluster.local").await), "no such port");
        assert!(refused(via("outbound_.80_._.other.default.svc.cluster.local").await), "no such service");

        // A weft sidecar's mesh connections to web name it so.
        let [c, api, t, token] = control.ca_args();
        let client = Sidecar::start_with(&control.xds, "frontend", &[c, api, t, token, "--service-account", "frontend"]).await;
        eventually(20, "frontend's cluster for web", || {
            let a = client.admin.clone();
            async move { get(&a, "/config_dump", &[]).await.json()["clusters"].to_string().contains(ALL) }
        })
        .await;
    });
}

/// `verifyCertificateHash` and `verifyCertificateSpki` on MUTUAL servers:
/// of two client certificates from the same CA, each server takes the one
/// it pins (by the whole certificate's digest, or its public key's) and
/// refuses the other.
#[test]
fn a_mutual_server_takes_only_the_client_certificates_it_pins() {
    use base64::Engine;
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let offset = https::offset();
        let pki = https::pki();
        let der = |pem: &str| CertificateDer::from_pem_slice(pem.as_bytes()).unwrap();
        let sha = |b: &[u8]| ring::digest::digest(&ring::digest::SHA256, b).as_ref().to_vec();
        // The client's certificate by its digest, colon-separated as
        // openssl prints it.
        let hash: Vec<String> = sha(&der(&pki.client.0)).iter().map(|b| format!("{b:02X}")).collect();
        // b-client's by its public key's digest (its key's SubjectPublicKeyInfo).
        let key = rcgen::KeyPair::from_pem(&pki.other_client.1).unwrap();
        let spki =
            base64::engine::general_purpose::STANDARD.encode(sha(&rcgen::PublicKeyData::subject_public_key_info(&key)));
        let (web, port) = demo("web", "v1").await;
        let yaml = backend_yaml("web", port)
            + &https::tls_secret("api-cert", &pki.api, Some(&pki.client_ca))
            + &https::tls_secret("shop-cert", &pki.shop, Some(&pki.client_ca))
            + &edge(&format!(
                "    - port: {{number: 443, name: api, protocol: HTTPS}}\n      hosts: [api.example]\n      tls: {{mode: MUTUAL, credentialName: api-cert, verifyCertificateHash: [\"{}\"]}}\n    - port: {{number: 443, name: shop, protocol: HTTPS}}\n      hosts: [shop.example]\n      tls: {{mode: MUTUAL, credentialName: shop-cert, verifyCertificateSpki: [\"{spki}\"]}}\n",
                hash.join(":")
            ));
        let control = config(dir.path(), &yaml, |_| false).await;
        let _gw = gateway(&control, "istio=ingressgateway", offset, &[]);
        let addr = format!("127.0.0.1:{}", 443 + offset);
        let get = |name: &'static str, who: &'static (String, String)| {
            let (addr, ca) = (addr.clone(), pki.server_ca.clone());
            async move { https::https_get(&addr, name, &ca, Some(who)).await.map(|r| r.status) }
        };
        let client: &'static (String, String) = Box::leak(Box::new(pki.client.clone()));
        let other: &'static (String, String) = Box::leak(Box::new(pki.other_client.clone()));
        eventually(30, "the gateway's pinned MUTUAL servers", || {
            let r = get("api.example", client);
            async move { r.await == Ok(200) }
        })
        .await;
        let refused = |r: Result<u16, String>| r.is_err() || r.is_ok_and(|s| s >= 400);
        assert!(refused(get("api.example", other).await), "api pins the client's certificate, not b-client's");
        assert_eq!(get("shop.example", other).await, Ok(200), "shop pins b-client's public key");
        assert!(refused(get("shop.example", client).await), "shop pins b-client's, not the client's");
        drop(web);
    });
}
