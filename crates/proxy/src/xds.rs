//! The ADS client: one stream to the control plane carrying clusters,
//! endpoints, listeners and routes (state of the world).
//!
//! Each response is decoded and the whole config compiled *outside* the
//! request path; only a config that compiles is swapped in and ACKed.
//! Anything else is NACKed with the reason and the last good config stays.
//! On disconnect the proxy keeps serving and reconnects with backoff.

use crate::config::{Config, Raw, eds_name, rds_names};
use crate::state::{NodeInfo, ProxyState};
use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use envoy_types::pb::google::protobuf::{Struct, Value, value::Kind};
use envoy_types::pb::google::rpc::Status;
use prost::Message;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

pub const LISTENER: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";
pub const ROUTE: &str = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration";
pub const CLUSTER: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
pub const ENDPOINT: &str = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment";

fn s(v: impl Into<String>) -> Value {
    Value { kind: Some(Kind::StringValue(v.into())) }
}

pub fn node(info: &NodeInfo) -> Node {
    let mut f: BTreeMap<String, Value> = BTreeMap::new();
    f.insert("ROLE".into(), s(&info.role));
    f.insert("NAMESPACE".into(), s(&info.namespace));
    f.insert("WORKLOAD_NAME".into(), s(&info.workload));
    f.insert("LISTEN_IP".into(), s(&info.listen_ip));
    f.insert("OUTBOUND_PORT".into(), s(info.outbound_port.to_string()));
    f.insert("INBOUND_PORT".into(), s(info.inbound_port.to_string()));
    f.insert("PORT_OFFSET".into(), s(info.port_offset.to_string()));
    if let Some(p) = info.app_port {
        f.insert("APP_PORT".into(), s(p.to_string()));
    }
    let labels = Struct { fields: info.labels.iter().map(|(k, v)| (k.clone(), s(v))).collect() };
    f.insert("LABELS".into(), Value { kind: Some(Kind::StructValue(labels)) });
    Node {
        id: info.id.clone(),
        cluster: info.workload.clone(),
        metadata: Some(Struct { fields: f.into_iter().collect() }),
        user_agent_name: "weft".into(),
        ..Default::default()
    }
}

