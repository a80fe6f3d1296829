//! `weft stat [service|workload|edge]`: the golden signals over a window
//! (success rate, requests per second, p50/p95/p99 latency, TCP
//! connections opened), from the
//! counts the control plane reads from every proxy — `linkerd viz stat`,
//! with nothing to install.

use super::{Target, get, ms, percent, table};

#[derive(clap::Args)]
pub struct StatArgs {
    /// Rows per `service`, per serving `workload`, or per `edge` (caller →
    /// service) of the service graph.
    #[arg(default_value = "service", value_parser = ["service", "workload", "edge"])]
    by: String,
    /// How far back: `30s`, `5m` or seconds (at most 15m).
    #[arg(long, default_value = "1m", value_parser = window)]
    window: f64,
    #[command(flatten)]
    target: Target,
}

fn window(s: &str) -> Result<f64, String> {
    let (n, unit) = match s.strip_suffix('m') {
        Some(n) => (n, 60.0),
        None => (s.strip_suffix('s').unwrap_or(s), 1.0),
    };
    match n.parse::<f64>() {
        Ok(v) if v > 0.0 && v * unit <= 900.0 => Ok(v * unit),
        _ => Err(format!("`{s}`: a window such as 30s or 5m, at most 15m")),
    }
}

pub async fn run(a: StatArgs) -> anyhow::Result<()> {
    let api = a.target.api()?;
    let v = get(&api, &format!("/debug/stats?by={}&window={}", a.by, a.window)).await?;
    if a.target.json() {
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    let rows: Vec<Vec<String>> = v["rows"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            vec![
                r["name"].as_str().unwrap_or_default().to_owned(),
                percent(&r["successRate"]),
                format!("{:.1}", r["rps"].as_f64().unwrap_or(0.0)),
                ms(&r["p50Ms"]),
                ms(&r["p95Ms"]),
                ms(&r["p99Ms"]),
                r["requests"].to_string(),
                r["tcpConnections"].as_u64().unwrap_or(0).to_string(),
            ]
        })
        .collect();
    let covered = v["coveredSeconds"].as_f64().unwrap_or(0.0);
    if v["intervalSeconds"].as_f64() == Some(0.0) {
        anyhow::bail!("the control plane at {} does not read proxies' counts (--stats-interval 0)", api.addr);
    }
    println!("over the last {covered:.0}s (proxies read every {}s)\n", v["intervalSeconds"]);
    if rows.is_empty() {
        println!("no requests seen yet; counts arrive at the next read");
        return Ok(());
    }
    let name = match a.by.as_str() {
        "edge" => "EDGE",
        "workload" => "WORKLOAD",
        _ => "SERVICE",
    };
    print!("{}", table(&[name, "SUCCESS", "RPS", "P50", "P95", "P99", "REQUESTS", "TCP CONNS"], &rows));
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn windows_read_in_seconds_or_minutes() {
        assert_eq!(super::window("30s"), Ok(30.0));
        assert_eq!(super::window("5m"), Ok(300.0));
        assert_eq!(super::window("90"), Ok(90.0));
        assert!(super::window("16m").is_err() && super::window("0").is_err() && super::window("x").is_err());
    }
}
