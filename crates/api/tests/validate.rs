//! Cross-reference and field checks: each problem reported once, at the
//! exact line:col of the offending field, with its code and a hint.

use weft_api::diag::codes;
use weft_api::{Diagnostic, parse_str, validate};

fn check(yaml: &str) -> Vec<Diagnostic> {
    let loaded = parse_str("mesh.yaml", yaml);
    let mut d = loaded.diagnostics;
    d.extend(validate(&loaded.resources));
    d
}

/// The one diagnostic with `code`, asserting where it points.
fn one(diags: &[Diagnostic], code: &str, line: u32, col: u32) -> Diagnostic {
    let hits: Vec<_> = diags.iter().filter(|d| d.code == code).collect();
    assert_eq!(hits.len(), 1, "want one {code}, got {diags:#?}");
    assert_eq!((hits[0].pos.line, hits[0].pos.col), (line, col), "{}", hits[0]);
    hits[0].clone()
}

const BASE: &str = r#"apiVersion: v1
kind: Service
metadata: {name: reviews}
spec:
  selector: {app: reviews}
  ports:
    - {name: http, port: 9080}
    - {name: grpc, port: 9090}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  subsets:
    - name: v1
      labels: {version: v1}
---
apiVersion: networking.istio.io/v1beta1
kind: WorkloadEntry
metadata: {name: r1}
spec:
  address: 10.0.0.1
  labels: {app: reviews, version: v1}
"#;

#[test]
fn base_is_clean() {
    assert!(check(BASE).is_empty(), "{:#?}", check(BASE));
}

#[test]
fn unknown_gateway_is_an_error_at_the_reference() {
    let yaml = format!(
        "{BASE}---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: vs}}\nspec:\n  hosts: [reviews]\n  gateways: [mesh, missing-gw]\n  http:\n    - route: [{{destination: {{host: reviews, port: {{number: 9080}}}}}}]\n"
    );
    let d = one(&check(&yaml), codes::UNKNOWN_GATEWAY, 31, 20);
    assert!(d.message.contains("missing-gw"), "{d}");
    assert_eq!(d.path, "spec.gateways[1]");
    assert!(d.is_error());
}

#[test]
fn unknown_host_subset_and_port_point_at_their_fields() {
    let yaml = format!(
        "{BASE}---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: vs}}
spec:
  hosts: [reviews]
  http:
    - route:
        - destination: {{host: ratings}}
    - route:
        - destination:
            host: reviews
            subset: v9
            port: {{number: 9080}}
    - route:
        - destination:
            host: reviews
            port: {{number: 1234}}
    - route:
        - destination: {{host: reviews}}
"
    );
    let diags = check(&yaml);
    let d = one(&diags, codes::UNKNOWN_HOST, 33, 25);
    assert!(d.hint.as_deref().unwrap().contains("reviews"), "lists known services: {d}");
    let d = one(&diags, codes::UNKNOWN_SUBSET, 37, 13);
    assert!(d.hint.as_deref().unwrap().contains("v1"), "lists defined subsets: {d}");
    let ports: Vec<_> = diags.iter().filter(|d| d.code == codes::UNKNOWN_PORT).collect();
    assert_eq!(ports.len(), 2, "{diags:#?}");
    assert_eq!((ports[0].pos.line, ports[0].pos.col), (42, 20), "no port 1234: {}", ports[0]);
    assert_eq!((ports[1].pos.line, ports[1].pos.col), (44, 11), "several ports, none named: {}", ports[1]);
}

#[test]
fn weights_that_send_nothing_are_errors() {
    let yaml = format!(
        "{BASE}---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: vs}}
spec:
  hosts: [reviews]
  http:
    - route:
        - destination: {{host: reviews, subset: v1, port: {{number: 9080}}}}
        - destination: {{host: reviews, subset: v1, port: {{number: 9080}}}}
          weight: -5
"
    );
    let diags = check(&yaml);
    let w: Vec<_> = diags.iter().filter(|d| d.code == codes::WEIGHTS).collect();
    assert_eq!(w.len(), 2, "{diags:#?}");
    assert!(w.iter().any(|d| d.message.contains("negative") && d.pos.line == 35), "{w:#?}");
    assert!(w.iter().any(|d| d.message.contains("none receives traffic")), "{w:#?}");
}

