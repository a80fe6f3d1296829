//! Configuration weft accepts and does not apply is reported, at the field,
//! as a warning that says what happens instead; bookkeeping fields and
//! values weft does apply are quiet.

use weft_api::diag::codes;
use weft_api::{parse_str, validate};

const YAML: &str = r#"apiVersion: v1
kind: Service
metadata: {name: web, uid: 1b2c, resourceVersion: "7"}
spec:
  selector: {app: web}
  type: ClusterIP
  ipFamilies: [IPv4]
  externalTrafficPolicy: Local
  ports: [{name: http, port: 80, protocol: TCP}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web}
spec:
  hosts: [web]
  http:
    - match:
        - uri: {prefix: /}
          statPrefix: web-root
      retries: {attempts: 2, retryOn: "503,retriable-headers"}
      route: [{destination: {host: web}}]
      corsPolicy: {allowOrigins: [{exact: "https://a.example"}], maxAge: 24h}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: web}
spec:
  host: web
  trafficPolicy:
    tls: {mode: SIMPLE, caCrl: /crl.pem}
  subsets:
    - name: v1
      labels: {app: web}
      trafficPolicy: {tls: {mode: ISTIO_MUTUAL, caCrl: /crl.pem}}
"#;

#[test]
fn each_field_not_applied_is_one_warning_at_the_field() {
    let loaded = parse_str("mesh.yaml", YAML);
    assert!(loaded.diagnostics.is_empty(), "{:#?}", loaded.diagnostics);
    let diags = validate(&loaded.resources);
    let mut got: Vec<(u32, u32, &str)> = diags
        .iter()
        .filter(|d| d.code == codes::NOT_APPLIED)
        .map(|d| (d.pos.line, d.pos.col, d.path.as_str()))
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            (8, 3, "spec.externalTrafficPolicy"),
            (19, 11, "spec.http[0].match[0].statPrefix"),
            (20, 30, "spec.http[0].retries.retryOn"),
            (30, 25, "spec.trafficPolicy.tls.caCrl"),
            (34, 49, "spec.subsets[0].trafficPolicy.tls.caCrl"),
        ],
        "{diags:#?}"
    );
    for d in diags.iter().filter(|d| d.code == codes::NOT_APPLIED) {
        assert!(!d.is_error(), "a warning, not an error: {d}");
    }
    let stats = diags.iter().find(|d| d.path.ends_with("statPrefix")).unwrap();
    assert!(stats.message.contains("not applied") && stats.message.contains("per-route stats"), "{stats}");
    let policy = diags.iter().find(|d| d.path == "spec.externalTrafficPolicy").unwrap();
    assert!(policy.message.contains("no node ports"), "{policy}");
    let retry = diags.iter().find(|d| d.path.ends_with("retryOn")).unwrap();
    assert!(retry.message.contains("`retriable-headers` is not applied"), "{retry}");
}

/// A Gateway server weft does not serve is warned of, and so is the
/// namespace part of a host it does not enforce.
#[test]
fn gateway_servers_not_served_are_warned() {
    let yaml = "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: gw}\nspec:\n  selector: {istio: ingressgateway}\n  servers:\n    - port: {number: 80, name: tcp, protocol: TCP}\n      hosts: [\"*\"]\n    - port: {number: 80, name: http, protocol: http}\n      hosts: [\"shop/*.example.com\", \"*/web.example.com\"]\n";
    let loaded = parse_str("gw.yaml", yaml);
    let diags = validate(&loaded.resources);
    let paths: Vec<&str> = diags.iter().filter(|d| d.code == codes::NOT_APPLIED).map(|d| d.path.as_str()).collect();
    assert_eq!(paths, ["spec.servers[0].port", "spec.servers[1].hosts[0]"], "{diags:#?}");
}

/// An HTTPS server the gateway terminates needs its certificate: a Secret
/// of the config, of type kubernetes.io/tls, with a CA for MUTUAL.
#[test]
fn a_terminated_https_server_needs_its_secret() {
    let gw = |mode: &str| {
        format!(
            "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {{name: gw}}\nspec:\n  selector: {{istio: ingressgateway}}\n  servers:\n    - port: {{number: 443, name: https, protocol: HTTPS}}\n      hosts: [shop.example]\n      tls: {{mode: {mode}, credentialName: shop-cert}}\n"
        )
    };
    let errors = |yaml: &str| -> Vec<String> {
        validate(&parse_str("gw.yaml", yaml).resources)
            .into_iter()
            .filter(|d| d.is_error())
            .map(|d| d.message)
            .collect()
    };
    assert!(errors(&gw("SIMPLE")).iter().any(|m| m.contains("no Secret `shop-cert`")), "{:?}", errors(&gw("SIMPLE")));
    let secret = "---\napiVersion: v1\nkind: Secret\nmetadata: {name: shop-cert}\ntype: kubernetes.io/tls\nstringData: {tls.crt: cert, tls.key: key}\n";
    assert!(errors(&(gw("SIMPLE") + secret)).is_empty(), "{:?}", errors(&(gw("SIMPLE") + secret)));
    assert!(
        errors(&(gw("MUTUAL") + secret)).iter().any(|m| m.contains("no `ca.crt`")),
        "{:?}",
        errors(&(gw("MUTUAL") + secret))
    );
    let opaque = secret.replace("type: kubernetes.io/tls", "type: Opaque");
    assert!(errors(&(gw("SIMPLE") + &opaque)).iter().any(|m| m.contains("not of type kubernetes.io/tls")));
}

