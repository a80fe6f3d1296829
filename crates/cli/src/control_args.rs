//! The control plane's limits and tunables as flags, shared by `weft
//! control` and `weft up`.

use std::time::Duration;
use weft_api::load::LoadLimits;
use weft_control::limits::Limits;

#[derive(clap::Args, Clone, Debug)]
pub struct LimitArgs {
    /// Largest control API request body, in bytes.
    #[arg(long, default_value_t = Limits::default().max_request_bytes)]
    max_request_bytes: usize,
    /// Most instances registered at run time across the mesh.
    #[arg(long, default_value_t = Limits::default().max_instances)]
    max_instances: usize,
    /// Longest registration TTL, in seconds: an instance that died stays
    /// an endpoint for up to this long.
    #[arg(long, default_value_t = Limits::default().max_ttl.as_secs())]
    max_ttl: u64,
    /// Seconds after a start during which proxies that already have config
    /// (the control plane restarted) keep it while instances register
    /// again; about one registration TTL.
    #[arg(long, default_value_t = Limits::default().warmup.as_secs())]
    warmup: u64,
    /// Largest config folder, in bytes (all files together).
    #[arg(long, default_value_t = LoadLimits::default().max_bytes)]
    max_config_bytes: u64,
    /// A DNS name the control API answers to, besides IP addresses and
    /// localhost (repeatable); other names are refused so that a web page
    /// cannot rebind its own name to the API.
    #[arg(long = "api-host")]
    api_hosts: Vec<String>,
    /// Most resources (YAML documents) in the config folder.
    #[arg(long, default_value_t = LoadLimits::default().max_documents)]
    max_config_documents: usize,
    /// Seconds between reads of every proxy's request counts, for `weft
    /// stat`'s golden signals; 0 turns the reads off.
    #[arg(long, default_value_t = Limits::default().stats_every.as_secs_f64())]
    stats_interval: f64,
    /// Where the trace store takes spans over OTLP/gRPC (the `weft`
    /// tracing provider, the default); port 0 takes any free port.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub trace_store_addr: std::net::SocketAddr,
}

impl LimitArgs {
    pub fn limits(&self) -> Limits {
        Limits {
            max_request_bytes: self.max_request_bytes,
            max_instances: self.max_instances,
            max_ttl: Duration::from_secs(self.max_ttl.max(1)),
            warmup: Duration::from_secs(self.warmup),
            api_hosts: self.api_hosts.clone(),
            stats_every: Duration::from_secs_f64(self.stats_interval.clamp(0.0, 3600.0)),
            config: LoadLimits {
                max_bytes: self.max_config_bytes,
                max_documents: self.max_config_documents,
                ..LoadLimits::default()
            },
            ..Limits::default()
        }
    }
}
