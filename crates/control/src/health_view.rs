//! The mesh's view of upstream health (`GET /debug/health`): what every
//! connected proxy that gave its admin address (`ADMIN_ADDR` in its node
//! metadata) currently sees, gathered on demand and merged per host.
//!
//! Health is decided in each proxy (its own checks and outlier detection,
//! as in Envoy), so one host can be ejected by some callers and healthy for
//! others; the view shows exactly that, host by host. Nothing is pushed to
//! the control plane in between: asking is the only cost.

use crate::hub::Hub;
use crate::reach::get_json;
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// Every proxy's view, merged: per (cluster, host), how many proxies see
/// it and which of them see it unhealthy, with their reason; with
/// `service` (a host name), only that service's clusters.
pub async fn gather(hub: &Hub, service: Option<&str>) -> Value {
    let proxies = hub.proxies();
    let path = match service {
        Some(s) => format!(
            "/clusters?format=json&service={}",
            percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC)
        ),
        None => "/clusters?format=json".to_owned(),
    };
    let path = &path;
    let fetches = proxies.iter().map(|p| async move {
        match &p.admin {
            Some(a) => (p.id.clone(), Some(a.clone()), get_json(a, path).await),
            None => {
                let why = p.admin_refused.clone().unwrap_or_else(|| "no ADMIN_ADDR in its node metadata".to_owned());
                (p.id.clone(), None, Err(why))
            }
        }
    });
    let answers = futures::future::join_all(fetches).await;
    let mut hosts: BTreeMap<(String, String), (u32, Vec<Value>)> = BTreeMap::new();
    let mut reached = Vec::new();
    let mut unreachable = Vec::new();
    for (id, admin, answer) in answers {
        let view = match answer {
            Ok(v) => v,
            Err(e) => {
                unreachable.push(json!({"proxy": id, "admin": admin, "error": e}));
                continue;
            }
        };
        reached.push(id.clone());
        for c in view["clusters"].as_array().into_iter().flatten() {
            let cluster = c["name"].as_str().unwrap_or_default().to_owned();
            for h in c["hosts"].as_array().into_iter().flatten() {
                let key = (cluster.clone(), h["address"].as_str().unwrap_or_default().to_owned());
                let entry = hosts.entry(key).or_default();
                entry.0 += 1;
                if h["health"] != "healthy" {
                    entry.1.push(json!({"proxy": id, "health": h["health"], "lastFailure": h["lastFailure"], "ejections": h["ejections"], "panic": c["panic"]}));
                }
            }
        }
    }
    let hosts: Vec<Value> = hosts
        .into_iter()
        .map(|((cluster, address), (seen, bad))| {
            json!({"cluster": cluster, "address": address, "seenBy": seen, "healthyIn": seen as usize - bad.len(), "unhealthyIn": bad})
        })
        .collect();
    let unhealthy = hosts.iter().filter(|h| h["unhealthyIn"].as_array().is_some_and(|a| !a.is_empty())).count();
    json!({
        "proxies": {"reached": reached, "unreachable": unreachable},
        "summary": {"hosts": hosts.len(), "unhealthySomewhere": unhealthy},
        "hosts": hosts,
    })
}
