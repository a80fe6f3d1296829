//! `weft status`: every proxy connected to the control plane, the config
//! version it has everything of, and whether that is the latest (synced),
//! an older one (stale: it has not taken the latest yet) or refused (the
//! NACK's reason), with its workload certificate's expiry — istioctl
//! proxy-status, from the control plane's view.

use super::{Target, get, human, proxy_name, table};
use std::collections::HashMap;

#[derive(clap::Args)]
pub struct StatusArgs {
    #[command(flatten)]
    target: Target,
}

/// One proxy's line.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
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
    /// Its workload certificate, as the proxy reports it (null: plaintext).
    certificate: serde_json::Value,
}

fn row(p: &serde_json::Value, latest: u64, certs: &HashMap<&str, serde_json::Value>) -> Row {
    let id = p["id"].as_str().unwrap_or_default();
    let (kind, address) = match id.split('~').collect::<Vec<_>>()[..] {
        [kind, addr, _] => (kind, addr),
        _ => ("-", "-"),
    };
    let synced = p["synced"].as_u64().unwrap_or(0);
    let nack = p["last_nack"].as_str().map(str::to_owned);
    let state = match (&nack, synced >= latest) {
        (Some(_), _) => "nack",
        (None, true) => "synced",
        (None, false) => "stale",
    };
    Row {
        name: proxy_name(id).to_owned(),
        kind: kind.to_owned(),
        address: address.to_owned(),
        state,
        synced_version: synced,
        latest_version: latest,
        nack,
        acked: p["acked"].clone(),
        certificate: certs.get(id).cloned().unwrap_or_default(),
    }
}

/// The ROOTS column: how many roots the proxy trusts (two during a
/// rotation), and whether a signer other than the CA's current one signed
/// its certificate (a rotation's step it has not taken yet).
fn roots_cell(c: &serde_json::Value, signer: Option<&str>) -> String {
    let m = &c["mtls"];
    match (m["roots"].as_u64(), m["signer"].as_str()) {
        (Some(n), Some(s)) if signer.is_some_and(|cur| cur != s) => format!("{n}, old signer"),
        (Some(n), _) => n.to_string(),
        _ => "-".to_owned(),
    }
}

/// The CERT column: time left, or why there is none.
fn cert_cell(c: &serde_json::Value) -> String {
    if let Some(e) = c["error"].as_str() {
        return format!("? ({e})");
    }
    let m = &c["mtls"];
    match (m["expiresInSeconds"].as_i64(), m["lastRenewalError"].as_str()) {
        (_, Some(_)) => "renewal failing".to_owned(),
        (Some(s), None) => human(s),
        (None, None) => "-".to_owned(),
    }
}

pub async fn run(a: StatusArgs) -> anyhow::Result<()> {
    let api = a.target.api()?;
    // The version first: a proxy that synced it before the list is read is
    // not shown stale by a version published in between.
    let latest = get(&api, "/debug/version").await?["version"].as_u64().unwrap_or(0);
    let proxies = get(&api, "/debug/proxies").await?;
    let certs = get(&api, "/debug/certs").await?;
    let by_id: HashMap<&str, serde_json::Value> = certs["proxies"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| Some((c["id"].as_str()?, c.clone())))
        .collect();
    let mut rows: Vec<Row> = proxies.as_array().into_iter().flatten().map(|p| row(p, latest, &by_id)).collect();
    rows.sort_by(|a, b| (&a.kind, &a.name).cmp(&(&b.kind, &b.name)));
    if a.target.json() {
        let out = serde_json::json!({"control": api.addr, "latestVersion": latest, "proxies": rows});
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    println!("control plane {} at config version {latest}: {} proxies\n", api.addr, rows.len());
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.name.clone(),
                r.kind.clone(),
                r.address.clone(),
                r.state.to_owned(),
                r.synced_version.to_string(),
                cert_cell(&r.certificate),
                roots_cell(&r.certificate, certs["ca"]["signerId"].as_str()),
                r.nack.clone().unwrap_or_default(),
            ]
        })
        .collect();
    print!("{}", table(&["NAME", "KIND", "ADDRESS", "STATE", "VERSION", "CERT", "ROOTS", "NACK"], &cells));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_proxy_is_synced_stale_or_nacked() {
        let p = |synced: u64, nack: Option<&str>| serde_json::json!({"id": "sidecar~127.1.0.2~reviews-v1.default", "synced": synced, "last_nack": nack, "acked": {}});
        let none = HashMap::new();
        let r = row(&p(7, None), 7, &none);
        assert_eq!(
            (r.name.as_str(), r.kind.as_str(), r.address.as_str(), r.state),
            ("reviews-v1.default", "sidecar", "127.1.0.2", "synced")
        );
        assert_eq!(row(&p(6, None), 7, &none).state, "stale");
        let n = row(&p(7, Some("route table x: bad regex")), 7, &none);
        assert_eq!((n.state, n.nack.as_deref()), ("nack", Some("route table x: bad regex")));
        assert_eq!(
            row(&serde_json::json!({"id": "envoy-client~127.0.0.1", "synced": 1}), 1, &none).name,
            "envoy-client~127.0.0.1"
        );
        let cert = |m: serde_json::Value| cert_cell(&serde_json::json!({"mtls": m}));
        assert_eq!(cert(serde_json::json!({"expiresInSeconds": 7200})), "2h0m");
        assert_eq!(cert(serde_json::json!({"lastRenewalError": "401"})), "renewal failing");
        assert_eq!(cert(serde_json::Value::Null), "-");
        let roots = |n: u64, s: &str| roots_cell(&serde_json::json!({"mtls": {"roots": n, "signer": s}}), Some("new"));
        assert_eq!((roots(2, "new").as_str(), roots(2, "old").as_str()), ("2", "2, old signer"));
    }
}
