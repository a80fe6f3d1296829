//! `weft proxy-config <proxy> [listeners|routes|clusters|endpoints|secret|all]`:
//! what one proxy really runs, asked from the proxy itself through the
//! control plane (istioctl proxy-config, without port-forwarding).

use super::{Target, cell, get, human, path_segment, proxy_id, table};
use serde_json::Value;

#[derive(clap::Args)]
pub struct ProxyConfigArgs {
    /// The proxy: its name as `weft status` shows it (`reviews-v1.default`),
    /// a prefix of it that only it has, its address (replicas share a
    /// name), or its node id.
    proxy: String,
    /// What to show.
    #[arg(default_value = "all", value_parser = ["listeners", "routes", "clusters", "endpoints", "secret", "all"])]
    what: String,
    #[command(flatten)]
    target: Target,
}

fn listeners(dump: &Value) -> String {
    let rows: Vec<Vec<String>> = items(&dump["listeners"])
        .map(|l| {
            let (kind, detail) = if let Some(h) = l.get("http") {
                let authz = h["authz"].as_array().map_or(0, Vec::len);
                let mut d = format!(
                    "routes {} ({}, {})",
                    cell(&h["routeConfig"]),
                    cell(&h["direction"]),
                    cell(&h["transport"])
                );
                if authz > 0 {
                    d.push_str(&format!(", {authz} authorization filters"));
                }
                ("HTTP", d)
            } else {
                let clusters: Vec<String> = items(&l["tcp"]["clusters"]).map(cell).collect();
                ("TCP", format!("→ {}", clusters.join(", ")))
            };
            vec![cell(&l["name"]), cell(&l["address"]), kind.to_owned(), detail]
        })
        .collect();
    table(&["NAME", "ADDRESS", "TYPE", "WHAT"], &rows)
}

fn routes(dump: &Value) -> String {
    let mut rows = Vec::new();
    for t in items(&dump["routes"]) {
        for vh in items(&t["virtualHosts"]) {
            let domains: Vec<String> = items(&vh["domains"]).map(cell).collect();
            let shown = match domains.len() {
                0..=2 => domains.join(","),
                n => format!("{},{} +{} more", domains[0], domains[1], n - 2),
            };
            for r in items(&vh["routes"]) {
                rows.push(vec![
                    cell(&t["name"]),
                    cell(&vh["name"]),
                    shown.clone(),
                    cell(&r["match"]),
                    cell(&r["action"]),
                ]);
            }
        }
    }
    table(&["TABLE", "VIRTUAL HOST", "DOMAINS", "MATCH", "ACTION"], &rows)
}

fn clusters(dump: &Value) -> String {
    let rows: Vec<Vec<String>> = items(&dump["clusters"])
        .map(|c| {
            let eps: Vec<&Value> = items(&c["endpoints"]).collect();
            let healthy = eps.iter().filter(|e| e["health"] == "healthy").count();
            let mut flags = Vec::new();
            for (key, flag) in [
                ("outlierDetection", "outlier-detection"),
                ("healthCheck", "health-check"),
                ("panic", "PANIC"),
                ("warming", "warming"),
            ] {
                if c[key] == true {
                    flags.push(flag);
                }
            }
            vec![
                cell(&c["name"]),
                cell(&c["service"]),
                cell(&c["lb"]),
                cell(&c["protocol"]),
                format!("{healthy}/{}", eps.len()),
                flags.join(","),
            ]
        })
        .collect();
    table(&["NAME", "SERVICE", "LB", "PROTOCOL", "HEALTHY", "FLAGS"], &rows)
}

