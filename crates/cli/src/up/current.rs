//! The mesh `weft up` runs on this machine, for the commands that talk to
//! it (`weft status`) as kubectl finds its current context: a file in the
//! user's runtime directory naming the control plane's API, written once
//! the mesh is ready and removed when `weft up` stops. The last `weft up`
//! started is the current one.

use std::path::PathBuf;

/// `$XDG_RUNTIME_DIR/weft/up.json`, else `/tmp/weft-<uid>/up.json`.
pub fn path() -> PathBuf {
    let dir = std::env::var_os("XDG_RUNTIME_DIR")
        .map(|d| PathBuf::from(d).join("weft"))
        .unwrap_or_else(|| std::env::temp_dir().join(format!("weft-{}", nix::unistd::getuid())));
    dir.join("up.json")
}

/// Records this `weft up` as the current mesh: its API and where its
/// admin token is (the commands' reads need it).
pub fn write(api: &str, admin_token: &std::path::Path) -> anyhow::Result<()> {
    let p = path();
    if let Some(dir) = p.parent() {
        std::fs::create_dir_all(dir)?;
        std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
    }
    let body = serde_json::json!({"api": api, "pid": std::process::id(), "adminToken": admin_token});
    let tmp = p.with_extension("tmp");
    std::fs::write(&tmp, serde_json::to_vec(&body)?)?;
    std::fs::rename(&tmp, &p)?;
    Ok(())
}

/// Removes the record if it is this process's (a later `weft up` may have
/// taken it over).
pub fn remove() {
    let p = path();
    let ours = read_file(&p).is_some_and(|(_, pid, _)| pid == std::process::id());
    if ours {
        let _ = std::fs::remove_file(p);
    }
}

fn read_file(p: &std::path::Path) -> Option<(String, u32, Option<PathBuf>)> {
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(p).ok()?).ok()?;
    let token = v["adminToken"].as_str().map(PathBuf::from);
    Some((v["api"].as_str()?.to_owned(), u32::try_from(v["pid"].as_u64()?).ok()?, token))
}

/// The API of the mesh `weft up` runs here and its admin token's file, or
/// why there is none.
pub fn api() -> anyhow::Result<(String, Option<PathBuf>)> {
    let p = path();
    let Some((api, pid, token)) = read_file(&p) else {
        anyhow::bail!(
            "no mesh found: `weft up` is not running on this machine ({} is absent); start one, or name a control \
             plane with --control HOST:PORT (or WEFT_CONTROL)",
            p.display()
        );
    };
    if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
        anyhow::bail!(
            "no mesh found: the `weft up` that wrote {} (pid {pid}) is gone; start one, or name a control plane with \
             --control HOST:PORT",
            p.display()
        );
    }
    Ok((api, token))
}