#[test]
fn unknown_fields_are_warned_by_name_and_position() {
    let yaml = "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec:\n  selectr: {app: x}\n  ports:\n    - {name: http, port: 80, targtPort: 8080}\n";
    let diags = check(yaml);
    let unknown: Vec<_> = diags.iter().filter(|d| d.code == codes::UNKNOWN_FIELD).collect();
    assert_eq!(unknown.len(), 2, "{diags:#?}");
    assert_eq!((unknown[0].pos.line, unknown[0].pos.col), (5, 3));
    assert!(unknown[0].message.contains("`selectr`"));
    assert_eq!((unknown[1].pos.line, unknown[1].pos.col), (7, 30));
    assert!(unknown.iter().all(|d| !d.is_error()), "unknown fields warn, they do not reject");
    assert_eq!(unknown[0].hint.as_deref(), Some("did you mean `selector`?"), "{}", unknown[0]);
    assert_eq!(unknown[1].hint.as_deref(), Some("did you mean `targetPort`?"), "{}", unknown[1]);

    // Deeper, inside a list and an option: a route's retries; and a name
    // like no field, which gets the general hint.
    let yaml = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: v}\nspec:\n  hosts: [a]\n  http:\n    - route: [{destination: {host: a}}]\n      retries: {attempts: 3, perTryTimout: 2s}\n      colour: blue\n";
    let diags = check(yaml);
    let unknown: Vec<_> = diags.iter().filter(|d| d.code == codes::UNKNOWN_FIELD).collect();
    assert_eq!(unknown.len(), 2, "{diags:#?}");
    assert_eq!(unknown[0].hint.as_deref(), Some("did you mean `perTryTimeout`?"), "{}", unknown[0]);
    assert!(unknown[1].hint.as_deref().unwrap().contains("check the spelling"), "{}", unknown[1]);
}

#[test]
fn type_errors_and_bad_values_name_the_field() {
    let yaml = "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: d}\nspec:\n  host: reviews\n  trafficPolicy:\n    connectionPool:\n      tcp: {connectTimeout: 5 seconds}\n";
    let d = one(&check(yaml), codes::BAD_FIELD, 8, 13);
    assert!(d.message.contains("invalid duration"), "{d}");
    assert_eq!(d.path, "spec.trafficPolicy.connectionPool.tcp.connectTimeout");

    let yaml = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: v}\nspec:\n  hosts: [a]\n  http:\n    - match: [{uri: {regex: \"(\"}}]\n      directResponse: {status: 200}\n";
    let d = one(&check(yaml), codes::INVALID_VALUE, 7, 22);
    assert!(d.message.contains("regex"), "{d}");
}

#[test]
fn a_misspelt_required_field_is_named_in_the_error() {
    // `destinaton` is unknown and `destination` missing: one error, which
    // names the typo and the field it should be.
    let yaml = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: v}\nspec:\n  hosts: [a]\n  http:\n    - route:\n        - destinaton: {host: a}\n";
    let d = one(&check(yaml), codes::BAD_FIELD, 8, 11);
    assert!(d.message.contains("missing field `destination`"), "{d}");
    assert_eq!(d.hint.as_deref(), Some("`destinaton` here is not a field: did you mean `destination`?"), "{d}");
    assert!(check(yaml).iter().all(|d| d.code != codes::UNKNOWN_FIELD), "the typo is named once, in the error");
    // Other unknown fields of a document that fails are still reported.
    let other = yaml.replace("  hosts: [a]\n", "  hosts: [a]\n  gatways: [g]\n");
    let diags = check(&other);
    let w = one(&diags, codes::UNKNOWN_FIELD, 6, 3);
    assert_eq!(w.hint.as_deref(), Some("did you mean `gateways`?"), "{w}");
    assert!(diags.iter().any(|d| d.code == codes::BAD_FIELD && d.is_error()), "{diags:#?}");
    // Nothing like it beside: the plain hint.
    let yaml = yaml.replace("destinaton", "target");
    let d = one(&check(&yaml), codes::BAD_FIELD, 8, 11);
    assert_eq!(d.hint.as_deref(), Some("add the field; it has no default"), "{d}");
}

#[test]
fn a_tab_in_the_indentation_is_named() {
    let d = one(&check("apiVersion: v1\nkind: Service\nmetadata:\n\tname: x\n"), codes::YAML_SYNTAX, 4, 2);
    assert_eq!(d.hint.as_deref(), Some("YAML indents with spaces only: replace the tab on line 4 with spaces"), "{d}");
}

#[test]
fn json_documents_are_read_too() {
    let json =
        r#"{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "j"}, "spec": {"ports": [{"port": 80}]}}"#;
    let loaded = parse_str("svc.json", json);
    assert!(loaded.diagnostics.is_empty(), "{:#?}", loaded.diagnostics);
    assert_eq!(loaded.resources[0].name(), "j");
}

#[test]
fn wrong_api_version_and_unknown_kind_are_rejected() {
    let d = check("apiVersion: networking.istio.io/v2\nkind: Gateway\nmetadata: {name: g}\n");
    assert!(d[0].is_error() && d[0].message.contains("apiVersion"), "{d:#?}");
    let d = check("apiVersion: v1\nkind: Servise\nmetadata: {name: g}\n");
    assert!(d[0].is_error() && d[0].message.contains("Servise"), "{d:#?}");
}

#[test]
fn missing_route_beside_match_is_explained() {
    // Valid YAML where `route` ended up inside the match item: the rule has no action.
    let yaml = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: v}\nspec:\n  hosts: ['*']\n  http:\n    - match:\n        - uri: {exact: /}\n          route:\n            - destination: {host: x}\n";
    let diags = check(yaml);
    assert!(
        diags.iter().any(|d| d.code == codes::UNKNOWN_FIELD && d.message.contains("`route`") && d.pos.line == 9),
        "{diags:#?}"
    );
    let e = diags.iter().find(|d| d.code == codes::MISSING_FIELD).expect("rule without action");
    assert!(e.hint.as_deref().unwrap().contains("beside `match`"), "{e}");
}

