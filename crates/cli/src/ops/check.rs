//! `weft check`: is the running mesh healthy? The control plane answers,
//! its config is in force with no rejected edit, every proxy has the latest
//! config and refused none, the CA's certificates are not near expiry and
//! every proxy's certificate renews. Exit 1 when anything fails.

use super::{Target, get, human, proxy_name};
use serde_json::Value;

#[derive(clap::Args)]
pub struct CheckArgs {
    /// Warn when the mesh root or the signing certificate expires within
    /// this many days.
    #[arg(long, default_value_t = 30)]
    warn_days: i64,
    #[command(flatten)]
    target: Target,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
enum Level {
    Ok,
    Warn,
    Fail,
}

#[derive(serde::Serialize)]
struct Finding {
    level: Level,
    check: &'static str,
    detail: String,
}

fn finding(level: Level, check: &'static str, detail: impl Into<String>) -> Finding {
    Finding { level, check, detail: detail.into() }
}

fn config(cfg: &Value) -> Vec<Finding> {
    let rejected: Vec<&str> = cfg["rejected"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    let warnings: Vec<&str> = cfg["warnings"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    let mut out = Vec::new();
    if !rejected.is_empty() {
        out.push(finding(
            Level::Fail,
            "config",
            format!(
                "the latest edit was rejected ({} diagnostics; the last good config keeps serving): {}",
                rejected.len(),
                rejected[0]
            ),
        ));
    }
    for w in &warnings {
        out.push(finding(Level::Warn, "config", *w));
    }
    if out.is_empty() {
        out.push(finding(Level::Ok, "config", format!("version {} in force, no warnings", cfg["version"])));
    }
    out
}

fn proxies(list: &Value, latest: u64) -> Vec<Finding> {
    let all: Vec<&Value> = list.as_array().into_iter().flatten().collect();
    let mut out = Vec::new();
    for p in &all {
        let name = proxy_name(p["id"].as_str().unwrap_or_default());
        if let Some(nack) = p["last_nack"].as_str() {
            out.push(finding(Level::Fail, "proxies", format!("{name} refused the config (NACK): {nack}")));
        } else if p["synced"].as_u64().unwrap_or(0) < latest {
            out.push(finding(
                Level::Warn,
                "proxies",
                format!("{name} is stale: it has version {} of {latest}", p["synced"]),
            ));
        }
    }
    if all.is_empty() {
        out.push(finding(Level::Warn, "proxies", "no proxy is connected"));
    } else if out.is_empty() {
        out.push(finding(Level::Ok, "proxies", format!("{} proxies synced at version {latest}", all.len())));
    }
    out
}

fn ca(ca: &Value, warn_days: i64) -> Vec<Finding> {
    let mut out = Vec::new();
    for (key, what) in [("root", "the mesh root"), ("signer", "the signing certificate")] {
        if key == "signer" && ca["intermediate"] != true {
            continue;
        }
        let c = &ca[key];
        let Some(left) = c["expiresInSeconds"].as_i64() else {
            out.push(finding(Level::Fail, "certificates", format!("{what}: {}", c["error"])));
            continue;
        };
        let subject = c["subject"].as_str().unwrap_or_default();
        let level = match left {
            ..=0 => Level::Fail,
            l if l < warn_days * 86400 => Level::Warn,
            _ => Level::Ok,
        };
        let when =
            if left <= 0 { format!("expired {} ago", human(-left)) } else { format!("expires in {}", human(left)) };
        out.push(finding(level, "certificates", format!("{what} ({subject}) {when}")));
    }
    out
}

fn workload_certs(proxies: &Value, ttl: i64) -> Vec<Finding> {
    let mut out = Vec::new();
    let (mut good, mut nearest) = (0, i64::MAX);
    for p in proxies.as_array().into_iter().flatten() {
        let name = proxy_name(p["id"].as_str().unwrap_or_default());
        if let Some(e) = p["error"].as_str() {
            out.push(finding(Level::Warn, "certificates", format!("cannot ask {name} for its certificate: {e}")));
            continue;
        }
        let m = &p["mtls"];
        if m.is_null() {
            continue; // a plaintext proxy
        }
        let left = m["expiresInSeconds"].as_i64();
        if let Some(e) = m["lastRenewalError"].as_str() {
            let state = left.map_or("has none".to_owned(), |l| format!("holds one that expires in {}", human(l)));
            out.push(finding(
                Level::Fail,
                "certificates",
                format!("{name} cannot renew its certificate ({state}): {e}"),
            ));
        } else if let Some(l) = left {
            // Proxies renew at half the lifetime: a quarter left means renewal is late.
            if l < ttl / 4 {
                out.push(finding(
                    Level::Warn,
                    "certificates",
                    format!("{name}'s certificate expires in {} and was not renewed", human(l)),
                ));
            } else {
                good += 1;
                nearest = nearest.min(l);
            }
        }
    }
    if good > 0 {
        out.push(finding(
            Level::Ok,
            "certificates",
            format!("{good} workload certificates current, the nearest expiry in {}", human(nearest)),
        ));
    }
    out
}

/// A root rotation under way (`weft ca rotate`): the CA trusts two roots,
/// and which proxies have not yet taken its current step.
fn rotation(ca: &Value, proxies: &Value) -> Vec<Finding> {
    let roots = ca["roots"].as_u64().unwrap_or(1);
    let signer = ca["signerId"].as_str();
    let mut behind = Vec::new();
    for p in proxies.as_array().into_iter().flatten() {
        let m = &p["mtls"];
        if m.is_null() || !p["error"].is_null() {
            continue;
        }
        let name = proxy_name(p["id"].as_str().unwrap_or_default());
        if m["roots"].as_u64().is_some_and(|n| n != roots) {
            behind.push(format!("{name} trusts {} roots", m["roots"]));
        } else if signer.is_some_and(|s| m["signer"].as_str().is_some_and(|own| own != s)) {
            behind.push(format!("{name} holds a certificate of the old signer"));
        }
    }
    let mut out = Vec::new();
    if !behind.is_empty() {
        let detail =
            format!("{} of the CA's step (its bundle holds {roots} roots): {}", behind.len(), behind.join("; "));
        out.push(finding(Level::Warn, "rotation", format!("proxies behind {detail}; wait before the next step")));
    } else if roots > 1 {
        out.push(finding(
            Level::Ok,
            "rotation",
            "a root rotation is under way; every proxy has taken its current step",
        ));
    }
    out
}

pub async fn run(a: CheckArgs) -> anyhow::Result<std::process::ExitCode> {
    let api = a.target.api()?;
    let mut findings = Vec::new();
    match get(&api, "/debug/config").await {
        Err(e) => findings.push(finding(Level::Fail, "control plane", format!("{e:#}"))),
        Ok(cfg) => {
            let latest = cfg["version"].as_u64().unwrap_or(0);
            findings.push(finding(
                Level::Ok,
                "control plane",
                format!("{} answers at config version {latest}", api.addr),
            ));
            findings.extend(config(&cfg));
            findings.extend(proxies(&get(&api, "/debug/proxies").await?, latest));
            let certs = get(&api, "/debug/certs").await?;
            findings.extend(ca(&certs["ca"], a.warn_days));
            findings.extend(rotation(&certs["ca"], &certs["proxies"]));
            findings
                .extend(workload_certs(&certs["proxies"], certs["ca"]["workloadTtlSeconds"].as_i64().unwrap_or(86400)));
        }
    }
    let failed = findings.iter().filter(|f| f.level == Level::Fail).count();
    let warned = findings.iter().filter(|f| f.level == Level::Warn).count();
    if a.target.json() {
        let out =
            serde_json::json!({"control": api.addr, "failures": failed, "warnings": warned, "findings": findings});
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        for f in &findings {
            let level = match f.level {
                Level::Ok => "ok",
                Level::Warn => "warn",
                Level::Fail => "FAIL",
            };
            println!("{level:<5} {:<14} {}", f.check, f.detail);
        }
        println!("\n{failed} failures, {warned} warnings");
    }
    Ok(if failed > 0 { std::process::ExitCode::FAILURE } else { std::process::ExitCode::SUCCESS })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_rotation_names_the_proxies_behind_its_step() {
        let ca = json!({"roots": 2, "signerId": "new"});
        let p = |id: &str, roots: u64, signer: &str| json!({"id": id, "mtls": {"roots": roots, "signer": signer}});
        let all = json!([p("sidecar~127.0.0.1~a.default", 2, "new"), p("sidecar~127.0.0.1~b.default", 2, "new")]);
        let ok = rotation(&ca, &all);
        assert_eq!((ok.len(), ok[0].level), (1, Level::Ok));
        let lagging = json!([p("sidecar~127.0.0.1~a.default", 1, "new"), p("sidecar~127.0.0.1~b.default", 2, "old")]);
        let w = rotation(&ca, &lagging);
        assert_eq!(w[0].level, Level::Warn);
        assert!(
            w[0].detail.contains("a.default trusts 1 roots") && w[0].detail.contains("b.default holds"),
            "{}",
            w[0].detail
        );
        assert!(
            rotation(&json!({"roots": 1, "signerId": "new"}), &json!([p("sidecar~127.0.0.1~a.default", 1, "new")]))
                .is_empty()
        );
    }

    #[test]
    fn findings_fail_on_nacks_and_expiry_and_warn_ahead_of_them() {
        let p = proxies(
            &json!([{"id": "sidecar~1~a.default", "synced": 3}, {"id": "sidecar~1~b.default", "synced": 2}, {"id": "c", "synced": 3, "last_nack": "bad"}]),
            3,
        );
        let levels: Vec<_> = p.iter().map(|f| f.level).collect();
        assert_eq!(levels, [Level::Warn, Level::Fail], "{:?}", p.iter().map(|f| &f.detail).collect::<Vec<_>>());
        assert!(p[0].detail.contains("b.default is stale"));
        assert_eq!(proxies(&json!([]), 1)[0].level, Level::Warn);

        let root = |secs: i64| json!({"root": {"subject": "CN=r", "expiresInSeconds": secs}, "intermediate": false});
        assert_eq!(ca(&root(400 * 86400), 30)[0].level, Level::Ok);
        assert_eq!(ca(&root(10 * 86400), 30)[0].level, Level::Warn);
        let expired = &ca(&root(-3600), 30)[0];
        assert_eq!(expired.level, Level::Fail);
        assert!(expired.detail.contains("expired 1h0m ago"), "{}", expired.detail);

        let w = workload_certs(
            &json!([{"id": "x~1~a.d", "mtls": {"expiresInSeconds": 80000}}, {"id": "x~1~b.d", "mtls": {"lastRenewalError": "401 unauthorized"}}, {"id": "x~1~c.d", "mtls": null}]),
            86400,
        );
        assert_eq!(w.iter().map(|f| f.level).collect::<Vec<_>>(), [Level::Fail, Level::Ok]);
        assert!(w[0].detail.contains("b.d cannot renew") && w[0].detail.contains("401"), "{}", w[0].detail);
    }
}
