//! A control plane started for a test: on free ports (started again on
//! others when one was taken), ready once its own pid answers `/ready`.

use super::{Proc, free_port, spawn, try_request};
use bytes::Bytes;
use std::path::Path;
use std::time::{Duration, Instant};

/// A control plane on free ports, watching `dir`, its CA kept in a
/// directory of its own (`ca_dir`).
pub struct Control {
    pub proc: Proc,
    pub xds: String,
    pub api: String,
    /// The API's TLS port.
    pub api_tls: String,
    /// The admin token's file: the tests' proxies and `weft cert` prove
    /// their identities with it (`--token-file`).
    pub admin_token: String,
    pub ca_dir: tempfile::TempDir,
    args: Vec<String>,
}

impl Control {
    /// The xDS port (plaintext), for a bootstrap.
    pub fn xds_port(&self) -> u16 {
        port_of(&self.xds)
    }

    /// The API's TLS port, which serves xDS to proven proxies too.
    pub fn tls_port(&self) -> u16 {
        port_of(&self.api_tls)
    }

    pub async fn start(dir: &Path) -> Control {
        Control::start_with(dir, &[]).await
    }

    /// Ports come from `free_port`, which another test may take first: a
    /// control plane that cannot bind exits, and it starts again on others.
    pub async fn start_with(dir: &Path, extra: &[&str]) -> Control {
        Control::start_with_ca(dir, tempfile::tempdir().unwrap(), extra).await
    }

    /// With `ca_dir` as its CA directory (an operator's `cacerts` in it, or
    /// nothing for a root made at start).
    pub async fn start_with_ca(dir: &Path, ca_dir: tempfile::TempDir, extra: &[&str]) -> Control {
        let ca = ca_dir.path().to_str().unwrap().to_owned();
        for _ in 0..5 {
            let (xds, api) = (format!("127.0.0.1:{}", free_port()), format!("127.0.0.1:{}", free_port()));
            let api_tls = format!("127.0.0.1:{}", free_port());
            let mut args: Vec<String> = [
                "control",
                "--config",
                dir.to_str().unwrap(),
                "--xds-addr",
                &xds,
                "--api-addr",
                &api,
                "--api-tls-addr",
                &api_tls,
                "--ca-dir",
                &ca,
            ]
            .map(String::from)
            .to_vec();
            args.extend(extra.iter().map(|s| s.to_string()));
            let Some(proc) = Control::spawn_ready(&args, &api).await else { continue };
            let admin_token = ca_dir.path().join("admin-token").to_str().unwrap().to_owned();
            return Control { proc, xds, api, api_tls, admin_token, ca_dir, args };
        }
        panic!("the control plane exited before it was ready five times (see its errors above)");
    }

    /// `Authorization` for the admin: what may register any instance.
    pub fn admin(&self) -> String {
        format!("Bearer {}", std::fs::read_to_string(&self.admin_token).unwrap().trim())
    }

    /// A proxy's flags for a certificate from this CA, proven by the admin token.
    pub fn ca_args(&self) -> [&str; 4] {
        ["--ca", &self.api, "--token-file", &self.admin_token]
    }

    /// The control plane once its own API (the pid says whose) answers
    /// ready; `None` when it exited first (a port already taken).
    async fn spawn_ready(args: &[String], api: &str) -> Option<Proc> {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut proc = spawn(&args);
        let pid = proc.0.id();
        let start = Instant::now();
        loop {
            if proc.0.try_wait().unwrap().is_some() {
                return None;
            }
            let ready = try_request(api, "GET", "/ready", &[], Bytes::new()).await;
            if ready.is_ok_and(|r| {
                r.status == 200 && serde_json::from_slice::<serde_json::Value>(&r.body).is_ok_and(|j| j["pid"] == pid)
            }) {
                return Some(proc);
            }
            // A guard against a hang, not a speed check: a debug build loads a
            // 20,000-service config slowly on a busy machine.
            assert!(start.elapsed() < Duration::from_secs(90), "timed out after 90s waiting for the control plane API");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGKILL: the control plane dies with no goodbye.
    pub fn kill(&mut self) {
        let _ = self.proc.0.kill();
        let _ = self.proc.0.wait();
    }

    /// Starts it again on the same addresses (after `kill`).
    pub async fn restart(&mut self) {
        self.proc = Control::spawn_ready(&self.args, &self.api).await.expect("the control plane exited on restart");
    }
}

fn port_of(addr: &str) -> u16 {
    addr.rsplit(':').next().and_then(|p| p.parse().ok()).unwrap_or_else(|| panic!("no port in {addr}"))
}