#[test]
fn thousands_of_documents_in_one_file_load() {
    let mut yaml = String::new();
    for i in 0..3000 {
        yaml.push_str(&format!(
            "---\napiVersion: v1\nkind: Service\nmetadata: {{name: s{i}}}\nspec:\n  ports: [{{port: 80}}]\n"
        ));
    }
    let loaded = parse_str("big.yaml", &yaml);
    assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics.first());
    assert_eq!(loaded.resources.len(), 3000);
}

#[test]
fn weft_annotations_are_checked_at_their_line() {
    let yaml = r#"apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: reviews
  annotations:
    health-check.weft.dev/path: /health
    health-check.weft.dev/intervall: 5s
spec:
  host: reviews
"#;
    let d = one(&check(yaml), codes::INVALID_VALUE, 7, 5);
    assert!(d.message.contains("health-check.weft.dev/intervall"), "{d}");
    assert!(d.hint.as_deref().unwrap_or("").contains("did you mean `health-check.weft.dev/interval`"), "{d}");
}

#[test]
fn an_unknown_tls_mode_is_warned_at_its_label() {
    let yaml = r#"apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: vm-1}
spec:
  address: 10.0.0.7
  labels:
    app: reviews
    security.istio.io/tlsMode: Istio
"#;
    let d = one(&check(yaml), codes::INVALID_VALUE, 8, 5);
    assert!(d.message.contains("`Istio`") && d.message.contains("outside the mesh"), "{d}");
    assert!(check(&yaml.replace("Istio", "istio")).is_empty());
}

/// Request authentication is applied: a rule without an issuer, or with a
/// key set that is not one, is an error at its field; a good one is clean.
#[test]
fn a_request_authentication_names_its_issuer_and_a_key_set() {
    let yaml = "apiVersion: security.istio.io/v1\nkind: RequestAuthentication\nmetadata: {name: default}\nspec:\n  jwtRules: [{jwks: '{\"keys\": []}'}]\n";
    let diags = check(yaml);
    let at = |path: &str| diags.iter().find(|d| d.path == path).unwrap_or_else(|| panic!("{path}: {diags:#?}"));
    assert!(at("spec.jwtRules[0].issuer").is_error());
    assert!(at("spec.jwtRules[0].jwks").message.contains("no key"));
    let good = "apiVersion: security.istio.io/v1\nkind: RequestAuthentication\nmetadata: {name: default}\nspec:\n  jwtRules: [{issuer: me, jwksUri: 'https://me.example/keys'}]\n";
    assert!(check(good).is_empty(), "{:#?}", check(good));
}

