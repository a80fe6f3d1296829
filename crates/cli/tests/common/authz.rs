//! The authorization matrix: a mesh with AuthorizationPolicies on `web`,
//! and one row per semantic rule, for any data plane that runs as web's
//! sidecar (weft's, Envoy) to be held to (tests/authz.rs, interop_envoy.rs).

use super::tls::Call;

pub fn mesh(app: u16, inbound: u16) -> String {
    format!(
        r#"apiVersion: v1
kind: Service
metadata: {{name: web}}
spec:
  selector: {{app: web}}
  ports: [{{name: http, port: 80, targetPort: {app}}}]
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: web}}
spec:
  address: 127.0.0.1
  ports: {{http: {inbound}}}
  labels: {{app: web, security.istio.io/tlsMode: istio}}
  serviceAccount: web
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{name: deny-rules}}
spec:
  selector: {{matchLabels: {{app: web}}}}
  action: DENY
  rules:
    - to: [{{operation: {{paths: ["/admin/*"]}}}}]
      from: [{{source: {{notNamespaces: [ops]}}}}]
    - when: [{{key: "request.headers[x-block]", values: ["yes"]}}]
    - from: [{{source: {{ipBlocks: ["127.0.0.9/32"]}}}}]
    - to: [{{operation: {{methods: [DELETE], notPaths: ["/tmp/*"]}}}}]
    - from: [{{source: {{remoteIpBlocks: ["10.9.0.0/16"]}}}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{name: allow-rules}}
spec:
  selector: {{matchLabels: {{app: web}}}}
  rules:
    - from: [{{source: {{principals: [cluster.local/ns/default/sa/frontend]}}}}]
      to: [{{operation: {{methods: [GET, POST], paths: ["/api/*", "/v1/{{*}}/items"]}}}}]
    - from: [{{source: {{namespaces: [ops]}}}}]
    - from: [{{source: {{serviceAccounts: [default/batch]}}}}]
      to: [{{operation: {{notMethods: [DELETE], hosts: ["web*"], ports: ["{app}"], paths: ["/batch/{{**}}"]}}}}]
    - to: [{{operation: {{paths: [/healthz]}}}}]
    - from: [{{source: {{namespaces: ["dev*"], notPrincipals: [cluster.local/ns/dev/sa/intruder]}}}}]
      to: [{{operation: {{paths: ["/dev/*"]}}}}]
    - from: [{{source: {{notIpBlocks: ["127.0.0.9"], notRemoteIpBlocks: ["10.66.0.0/16"]}}}}]
      to: [{{operation: {{paths: [/open], notHosts: [blocked.example], notPorts: ["1"]}}}}]
      when: [{{key: "request.headers[x-env]", notValues: [prod]}}]
    - from: [{{source: {{requestPrincipals: ["*"]}}}}]
      to: [{{operation: {{paths: [/jwt]}}}}]
    - from: [{{source: {{notRequestPrincipals: ["*"]}}}}]
      to: [{{operation: {{paths: [/nojwt]}}}}]
    - to: [{{operation: {{paths: [/when]}}}}]
      when:
        - {{key: source.namespace, values: [default]}}
        - {{key: destination.ip, values: ["127.0.0.0/8"]}}
        - {{key: destination.port, values: ["{app}"]}}
        - {{key: source.principal, notValues: [cluster.local/ns/default/sa/frontend]}}
        - {{key: source.ip, values: ["127.0.0.1"]}}
        - {{key: remote.ip, notValues: ["10.0.0.0/8"]}}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{name: other-workload}}
spec:
  selector: {{matchLabels: {{app: other}}}}
  action: DENY
  rules: [{{}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{name: other-namespace, namespace: elsewhere}}
spec:
  action: DENY
  rules: [{{}}]
"#
    )
}

/// A caller: a mesh identity (namespace, service account) or plaintext.
#[derive(Clone, Copy)]
pub enum Who {
    Plain,
    Id(&'static str, &'static str),
}

pub struct Row {
    pub who: Who,
    pub call: Call<'static>,
    pub want: u16,
    pub why: &'static str,
}

