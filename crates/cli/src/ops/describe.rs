//! `weft describe [service|workload] NAME`: which VirtualServices,
//! DestinationRules, subsets, policies and endpoints apply to it, their
//! health, its golden signals, and where a request to it goes.

use super::{Target, cell, get, ms, percent, table};
use serde_json::Value;

#[derive(clap::Args)]
pub struct DescribeArgs {
    /// `service NAME`, `workload NAME`, or NAME alone (a service if one
    /// has that name, else a workload). A service is named by its host,
    /// `name.namespace` or its name.
    #[arg(num_args = 1..=2, required = true)]
    what: Vec<String>,
    /// Show the routes a sidecar of this workload gets (by default: a
    /// sidecar in the service's namespace).
    #[arg(long)]
    from: Option<String>,
    #[command(flatten)]
    target: Target,
}

fn query(kind: &str, name: &str, from: Option<&str>) -> String {
    let enc = |s: &str| super::path_segment(s);
    let mut q = format!("/debug/describe?{kind}={}", enc(name));
    if let Some(f) = from.filter(|_| kind == "service") {
        q.push_str(&format!("&from={}", enc(f)));
    }
    q
}

pub async fn run(a: DescribeArgs) -> anyhow::Result<()> {
    let api = a.target.api()?;
    let from = a.from.as_deref();
    let v = match &a.what[..] {
        [kind, name] if kind == "service" || kind == "workload" => get(&api, &query(kind, name, from)).await?,
        [kind, _] => anyhow::bail!("`{kind}`: weft describe takes `service NAME`, `workload NAME`, or a NAME alone"),
        [name] => match get(&api, &query("service", name, from)).await {
            Ok(v) => v,
            Err(service) => match get(&api, &query("workload", name, None)).await {
                Ok(v) => v,
                Err(workload) => anyhow::bail!("{service}\n{workload}"),
            },
        },
        _ => unreachable!("clap takes one or two"),
    };
    if a.target.json() {
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else if v["service"].is_object() {
        print!("{}", service(&v));
    } else {
        print!("{}", workload(&v));
    }
    Ok(())
}

fn labels(v: &Value) -> String {
    let l: Vec<String> = v.as_object().into_iter().flatten().map(|(k, v)| format!("{k}={}", cell(v))).collect();
    if l.is_empty() { "-".to_owned() } else { l.join(",") }
}

fn list(v: &Value) -> Vec<Value> {
    v.as_array().cloned().unwrap_or_default()
}

fn signals(v: &Value) -> String {
    if v.is_null() {
        return "no requests in the last minute\n".to_owned();
    }
    format!(
        "{:.1} rps, {} success, p50 {} p95 {} p99 {} ({} requests)\n",
        v["rps"].as_f64().unwrap_or(0.0),
        percent(&v["successRate"]),
        ms(&v["p50Ms"]),
        ms(&v["p95Ms"]),
        ms(&v["p99Ms"]),
        v["requests"]
    )
}

/// A host's health as its callers see it: `healthy (2 callers)` or
/// `ejected by 1 of 2: outlier`.
fn health(h: &Value) -> String {
    if h.is_null() {
        return "not seen by a proxy".to_owned();
    }
    let bad = list(&h["unhealthyIn"]);
    match bad.first() {
        None => format!("healthy ({} callers)", h["seenBy"]),
        Some(b) => format!("{} in {} of {}", cell(&b["health"]), bad.len(), h["seenBy"]),
    }
}

fn warnings(v: &Value) -> String {
    let w = list(&v["warnings"]);
    if w.is_empty() {
        return String::new();
    }
    let mut out = format!("\nWarnings ({}):\n", w.len());
    for d in w {
        out.push_str(&format!("  {}\n", cell(&d).replace('\n', "\n  ")));
    }
    out
}

fn service(v: &Value) -> String {
    let svc = &v["service"];
    let mut out = format!("Service {}.{} ({})", cell(&svc["name"]), cell(&svc["namespace"]), cell(&svc["host"]));
    out.push_str(&format!(" from {}\n", cell(&svc["resource"])));
    let ports: Vec<String> = list(&svc["ports"])
        .iter()
        .map(|p| {
            let to = if p["targetPort"].is_null() { String::new() } else { format!(" → {}", cell(&p["targetPort"])) };
            format!("{} {}/{}{to}", cell(&p["name"]), p["port"], cell(&p["protocol"]))
        })
        .collect();
    out.push_str(&format!("  ports: {}\n  selector: {}\n", ports.join(", "), labels(&svc["selector"])));
    out.push_str(&format!("  workloads: {}\n", list(&v["workloads"]).iter().map(cell).collect::<Vec<_>>().join(", ")));

    out.push_str("\nVirtualServices:");
    let vss = list(&v["virtualServices"]);
    if vss.is_empty() {
        out.push_str(" none (every request goes to the whole service)");
    }
    out.push('\n');
    for vs in vss {
        let gws: Vec<String> = list(&vs["gateways"]).iter().map(cell).collect();
        let hidden = if vs["exportedToCaller"] == false { ", not exported to the caller" } else { "" };
        out.push_str(&format!(
            "  {} on {}: {} http, {} tcp, {} tls rules{hidden}\n",
            cell(&vs["name"]),
            gws.join(", "),
            vs["rules"]["http"],
            vs["rules"]["tcp"],
            vs["rules"]["tls"]
        ));
    }
    match &v["destinationRule"] {
        Value::Null => out.push_str("DestinationRule: none\n"),
        dr => {
            let policy = |p: &Value| list(p).iter().map(cell).collect::<Vec<_>>().join("; ");
            out.push_str(&format!("DestinationRule: {} {}\n", cell(&dr["name"]), policy(&dr["policy"])));
            for sub in list(&dr["subsets"]) {
                let p = policy(&sub["policy"]);
                out.push_str(format!("  subset {} ({}) {p}", cell(&sub["name"]), labels(&sub["labels"])).trim_end());
                out.push('\n');
            }
        }
    }

    let caller = &v["caller"];
    let from = match labels(&caller["labels"]).as_str() {
        "-" => format!("a sidecar in {}", cell(&caller["namespace"])),
        l => format!("a sidecar in {} with {l}", cell(&caller["namespace"])),
    };
    out.push_str(&format!("\nA request from {from} goes (first match wins):\n"));
    for port in list(&v["routes"]) {
        out.push_str(&format!("  port {} ({})\n", port["port"], cell(&port["protocol"])));
        for (i, r) in list(&port["routes"]).iter().enumerate() {
            let to: Vec<String> = list(&r["to"])
                .iter()
                .map(|t| format!("{} {}%", cell(&t["cluster"]), t["weight"].as_f64().unwrap_or(0.0)))
                .collect();
            let action = if to.is_empty() { cell(&r["action"]) } else { to.join(", ") };
            let mut extra = Vec::new();
            for k in ["timeout", "retries", "mirror"] {
                if !r[k].is_null() && r[k] != "none" {
                    extra.push(format!("{k} {}", cell(&r[k])));
                }
            }
            if r["fault"] == true {
                extra.push("fault injection".to_owned());
            }
            let extra = if extra.is_empty() { String::new() } else { format!("  [{}]", extra.join(", ")) };
            out.push_str(&format!("    {}. {} → {action}{extra}\n", i + 1, cell(&r["match"])));
        }
    }

    let mut rows = Vec::new();
    for c in list(&v["clusters"]) {
        let eps = list(&c["endpoints"]);
        if eps.is_empty() {
            rows.push(vec![cell(&c["name"]), "no endpoint".to_owned(), String::new(), String::new(), String::new()]);
        }
        for e in eps {
            let workload = match (&e["workload"], &e["namespace"]) {
                (Value::String(w), Value::String(ns)) => format!("{w}.{ns}"),
                _ => "-".to_owned(),
            };
            rows.push(vec![
                cell(&c["name"]),
                cell(&e["address"]),
                workload,
                cell(&e["locality"]),
                health(&e["health"]),
            ]);
        }
    }
    out.push_str(&format!("\nEndpoints:\n{}", table(&["CLUSTER", "ADDRESS", "WORKLOAD", "LOCALITY", "HEALTH"], &rows)));

    out.push_str("\nPolicies of its workloads:\n");
    for m in list(&v["mtls"]) {
        out.push_str(&format!("  {}: mutual TLS {}\n", cell(&m["workload"]), cell(&m["mode"])));
    }
    for p in list(&v["authorization"]) {
        out.push_str(&format!(
            "  {}: {} {} ({} rules)\n",
            cell(&p["workload"]),
            cell(&p["policy"]),
            cell(&p["action"]),
            p["rules"]
        ));
    }
    out.push_str(&format!("\nLast minute: {}", signals(&v["signals"])));
    for c in list(&v["callers"]) {
        out.push_str(&format!("  {} → {}: {}", cell(&c["source"]), cell(&c["destination"]), signals(&c)));
    }
    out + &warnings(v)
}

fn workload(v: &Value) -> String {
    let w = &v["workload"];
    let mut out = format!("Workload {}.{} ({})\n", cell(&w["name"]), cell(&w["namespace"]), labels(&w["labels"]));
    let services: Vec<String> = list(&v["services"]).iter().map(cell).collect();
    out.push_str(&format!(
        "  serves: {}\n",
        if services.is_empty() { "no service".to_owned() } else { services.join(", ") }
    ));
    out.push_str(&format!("  mutual TLS: {}\n", cell(&v["mtls"])));
    let scope = match &v["sidecarScope"] {
        Value::Null => "every service it may see".to_owned(),
        r => format!("what {} allows", cell(r)),
    };
    out.push_str(&format!("  reaches: {} services ({scope})\n", v["reaches"]));
    for p in list(&v["authorization"]) {
        out.push_str(&format!(
            "  authorization: {} {} ({} rules)\n",
            cell(&p["policy"]),
            cell(&p["action"]),
            p["rules"]
        ));
    }
    let rows: Vec<Vec<String>> = list(&v["instances"])
        .iter()
        .map(|i| {
            let port = if i["port"].is_null() { labels(&i["ports"]) } else { cell(&i["port"]) };
            vec![cell(&i["address"]), port, cell(&i["locality"]), cell(&i["identity"])]
        })
        .collect();
    out.push_str(&format!("\nInstances:\n{}", table(&["ADDRESS", "PORT", "LOCALITY", "IDENTITY"], &rows)));
    out.push_str("\nProxies:\n");
    let proxies = list(&v["proxies"]);
    if proxies.is_empty() {
        out.push_str("  none connected\n");
    }
    for p in proxies {
        let state = match (&p["lastNack"], p["synced"] == true) {
            (Value::String(n), _) => format!("NACK: {n}"),
            (_, true) => "synced".to_owned(),
            _ => "stale".to_owned(),
        };
        out.push_str(&format!("  {}  {state}\n", cell(&p["id"])));
    }
    let unhealthy: Vec<Value> =
        list(&v["health"]).into_iter().filter(|h| !list(&h["unhealthyIn"]).is_empty()).collect();
    out.push_str(&format!("\nAs its callers see it: {} of its hosts unhealthy somewhere\n", unhealthy.len()));
    for h in unhealthy {
        out.push_str(&format!("  {} in {}: {}\n", cell(&h["address"]), cell(&h["cluster"]), health(&h)));
    }
    out.push_str(&format!("\nLast minute: {}", signals(&v["signals"])));
    out + &warnings(v)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn health_reads_as_who_sees_what() {
        assert_eq!(super::health(&json!({"seenBy": 2, "unhealthyIn": []})), "healthy (2 callers)");
        let h = json!({"seenBy": 3, "unhealthyIn": [{"proxy": "a", "health": "ejected"}]});
        assert_eq!(super::health(&h), "ejected in 1 of 3");
        assert_eq!(super::query("service", "a b", Some("w")), "/debug/describe?service=a%20b&from=w");
    }
}
