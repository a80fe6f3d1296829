//! Arguments of `weft proxy` and `weft gateway`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;
use weft_proxy::mtls::control::ControlApi;
use weft_proxy::register::Registration;

/// The control plane's API at `addr`: over TLS checked against the root in
/// `ca_root` when given, with the token in `token_file` when given.
pub fn control_api(
    addr: String,
    ca_root: Option<&std::path::Path>,
    token_file: Option<&std::path::Path>,
) -> anyhow::Result<std::sync::Arc<ControlApi>> {
    let read = |p: &std::path::Path, what: &str| {
        std::fs::read_to_string(p).map_err(|e| anyhow::anyhow!("cannot read the {what} {}: {e}", p.display()))
    };
    let root = ca_root.map(|p| read(p, "mesh root")).transpose()?;
    let token = token_file.map(|p| read(p, "token file")).transpose()?.map(|t| t.trim().to_owned());
    Ok(std::sync::Arc::new(ControlApi::new(addr, root.as_deref(), token)?))
}
use weft_proxy::{NodeInfo, ProxyOptions};

fn parse_labels(s: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    s.iter()
        .filter(|l| !l.is_empty())
        .map(|l| {
            l.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .ok_or_else(|| anyhow::anyhow!("label {l:?} is not key=value"))
        })
        .collect()
}

fn addr(ip: &str, port: u16) -> anyhow::Result<Option<SocketAddr>> {
    if port == 0 {
        return Ok(None);
    }
    Ok(Some(format!("{ip}:{port}").parse()?))
}

#[derive(clap::Args)]
pub struct Common {
    /// Control plane xDS address: `host:port` (plaintext, loopback), or
    /// `https://host:port`, its TLS port, where the proxy shows its
    /// workload certificate (needs --ca).
    #[arg(long, default_value = "127.0.0.1:15010")]
    xds: String,
    #[arg(long, default_value = "default")]
    namespace: String,
    /// Labels as key=value, comma separated.
    #[arg(long, value_delimiter = ',')]
    labels: Vec<String>,
    /// Address the proxy's listeners bind to (a sidecar's inbound one; its
    /// outbound ones too when it is loopback).
    #[arg(long, default_value = "127.0.0.1")]
    listen_ip: String,
    /// Address a sidecar's outbound listeners bind to: its app's side only.
    /// Defaults to the listen IP when that is loopback, else 127.0.0.1, so a
    /// sidecar with a routable address is not an open proxy.
    #[arg(long)]
    outbound_ip: Option<String>,
    /// Admin port (/ready, /config_dump, /clusters); 0 disables.
    #[arg(long, default_value_t = 15000)]
    admin_port: u16,
    /// Prometheus metrics port (/stats/prometheus); 0 disables.
    #[arg(long, default_value_t = 15090)]
    metrics_port: u16,
    /// Health port (/healthz/ready); 0 disables.
    #[arg(long, default_value_t = 15021)]
    health_port: u16,
    /// Seconds in-flight requests get to finish on shutdown.
    #[arg(long, default_value_t = 5)]
    drain_seconds: u64,
    /// Seconds a downstream connection may sit with no request in flight
    /// and no bytes moving before it is closed (Envoy's default); 0 keeps
    /// such connections open.
    #[arg(long, env = "WEFT_IDLE_TIMEOUT_SECONDS", default_value_t = 3600)]
    idle_timeout_seconds: u64,
    /// Seconds an HTTP/1.1 request's head may take to arrive, from its
    /// first byte (nginx's default; a client sending a byte at a time is
    /// never idle); 0 allows any time.
    #[arg(long, env = "WEFT_REQUEST_HEAD_TIMEOUT_SECONDS", default_value_t = 60)]
    request_head_timeout_seconds: u64,
    /// Where this proxy runs, `region/zone/subzone`: callers prefer
    /// endpoints near it (locality load balancing), and a sidecar registers
    /// its instance there.
    #[arg(long)]
    locality: Option<String>,
    /// The mesh CA (the control plane API, `host:port`): the proxy gets a
    /// workload certificate for its SPIFFE identity there and speaks mutual
    /// TLS with the mesh's other proxies. Without it, traffic is plaintext.
    #[arg(long)]
    ca: Option<String>,
    /// The mesh root (PEM): the control plane's API is then spoken over TLS
    /// (its TLS port, `weft control --api-tls-addr`) and its certificate
    /// checked against this root.
    #[arg(long)]
    ca_root: Option<std::path::PathBuf>,
    /// A file holding this proxy's bootstrap token (`weft token create`),
    /// which proves its identity to the CA until it holds a certificate.
    #[arg(long)]
    token_file: Option<std::path::PathBuf>,
    /// Label sets the request metrics may hold; requests past it are
    /// counted under `overflow` labels (`weft_metric_series_overflow_total`).
    #[arg(long, default_value_t = weft_proxy::telemetry::DEFAULT_MAX_SERIES)]
    max_metric_series: usize,
}

