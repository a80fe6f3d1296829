//! RequestAuthentication through a real sidecar: tokens minted by PyJWT
//! (tests/jwt/tokens.py), the issuer's key set served by a real HTTP server
//! (Python's) at a `jwksUri` the control plane fetches, a second issuer's
//! given inline. Valid, expired, not yet valid, wrong issuer, wrong
//! audience, forged and malformed tokens, in a header, a query parameter
//! and a cookie; what a token adds to the request; its claims deciding
//! authorization; and a key set that cannot be fetched yet.

mod common;
use common::jwt::{REFUSED, jwks_server, mesh, rows, tokens};
use common::tls::{Call, send};
use common::*;

#[test]
fn tokens_are_checked_and_their_claims_authorize() {
    let dir = tempfile::tempdir().unwrap();
    let keys = tempfile::tempdir().unwrap();
    let t = tokens(keys.path());
    let tok = |name: &str| t[name].as_str().unwrap().to_owned();
    let inline = std::fs::read_to_string(keys.path().join("inline-jwks.json")).unwrap();
    rt().block_on(async {
        let (_app, app) = demo("web", "v1").await;
        let (inbound_port, jwks_port) = (free_port(), free_port());
        std::fs::write(dir.path().join("mesh.yaml"), mesh(app, inbound_port, jwks_port, &inline)).unwrap();
        // The control plane starts before the issuer's key set can be fetched.
        let control = Control::start(dir.path()).await;
        let (a, i) = (app.to_string(), inbound_port.to_string());
        let sc =
            Sidecar::start_with(&control.xds, "web", &["--app-port", &a, "--inbound-port", &i, "--labels", "app=web"])
                .await;
        let inbound = format!("127.0.0.1:{inbound_port}");
        let call = |path: &'static str, headers: Vec<(&'static str, String)>| {
            let inbound = inbound.clone();
            async move {
                let hs: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
                send(&inbound, false, None, &Call { path, headers: &hs, ..Default::default() }).await.unwrap()
            }
        };
        let bearer = |name: &str| vec![("authorization", format!("Bearer {}", tok(name)))];

        // Until the key set is fetched, the issuer's tokens are refused;
        // requests without one go on, and authorization decides.
        eventually(20, "the sidecar's JWT filter", || {
            let call = call("/public", bearer("alice"));
            async move { call.await.0 == 401 }
        })
        .await;
        assert_eq!(call("/public", vec![]).await.0, 200);
        let _server = jwks_server(keys.path(), jwks_port).await;
        eventually(30, "the key set fetched and sent to the sidecar", || {
            let call = call("/public", bearer("alice"));
            async move { call.await.0 == 200 }
        })
        .await;
        let page = get(&control.api, "/metrics", &[]).await;
        let failures = String::from_utf8_lossy(&page.body)
            .lines()
            .find_map(|l| l.strip_prefix("weft_control_jwks_fetch_failures_total ").map(str::to_owned));
        assert!(failures.is_some_and(|n| n.trim() != "0"), "the failed fetches are counted");

        // What a valid token adds: its header removed (not forwarded), its
        // payload and a claim copied to headers.
        let (status, body) = call("/public", bearer("alice")).await;
        assert_eq!(status, 200, "{body}");
        let j: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(j["headers"].get("authorization"), None, "the token went on: {j}");
        assert_eq!(j["headers"]["x-jwt-sub"], "alice", "{j}");
        use base64::Engine;
        let payload = j["headers"]["x-jwt-payload"].as_str().unwrap();
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap();
        let payload: serde_json::Value = serde_json::from_slice(&payload).unwrap();
        assert_eq!(payload["sub"], "alice");

        // Invalid tokens are refused with Envoy's reasons.
        for (name, want, why) in REFUSED {
            let (status, body) = call("/public", bearer(name)).await;
            assert_eq!((status, body.trim()), (want, why), "token {name}");
        }
        let (status, _) = call("/public", vec![("authorization", "Bearer not.a-token".into())]).await;
        assert_eq!(status, 401, "a malformed token");

        // Authorization by request principal, claims (nested too) and audiences.
        for (path, who, want) in rows() {
            let headers = who.map(bearer).unwrap_or_default();
            let (status, body) = call(path, headers).await;
            assert_eq!(status, want, "{path} as {who:?}: {body}");
        }
        // Istio's default places: `?access_token=` too.
        let q = format!("/any-token?access_token={}", tok("bob"));
        let path: &'static str = Box::leak(q.into_boxed_str());
        assert_eq!(call(path, vec![]).await.0, 200);

        // The inline issuer's token, where its rule looks: a header (kept:
        // `forwardOriginalToken`), a query parameter, a cookie.
        let (status, body) = call("/any-token", vec![("x-token", tok("inline"))]).await;
        assert_eq!(status, 200, "{body}");
        let j: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(j["headers"]["x-token"], tok("inline"), "forwardOriginalToken keeps it");
        let q: &'static str = Box::leak(format!("/any-token?token={}", tok("inline")).into_boxed_str());
        assert_eq!(call(q, vec![]).await.0, 200);
        assert_eq!(call("/any-token", vec![("cookie", format!("a=b; session={}", tok("inline")))]).await.0, 200);
        // Its token in the first issuer's place is not the first issuer's.
        assert_eq!(call("/any-token", vec![("authorization", format!("Bearer {}", tok("inline")))]).await.0, 401);
        drop(sc);
    });
}

