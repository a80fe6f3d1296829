//! A gateway's TCP and TLS-passthrough servers through a real gateway
//! process: a TLS connection goes to the backend its ClientHello names
//! (VirtualService `tls` rules by `sniHosts`, exact and wildcard), with its
//! bytes passed through untouched; a TCP server's connections follow the
//! `tcp` rule bound to it. A connection no rule takes is closed.

mod common;
use common::*;

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
        let diags = weft_api::validate(&weft_api::parse_str("mesh.yaml", &yaml).resources);
        let said: Vec<_> = diags.iter().filter(|d| d.severity != weft_api::Severity::Info).collect();
        assert!(said.is_empty(), "{said:#?}");
        std::fs::write(dir.path().join("mesh.yaml"), yaml).unwrap();
        let control = Control::start(dir.path()).await;
        let admin = free_port().to_string();
        let off = offset.to_string();
        let args = ["gateway", "--xds", &control.xds, "--labels", "istio=ingressgateway", "--port-offset", &off];
        let _gw = spawn(&[&args[..], &["--admin-port", &admin, "--metrics-port", "0", "--health-port", "0"]].concat());
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
        let diags = weft_api::validate(&weft_api::parse_str("mesh.yaml", &yaml).resources);
        let said: Vec<_> = diags.iter().filter(|d| d.severity != weft_api::Severity::Info).collect();
        assert!(said.is_empty(), "{said:#?}");
        std::fs::write(dir.path().join("mesh.yaml"), yaml).unwrap();
        let control = Control::start(dir.path()).await;
        let (admin, off) = (free_port().to_string(), offset.to_string());
        let args = ["gateway", "--xds", &control.xds, "--labels", "istio=eastwestgateway", "--port-offset", &off];
        let [c, api, t, token] = control.ca_args();
        let ca = [c, api, t, token];
        let _gw =
            spawn(&[&args[..], &ca, &["--admin-port", &admin, "--metrics-port", "0", "--health-port", "0"]].concat());
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