#[derive(clap::Args)]
pub struct ProxyArgs {
    #[command(flatten)]
    common: Common,
    /// Workload name (telemetry, registration).
    #[arg(long)]
    workload: String,
    #[arg(long, default_value_t = 15001)]
    outbound_port: u16,
    #[arg(long, default_value_t = 15006)]
    inbound_port: u16,
    /// The local application's port; without it there is no inbound listener.
    #[arg(long)]
    app_port: Option<u16>,
    /// Register this instance with the control plane API (`host:port`) once ready.
    #[arg(long)]
    register: Option<String>,
    #[arg(long, default_value_t = 10)]
    register_ttl: u64,
    #[arg(long)]
    service_account: Option<String>,
    #[arg(long)]
    weight: Option<u32>,
}

#[derive(clap::Args)]
pub struct GatewayArgs {
    #[command(flatten)]
    common: Common,
    /// Name in telemetry.
    #[arg(long, default_value = "ingressgateway")]
    workload: String,
    /// Added to every Gateway server port, so port 80 can be served
    /// unprivileged as 80 + offset (e.g. 8080 with 8000).
    #[arg(long, default_value_t = 0)]
    port_offset: u16,
}

impl Common {
    /// The control plane's API at `addr`, with this proxy's credentials.
    fn control_api(&self, addr: String) -> anyhow::Result<std::sync::Arc<ControlApi>> {
        control_api(addr, self.ca_root.as_deref(), self.token_file.as_deref())
    }

    /// `service_account` names the proxy's SPIFFE identity, in its namespace.
    fn options(
        self,
        mut node: NodeInfo,
        register: Option<Registration>,
        service_account: &str,
    ) -> anyhow::Result<ProxyOptions> {
        let ip = "127.0.0.1";
        let admin_addr = addr(ip, self.admin_port)?;
        node.admin = admin_addr.map(|a| a.to_string());
        if self.xds.starts_with("https://") && self.ca.is_none() {
            anyhow::bail!(
                "--xds {} is the control plane's TLS port: the proxy shows its workload certificate there, so it needs --ca (and --token-file)",
                self.xds
            );
        }
        let ca = match self.ca.clone() {
            Some(api) => Some((self.control_api(api)?, weft_proxy::mtls::spiffe_id(&self.namespace, service_account))),
            None => None,
        };
        node.identity = ca.as_ref().map(|(_, id)| id.clone());
        Ok(ProxyOptions {
            xds: self.xds,
            node,
            admin_addr,
            metrics_addr: addr(ip, self.metrics_port)?,
            health_addr: addr(ip, self.health_port)?,
            register,
            ca,
            drain: Duration::from_secs(self.drain_seconds),
            timeouts: weft_proxy::listener::idle::Timeouts {
                idle: Some(Duration::from_secs(self.idle_timeout_seconds)).filter(|d| !d.is_zero()),
                head: Some(Duration::from_secs(self.request_head_timeout_seconds)).filter(|d| !d.is_zero()),
            },
            max_metric_series: self.max_metric_series,
        })
    }
}

impl ProxyArgs {
    pub fn into_options(self) -> anyhow::Result<ProxyOptions> {
        let c = &self.common;
        let node = NodeInfo {
            id: format!("sidecar~{}~{}.{}", c.listen_ip, self.workload, c.namespace),
            role: "sidecar".into(),
            namespace: c.namespace.clone(),
            workload: self.workload.clone(),
            labels: parse_labels(&c.labels)?,
            listen_ip: c.listen_ip.clone(),
            outbound_ip: c.outbound_ip.clone(),
            outbound_port: self.outbound_port,
            inbound_port: self.inbound_port,
            app_port: self.app_port,
            port_offset: 0,
            locality: c.locality.clone(),
            admin: None,    // set from --admin-port
            identity: None, // set with its CA
        };
        // Kubernetes' default service account when none is named.
        let sa = self.service_account.clone().unwrap_or_else(|| "default".into());
        let register = match self.register {
            Some(api) => Some(self.common.control_api(api)?),
            None => None,
        };
        let register = register.map(|api| Registration {
            api,
            address: c.listen_ip.clone(),
            port: self.inbound_port,
            ttl: Duration::from_secs(self.register_ttl),
            service_account: self.service_account,
            locality: self.common.locality.clone(),
            weight: self.weight,
        });
        self.common.options(node, register, &sa)
    }
}

impl GatewayArgs {
    pub fn into_options(self) -> anyhow::Result<ProxyOptions> {
        let c = &self.common;
        let node = NodeInfo {
            id: format!("router~{}~{}.{}", c.listen_ip, self.workload, c.namespace),
            role: "gateway".into(),
            namespace: c.namespace.clone(),
            workload: self.workload.clone(),
            labels: parse_labels(&c.labels)?,
            listen_ip: c.listen_ip.clone(),
            outbound_ip: None,
            outbound_port: 0,
            inbound_port: 0,
            app_port: None,
            port_offset: self.port_offset,
            locality: c.locality.clone(),
            admin: None,    // set from --admin-port
            identity: None, // set with its CA
        };
        // Istio names a gateway's account after it (`istio-ingressgateway-service-account`).
        let sa = format!("{}-service-account", self.workload);
        self.common.options(node, None, &sa)
    }
}
