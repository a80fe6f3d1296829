//! VirtualService semantics, table-driven: YAML → control plane translation
//! → Envoy resources → the proxy's compiled route table → which route a
//! request takes. One row per match kind and precedence case.

use std::sync::Arc;
use weft_control::registry::Instance;
use weft_control::translate::{ProxyNode, Snapshot};
use weft_proxy::config::listener::ListenerKind;
use weft_proxy::config::route::{Action, RequestView, Target};
use weft_proxy::config::wire::Raw;
use weft_proxy::snapshot::Snapshot as Config;
use weft_proxy::{NodeInfo, xds};

const MESH: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: reviews}
spec:
  selector: {app: reviews}
  ports: [{name: http, port: 9080}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  subsets:
    - {name: v1, labels: {version: v1}}
    - {name: v2, labels: {version: v2}}
    - {name: v3, labels: {version: v3}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
    - name: exact
      match: [{uri: {exact: /exact}}]
      route: [{destination: {host: reviews, subset: v1}}]
    - name: prefix
      match: [{uri: {prefix: /prefix}}]
      route: [{destination: {host: reviews, subset: v2}}]
    - name: regex
      match: [{uri: {regex: "/regex/[0-9]+"}}]
      route: [{destination: {host: reviews, subset: v3}}]
    - name: header-exact
      match: [{headers: {x-user: {exact: jason}}}]
      route: [{destination: {host: reviews, subset: v2}}]
    - name: header-present
      match: [{headers: {x-present: {}}}]
      route: [{destination: {host: reviews, subset: v1}}]
    - name: header-regex
      match: [{headers: {x-re: {regex: "ab+c"}}}]
      route: [{destination: {host: reviews, subset: v3}}]
    - name: method-and-uri
      match: [{method: {exact: POST}, uri: {prefix: /method}}]
      route: [{destination: {host: reviews, subset: v3}}]
    - name: query
      match: [{queryParams: {q: {exact: "yes"}}}]
      route: [{destination: {host: reviews, subset: v2}}]
    - name: ignore-case
      match: [{uri: {exact: /Case}, ignoreUriCase: true}]
      route: [{destination: {host: reviews, subset: v3}}]
    - name: authority
      match: [{authority: {exact: "reviews.default:9080"}}]
      route: [{destination: {host: reviews, subset: v2}}]
    - name: or-blocks
      match: [{uri: {prefix: /or-a}}, {uri: {prefix: /or-b}}]
      route: [{destination: {host: reviews, subset: v3}}]
    - name: and-block
      match: [{uri: {prefix: /and}, headers: {x-and: {exact: "1"}}}]
      route: [{destination: {host: reviews, subset: v1}}]
    - name: without-header
      match: [{uri: {prefix: /without}, withoutHeaders: {x-block: {}}}]
      route: [{destination: {host: reviews, subset: v2}}]
    - name: redirect
      match: [{uri: {exact: /old}}]
      redirect: {uri: /new}
    - name: direct
      match: [{uri: {exact: /direct}}]
      directResponse: {status: 418, body: {string: teapot}}
    - name: direct-bytes
      match: [{uri: {exact: /direct-bytes}}]
      directResponse: {status: 200, body: {bytes: aGVsbG8=}}
    - name: canary
      match: [{uri: {prefix: /canary}}]
      route:
        - {destination: {host: reviews, subset: v1}, weight: 90}
        - {destination: {host: reviews, subset: v2}, weight: 10}
    - name: catch-all
      route: [{destination: {host: reviews}}]
"#;

fn compile(yaml: &str) -> Config {
    compile_in(yaml, "default")
}

/// Compiles the config a sidecar in namespace `ns` would receive.
fn compile_in(yaml: &str, ns: &str) -> Config {
    compile_for(yaml, ns, &[])
}

/// `yaml` as a sidecar of namespace `ns` with workload `labels` gets it.
fn compile_for(yaml: &str, ns: &str, labels: &[(&str, &str)]) -> Config {
    let loaded = weft_api::parse_str("routing.yaml", yaml);
    let mut diags = loaded.diagnostics;
    diags.extend(weft_api::validate(&loaded.resources));
    assert!(diags.iter().all(|d| !d.is_error()), "{diags:#?}");
    let snap = Snapshot::new(
        1,
        Arc::new(loaded.resources),
        vec![Instance {
            name: "r1".into(),
            namespace: "default".into(),
            address: "127.0.0.1".into(),
            port: Some(1),
            labels: [("app".into(), "reviews".into()), ("version".into(), "v1".into())].into(),
            ..Default::default()
        }],
    );
    let info = NodeInfo {
        id: "test".into(),
        role: "sidecar".into(),
        namespace: ns.into(),
        workload: "productpage".into(),
        listen_ip: "127.0.0.1".into(),
        outbound_port: 15001,
        inbound_port: 15006,
        labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        ..Default::default()
    };
    let node = ProxyNode::from_node(&xds::node(&info));
    // The same path the ADS server takes: shared, encoded translation.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let out = rt.block_on(weft_control::translate::encoded(&Arc::new(snap), &node, &Default::default()));
    fn decode<M: prost::Message + Default>(
        list: &[Arc<weft_control::translate::Res>],
    ) -> Arc<weft_proxy::config::wire::RawMap<M>> {
        Arc::new(
            list.iter()
                .map(|r| (r.name.as_str().into(), weft_proxy::config::wire::Wire::new(r.any.value.clone())))
                .collect(),
        )
    }
    let raw = Raw {
        listeners: decode(&out.listeners),
        routes: decode(&out.routes),
        clusters: decode(&out.clusters),
        endpoints: decode(&out.endpoints),
    };
    Config::compile(&raw, None, "1".into(), &std::sync::Arc::default())
        .expect("translated config compiles in the proxy")
}

/// Where a request goes: `v1`..`v3` (subset), `base`, `redirect:<path>`,
/// `direct:<status>`, `split:<a>/<b>`, or `404`.
fn route(cfg: &Config, method: &str, host: &str, path: &str, headers: &[(&str, &str)]) -> String {
    let l = cfg.listeners.iter().find(|l| &*l.name == "outbound").expect("outbound listener");
    let ListenerKind::Http(hl) = &l.kind else { panic!("outbound is HTTP") };
    let table = hl.routes.as_ref().expect("route table");
    let Some(vh) = table.host(&host.to_ascii_lowercase()) else { return "404".into() };
    let uri: http::Uri = path.parse().unwrap();
    let mut hm = http::HeaderMap::new();
    for (k, v) in headers {
        hm.insert(http::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
    }
    let method: http::Method = method.parse().unwrap();
    let view = RequestView {
        method: &method,
        authority: &host.to_ascii_lowercase(),
        scheme: "http",
        path: uri.path(),
        query: uri.query(),
        headers: &hm,
    };
    let Some(r) = vh.route(&view) else { return "404".into() };
    let subset = |name: &str| name.split('|').nth(2).filter(|s| !s.is_empty()).unwrap_or("base").to_owned();
    match &r.action {
        Action::Forward(f) => match &f.target {
            Target::Cluster(c) if c.id.is_none() => format!("missing:{}", c.name),
            Target::Cluster(c) => subset(&c.name),
            Target::Weighted { choices, total } => {
                let parts: Vec<String> = choices
                    .iter()
                    .scan(0, |prev, c| {
                        let w = c.upto - *prev;
                        *prev = c.upto;
                        Some(format!("{}={}", subset(&c.cluster.name), w * 100 / total))
                    })
                    .collect();
                format!("split:{}", parts.join("/"))
            }
        },
        Action::Redirect(rd) => format!("redirect:{}", rd.path.clone().unwrap_or_default()),
        Action::Direct(d) => format!("direct:{}:{}", d.status, String::from_utf8_lossy(&d.body)),
    }
}

/// (method, host, path, headers, expected, why)
type Row<'a> = (&'a str, &'a str, &'a str, &'a [(&'a str, &'a str)], &'a str, &'a str);

#[test]
fn virtual_service_match_kinds_and_precedence() {
    let cfg = compile(MESH);
    #[rustfmt::skip]
    let rows: &[Row] = &[
        // (method, host, path, headers, expected, why)
        ("GET", "reviews", "/exact", &[], "v1", "uri exact"),
        ("GET", "reviews", "/exact/more", &[], "base", "exact does not match a longer path"),
        ("GET", "reviews", "/prefixed/x", &[], "v2", "uri prefix"),
        ("GET", "reviews", "/regex/123", &[], "v3", "uri regex"),
        ("GET", "reviews", "/regex/12a", &[], "base", "regex must match the whole path"),
        ("GET", "reviews", "/x", &[("x-user", "jason")], "v2", "header exact"),
        ("GET", "reviews", "/x", &[("x-user", "bob")], "base", "header exact, other value"),
        ("GET", "reviews", "/x", &[("x-present", "anything")], "v1", "header present ({})"),
        ("GET", "reviews", "/x", &[("x-re", "abbbc")], "v3", "header regex"),
        ("GET", "reviews", "/x", &[("x-re", "xabbbc")], "base", "header regex is a full match"),
        ("POST", "reviews", "/method", &[], "v3", "method and uri (AND)"),
        ("GET", "reviews", "/method", &[], "base", "method differs"),
        ("GET", "reviews", "/x?q=yes", &[], "v2", "query param exact"),
        ("GET", "reviews", "/x?q=no", &[], "base", "query param other value"),
        ("GET", "reviews", "/CASE", &[], "v3", "ignoreUriCase"),
        ("GET", "reviews", "/case", &[], "v3", "ignoreUriCase, lower"),
        ("GET", "reviews.default:9080", "/x", &[], "v2", "authority exact"),
        ("GET", "reviews", "/or-b/1", &[], "v3", "second match block (OR)"),
        ("GET", "reviews", "/and", &[("x-and", "1")], "v1", "all conditions of a block (AND)"),
        ("GET", "reviews", "/and", &[], "base", "one condition of a block missing"),
        ("GET", "reviews", "/without", &[], "v2", "withoutHeaders, header absent"),
        ("GET", "reviews", "/without", &[("x-block", "1")], "base", "withoutHeaders, header present"),
        ("GET", "reviews", "/old", &[], "redirect:/new", "redirect"),
        ("GET", "reviews", "/direct", &[], "direct:418:teapot", "directResponse"),
        ("GET", "reviews", "/direct-bytes", &[], "direct:200:hello", "directResponse, body as base64 bytes"),
        ("GET", "reviews", "/canary", &[], "split:v1=90/v2=10", "weighted destinations"),
        // Precedence: the first rule that matches wins.
        ("GET", "reviews", "/exact", &[("x-user", "jason")], "v1", "exact rule comes before the header rule"),
        ("GET", "reviews", "/prefix", &[("x-present", "1")], "v2", "prefix rule comes before header-present"),
        ("POST", "reviews", "/method?q=yes", &[], "v3", "method rule comes before the query rule"),
        // Host forms a sidecar accepts.
        ("GET", "reviews:9080", "/exact", &[], "v1", "name:port"),
        ("GET", "reviews.default", "/exact", &[], "v1", "name.namespace"),
        ("GET", "reviews.default.svc.cluster.local:9080", "/exact", &[], "v1", "fqdn:port"),
        ("GET", "REVIEWS", "/exact", &[], "v1", "hosts are case-insensitive"),
        ("GET", "ratings", "/exact", &[], "404", "unknown host"),
    ];
    let mut failures = Vec::new();
    for (method, host, path, headers, want, why) in rows {
        let got = route(&cfg, method, host, path, headers);
        if got != *want {
            failures.push(format!("{method} {host}{path} {headers:?}: got {got}, want {want} ({why})"));
        }
    }
    assert!(failures.is_empty(), "{} of {} rows failed:\n{}", failures.len(), rows.len(), failures.join("\n"));
}

#[test]
fn service_without_virtual_service_gets_a_default_route() {
    let cfg = compile(
        &MESH
            .replace("kind: VirtualService", "kind: VirtualService\n# unused")
            .replace("hosts: [reviews]", "hosts: [other]"),
    );
    assert_eq!(route(&cfg, "GET", "reviews", "/anything", &[]), "base");
}

#[test]
fn export_to_scopes_what_a_sidecar_receives() {
    let yaml = r#"
apiVersion: v1
kind: Service
metadata:
  name: private
  namespace: team
  annotations: {networking.istio.io/exportTo: "."}
spec:
  ports: [{name: http, port: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: shared, namespace: team}
spec:
  ports: [{name: http, port: 80}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: shared-team-only, namespace: team}
spec:
  hosts: [shared]
  exportTo: ["."]
  http:
    - directResponse: {status: 418}
"#;
    let outsider = compile_in(yaml, "default");
    let insider = compile_in(yaml, "team");
    let has = |c: &Config, name: &str| c.clusters.iter().any(|k| k.name().ends_with(name));
    assert!(
        !has(&outsider, "private.team.svc.cluster.local"),
        "a Service exported to its namespace only is not sent elsewhere"
    );
    assert!(has(&insider, "private.team.svc.cluster.local"));
    assert!(has(&outsider, "shared.team.svc.cluster.local"));
    // The VirtualService is visible in `team` only; elsewhere the default route applies.
    assert_eq!(route(&insider, "GET", "shared", "/", &[]), "direct:418:");
    assert_eq!(route(&outsider, "GET", "shared.team", "/", &[]), "base");
}

/// The ADS server sends only what changed, judged by the hash of each
/// resource's bytes, so the same config must always encode to the same bytes.
#[test]
fn translation_is_deterministic() {
    let loaded = weft_api::parse_str("routing.yaml", MESH);
    let instances: Vec<Instance> = (0..5)
        .map(|i| Instance {
            name: format!("r{i}"),
            namespace: "default".into(),
            address: "127.0.0.1".into(),
            port: Some(1000 + i),
            labels: [("app".into(), "reviews".into()), ("version".into(), format!("v{}", i % 3 + 1))].into(),
            locality: Some(format!("region/zone-{}", i % 2)),
            ..Default::default()
        })
        .collect();
    let snap = Arc::new(Snapshot::new(1, Arc::new(loaded.resources), instances));
    let info = NodeInfo {
        id: "t".into(),
        role: "sidecar".into(),
        namespace: "default".into(),
        workload: "w".into(),
        listen_ip: "127.0.0.1".into(),
        outbound_port: 15001,
        inbound_port: 15006,
        app_port: Some(8080),
        ..Default::default()
    };
    let node = ProxyNode::from_node(&xds::node(&info));
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let hashes = |e: &weft_control::translate::Encoded| -> Vec<(String, u64)> {
        [&e.listeners, &e.routes, &e.clusters, &e.endpoints]
            .iter()
            .flat_map(|l| l.iter().map(|r| (r.name.clone(), r.hash)))
            .collect()
    };
    let a = rt.block_on(weft_control::translate::encoded(&snap, &node, &Default::default()));
    let b = rt.block_on(weft_control::translate::encoded(&snap, &node, &Default::default()));
    assert!(!hashes(&a).is_empty());
    assert_eq!(hashes(&a), hashes(&b));
}

/// Rules chosen by who calls: `sourceLabels`, `sourceNamespace` and
/// `gateways: [mesh]` on a match block apply to the sidecars they name.
#[test]
fn match_blocks_by_caller_labels_namespace_and_mesh() {
    const YAML: &str = r#"apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: shop}
spec:
  selector: {app: reviews}
  ports: [{name: http, port: 9080}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: shop}
spec:
  host: reviews
  subsets:
    - {name: v1, labels: {version: v1}}
    - {name: v2, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: shop}
spec:
  hosts: [reviews]
  http:
    - match: [{uri: {prefix: /labels}, sourceLabels: {tier: front}}]
      route: [{destination: {host: reviews, subset: v1}}]
    - match: [{uri: {prefix: /namespace}, sourceNamespace: shop}]
      route: [{destination: {host: reviews, subset: v1}}]
    - match: [{uri: {prefix: /mesh}, gateways: [mesh]}]
      route: [{destination: {host: reviews, subset: v1}}]
    - route: [{destination: {host: reviews, subset: v2}}]
"#;
    let front_in_shop = compile_for(YAML, "shop", &[("tier", "front")]);
    let back_in_shop = compile_for(YAML, "shop", &[("tier", "back")]);
    let elsewhere = compile_for(YAML, "default", &[("tier", "front")]);
    let host = "reviews.shop.svc.cluster.local";
    for (cfg, path, want, why) in [
        (&front_in_shop, "/labels", "v1", "sourceLabels match the caller's"),
        (&back_in_shop, "/labels", "v2", "sourceLabels differ: next rule"),
        (&back_in_shop, "/namespace", "v1", "sourceNamespace is the caller's"),
        (&elsewhere, "/namespace", "v2", "a caller of another namespace: next rule"),
        (&front_in_shop, "/mesh", "v1", "gateways: [mesh] applies to sidecars"),
    ] {
        assert_eq!(route(cfg, "GET", host, path, &[]), want, "{why}");
    }
}
