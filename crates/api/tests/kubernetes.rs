//! Kubernetes manifests as they are: objects that run pods are read for
//! their pods' labels, service account and ports; kinds weft does not act
//! on are noted once per kind; a List's items are documents.

use weft_api::diag::codes;
use weft_api::types::{ContainerPort, PodsSpec};
use weft_api::{Diagnostic, Severity, Spec, parse_str, validate};

const SHOP: &str = include_str!("fixtures/kube-bookinfo.yaml");

fn check(yaml: &str) -> (Vec<weft_api::Resource>, Vec<Diagnostic>) {
    let loaded = parse_str("shop.yaml", yaml);
    let mut d = loaded.diagnostics;
    d.extend(validate(&loaded.resources));
    (loaded.resources, d)
}

#[test]
fn mixed_manifests_validate_with_no_error_and_no_false_warning() {
    let (resources, diags) = check(SHOP);
    let problems: Vec<_> = diags.iter().filter(|d| d.severity != Severity::Info).collect();
    assert!(problems.is_empty(), "{problems:#?}");
    let notes: Vec<&str> = diags.iter().map(|d| d.message.split(':').next().unwrap()).collect();
    assert_eq!(
        notes,
        [
            "ServiceAccount (2)",
            "Deployment (2)",
            "ConfigMap (1)",
            "StatefulSet (1)",
            "Pod (1)",
            "CronJob (1)",
            "Secret (1)"
        ],
        "{diags:#?}"
    );
    // Each note points at the first of its kind.
    let deployment = diags.iter().find(|d| d.message.starts_with("Deployment")).unwrap();
    assert_eq!((deployment.pos.line, deployment.pos.col), (20, 1), "{deployment}");
    assert_eq!(resources.len(), 14);
}

fn pods<'a>(resources: &'a [weft_api::Resource], name: &str) -> &'a PodsSpec {
    match resources.iter().find(|r| r.name() == name).map(|r| &r.spec) {
        Some(Spec::Pods(p)) => p,
        other => panic!("{name}: {other:?}"),
    }
}

#[test]
fn pods_are_read_from_each_kind_that_runs_them() {
    let (resources, _) = check(SHOP);
    let v1 = pods(&resources, "reviews-v1");
    assert_eq!((v1.kind, v1.replicas, v1.service_account.as_deref()), ("Deployment", Some(2), Some("shop-reviews")));
    assert_eq!(v1.labels.get("version").map(String::as_str), Some("v1"));
    let port = ContainerPort { name: Some("http-web".into()), container_port: 9080, protocol: None };
    assert_eq!(v1.ports, [port]);
    // The deprecated `serviceAccount` still names the account.
    let v2 = pods(&resources, "reviews-v2");
    assert_eq!((v2.kind, v2.service_account.as_deref()), ("StatefulSet", Some("shop-reviews")));
    // A Pod's labels are its own; a CronJob's are its job template's pods'.
    assert_eq!(pods(&resources, "reviews-v3").labels.get("version").map(String::as_str), Some("v3"));
    assert_eq!(pods(&resources, "reviews-digest").labels.get("app").map(String::as_str), Some("reviews-digest"));
    let Some(Spec::Secret(secret)) = resources.iter().find(|r| r.kind() == "Secret").map(|r| &r.spec) else {
        panic!("no secret")
    };
    let tls = secret.tls.as_ref().expect("a kubernetes.io/tls secret's pair");
    assert!(tls.cert_pem.starts_with(b"-----BEGIN CERTIFICATE-----"));
    assert!(tls.key_pem.starts_with(b"-----BEGIN PRIVATE KEY-----"));
}

#[test]
fn a_subset_no_pod_has_is_still_warned() {
    let yaml = SHOP.replace("{name: v3, labels: {version: v3}}", "{name: v3, labels: {version: v4}}");
    let (_, diags) = check(&yaml);
    let hits: Vec<_> = diags.iter().filter(|d| d.code == codes::SUBSET_SELECTS_NOTHING).collect();
    assert_eq!(hits.len(), 1, "{diags:#?}");
    assert!(hits[0].message.contains("subset `v3`"), "{}", hits[0]);
    // A Deployment scaled to zero runs no instance.
    let yaml = SHOP.replace("replicas: 2", "replicas: 0");
    let (_, diags) = check(&yaml);
    assert!(diags.iter().any(|d| d.code == codes::SUBSET_SELECTS_NOTHING && d.message.contains("`v1`")), "{diags:#?}");
}

