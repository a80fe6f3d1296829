//! `weft status`: every proxy connected to the control plane, the config
//! version it has everything of, and whether that is the latest (synced),
//! an older one (stale: it has not taken the latest yet) or refused (the
//! NACK's reason) — istioctl proxy-status, from the control plane's view.

use weft_proxy::mtls::control::ControlApi;

#[derive(clap::Args)]
pub struct StatusArgs {
    /// The control plane's API, `host:port`; by default the mesh `weft up`
    /// runs on this machine.
    #[arg(long, env = "WEFT_CONTROL")]
    control: Option<String>,
    /// `table`, or `json` for scripts.
    #[arg(short = 'o', long, default_value = "table", value_parser = ["table", "json"])]
    output: String,
}

/// One proxy's line.
#[derive(serde::Serialize)]
struct Row {
    name: String,
    kind: String,
    address: String,
    /// `synced`, `stale` or `nack`.
    state: &'static str,
    synced_version: u64,
    latest_version: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    nack: Option<String>,
    acked: serde_json::Value,
}

async fn get(api: &ControlApi, path: &str) -> anyhow::Result<serde_json::Value> {
    let (status, body) = api
        .call(None, http::Method::GET, path, None)
        .await
        .map_err(|e| anyhow::anyhow!("cannot reach the control plane at {}: {e}", api.addr))?;
    if status != 200 {
        anyhow::bail!("the control plane at {} answered {status} to {path}", api.addr);
    }
    Ok(serde_json::from_slice(&body)?)
}

fn row(p: &serde_json::Value, latest: u64) -> Row {
    let id = p["id"].as_str().unwrap_or_default();
    // Istio's node ids: `kind~address~name.namespace`; other clients' ids as they are.
    let parts: Vec<&str> = id.split('~').collect();
    let (kind, address, name) = match parts[..] {
        [kind, addr, name] => (kind, addr, name),
        _ => ("-", "-", id),
    };
    let synced = p["synced"].as_u64().unwrap_or(0);
    let nack = p["last_nack"].as_str().map(str::to_owned);
    let state = match (&nack, synced >= latest) {
        (Some(_), _) => "nack",
        (None, true) => "synced",
        (None, false) => "stale",
    };
    Row {
        name: name.to_owned(),
        kind: kind.to_owned(),
        address: address.to_owned(),
        state,
        synced_version: synced,
        latest_version: latest,
        nack,
        acked: p["acked"].clone(),
    }
}

pub async fn run(a: StatusArgs) -> anyhow::Result<()> {
    let addr = match a.control {
        Some(c) => c,
        None => crate::up::current::api()?,
    };
    let api = ControlApi::new(addr, None, None)?;
    // The version first: a proxy that synced it before the list is read is
    // not shown stale by a version published in between.
    let latest = get(&api, "/debug/version").await?["version"].as_u64().unwrap_or(0);
    let proxies = get(&api, "/debug/proxies").await?;
    let mut rows: Vec<Row> = proxies.as_array().into_iter().flatten().map(|p| row(p, latest)).collect();
    rows.sort_by(|a, b| (&a.kind, &a.name).cmp(&(&b.kind, &b.name)));
    if a.output == "json" {
        let out = serde_json::json!({"control": api.addr, "latestVersion": latest, "proxies": rows});
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    println!("control plane {} at config version {latest}: {} proxies\n", api.addr, rows.len());
    println!("{:<32} {:<8} {:<15} {:<8} {:>7}  NACK", "NAME", "KIND", "ADDRESS", "STATE", "VERSION");
    for r in &rows {
        let nack = r.nack.as_deref().unwrap_or("");
        println!("{:<32} {:<8} {:<15} {:<8} {:>7}  {nack}", r.name, r.kind, r.address, r.state, r.synced_version);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_proxy_is_synced_stale_or_nacked() {
        let p = |synced: u64, nack: Option<&str>| serde_json::json!({"id": "sidecar~127.1.0.2~reviews-v1.default", "synced": synced, "last_nack": nack, "acked": {}});
        let r = row(&p(7, None), 7);
        assert_eq!(
            (r.name.as_str(), r.kind.as_str(), r.address.as_str(), r.state),
            ("reviews-v1.default", "sidecar", "127.1.0.2", "synced")
        );
        assert_eq!(row(&p(6, None), 7).state, "stale");
        let n = row(&p(7, Some("route table x: bad regex")), 7);
        assert_eq!((n.state, n.nack.as_deref()), ("nack", Some("route table x: bad regex")));
        assert_eq!(
            row(&serde_json::json!({"id": "envoy-client~127.0.0.1", "synced": 1}), 1).name,
            "envoy-client~127.0.0.1"
        );
    }
}
