//! One replica of a `Workload`: its sidecar and its application, started
//! on ports of their own and stopped without losing a request.

use super::labels_arg;
use super::process::{Ports, Proc, spawn};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;
use weft_api::types::WorkloadSpec;

pub struct Replica {
    /// (namespace, workload name).
    pub workload: (String, String),
    /// Its index among the workload's replicas.
    pub index: u32,
    pub name: String,
    /// The sidecar's own loopback address (its listeners bind there).
    pub ip: String,
    pub app_port: u16,
    pub inbound: u16,
    pub outbound: u16,
    pub admin: u16,
    pub app: Proc,
    pub sidecar: Proc,
}

pub async fn http_ok(port: u16, path: &str) -> bool {
    let Ok(api) = weft_proxy::mtls::control::ControlApi::new(format!("127.0.0.1:{port}"), None, None) else {
        return false;
    };
    matches!(api.call(None, weft_proxy::register::Method::GET, path, None).await, Ok((200, _)))
}

pub async fn tcp_ok(port: u16) -> bool {
    tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok()
}

impl Replica {
    /// Its sidecar is ready and its app accepts connections.
    pub async fn ready(&self) -> bool {
        http_ok(self.admin, "/ready").await && tcp_ok(self.app_port).await
    }

    /// Takes the replica out of service without losing a request: the
    /// sidecar deregisters, finishes what is in flight and exits (callers
    /// move on as the control plane pushes the endpoint's removal); only
    /// then does the app stop.
    pub async fn retire(&mut self, grace: Duration) {
        self.sidecar.stop(grace).await;
        self.app.stop(grace).await;
    }
}

/// What starting a replica needs.
pub struct Launcher {
    pub ports: Ports,
    pub exe: PathBuf,
    pub xds: String,
    /// `WEFT_LOG` for the children.
    pub log: String,
    /// Proxies a rollout stopped waiting for (`rollout::wait_in_service`).
    pub stalled: std::collections::BTreeSet<String>,
    /// Each sidecar's token and the CA's TLS address.
    pub creds: std::sync::Arc<super::creds::Creds>,
}

impl Launcher {
    /// Replica `i` of `n` of workload `ns/name`: its sidecar, then its app.
    pub fn start(&mut self, name: &str, ns: &str, w: &WorkloadSpec, i: u32, n: u32) -> anyhow::Result<Replica> {
        let (ports, exe, xds, log) = (&mut self.ports, self.exe.as_path(), &self.xds, &self.log);
        let app_port = if n == 1 { ports.prefer(w.port)? } else { ports.free()? };
        let ip = ports.next_ip();
        let (inbound, outbound, admin) = (ports.free()?, ports.free()?, ports.free()?);
        let rname = if n == 1 { name.to_owned() } else { format!("{name}-{i}") };
        let mut args: Vec<String> = vec![
            "proxy".into(),
            "--xds".into(),
            xds.into(),
            "--workload".into(),
            name.into(),
            "--namespace".into(),
            ns.into(),
            "--listen-ip".into(),
            ip.clone(),
        ];
        args.extend([
            "--labels".into(),
            labels_arg(&w.labels),
            "--inbound-port".into(),
            inbound.to_string(),
            "--outbound-port".into(),
            outbound.to_string(),
        ]);
        args.extend([
            "--app-port".into(),
            app_port.to_string(),
            "--admin-port".into(),
            admin.to_string(),
            "--metrics-port".into(),
            "0".into(),
            "--health-port".into(),
            "0".into(),
        ]);
        // Registration and the CA at the TLS port: the token, then the certificate, prove who asks.
        let sa = w.service_account.as_deref().unwrap_or("default");
        args.extend(["--register".into(), self.creds.api_tls.clone()]);
        args.extend(self.creds.proxy_args(&rname, ns, sa)?);
        if let Some(sa) = &w.service_account {
            args.extend(["--service-account".into(), sa.clone()]);
        }
        if let Some(l) = &w.locality {
            args.extend(["--locality".into(), l.clone()]);
        }
        if let Some(wt) = w.weight {
            args.extend(["--weight".into(), wt.to_string()]);
        }
        let sidecar =
            spawn(&format!("{rname} sidecar"), exe, &args, &BTreeMap::from([("WEFT_LOG".to_owned(), log.to_owned())]))?;

        let outbound_addr = format!("{ip}:{outbound}");
        let mut env: BTreeMap<String, String> = w.env.clone();
        env.insert("WEFT_OUTBOUND_IP".into(), ip.clone());
        env.insert("PORT".into(), app_port.to_string());
        env.insert("HTTP_PROXY".into(), format!("http://{outbound_addr}"));
        env.insert("http_proxy".into(), format!("http://{outbound_addr}"));
        env.insert("WEFT_OUTBOUND".into(), outbound_addr);
        // The demo's names from the labels, unless the workload's `env` sets them.
        env.entry("WEFT_DEMO_NAME".into())
            .or_insert_with(|| w.labels.get("app").cloned().unwrap_or_else(|| name.to_owned()));
        env.entry("WEFT_DEMO_VERSION".into())
            .or_insert_with(|| w.labels.get("version").cloned().unwrap_or_else(|| "v1".into()));
        env.entry("WEFT_LOG".into()).or_insert_with(|| log.to_owned());
        let words: Vec<String> = w.command.iter().map(|c| c.replace("${PORT}", &app_port.to_string())).collect();
        let (program, rest) =
            words.split_first().ok_or_else(|| anyhow::anyhow!("workload {name} has an empty command"))?;
        let program = if program == "weft" { exe.to_path_buf() } else { PathBuf::from(program) };
        let app = spawn(&rname, &program, rest, &env)?;
        Ok(Replica {
            workload: (ns.to_owned(), name.to_owned()),
            index: i,
            name: rname,
            ip,
            app_port,
            inbound,
            outbound,
            admin,
            app,
            sidecar,
        })
    }
}
