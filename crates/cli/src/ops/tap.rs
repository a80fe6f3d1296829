//! `weft tap <proxy>`: the requests a proxy finishes, as they finish
//! (metadata only, never bodies), and `weft top <proxy>`: the busiest
//! paths among them, redrawn each second — `linkerd viz tap` and `top`.
//! Both read a series of one-second taps through the control plane; each
//! tap takes at most `--rate` requests, the rest counted as not shown.

use super::{Target, get, path_segment, proxy_id, table};
use serde_json::Value;
use std::collections::HashMap;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub struct TapArgs {
    /// The proxy (a name as `weft status` shows it, a unique prefix, an address or a node id).
    proxy: String,
    /// Only requests whose path starts with this.
    #[arg(long)]
    path: Option<String>,
    /// Only requests with this method.
    #[arg(long)]
    method: Option<String>,
    /// Only requests to this authority (host).
    #[arg(long)]
    authority: Option<String>,
    /// Stop after this many seconds (default: until interrupted).
    #[arg(long)]
    duration: Option<f64>,
    /// Stop after this many requests (tap only).
    #[arg(long)]
    max: Option<usize>,
    /// At most this many requests a second are shown; more are counted.
    #[arg(long, default_value_t = 100)]
    rate: usize,
    #[command(flatten)]
    target: Target,
}

/// One-second taps until the duration or the count is reached; `each`
/// gets every batch of events.
async fn taps(a: &TapArgs, mut each: impl FnMut(&[Value], u64) -> bool) -> anyhow::Result<()> {
    let api = a.target.api()?;
    let id = proxy_id(&api, &a.proxy).await?;
    let mut query = format!("seconds=1&limit={}", a.rate.clamp(1, 1000));
    for (k, v) in [("path", &a.path), ("method", &a.method), ("authority", &a.authority)] {
        if let Some(v) = v {
            query.push_str(&format!("&{k}={}", path_segment(v)));
        }
    }
    let path = format!("/debug/proxies/{}/tap?{query}", path_segment(&id));
    let until = a.duration.map(|d| Instant::now() + Duration::from_secs_f64(d.max(0.0)));
    eprintln!("tapping {id}");
    while until.is_none_or(|u| Instant::now() < u) {
        let v = get(&api, &path).await?;
        let events = v["events"].as_array().cloned().unwrap_or_default();
        if !each(&events, v["dropped"].as_u64().unwrap_or(0)) {
            break;
        }
    }
    Ok(())
}

fn line(e: &Value) -> String {
    let when = e["unixMs"].as_u64().unwrap_or(0);
    let secs = when / 1000 % 86400;
    format!(
        "{:02}:{:02}:{:02}.{:03} {:<8} {} {}{} → {} {} {:.1}ms  {} → {} {}",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60,
        when % 1000,
        e["direction"].as_str().unwrap_or("-"),
        e["method"].as_str().unwrap_or("-"),
        e["authority"].as_str().unwrap_or(""),
        e["path"].as_str().unwrap_or(""),
        e["status"],
        e["flags"].as_str().unwrap_or("-"),
        e["durationMs"].as_f64().unwrap_or(0.0),
        e["source"].as_str().unwrap_or("-"),
        e["destination"].as_str().unwrap_or("-"),
        e["upstreamHost"].as_str().unwrap_or(""),
    )
}

pub async fn tap(a: TapArgs) -> anyhow::Result<()> {
    let mut shown = 0usize;
    let max = a.max.unwrap_or(usize::MAX);
    let json = a.target.json();
    taps(&a, |events, dropped| {
        for e in events.iter().take(max - shown) {
            if json {
                println!("{e}");
            } else {
                println!("{}", line(e));
            }
            shown += 1;
        }
        if dropped > 0 {
            eprintln!("({dropped} more requests in that second not shown: over --rate)");
        }
        shown < max
    })
    .await
}

/// Requests to one path: count, failures and latencies.
#[derive(Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Path {
    direction: String,
    method: String,
    path: String,
    count: u64,
    failures: u64,
    best_ms: f64,
    worst_ms: f64,
    last_ms: f64,
}

fn add(paths: &mut HashMap<(String, String, String), Path>, e: &Value) {
    let s = |k: &str| e[k].as_str().unwrap_or_default().to_owned();
    let key = (s("direction"), s("method"), format!("{}{}", s("authority"), s("path")));
    let ms = e["durationMs"].as_f64().unwrap_or(0.0);
    let p = paths.entry(key.clone()).or_insert_with(|| Path {
        direction: key.0.clone(),
        method: key.1.clone(),
        path: key.2.clone(),
        best_ms: f64::MAX,
        ..Default::default()
    });
    p.count += 1;
    if e["status"].as_u64().is_none_or(|c| c >= 500) {
        p.failures += 1;
    }
    (p.best_ms, p.worst_ms, p.last_ms) = (p.best_ms.min(ms), p.worst_ms.max(ms), ms);
}

fn busiest(paths: &HashMap<(String, String, String), Path>) -> Vec<&Path> {
    let mut list: Vec<&Path> = paths.values().collect();
    list.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.path.cmp(&b.path)));
    list
}

fn draw(paths: &HashMap<(String, String, String), Path>, elapsed: f64) -> String {
    let rows: Vec<Vec<String>> = busiest(paths)
        .iter()
        .take(20)
        .map(|p| {
            vec![
                p.direction.clone(),
                p.method.clone(),
                p.path.clone(),
                p.count.to_string(),
                format!("{:.1}", p.count as f64 / elapsed.max(1.0)),
                format!("{:.2}%", 100.0 * (p.count - p.failures) as f64 / p.count as f64),
                format!("{:.1}ms", p.best_ms),
                format!("{:.1}ms", p.worst_ms),
                format!("{:.1}ms", p.last_ms),
            ]
        })
        .collect();
    table(&["DIRECTION", "METHOD", "PATH", "COUNT", "RPS", "SUCCESS", "BEST", "WORST", "LAST"], &rows)
}

pub async fn top(a: TapArgs) -> anyhow::Result<()> {
    let mut paths = HashMap::new();
    let started = Instant::now();
    let live = !a.target.json() && std::io::stdout().is_terminal();
    taps(&a, |events, _| {
        for e in events {
            add(&mut paths, e);
        }
        if live {
            // Clear the screen and draw again from its top.
            print!("\x1b[2J\x1b[H{}", draw(&paths, started.elapsed().as_secs_f64()));
        }
        true
    })
    .await?;
    if a.target.json() {
        println!("{}", serde_json::to_string_pretty(&busiest(&paths))?);
    } else if !live {
        print!("{}", draw(&paths, started.elapsed().as_secs_f64()));
    }
    Ok(())
}