fn endpoints(dump: &Value) -> String {
    let mut rows = Vec::new();
    for c in items(&dump["clusters"]) {
        for e in items(&c["endpoints"]) {
            let mut health = cell(&e["health"]);
            if let Some(why) = e["lastFailure"].as_str() {
                health.push_str(&format!(" ({why})"));
            }
            rows.push(vec![
                cell(&c["name"]),
                cell(&e["address"]),
                health,
                cell(&e["weight"]),
                cell(&e["locality"]),
                cell(&e["priority"]),
                cell(&e["activeRequests"]),
            ]);
        }
    }
    table(&["CLUSTER", "ADDRESS", "HEALTH", "WEIGHT", "LOCALITY", "PRIORITY", "ACTIVE"], &rows)
}

fn secret(dump: &Value) -> String {
    let m = &dump["mtls"];
    if m.is_null() {
        return "no workload certificate: this proxy speaks plaintext (started without --ca)\n".to_owned();
    }
    let expires = m["expiresInSeconds"].as_i64().map_or("-".to_owned(), human);
    table(
        &["IDENTITY", "EXPIRES IN", "LAST RENEWAL ERROR"],
        &[vec![cell(&m["identity"]), expires, m["lastRenewalError"].as_str().unwrap_or("").to_owned()]],
    )
}

/// A part of the dump by name, and how it is shown as a table.
type Section = (&'static str, fn(&Value) -> String);

fn items(v: &Value) -> impl Iterator<Item = &Value> {
    v.as_array().into_iter().flatten()
}

pub async fn run(a: ProxyConfigArgs) -> anyhow::Result<()> {
    let api = a.target.api()?;
    let id = proxy_id(&api, &a.proxy).await?;
    let path = format!("/debug/proxies/{}/config_dump", path_segment(&id));
    let dump = get(&api, &path).await?;
    let sections: &[Section] = &[
        ("listeners", listeners),
        ("routes", routes),
        ("clusters", clusters),
        ("endpoints", endpoints),
        ("secret", secret),
    ];
    let chosen: Vec<&Section> = sections.iter().filter(|(name, _)| a.what == "all" || a.what == *name).collect();
    if a.target.json() {
        let mut out = serde_json::Map::new();
        out.insert("proxy".into(), id.clone().into());
        out.insert("version".into(), dump["version"].clone());
        for (name, _) in &chosen {
            let key = match *name {
                "endpoints" => "clusters",
                "secret" => "mtls",
                n => n,
            };
            out.insert((*name).into(), dump[key].clone());
        }
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    println!("proxy {id} at config version {}", cell(&dump["version"]));
    for (name, show) in chosen {
        if a.what == "all" {
            println!("\n{}", name.to_uppercase());
        }
        print!("{}", show(&dump));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::resolve;

    #[test]
    fn a_proxy_is_named_by_its_name_a_unique_prefix_or_its_id() {
        let ids = [
            "sidecar~127.1.0.2~reviews-v1.default",
            "sidecar~127.1.0.3~reviews-v2.default",
            "router~127.0.0.1~gw.istio-system",
            "sidecar~127.1.0.4~ratings.default",
            "sidecar~127.1.0.5~ratings.default",
        ];
        assert_eq!(resolve("reviews-v1.default", &ids).unwrap(), ids[0]);
        assert_eq!(resolve("reviews-v2", &ids).unwrap(), ids[1]);
        assert_eq!(resolve("gw", &ids).unwrap(), ids[2]);
        assert_eq!(resolve(ids[2], &ids).unwrap(), ids[2]);
        let many = resolve("reviews", &ids).unwrap_err().to_string();
        assert!(many.contains("names 2 proxies") && many.contains("reviews-v2.default"), "{many}");
        let replicas = resolve("ratings.default", &ids).unwrap_err().to_string();
        assert!(replicas.contains("ratings.default at 127.1.0.5") && replicas.contains("address"), "{replicas}");
        assert_eq!(resolve("127.1.0.5", &ids).unwrap(), ids[4]);
        let none = resolve("details", &ids).unwrap_err().to_string();
        assert!(none.contains("no proxy `details`") && none.contains("gw.istio-system at 127.0.0.1"), "{none}");
    }
}
