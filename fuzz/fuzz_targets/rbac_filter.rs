//! Authorization policies on any bytes as they come over xDS: an HTTP or a
//! network RBAC filter's config (a filter, or a compile error the proxy
//! NACKs, never a panic), and a compiled one judged for a request with a
//! peer identity, headers and a verified token's claims, and for a bare
//! TCP connection. The seeds are filters weft's control plane wrote for
//! the authorization and JWT tests' policies (fuzz/seeds/rbac_filter).
#![no_main]
use envoy_types::pb::envoy::extensions::filters::http::rbac::v3::Rbac as RbacFilter;
use envoy_types::pb::envoy::extensions::filters::network::rbac::v3::Rbac as NetworkRbac;
use libfuzzer_sys::fuzz_target;
use prost::Message;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use weft_proxy::config::jwt::Auth;
use weft_proxy::config::matcher::RequestView;
use weft_proxy::config::rbac::{Filter, Subject};

fn judge(f: &Filter, s: &Subject) {
    for rules in [&f.rules, &f.shadow].into_iter().flatten() {
        let _ = rules.decide(s);
    }
}

fuzz_target!(|data: &[u8]| {
    let mut filters = Vec::new();
    if let Ok(proto) = RbacFilter::decode(data)
        && let Ok(f) = Filter::compile(&proto)
    {
        filters.push(f);
    }
    if let Ok(proto) = NetworkRbac::decode(data)
        && let Ok(f) = Filter::compile_network(&proto)
    {
        filters.push(f);
    }
    if filters.is_empty() {
        return;
    }
    let mut headers = http::HeaderMap::new();
    headers.insert("x-team", http::HeaderValue::from_static("payments"));
    headers.insert("x-forwarded-for", http::HeaderValue::from_static("10.1.2.3, 127.0.0.1"));
    let method = http::Method::POST;
    let request = RequestView {
        method: &method,
        authority: "web.default.svc.cluster.local:80",
        scheme: "http",
        path: "/api/v1/items",
        query: Some("a=b"),
        headers: &headers,
    };
    let claims = serde_json::json!({"iss": "https://issuer.example", "sub": "alice", "aud": ["web"], "groups": ["admin"], "org": {"team": "payments"}});
    let auth = Auth { principal: "https://issuer.example/alice".into(), claims };
    let peer = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
    let with_request = Subject {
        request: Some(&request),
        direct_ip: peer,
        remote_ip: IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3)),
        principal: Some("spiffe://cluster.local/ns/default/sa/frontend"),
        auth: Some(&auth),
        server_name: Some("web.default.svc.cluster.local"),
        local: SocketAddr::new(peer, 8080),
    };
    let connection = Subject { request: None, auth: None, principal: None, server_name: None, ..with_request };
    for f in &filters {
        judge(f, &with_request);
        judge(f, &connection);
    }
});