#[test]
fn a_named_target_port_no_pod_has_is_warned() {
    let yaml = SHOP.replacen("{containerPort: 9080, name: http-web, protocol: TCP}", "{containerPort: 9080}", 1);
    let (_, diags) = check(&yaml);
    let hits: Vec<_> = diags.iter().filter(|d| d.code == codes::UNKNOWN_PORT).collect();
    assert_eq!(hits.len(), 1, "{diags:#?}");
    assert!(hits[0].message.contains("StatefulSet/reviews-v2") && !hits[0].is_error(), "{}", hits[0]);
    assert_eq!(hits[0].path, "spec.ports[0].targetPort");
}

#[test]
fn a_field_weft_reads_with_the_wrong_type_is_an_error_at_it() {
    let yaml = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec:\n  replicas: two\n";
    let (_, diags) = check(yaml);
    assert_eq!(diags.len(), 1, "{diags:#?}");
    assert!(diags[0].is_error() && diags[0].path == "spec.replicas", "{}", diags[0]);
    assert_eq!((diags[0].pos.line, diags[0].pos.col), (5, 3));
}

#[test]
fn a_tls_secret_must_hold_a_decodable_pair() {
    let base = "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ntype: kubernetes.io/tls\ndata:\n";
    let (_, diags) = check(&format!("{base}  tls.crt: \"%%%\"\n  tls.key: a2V5\n"));
    assert!(diags.len() == 1 && diags[0].is_error() && diags[0].message.contains("not base64"), "{diags:#?}");
    let (_, diags) = check(&format!("{base}  tls.crt: Y2VydA==\n"));
    assert!(diags.len() == 1 && diags[0].message.contains("tls.key"), "{diags:#?}");
    // Any other type is kept as it is.
    let (resources, diags) = check("apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata: {password: \"%%%\"}\n");
    assert!(diags.iter().all(|d| d.severity == Severity::Info) && resources.len() == 1, "{diags:#?}");
}

#[test]
fn kinds_are_told_apart_from_typos_and_unsupported_apis() {
    let (_, diags) = check("apiVersion: apps/v1\nkind: Deploymnet\nmetadata: {name: d}\n");
    assert!(diags[0].is_error() && diags[0].hint.as_deref() == Some("did you mean `Deployment`?"), "{diags:#?}");
    // The Gateway API's kinds: a typo, one read, one not applied.
    let (_, diags) = check("apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoutes\nmetadata: {name: r}\n");
    assert!(diags[0].is_error() && diags[0].message.contains("of the Kubernetes Gateway API"), "{diags:#?}");
    assert!(diags[0].hint.as_deref().is_some_and(|h| h.contains("HTTPRoute")), "{diags:#?}");
    let (resources, diags) = check("apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r}\n");
    assert!(diags.is_empty() && resources[0].key() == "HTTPRoute/default/r", "{diags:#?}");
    let (resources, diags) = check("apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: g}\n");
    assert_eq!(resources[0].key(), "Gateway.gateway.networking.k8s.io/default/g", "{diags:#?}");
    let (_, diags) = check("apiVersion: gateway.networking.k8s.io/v1alpha2\nkind: UDPRoute\nmetadata: {name: u}\n");
    assert!(diags.len() == 1 && diags[0].is_warning() && diags[0].code == codes::NOT_APPLIED, "{diags:#?}");
    let (_, diags) = check("apiVersion: extensions.istio.io/v1alpha1\nkind: WasmPlugin\nmetadata: {name: auth}\n");
    assert!(diags.len() == 1 && diags[0].is_warning() && diags[0].code == codes::NOT_APPLIED, "{diags:#?}");
    assert!(diags[0].message.contains("WasmPlugin is not applied"), "{}", diags[0]);
}
