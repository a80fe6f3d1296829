//! Who is asking: a proxy's identity and ports, from its xDS `Node`.
//!
//! The proxy (weft or Envoy) puts these keys in `node.metadata`:
//! `ROLE` (`sidecar` | `gateway`; a proxyless gRPC client says
//! `GENERATOR: grpc` instead, as Istio's do), `NAMESPACE`, `WORKLOAD_NAME`, `LABELS`
//! (a struct), `LISTEN_IP`, `OUTBOUND_IP` (the outbound listeners' address),
//! `OUTBOUND_PORT` (default 15001), `INBOUND_PORT`
//! (default 15006), `APP_PORT` (the local application; no inbound without it),
//! `PORT_OFFSET` (gateways: added to every server port), `ADMIN_ADDR`. Its locality is
//! the node's own `locality` field, as Envoy sends it.

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::google::protobuf::{Value, value::Kind};
use weft_api::types::Labels;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Sidecar,
    Gateway,
    /// A proxyless gRPC client (`GENERATOR: grpc`, as istiod's nodes).
    Grpc,
}

#[derive(Clone, Debug)]
pub struct ProxyNode {
    pub id: String,
    pub role: Role,
    pub namespace: String,
    pub workload: String,
    pub labels: Labels,
    pub listen_ip: String,
    /// Where the sidecar's outbound listeners bind (its app's side):
    /// `OUTBOUND_IP`, else the listen IP when it is loopback, else 127.0.0.1,
    /// so that a sidecar given a routable address is no open proxy.
    pub outbound_ip: String,
    pub outbound_port: u16,
    pub inbound_port: u16,
    pub app_port: Option<u16>,
    pub port_offset: u16,
    /// `region/zone/subzone` from the node's locality; None when unset.
    pub locality: Option<String>,
    /// `ADMIN_ADDR`: where the control plane can read the proxy's view of
    /// upstream health (`/clusters?format=json`).
    pub admin: Option<String>,
    /// It holds a mesh certificate: a weft proxy (user agent `weft`) its
    /// own, an Envoy proven on the TLS port one served over SDS (`sds`).
    pub holds_mesh_cert: bool,
    /// A weft proxy (user agent `weft`), not an Envoy: the two read
    /// request authentication's results from different metadata.
    pub weft: bool,
    /// Its certificate comes over SDS: its listeners terminate mutual TLS
    /// with transport sockets naming it (a weft proxy terminates by itself).
    pub sds: bool,
}

fn text(v: &Value) -> Option<String> {
    match &v.kind {
        Some(Kind::StringValue(s)) => Some(s.clone()),
        Some(Kind::NumberValue(n)) => Some(n.to_string()),
        Some(Kind::BoolValue(b)) => Some(b.to_string()),
        _ => None,
    }
}

impl ProxyNode {
    pub fn from_node(node: &Node) -> Self {
        let meta = node.metadata.as_ref().map(|m| &m.fields);
        let get = |k: &str| meta.and_then(|m| m.get(k)).and_then(text);
        let port = |k: &str| get(k).and_then(|s| s.parse::<f64>().ok()).map(|n| n as u16);
        let labels = meta
            .and_then(|m| m.get("LABELS"))
            .and_then(|v| match &v.kind {
                Some(Kind::StructValue(s)) => {
                    Some(s.fields.iter().filter_map(|(k, v)| Some((k.clone(), text(v)?))).collect())
                }
                _ => None,
            })
            .unwrap_or_default();
        ProxyNode {
            id: node.id.clone(),
            role: match (get("ROLE").as_deref(), get("GENERATOR").as_deref()) {
                (Some("gateway"), _) => Role::Gateway,
                (_, Some("grpc")) => Role::Grpc,
                _ => Role::Sidecar,
            },
            namespace: get("NAMESPACE").unwrap_or_else(|| weft_api::resource::DEFAULT_NAMESPACE.into()),
            workload: get("WORKLOAD_NAME").unwrap_or_else(|| node.id.clone()),
            labels,
            outbound_ip: get("OUTBOUND_IP").unwrap_or_else(|| match get("LISTEN_IP") {
                Some(ip) if ip.parse::<std::net::IpAddr>().is_ok_and(|a| a.is_loopback()) => ip,
                _ => "127.0.0.1".into(),
            }),
            listen_ip: get("LISTEN_IP").unwrap_or_else(|| "127.0.0.1".into()),
            outbound_port: port("OUTBOUND_PORT").unwrap_or(15001),
            inbound_port: port("INBOUND_PORT").unwrap_or(15006),
            app_port: port("APP_PORT"),
            port_offset: port("PORT_OFFSET").unwrap_or(0),
            admin: get("ADMIN_ADDR"),
            holds_mesh_cert: node.user_agent_name == "weft",
            weft: node.user_agent_name == "weft",
            sds: false,
            locality: node.locality.as_ref().and_then(super::locality::text),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::google::protobuf::Struct;

    fn node(meta: &[(&str, &str)]) -> ProxyNode {
        let fields =
            meta.iter().map(|(k, v)| (k.to_string(), Value { kind: Some(Kind::StringValue(v.to_string())) })).collect();
        ProxyNode::from_node(&Node { id: "n".into(), metadata: Some(Struct { fields }), ..Default::default() })
    }

    #[test]
    fn outbound_listeners_stay_on_the_apps_side() {
        assert_eq!(
            node(&[("LISTEN_IP", "10.1.2.3")]).outbound_ip,
            "127.0.0.1",
            "a routable address is not an open proxy"
        );
        assert_eq!(node(&[("LISTEN_IP", "127.0.0.7")]).outbound_ip, "127.0.0.7");
        assert_eq!(node(&[("LISTEN_IP", "10.1.2.3"), ("OUTBOUND_IP", "10.9.9.9")]).outbound_ip, "10.9.9.9");
        let n = node(&[("LISTEN_IP", "10.1.2.3"), ("APP_PORT", "8080")]);
        let ls = super::super::listeners::sidecar(
            &n,
            &[],
            super::super::listeners::Inbound::Http(Vec::new()),
            weft_api::types::MtlsMode::Permissive,
            &Default::default(),
        );
        let addr = |name: &str| {
            let l = ls.iter().find(|l| l.name == name).unwrap();
            match l.address.as_ref().and_then(|a| a.address.as_ref()) {
                Some(envoy_types::pb::envoy::config::core::v3::address::Address::SocketAddress(s)) => s.address.clone(),
                _ => String::new(),
            }
        };
        assert_eq!((addr("outbound").as_str(), addr("inbound").as_str()), ("127.0.0.1", "10.1.2.3"));
    }
}