pub fn row(who: Who, method: &'static str, path: &'static str, want: u16, why: &'static str) -> Row {
    Row { who, call: Call { method, path, ..Default::default() }, want, why }
}

fn with(mut r: Row, f: impl FnOnce(&mut Call<'static>)) -> Row {
    f(&mut r.call);
    r
}

pub const FRONTEND: Who = Who::Id("default", "frontend");
pub const BATCH: Who = Who::Id("default", "batch");
pub const OPS: Who = Who::Id("ops", "admin");
pub const TESTER: Who = Who::Id("dev-team", "tester");
pub const INTRUDER: Who = Who::Id("dev", "intruder");

pub fn matrix() -> Vec<Row> {
    let other_ip = Some("127.0.0.9".parse().unwrap());
    vec![
        row(FRONTEND, "GET", "/api/x", 200, "principal, method and path prefix allowed"),
        row(FRONTEND, "POST", "/v1/abc/items", 200, "{*} matches one segment"),
        row(FRONTEND, "GET", "/v1/a/b/items", 403, "{*} matches one segment only"),
        row(FRONTEND, "PUT", "/api/x", 403, "a method no rule allows"),
        row(FRONTEND, "GET", "/other", 403, "an ALLOW policy denies what it does not match"),
        row(Who::Plain, "GET", "/api/x", 403, "no certificate, no principal"),
        row(OPS, "GET", "/anything", 200, "a namespace allowed whole"),
        row(OPS, "GET", "/admin/users", 200, "DENY's notNamespaces spares ops"),
        row(FRONTEND, "GET", "/admin/users", 403, "DENY wins over any ALLOW"),
        with(row(OPS, "GET", "/anything", 403, "a DENY condition on a header"), |c| c.headers = &[("x-block", "yes")]),
        with(row(OPS, "GET", "/anything", 403, "DENY by the caller's address"), |c| c.from = other_ip),
        row(OPS, "DELETE", "/data", 403, "DENY by method"),
        row(OPS, "DELETE", "/tmp/scratch", 200, "DENY's notPaths spares /tmp"),
        with(row(OPS, "GET", "/anything", 403, "DENY by x-forwarded-for's client"), |c| {
            c.headers = &[("x-forwarded-for", "10.9.3.4")]
        }),
        row(BATCH, "GET", "/batch/jobs/1", 200, "a service account, host, port and {**}"),
        row(BATCH, "DELETE", "/batch/jobs/1", 403, "notMethods"),
        with(row(BATCH, "GET", "/batch/jobs/1", 403, "hosts: web* does not match"), |c| c.host = "api"),
        row(Who::Plain, "GET", "/healthz", 200, "a rule with no source allows anyone"),
        row(TESTER, "GET", "/dev/x", 200, "namespaces with a trailing *"),
        row(INTRUDER, "GET", "/dev/x", 403, "notPrincipals"),
        row(Who::Plain, "GET", "/open", 200, "every not-form passes"),
        with(row(Who::Plain, "GET", "/open", 403, "notHosts"), |c| c.host = "blocked.example"),
        with(row(Who::Plain, "GET", "/open", 403, "notIpBlocks"), |c| c.from = other_ip),
        with(row(Who::Plain, "GET", "/open", 403, "notRemoteIpBlocks"), |c| {
            c.headers = &[("x-forwarded-for", "10.66.0.1")]
        }),
        with(row(Who::Plain, "GET", "/open", 403, "a notValues condition"), |c| c.headers = &[("x-env", "prod")]),
        row(BATCH, "GET", "/jwt", 403, "no request carries a request principal yet"),
        row(Who::Plain, "GET", "/nojwt", 200, "notRequestPrincipals matches every request"),
        row(BATCH, "GET", "/when", 200, "every when key holds"),
        row(FRONTEND, "GET", "/when", 403, "source.principal notValues"),
        row(Who::Plain, "GET", "/when", 403, "source.namespace needs a certificate"),
        with(row(BATCH, "GET", "/when", 403, "remote.ip notValues"), |c| {
            c.headers = &[("x-forwarded-for", "10.1.1.1")]
        }),
    ]
}
