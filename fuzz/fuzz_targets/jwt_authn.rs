//! Request authentication on any bytes: as the JWT filter's config over
//! xDS (a filter, or a compile error the proxy NACKs), and as a token a
//! request carries in a header, a query parameter and a cookie, checked
//! against a fixed provider (a verified token, or a 401; never a panic).
//! The seeds are tokens its RSA and EC keys signed (fuzz/seeds/jwt_authn).
#![no_main]

use envoy_types::pb::envoy::config::core::v3::{DataSource, data_source};
use envoy_types::pb::envoy::extensions::filters::http::jwt_authn::v3::{
    JwtAuthentication, JwtProvider, JwtRequirement, JwtRequirementOrList, RequirementRule, jwt_provider,
    jwt_requirement, requirement_rule,
};
use libfuzzer_sys::fuzz_target;
use prost::Message;
use std::sync::OnceLock;
use weft_proxy::config::jwt::Jwt;

const JWKS: &str = r#"{"keys": [{"kty": "RSA", "key_ops": ["verify"], "n": "om8YFZmR4oPKy8ts9bta5ZC4aO-BAUjimVd8uCLUmGuyjRLEHBbi-y9HdNe7BMOWNlZ-HZ9RSviyy8V6NA2p46BuV1CTka4vEb7_-rJlKS74KXXkfQwhEUYIYsjYKx4C8MBNKKmCriqFOZD9JlE5iqTrpajPsTsdwxNxFLLMjpMX7DkDtMuPuJMoq-ywdzKrlFEqPNIbkL1m_Vz1t1pVEbjtENqfb_nBGNrRFLK_6Q8YXDamdHrpNe6FKQGr_YlxkBNn3Hq925zWGgXwDJ-mg2p_9TGw6syapdMKV1wG_dJDEFRIKmtKqHToKv3ozzIbUY8IKPLPJPEPQ_uYKAqaQw", "e": "AQAB", "kid": "rsa-1"}, {"kty": "EC", "crv": "P-256", "x": "z0kLQxk5kD9jM7wB_NL2rW07eYHnqrgoq5GICm8Ct20", "y": "2YQzSdxJKnx8Mfq2fVb11r-jiG3Bmvpa8R5NEKibwqY", "kid": "ec-1"}]}"#;

fn provider() -> &'static Jwt {
    static JWT: OnceLock<Jwt> = OnceLock::new();
    JWT.get_or_init(|| {
        let p = JwtProvider {
            issuer: "https://issuer.example".into(),
            audiences: vec!["web".into()],
            from_params: vec!["access_token".into()],
            from_cookies: vec!["session".into()],
            forward_payload_header: "x-jwt-payload".into(),
            jwks_source_specifier: Some(jwt_provider::JwksSourceSpecifier::LocalJwks(DataSource {
                specifier: Some(data_source::Specifier::InlineString(JWKS.into())),
                ..Default::default()
            })),
            ..Default::default()
        };
        let any = |r| JwtRequirement { requires_type: Some(r) };
        let requires = any(jwt_requirement::RequiresType::RequiresAny(JwtRequirementOrList {
            requirements: vec![
                any(jwt_requirement::RequiresType::ProviderName("origins-0".into())),
                any(jwt_requirement::RequiresType::AllowMissing(Default::default())),
            ],
        }));
        let f = JwtAuthentication {
            providers: [("origins-0".to_owned(), p)].into_iter().collect(),
            rules: vec![RequirementRule {
                r#match: Some(envoy_types::pb::envoy::config::route::v3::RouteMatch {
                    path_specifier: Some(envoy_types::pb::envoy::config::route::v3::route_match::PathSpecifier::Prefix(
                        "/".into(),
                    )),
                    ..Default::default()
                }),
                requirement_type: Some(requirement_rule::RequirementType::Requires(requires)),
            }],
            ..Default::default()
        };
        Jwt::compile(&f.encode_to_vec()).expect("the fixed provider compiles")
    })
}

fuzz_target!(|data: &[u8]| {
    let _ = Jwt::compile(data);
    let Ok(token) = std::str::from_utf8(data) else { return };
    let jwt = provider();
    let claims = [vec!["request.auth.claims".to_owned(), "org".into(), "team".into()]];
    let mut check = |req: &mut http::Request<()>| {
        if let Ok(Some(auth)) = weft_proxy::http::jwt::authenticate(jwt, req) {
            let _ = auth.lookup(&claims[0]);
        }
    };
    if let Ok(v) = http::HeaderValue::from_str(&format!("Bearer {token}")) {
        let mut req = http::Request::new(());
        req.headers_mut().insert(http::header::AUTHORIZATION, v);
        check(&mut req);
    }
    if let Ok(mut req) = http::Request::get(format!("/x?access_token={token}")).body(()) {
        check(&mut req);
    }
    if let Ok(v) = http::HeaderValue::from_str(&format!("a=b; session={token}")) {
        let mut req = http::Request::new(());
        req.headers_mut().insert(http::header::COOKIE, v);
        check(&mut req);
    }
});
