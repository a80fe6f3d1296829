//! The operator's commands (`weft status`, `weft proxy-config`, `weft
//! check`, `weft describe`, `weft stat`, `weft tap`, `weft top`, `weft analyze`, `weft
//! dashboard`). Each talks to a control plane's API, which reaches the proxies;
//! with no flag, to the mesh `weft up` runs on this machine.

pub mod check;
pub mod describe;
pub mod proxy_config;
pub mod stat;
pub mod status;
pub mod tap;

use weft_proxy::mtls::control::ControlApi;

/// Which control plane, and how to answer.
#[derive(clap::Args)]
pub struct Target {
    /// The control plane's API, `host:port`; by default the mesh `weft up`
    /// runs on this machine.
    #[arg(long, env = "WEFT_CONTROL")]
    control: Option<String>,
    /// The control plane's admin token file (its reads need it); by
    /// default the one of the mesh `weft up` runs on this machine.
    #[arg(long, env = "WEFT_ADMIN_TOKEN_FILE")]
    admin_token_file: Option<std::path::PathBuf>,
    /// `table`, or `json` for scripts.
    #[arg(short = 'o', long, default_value = "table", value_parser = ["table", "json"])]
    output: String,
}

impl Target {
    pub fn api(&self) -> anyhow::Result<ControlApi> {
        let (addr, found) = match &self.control {
            Some(c) => (c.clone(), None),
            None => crate::up::current::api()?,
        };
        let token = match self.admin_token_file.as_ref().or(found.as_ref()) {
            Some(f) => Some(
                std::fs::read_to_string(f)
                    .map_err(|e| {
                        anyhow::anyhow!(
                            "cannot read the admin token {}: {e}; run as the user who started the control plane, \
                             or name its token with --admin-token-file",
                            f.display()
                        )
                    })?
                    .trim()
                    .to_owned(),
            ),
            None => None,
        };
        ControlApi::new(addr, None, token)
    }

    pub fn json(&self) -> bool {
        self.output == "json"
    }
}

/// `weft dashboard`: where the control plane serves the live dashboard.
pub async fn dashboard(t: Target) -> anyhow::Result<()> {
    let api = t.api()?;
    get(&api, "/ready").await?;
    // The token rides in the fragment: the browser keeps it, never sends it
    // in a URL, and the page sends it with each read.
    let url = match api.token() {
        Some(t) => format!("http://{}/dashboard#token={t}", api.addr),
        None => format!("http://{}/dashboard", api.addr),
    };
    if t.json() {
        println!("{}", serde_json::json!({"url": url}));
    } else {
        println!("{url}");
    }
    Ok(())
}

/// `weft analyze`: the diagnostics of the config the running mesh is
/// serving (what `weft validate` says of files), and of its latest edit if
/// that was rejected; exit 1 when it was.
pub async fn analyze(t: Target) -> anyhow::Result<std::process::ExitCode> {
    let api = t.api()?;
    let cfg = get(&api, "/debug/config").await?;
    let list = |k: &str| -> Vec<String> {
        cfg[k].as_array().into_iter().flatten().filter_map(|d| d.as_str().map(str::to_owned)).collect()
    };
    let (warnings, rejected) = (list("warnings"), list("rejected"));
    if t.json() {
        let out = serde_json::json!({"version": cfg["version"], "warnings": warnings, "rejected": rejected});
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        for d in rejected.iter().chain(&warnings) {
            println!("{d}\n");
        }
        let edit = if rejected.is_empty() {
            String::new()
        } else {
            format!(
                "; the latest edit was rejected ({} diagnostics) and the last good config keeps serving",
                rejected.len()
            )
        };
        println!("config version {} in force: {} warnings{edit}", cfg["version"], warnings.len());
    }
    Ok(if rejected.is_empty() { std::process::ExitCode::SUCCESS } else { std::process::ExitCode::FAILURE })
}

/// `GET path` on the control plane, as JSON; an error names what failed.
pub async fn get(api: &ControlApi, path: &str) -> anyhow::Result<serde_json::Value> {
    let (status, body) = api
        .call(None, http::Method::GET, path, None)
        .await
        .map_err(|e| anyhow::anyhow!("cannot reach the control plane at {}: {e}", api.addr))?;
    if status != 200 {
        let why = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_owned))
            .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
        anyhow::bail!("the control plane at {} answered {status} to {path}: {why}", api.addr);
    }
    Ok(serde_json::from_slice(&body)?)
}