#[test]
fn a_peer_authentication_needs_known_modes_and_a_selector_for_ports() {
    let yaml = "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: default}\nspec:\n  mtls: {mode: STRICTER}\n  portLevelMtls: {\"8080\": {mode: DISABLE}}\n";
    let diags = check(yaml);
    let at = |path: &str| diags.iter().find(|d| d.path == path).unwrap_or_else(|| panic!("{path}: {diags:#?}"));
    assert!(at("spec.mtls.mode").message.contains("`STRICTER`"));
    assert!(at("spec.portLevelMtls").message.contains("selector"));
    let good = "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: default}\nspec:\n  mtls: {mode: STRICT}\n";
    assert!(check(good).is_empty(), "{:#?}", check(good));
}

#[test]
fn direct_response_bytes_must_be_base64() {
    let yaml = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: v}\nspec:\n  hosts: [v]\n  http:\n    - directResponse: {status: 200, body: {bytes: \"not base64!\"}}\n";
    let d = one(&check(yaml), codes::INVALID_VALUE, 7, 44);
    assert!(d.is_error() && d.message.contains("base64"), "{d}");
}

#[test]
fn an_unknown_retry_condition_is_an_error() {
    let yaml = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: v}\nspec:\n  hosts: [v]\n  http:\n    - retries: {attempts: 2, retryOn: \"5xx,conect-failure\"}\n      route: [{destination: {host: v}}]\n";
    let d = one(&check(yaml), codes::INVALID_VALUE, 7, 30);
    assert!(d.is_error() && d.message.contains("`conect-failure`"), "{d}");
    assert!(d.hint.unwrap().contains("connect-failure"));
}

#[test]
fn a_cors_policy_the_proxy_cannot_build_is_an_error() {
    let yaml = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: v}\nspec:\n  hosts: [v]\n  http:\n    - route: [{destination: {host: v}}]\n      corsPolicy:\n        allowOrigins: [{regex: \"https://(\"}]\n        allowMethods: [\"GET, POST\"]\n        unmatchedPreflights: DROP\n";
    let diags = check(yaml);
    let at = |path: &str| diags.iter().find(|d| d.path == path).unwrap_or_else(|| panic!("{path}: {diags:#?}"));
    assert!(at("spec.http[0].corsPolicy.allowOrigins[0].regex").message.contains("does not compile"));
    assert!(at("spec.http[0].corsPolicy.allowMethods[0]").is_error());
    assert!(at("spec.http[0].corsPolicy.unmatchedPreflights").hint.as_deref().unwrap().contains("IGNORE"));
}

#[test]
fn an_external_name_service_needs_its_name() {
    let yaml = "apiVersion: v1\nkind: Service\nmetadata: {name: ext}\nspec:\n  type: ExternalName\n  ports: [{name: http, port: 80}]\n";
    let d = one(&check(yaml), codes::MISSING_FIELD, 4, 1);
    assert!(d.is_error() && d.message.contains("externalName"), "{d}");
}

#[test]
fn sidecar_egress_hosts_are_namespace_slash_fqdn() {
    let yaml = "apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: default}\nspec:\n  egress:\n    - hosts: [reviews.default.svc.cluster.local, ./reviews]\n";
    let diags = check(yaml);
    let at = |path: &str| diags.iter().find(|d| d.path == path).unwrap_or_else(|| panic!("{path}: {diags:#?}"));
    assert!(at("spec.egress[0].hosts[0]").is_error());
    let short = at("spec.egress[0].hosts[1]");
    assert!(!short.is_error() && short.message.contains("short name"), "{short}");
}

#[test]
fn a_telemetry_filter_weft_cannot_express_is_an_error_and_a_foreign_provider_a_warning() {
    let yaml = "apiVersion: telemetry.istio.io/v1\nkind: Telemetry\nmetadata: {name: logs, namespace: istio-system}\nspec:\n  accessLogging:\n    - providers: [{name: otel}]\n      filter: {expression: \"request.url_path.startsWith('/api')\"}\n      match: {mode: BOTH}\n";
    let diags = check(yaml);
    let at = |path: &str| diags.iter().find(|d| d.path == path).unwrap_or_else(|| panic!("{path}: {diags:#?}"));
    let f = at("spec.accessLogging[0].filter.expression");
    assert!(f.is_error() && f.message.contains("startsWith"), "{f}");
    assert!(f.hint.as_deref().unwrap().contains("response.code"), "{f}");
    assert!(at("spec.accessLogging[0].match.mode").message.contains("`BOTH`"));
    let p = at("spec.accessLogging[0].providers[0].name");
    assert!(!p.is_error() && p.message.contains("`otel`") && p.message.contains("not applied"), "{p}");
    let good = "apiVersion: telemetry.istio.io/v1\nkind: Telemetry\nmetadata: {name: logs, namespace: istio-system}\nspec:\n  accessLogging:\n    - providers: [{name: envoy}]\n      filter: {expression: \"response.code >= 400 || response.duration > duration('1s')\"}\n";
    assert!(check(good).is_empty(), "{:#?}", check(good));
}

#[test]
fn tracing_settings_weft_would_drop_are_errors_and_unknown_default_providers_warnings() {
    let yaml = "apiVersion: telemetry.istio.io/v1\nkind: Telemetry\nmetadata: {name: t, namespace: istio-system}\nspec:\n  tracing:\n    - randomSamplingPercentage: 150\n      match: {mode: EVERYWHERE}\n      customTags: {team: {}}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: istio, namespace: istio-system}\ndata:\n  mesh: |\n    defaultProviders: {tracing: [jaeger]}\n";
    let diags = check(yaml);
    let at = |path: &str| diags.iter().find(|d| d.path == path).unwrap_or_else(|| panic!("{path}: {diags:#?}"));
    assert!(at("spec.tracing[0].randomSamplingPercentage").message.contains("150"));
    assert!(at("spec.tracing[0].match.mode").message.contains("`EVERYWHERE`"));
    assert!(at("spec.tracing[0].customTags.team").message.contains("exactly one"));
    let d = at("data.mesh");
    assert!(!d.is_error() && d.message.contains("`jaeger`"), "{d}");
}

#[test]
fn an_otlp_http_provider_with_a_bad_path_or_header_is_an_error() {
    let mesh = |http: &str| {
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: istio, namespace: istio-system}}\ndata:\n  mesh: |\n    extensionProviders:\n    - name: otel\n      opentelemetry: {{service: collector, port: 4318, http: {http}}}\n"
        )
    };
    let diags = check(&mesh("{path: v1/traces, headers: [{name: \"x tenant\", value: a}], retries: 3}"));
    let said =
        |text: &str| diags.iter().find(|d| d.message.contains(text)).unwrap_or_else(|| panic!("{text}: {diags:#?}"));
    assert!(said("does not start with `/`").is_error());
    assert!(said("x tenant").is_error());
    assert!(!said("`http.retries` of extension provider `otel` is not applied").is_error());
    let good = mesh("{path: /v1/traces, timeout: 2s, headers: [{name: x-tenant, value: a}]}");
    assert!(check(&good).is_empty(), "{:#?}", check(&good));
}

