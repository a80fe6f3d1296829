//! RequestAuthentication's test mesh, tokens and key-set server, for the
//! weft sidecar (tests/jwt.rs) and an Envoy fed the same (tests/interop_envoy_jwt.rs).

use super::*;
use std::path::Path;

/// web's service at `inbound` (its proxy) for the app at `app`; an issuer
/// whose key set is served at `jwks_port`, another's given inline; and
/// policies on request principals, claims and audiences.
pub fn mesh(app: u16, inbound: u16, jwks_port: u16, inline_jwks: &str) -> String {
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
spec: {{address: 127.0.0.1, ports: {{http: {inbound}}}, labels: {{app: web}}}}
---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {{name: web-jwt}}
spec:
  selector: {{matchLabels: {{app: web}}}}
  jwtRules:
    - issuer: https://issuer.example
      jwksUri: http://127.0.0.1:{jwks_port}/jwks.json
      audiences: [web]
      outputPayloadToHeader: x-jwt-payload
      outputClaimToHeaders: [{{header: x-jwt-sub, claim: sub}}]
      timeout: 2s
    - issuer: https://inline.example
      jwks: '{inline_jwks}'
      fromHeaders: [{{name: x-token}}]
      fromParams: [token]
      fromCookies: [session]
      forwardOriginalToken: true
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{name: web}}
spec:
  selector: {{matchLabels: {{app: web}}}}
  rules:
    - to: [{{operation: {{paths: [/public]}}}}]
    - from: [{{source: {{requestPrincipals: [https://issuer.example/alice]}}}}]
      to: [{{operation: {{paths: [/alice]}}}}]
    - from: [{{source: {{requestPrincipals: ["*"]}}}}]
      to: [{{operation: {{paths: [/any-token]}}}}]
    - to: [{{operation: {{paths: [/admin]}}}}]
      when: [{{key: "request.auth.claims[groups]", values: [admin]}}]
    - to: [{{operation: {{paths: [/pay]}}}}]
      when: [{{key: "request.auth.claims[org][team]", values: [payments]}}]
    - to: [{{operation: {{paths: [/web-audience]}}}}]
      when: [{{key: request.auth.audiences, values: [web]}}]
"#
    )
}

pub fn tokens(dir: &Path) -> serde_json::Value {
    let out = std::process::Command::new("python3")
        .arg(repo().join("crates/cli/tests/jwt/tokens.py"))
        .arg(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "tokens.py: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_str(&std::fs::read_to_string(dir.join("tokens.json")).unwrap()).unwrap()
}

/// Python's HTTP server on `port`, serving `dir` (the issuer's key set).
pub async fn jwks_server(dir: &Path, port: u16) -> Proc {
    let child = std::process::Command::new("python3")
        .args(["-m", "http.server", &port.to_string(), "--bind", "127.0.0.1", "--directory"])
        .arg(dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let addr = format!("127.0.0.1:{port}");
    eventually(20, "the key set's HTTP server", || {
        let a = addr.clone();
        async move { up_at(&a).await }
    })
    .await;
    Proc(child)
}

/// Authorization by request principal, claims (nested too) and audiences:
/// (path, whose token, wanted status).
pub fn rows() -> [(&'static str, Option<&'static str>, u16); 12] {
    [
        ("/alice", Some("alice"), 200),
        ("/alice", Some("bob"), 403),
        ("/alice", None, 403),
        ("/any-token", Some("carol"), 200),
        ("/any-token", None, 403),
        ("/admin", Some("alice"), 200),
        ("/admin", Some("bob"), 403),
        ("/pay", Some("alice"), 200),
        ("/pay", Some("bob"), 403),
        ("/web-audience", Some("carol"), 200),
        ("/web-audience", None, 403),
        ("/elsewhere", Some("alice"), 403),
    ]
}

/// Invalid tokens, Envoy's status and reason for refusing each (403 for
/// a token meant for another audience, 401 otherwise).
pub const REFUSED: [(&str, u16, &str); 5] = [
    ("expired", 401, "Jwt is expired"),
    ("not_yet", 401, "Jwt not yet valid"),
    ("wrong_issuer", 401, "Jwt issuer is not configured"),
    ("wrong_audience", 403, "Audiences in Jwt are not allowed"),
    ("forged", 401, "Jwt verification fails"),
];