/// Rows under headers, each column as wide as its widest cell; the last
/// column is not padded.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let last = cells.len().saturating_sub(1);
        let mut s = String::new();
        for (i, (c, w)) in cells.iter().zip(&widths).enumerate() {
            if i == last {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}  "));
            }
        }
        s.trim_end().to_owned() + "\n"
    };
    let mut out = line(headers.to_vec());
    for r in rows {
        out.push_str(&line(r.iter().map(String::as_str).collect()));
    }
    out
}

/// A JSON value as a table cell: a string as it is, `-` for null.
pub fn cell(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => "-".to_owned(),
        other => other.to_string(),
    }
}

/// Milliseconds as the commands show them: `2.4ms`, `37ms`, `-` for none.
pub fn ms(v: &serde_json::Value) -> String {
    v.as_f64().map_or("-".to_owned(), |m| if m < 10.0 { format!("{m:.1}ms") } else { format!("{m:.0}ms") })
}

/// A success rate (0 to 1) as a percentage, `-` for none.
pub fn percent(v: &serde_json::Value) -> String {
    v.as_f64().map_or("-".to_owned(), |r| format!("{:.2}%", r * 100.0))
}

/// A duration in seconds as an operator reads it: `23h59m`, `9d4h`, `42s`.
pub fn human(secs: i64) -> String {
    let (sign, s) = if secs < 0 { ("-", -secs) } else { ("", secs) };
    let body = match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{}s", s / 60, s % 60),
        3600..86400 => format!("{}h{}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{}h", s / 86400, s % 86400 / 3600),
    };
    format!("{sign}{body}")
}

/// The node id `wanted` names among those connected (its id, name or
/// address; else a prefix of its name), or why none or several do.
fn resolve(wanted: &str, ids: &[&str]) -> anyhow::Result<String> {
    let address = |id: &str| id.split('~').nth(1).unwrap_or_default().to_owned();
    let mut found: Vec<&str> =
        ids.iter().copied().filter(|id| *id == wanted || proxy_name(id) == wanted || address(id) == wanted).collect();
    if found.is_empty() {
        found = ids.iter().copied().filter(|id| proxy_name(id).starts_with(wanted)).collect();
    }
    let described = |ids: &[&str]| -> String {
        ids.iter().map(|id| format!("{} at {}", proxy_name(id), address(id))).collect::<Vec<_>>().join(", ")
    };
    match found[..] {
        [one] => Ok(one.to_owned()),
        [] => anyhow::bail!("no proxy `{wanted}` is connected; the proxies are: {}", described(ids)),
        _ => anyhow::bail!(
            "`{wanted}` names {} proxies ({}); give more of the name, or the address of one",
            found.len(),
            described(&found)
        ),
    }
}

/// The node id of the proxy `wanted` names, asked of the control plane.
pub async fn proxy_id(api: &ControlApi, wanted: &str) -> anyhow::Result<String> {
    let proxies = get(api, "/debug/proxies").await?;
    let ids: Vec<&str> = proxies.as_array().into_iter().flatten().filter_map(|p| p["id"].as_str()).collect();
    resolve(wanted, &ids)
}

/// A node id as one segment of an API path.
pub fn path_segment(id: &str) -> String {
    percent_encoding::utf8_percent_encode(id, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// Istio's node ids are `kind~address~name.namespace`: the name part, or
/// the whole id of another client.
pub fn proxy_name(id: &str) -> &str {
    match id.split('~').collect::<Vec<_>>()[..] {
        [_, _, name] => name,
        _ => id,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_and_durations_read_as_people_write_them() {
        let t = table(&["NAME", "STATE"], &[vec!["a".into(), "ok".into()], vec!["longer".into(), "x".into()]]);
        assert_eq!(t, "NAME    STATE\na       ok\nlonger  x\n");
        assert_eq!(human(42), "42s");
        assert_eq!(human(3 * 3600 + 120), "3h2m");
        assert_eq!(human(9 * 86400 + 3600), "9d1h");
        assert_eq!(human(-90), "-1m30s");
        assert_eq!(proxy_name("sidecar~127.1.0.2~reviews-v1.default"), "reviews-v1.default");
        assert_eq!(proxy_name("envoy-client"), "envoy-client");
    }
}