#[test]
fn an_istio_mutual_server_takes_no_certificate_of_its_own() {
    let gw = |tls: &str| {
        format!(
            "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {{name: g}}\nspec:\n  selector: {{istio: eastwest}}\n  servers:\n    - port: {{number: 15443, name: m, protocol: HTTPS}}\n      hosts: [\"*\"]\n      tls: {tls}\n"
        )
    };
    let diags = check(&gw("{mode: ISTIO_MUTUAL, credentialName: mine}"));
    assert!(diags.iter().any(|d| d.is_error() && d.path == "spec.servers[0].tls.credentialName"), "{diags:#?}");
    let good = check(&gw("{mode: ISTIO_MUTUAL}"));
    assert!(good.iter().all(|d| !d.is_error()), "{good:#?}");
    let optional = check(&gw("{mode: OPTIONAL_MUTUAL, serverCertificate: /c.pem, privateKey: /k.pem}"));
    assert!(optional.iter().any(|d| d.path == "spec.servers[0].tls.caCertificates"), "{optional:#?}");
}

#[test]
fn credential_names_each_name_a_tls_secret_and_exclude_credential_name() {
    let gw = |tls: &str| {
        format!(
            "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {{name: g}}\nspec:\n  selector: {{istio: ingress}}\n  servers:\n    - port: {{number: 443, name: s, protocol: HTTPS}}\n      hosts: [shop.example]\n      tls: {tls}\n---\napiVersion: v1\nkind: Secret\nmetadata: {{name: rsa}}\ntype: kubernetes.io/tls\nstringData: {{tls.crt: \"c\", tls.key: \"k\"}}\n"
        )
    };
    let diags = check(&gw("{mode: SIMPLE, credentialNames: [rsa, ecdsa]}"));
    let missing = diags.iter().find(|d| d.path == "spec.servers[0].tls.credentialNames[1]");
    assert!(missing.is_some_and(|d| d.is_error() && d.message.contains("`ecdsa`")), "{diags:#?}");
    assert!(!diags.iter().any(|d| d.path == "spec.servers[0].tls.credentialNames[0]"), "{diags:#?}");
    let both = check(&gw("{mode: SIMPLE, credentialName: rsa, credentialNames: [rsa]}"));
    assert!(both.iter().any(|d| d.is_error() && d.path == "spec.servers[0].tls.credentialNames"), "{both:#?}");
    let mutual = check(&gw("{mode: MUTUAL, credentialNames: [rsa]}"));
    assert!(mutual.iter().any(|d| d.is_error() && d.message.contains("ca.crt")), "{mutual:#?}");
}

