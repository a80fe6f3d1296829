//! Interop: a real Envoy as web's sidecar, fed by `weft control` the same
//! RequestAuthentication and AuthorizationPolicies as the weft sidecar of
//! tests/jwt.rs, decides the same: its JWT filter refuses the same tokens
//! with the same reasons, and its RBAC filters judge request principals,
//! claims (nested too) and audiences from the tokens it verified.

mod common;
use common::envoy::*;
use common::jwt::{REFUSED, jwks_server, mesh, rows, tokens};
use common::tls::{Call, send};
use common::*;

#[test]
fn envoy_checks_tokens_and_authorizes_by_their_claims_as_weft_does() {
    let envoy = envoy_bin();
    let dir = tempfile::tempdir().unwrap();
    let keys = tempfile::tempdir().unwrap();
    let t = tokens(keys.path());
    let tok = |name: &str| t[name].as_str().unwrap().to_owned();
    let inline = std::fs::read_to_string(keys.path().join("inline-jwks.json")).unwrap();
    rt().block_on(async {
        let (_app, app) = demo("web", "v1").await;
        let (inbound, jwks_port) = (free_port(), free_port());
        let _server = jwks_server(keys.path(), jwks_port).await;
        std::fs::write(dir.path().join("mesh.yaml"), mesh(app, inbound, jwks_port, &inline)).unwrap();
        let control = Control::start(dir.path()).await;
        let xds_port = control.xds_port();
        let admin = free_port();
        let node = web_sidecar_node(app, inbound);
        let (_envoy, _envoy_dir) = start_envoy(&envoy, &bootstrap_for(&node, xds_port, admin));
        let addr = format!("127.0.0.1:{inbound}");
        let call = |path: &'static str, headers: Vec<(&'static str, String)>| {
            let addr = addr.clone();
            async move {
                let hs: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
                send(&addr, false, None, &Call { path, headers: &hs, ..Default::default() }).await
            }
        };
        let bearer = |name: &str| vec![("authorization", format!("Bearer {}", tok(name)))];
        eventually(30, "Envoy's inbound listener with the fetched key set", || {
            let call = call("/public", bearer("alice"));
            async move { call.await.is_ok_and(|(s, _)| s == 200) }
        })
        .await;

        let mut failures = Vec::new();
        for (name, want, why) in REFUSED {
            match call("/public", bearer(name)).await {
                Ok((status, body)) if status == want && body.trim() == why => {}
                got => failures.push(format!("token {name}: {got:?}, want {want} {why}")),
            }
        }
        for (path, who, want) in rows() {
            match call(path, who.map(bearer).unwrap_or_default()).await {
                Ok((status, _)) if status == want => {}
                got => failures.push(format!("{path} as {who:?}: {got:?}, want {want}")),
            }
        }
        // The inline issuer's token, in its own places.
        let inline_rows = [
            ("/any-token", vec![("x-token", tok("inline"))]),
            ("/any-token", vec![("cookie", format!("a=b; session={}", tok("inline")))]),
        ];
        for (path, headers) in inline_rows {
            match call(path, headers).await {
                Ok((200, _)) => {}
                got => failures.push(format!("{path} with the inline issuer's token: {got:?}, want 200")),
            }
        }
        assert!(failures.is_empty(), "Envoy decided {} rows otherwise:\n{}", failures.len(), failures.join("\n"));
        let (_, body) = call("/public", bearer("alice")).await.unwrap();
        let j: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(j["headers"]["x-jwt-sub"], "alice", "the claim copied to a header: {j}");
        assert_no_nack(&control, "envoy-web~127.0.0.1").await;
    });
}