/// A terminating server's TLS versions and cipher suites: what weft cannot
/// speak is refused when nothing would be left, warned of otherwise.
#[test]
fn gateway_tls_versions_and_suites_weft_cannot_speak_are_said() {
    let said = |tls: &str| -> Vec<(bool, String)> {
        let yaml = format!(
            "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {{name: gw}}\nspec:\n  selector: {{istio: ingressgateway}}\n  servers:\n    - port: {{number: 443, name: https, protocol: HTTPS}}\n      hosts: [shop.example]\n      tls: {{mode: SIMPLE, serverCertificate: /c.pem, privateKey: /k.pem, {tls}}}\n"
        );
        validate(&parse_str("gw.yaml", &yaml).resources)
            .into_iter()
            .filter(|d| d.path.contains("Version") || d.path.contains("cipherSuites"))
            .map(|d| (d.is_error(), d.message))
            .collect()
    };
    let one = |tls: &str, error: bool, text: &str| {
        let got = said(tls);
        assert!(got.len() == 1 && got[0].0 == error && got[0].1.contains(text), "{tls}: {got:?}");
    };
    assert!(said("minProtocolVersion: TLSV1_2, maxProtocolVersion: TLSV1_3").is_empty());
    one("maxProtocolVersion: TLSV1_1", true, "TLS 1.2 and 1.3 only");
    one("minProtocolVersion: TLSV1_0", false, "nothing older than TLS 1.2");
    one("minProtocolVersion: TLSV1_3, maxProtocolVersion: TLSV1_2", true, "above the maximum");
    one("minProtocolVersion: TLSV2", true, "unknown TLS version");
    one("cipherSuites: [AES128-SHA]", true, "none of these cipher suites");
    one(
        "cipherSuites: [\"[ECDHE-ECDSA-AES128-GCM-SHA256|ECDHE-ECDSA-CHACHA20-POLY1305]\", AES256-SHA]",
        false,
        "AES256-SHA not offered",
    );
    assert!(
        said("minProtocolVersion: TLSV1_3, cipherSuites: [AES128-SHA]").iter().all(|(e, _)| !e),
        "TLS 1.3 has no such suites"
    );
}

/// Istio's annotations weft does not apply are warned of by name; its own,
/// `networking.istio.io/exportTo` and others' (kubectl's) are quiet.
#[test]
fn istio_annotations_not_applied_are_warned() {
    let yaml = "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  annotations:\n    sidecar.istio.io/inject: \"false\"\n    networking.istio.io/exportTo: \".\"\n    kubectl.kubernetes.io/last-applied-configuration: \"{}\"\nspec:\n  selector: {app: web}\n  ports: [{name: http, port: 80}]\n";
    let loaded = parse_str("svc.yaml", yaml);
    let diags = validate(&loaded.resources);
    let got: Vec<(u32, &str)> =
        diags.iter().filter(|d| d.code == codes::NOT_APPLIED).map(|d| (d.pos.line, d.path.as_str())).collect();
    assert_eq!(got, [(6, "metadata.annotations.sidecar.istio.io/inject")], "{diags:#?}");
}

/// A value that is already an error (an unknown Gateway protocol) is not
/// also warned of as not applied.
#[test]
fn a_field_in_error_is_not_warned_again() {
    let yaml = "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: gw}\nspec:\n  selector: {istio: ingressgateway}\n  servers:\n    - port: {number: 80, name: http, protocol: HTTTP}\n      hosts: [\"*\"]\n";
    let loaded = parse_str("gw.yaml", yaml);
    let diags = validate(&loaded.resources);
    let at: Vec<&str> = diags.iter().filter(|d| d.path == "spec.servers[0].port.protocol").map(|d| d.code).collect();
    assert_eq!(at, [codes::INVALID_VALUE], "{diags:#?}");
}

/// A TCP server on a port an HTTP server also has gets no listener of its
/// own (the port is served as HTTP), and validation says so.
#[test]
fn a_tcp_server_sharing_an_http_port_is_warned() {
    let yaml = "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: gw}\nspec:\n  servers:\n    - port: {number: 80, name: http, protocol: HTTP}\n      hosts: [\"*\"]\n    - port: {number: 80, name: tcp, protocol: TCP}\n      hosts: [\"*\"]\n";
    let diags = validate(&parse_str("gw.yaml", yaml).resources);
    let hits: Vec<_> = diags.iter().filter(|d| d.code == codes::NOT_APPLIED).collect();
    assert_eq!(hits.len(), 1, "{diags:#?}");
    assert_eq!(hits[0].path, "spec.servers[1].port");
    assert!(hits[0].message.contains("port 80 also has an HTTP server"), "{}", hits[0]);
}