#[test]
fn pinned_client_certificates_are_sha256_digests_on_mutual_servers() {
    let gw = |tls: &str| {
        format!(
            "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {{name: g}}\nspec:\n  selector: {{istio: ingress}}\n  servers:\n    - port: {{number: 443, name: s, protocol: HTTPS}}\n      hosts: [shop.example]\n      tls: {tls}\n"
        )
    };
    let digest = "AB:".repeat(31) + "AB";
    let good = check(&gw(&format!(
        "{{mode: MUTUAL, serverCertificate: /c.pem, privateKey: /k.pem, caCertificates: /ca.pem, verifyCertificateHash: [\"{digest}\"]}}"
    )));
    assert!(good.is_empty(), "{good:#?}");
    let bad = check(&gw(
        "{mode: MUTUAL, serverCertificate: /c.pem, privateKey: /k.pem, caCertificates: /ca.pem, verifyCertificateHash: [abc], verifyCertificateSpki: [\"not base64!\"]}",
    ));
    for path in ["spec.servers[0].tls.verifyCertificateHash[0]", "spec.servers[0].tls.verifyCertificateSpki[0]"] {
        assert!(bad.iter().any(|d| d.is_error() && d.path == path), "{path}: {bad:#?}");
    }
    let simple = check(&gw(&format!(
        "{{mode: SIMPLE, serverCertificate: /c.pem, privateKey: /k.pem, verifyCertificateHash: [\"{digest}\"]}}"
    )));
    let w = simple.iter().find(|d| d.path == "spec.servers[0].tls.verifyCertificateHash");
    assert!(w.is_some_and(|d| !d.is_error() && d.message.contains("not applied")), "{simple:#?}");
}

#[test]
fn a_cookie_attribute_set_cookie_cannot_carry_is_an_error() {
    let dr = |attrs: &str| {
        format!(
            "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: d}}\nspec:\n  host: web\n  trafficPolicy: {{loadBalancer: {{consistentHash: {{httpCookie: {{name: s, ttl: 1s, attributes: {attrs}}}}}}}}}\n"
        )
    };
    let diags = check(&dr("[{name: SameSite, value: \"Lax; Domain=evil\"}, {name: \"Same Site\"}]"));
    let at = |i: usize| {
        let path = format!("spec.trafficPolicy.loadBalancer.consistentHash.httpCookie.attributes[{i}]");
        diags.iter().find(|d| d.path == path && d.is_error()).unwrap_or_else(|| panic!("{path}: {diags:#?}")).clone()
    };
    assert!(at(0).message.contains("holds `;`"), "{}", at(0));
    assert!(at(1).message.contains("not a token"), "{}", at(1));
    let good = dr("[{name: SameSite, value: Strict}, {name: Secure}]");
    assert!(check(&good).iter().all(|d| !d.is_error()), "{:#?}", check(&good));
}
