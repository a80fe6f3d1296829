//! Self-registration: once ready, a sidecar registers its workload instance
//! with the control plane's API, heartbeats at a third of the TTL, registers
//! again if the control plane forgot it, and deregisters when it drains.

use crate::mtls::control::ControlApi;
use crate::state::ProxyState;
pub use http::Method;
use std::sync::Arc;
use std::time::Duration;

#[derive(Clone)]
pub struct Registration {
    /// The control plane's API: registration proves the instance's
    /// identity by the proxy's certificate or bootstrap token.
    pub api: Arc<ControlApi>,
    /// Address other proxies reach this one at (its inbound listener).
    pub address: String,
    pub port: u16,
    pub ttl: Duration,
    pub service_account: Option<String>,
    pub locality: Option<String>,
    pub weight: Option<u32>,
}

/// A call to the API with the proxy's current certificate, if any.
async fn call(
    state: &ProxyState,
    api: &ControlApi,
    method: http::Method,
    path: &str,
    body: Option<serde_json::Value>,
) -> anyhow::Result<(u16, bytes::Bytes)> {
    let current = state.tls().load_full();
    api.call(current.as_deref(), method, path, body).await
}

/// Istio's label for a workload with a sidecar (`weft_api::types::TLS_MODE_LABEL`;
/// the proxy does not depend on that crate): the control plane marks this
/// instance's endpoints with it, and callers send it mesh-internal headers
/// (the caller's identity), which they keep from anything else.
const TLS_MODE: (&str, &str) = ("security.istio.io/tlsMode", "istio");

fn instance(state: &ProxyState, r: &Registration) -> serde_json::Value {
    let mut labels = state.node.labels.clone();
    labels.entry(TLS_MODE.0.to_owned()).or_insert_with(|| TLS_MODE.1.to_owned());
    serde_json::json!({
        "name": state.node.workload,
        "namespace": state.node.namespace,
        "address": r.address,
        "port": r.port,
        "labels": labels,
        "serviceAccount": r.service_account,
        "locality": r.locality,
        "weight": r.weight,
        "ttlSeconds": r.ttl.as_secs().max(1),
    })
}

/// Registers once ready, then heartbeats until draining; returns the id (to deregister).
pub async fn run(state: Arc<ProxyState>, r: Registration, id_out: Arc<parking_lot::Mutex<Option<String>>>) {
    while !state.ready() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut id: Option<String> = None;
    let beat = (r.ttl / 3).max(Duration::from_millis(200));
    while !state.is_draining() {
        match &id {
            None => match call(&state, &r.api, http::Method::POST, "/v1/instances", Some(instance(&state, &r))).await {
                Ok((200, body)) => {
                    let got = serde_json::from_slice::<serde_json::Value>(&body)
                        .ok()
                        .and_then(|v| v["id"].as_str().map(str::to_owned));
                    tracing::info!(id = ?got, api = %r.api.addr, "registered with the control plane");
                    *id_out.lock() = got.clone();
                    id = got;
                }
                Ok((status, body)) => {
                    tracing::warn!(status, body = %String::from_utf8_lossy(&body), "registration refused")
                }
                Err(e) => {
                    tracing::warn!(error = %e, api = %r.api.addr, "cannot reach the control plane to register; retrying")
                }
            },
            Some(i) => {
                match call(&state, &r.api, http::Method::PUT, &format!("/v1/instances/{i}/heartbeat"), None).await {
                    Ok((200, _)) => {}
                    Ok((404, _)) => {
                        tracing::warn!("the control plane forgot this instance; registering again");
                        id = None;
                        continue;
                    }
                    Ok((status, _)) => tracing::warn!(status, "heartbeat refused"),
                    Err(e) => tracing::warn!(error = %e, "heartbeat failed"),
                }
            }
        }
        tokio::time::sleep(beat).await;
    }
}

pub async fn deregister(state: &ProxyState, api: &ControlApi, id: &str) {
    match call(state, api, http::Method::DELETE, &format!("/v1/instances/{id}"), None).await {
        Ok((200, _)) => tracing::info!(%id, "deregistered"),
        Ok((status, _)) => tracing::warn!(%id, status, "deregistration refused"),
        Err(e) => tracing::warn!(%id, error = %e, "deregistration failed"),
    }
}
