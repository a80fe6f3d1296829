//! Reaching proxies through the admin address each declares
//! (`ADMIN_ADDR`): what one runs (`/debug/proxies/{id}/config_dump`), the
//! requests it serves (`/debug/proxies/{id}/tap`) and every proxy's
//! certificate (`/debug/certs`), asked on demand with a
//! deadline, so a hung proxy costs its own answer only.

use crate::hub::{Hub, ProxyStatus};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use serde_json::{Value, json};
use std::time::Duration;

/// The most of one proxy's answer read: a proxy's `/clusters` on a large
/// mesh is a few MB; more is refused, not buffered.
const MAX_ANSWER: usize = 16 << 20;

/// `GET http://{addr}{path}` with a 2 s deadline and a size limit, as JSON.
pub async fn get_json(addr: &str, path: &str) -> Result<Value, String> {
    get_json_within(addr, path, Duration::from_secs(2)).await
}

/// `get_json` with a deadline of its own (a tap answers when it closes).
pub async fn get_json_within(addr: &str, path: &str, deadline: Duration) -> Result<Value, String> {
    let fetch = async {
        let stream = tokio::net::TcpStream::connect(addr).await.map_err(|e| format!("connect: {e}"))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        let req =
            hyper::Request::get(path).header("host", addr).body(Empty::<Bytes>::new()).map_err(|e| e.to_string())?;
        let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
        let body = Limited::new(resp.into_body(), MAX_ANSWER)
            .collect()
            .await
            .map_err(|e| format!("reading the answer: {e} (at most {MAX_ANSWER} bytes are read)"))?
            .to_bytes();
        serde_json::from_slice(&body).map_err(|e| format!("not JSON: {e}"))
    };
    tokio::time::timeout(deadline, fetch).await.map_err(|_| format!("no answer within {deadline:?}"))?
}

/// `path` from one proxy's admin, or why it cannot be asked.
pub async fn ask(p: &ProxyStatus, path: &str) -> Result<Value, String> {
    match &p.admin {
        Some(a) => get_json(a, path).await.map_err(|e| format!("its admin {a}: {e}")),
        None => Err(p.admin_refused.clone().unwrap_or_else(|| "no ADMIN_ADDR in its node metadata".to_owned())),
    }
}

/// What the proxy with node id `id` runs (its `/config_dump`); None when no
/// proxy of that id is connected.
pub async fn config_dump(hub: &Hub, id: &str) -> Option<Result<Value, String>> {
    let p = hub.proxies().into_iter().rfind(|p| p.id == id)?;
    Some(ask(&p, "/config_dump").await)
}

/// The requests the proxy with node id `id` finishes over one tap
/// (`query` as its `/tap` takes it); None when it is not connected.
pub async fn tap(hub: &Hub, id: &str, query: &str) -> Option<Result<Value, String>> {
    let p = hub.proxies().into_iter().rfind(|p| p.id == id)?;
    Some(match &p.admin {
        Some(a) => get_json_within(a, &format!("/tap?{query}"), Duration::from_secs(35)).await,
        None => Err(p.admin_refused.clone().unwrap_or_else(|| "no ADMIN_ADDR in its node metadata".to_owned())),
    })
}

/// Every connected proxy's workload certificate (`/certs`), asked at once.
pub async fn certs(hub: &Hub) -> Vec<Value> {
    let proxies = hub.proxies();
    let asks = proxies.iter().map(|p| async move {
        match ask(p, "/certs").await {
            Ok(v) => json!({"id": p.id, "mtls": v["mtls"]}),
            Err(e) => json!({"id": p.id, "error": e}),
        }
    });
    futures::future::join_all(asks).await
}