#[test]
fn request_authentication_that_cannot_work_is_refused_by_validation() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("ra.yaml"),
        "apiVersion: security.istio.io/v1\nkind: RequestAuthentication\nmetadata: {name: bad}\nspec:\n  jwtRules:\n    - jwks: 'not json'\n      fromHeaders: [{name: 'bad header'}]\n    - issuer: https://x.example\n      jwksUri: ftp://x.example/keys\n",
    )
    .unwrap();
    let out = std::process::Command::new(weft()).arg("validate").arg(dir.path()).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{text}");
    for needle in [
        "spec.jwtRules[0].issuer",
        "spec.jwtRules[0].jwks",
        "spec.jwtRules[0].fromHeaders[0].name",
        "spec.jwtRules[1].jwksUri",
    ] {
        assert!(text.contains(needle), "no error at {needle}: {text}");
    }
}

/// `weft authz check --claims`: what the policies decide on a request whose
/// verified token says this, with the rule that decided.
#[test]
fn authz_check_explains_decisions_on_a_tokens_claims() {
    let dir = tempfile::tempdir().unwrap();
    let jwks = r#"{"keys":[{"kty":"EC","crv":"P-256","x":"RYIa4xv8iJAjPqdQzYIBZiAuvLhyAyZ4wMcjRFc4pYY","y":"IAGKVtZLRdtG76ftcNgu6y3vXe3LRVY5kTBHjrLuW7c"}]}"#;
    std::fs::write(dir.path().join("mesh.yaml"), mesh(8080, 15006, 9999, jwks)).unwrap();
    let check = |path: &str, claims: Option<&str>| {
        let mut cmd = std::process::Command::new(weft());
        cmd.args(["authz", "check"]).arg(dir.path()).args(["--labels", "app=web", "--port", "8080", "--path", path]);
        if let Some(c) = claims {
            cmd.args(["--claims", c]);
        }
        let out = cmd.output().unwrap();
        (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let admin = r#"{"iss":"https://issuer.example","sub":"alice","groups":["admin"]}"#;
    let (allowed, text) = check("/admin", Some(admin));
    assert!(allowed && text.contains("decision: ALLOW"), "{text}");
    let (allowed, text) = check("/admin", None);
    assert!(!allowed && text.contains("DENY: no ALLOW rule matches"), "{text}");
    let (allowed, text) = check("/alice", Some(r#"{"iss":"https://issuer.example","sub":"alice"}"#));
    assert!(allowed && text.contains("rule 1"), "the request principal's rule decides: {text}");
}