/// Runs forever: connect, stream, reconnect with backoff (up to 5 s).
pub async fn run(addr: String, state: Arc<ProxyState>) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let result = stream_once(&addr, &state).await;
        if state.draining.load(Ordering::Acquire) {
            return; // shutting down: the control plane going away is expected
        }
        match result {
            Ok(()) => tracing::warn!(%addr, "xDS stream closed by the control plane; reconnecting"),
            Err(e) => {
                tracing::warn!(%addr, error = %e, "xDS stream failed; keeping the last good config and reconnecting")
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

#[derive(Default)]
struct TypeState {
    names: BTreeSet<String>,
    version: String,
    nonce: String,
}

struct Session<'a> {
    state: &'a ProxyState,
    tx: mpsc::Sender<DiscoveryRequest>,
    types: HashMap<&'static str, TypeState>,
    raw: Raw,
    first: bool,
}

impl Session<'_> {
    async fn request(&mut self, type_url: &'static str, error: Option<String>) {
        let t = self.types.entry(type_url).or_default();
        let req = DiscoveryRequest {
            version_info: t.version.clone(),
            node: self.first.then(|| node(&self.state.node)),
            resource_names: t.names.iter().cloned().collect(),
            type_url: type_url.to_owned(),
            response_nonce: t.nonce.clone(),
            error_detail: error.map(|m| Status { code: 3, message: m, details: Vec::new() }),
            ..Default::default()
        };
        self.first = false;
        let _ = self.tx.send(req).await;
    }

    fn decode<M: Message + Default>(
        resp: &DiscoveryResponse,
        name: impl Fn(&M) -> String,
    ) -> Result<BTreeMap<String, M>, String> {
        let mut out = BTreeMap::new();
        for any in &resp.resources {
            let m = M::decode(any.value.as_slice()).map_err(|e| format!("cannot decode {}: {e}", any.type_url))?;
            out.insert(name(&m), m);
        }
        Ok(out)
    }

    /// Applies one response to a copy of the raw config; Err is the NACK reason.
    fn apply(&self, resp: &DiscoveryResponse) -> Result<Raw, String> {
        let mut raw = self.raw.clone();
        match resp.type_url.as_str() {
            LISTENER => {
                raw.listeners =
                    Arc::new(Self::decode(resp, |l: &envoy_types::pb::envoy::config::listener::v3::Listener| {
                        l.name.clone()
                    })?)
            }
            ROUTE => {
                raw.routes = Arc::new(Self::decode(
                    resp,
                    |r: &envoy_types::pb::envoy::config::route::v3::RouteConfiguration| r.name.clone(),
                )?)
            }
            CLUSTER => {
                raw.clusters =
                    Arc::new(Self::decode(resp, |c: &envoy_types::pb::envoy::config::cluster::v3::Cluster| {
                        c.name.clone()
                    })?)
            }
            ENDPOINT => {
                raw.endpoints = Arc::new(Self::decode(
                    resp,
                    |e: &envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment| e.cluster_name.clone(),
                )?)
            }
            other => return Err(format!("unexpected type {other}")),
        }
        Ok(raw)
    }

    async fn on_response(&mut self, resp: DiscoveryResponse) {
        let type_url: &'static str = match resp.type_url.as_str() {
            LISTENER => LISTENER,
            ROUTE => ROUTE,
            CLUSTER => CLUSTER,
            ENDPOINT => ENDPOINT,
            _ => return,
        };
        self.types.entry(type_url).or_default().nonce = resp.nonce.clone();
        let compiled = self.apply(&resp).and_then(|raw| {
            let cfg = Config::compile(&raw, resp.version_info.clone(), &self.state.pools).map_err(|(_, e)| e.0)?;
            Ok((raw, cfg))
        });
        match compiled {
            Ok((raw, cfg)) => {
                self.raw = raw;
                self.types.entry(type_url).or_default().version = resp.version_info.clone();
                let complete = self.complete();
                self.state.config.store(Arc::new(cfg));
                self.state.raw.store(Arc::new(self.raw.clone()));
                if complete {
                    self.state.xds_complete.store(true, Ordering::Release);
                }
                self.state.updates.send_modify(|v| *v += 1);
                tracing::debug!(r#type = type_url.rsplit('.').next(), version = %resp.version_info, "config applied");
                self.request(type_url, None).await; // ACK
                self.follow_names().await;
            }
            Err(reason) => {
                tracing::warn!(r#type = type_url.rsplit('.').next(), version = %resp.version_info, %reason, "rejecting config (NACK); keeping the last good one");
                *self.state.last_nack.lock().expect("nack lock") = Some(reason.clone());
                self.request(type_url, Some(reason)).await;
            }
        }
    }

    /// Subscribes to the route tables and endpoint sets the config refers to.
    async fn follow_names(&mut self) {
        let rds = rds_names(&self.raw.listeners);
        let eds: BTreeSet<String> = self.raw.clusters.values().filter_map(eds_name).collect();
        for (t, names) in [(ROUTE, rds), (ENDPOINT, eds)] {
            let cur = self.types.entry(t).or_default();
            if cur.names != names {
                cur.names = names;
                self.request(t, None).await;
            }
        }
    }

    fn complete(&self) -> bool {
        let rds = rds_names(&self.raw.listeners);
        let eds: BTreeSet<String> = self.raw.clusters.values().filter_map(eds_name).collect();
        self.types.get(CLUSTER).is_some_and(|t| !t.version.is_empty())
            && self.types.get(LISTENER).is_some_and(|t| !t.version.is_empty())
            && rds.iter().all(|n| self.raw.routes.contains_key(n))
            && eds.iter().all(|n| self.raw.endpoints.contains_key(n))
    }
}

async fn stream_once(addr: &str, state: &Arc<ProxyState>) -> anyhow::Result<()> {
    let endpoint = if addr.starts_with("http") { addr.to_owned() } else { format!("http://{addr}") };
    let mut client = AggregatedDiscoveryServiceClient::connect(endpoint).await?.max_decoding_message_size(256 << 20);
    let (tx, rx) = mpsc::channel(16);
    let mut session = Session { state, tx, types: HashMap::new(), raw: (**state.raw.load()).clone(), first: true };
    // Resume: ask for what we already have, so the control plane can send just changes.
    session.request(CLUSTER, None).await;
    session.request(LISTENER, None).await;
    let mut stream = client.stream_aggregated_resources(ReceiverStream::new(rx)).await?.into_inner();
    tracing::info!(%addr, "xDS stream open");
    while let Some(resp) = stream.message().await? {
        session.on_response(resp).await;
    }
    Ok(())
}
