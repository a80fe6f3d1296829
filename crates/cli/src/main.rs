//! `weft`: one binary for every role. This file only parses arguments and
//! wires the crates together; the logic lives in weft-api, weft-control,
//! weft-proxy and weft-demo.

// rustls' types nest deep enough that proving the proxy's futures `Send`
// outgrows the default limit of 128 (as in weft-proxy).
#![recursion_limit = "256"]

mod alloc;
mod authz_check;
mod ca_cmds;
mod control_args;
mod ops;
mod proxy_args;
mod up;
mod validate;

use clap::{Parser, Subcommand};

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "weft", version, about = "A service mesh: control plane, sidecar, gateway and CLI in one binary")]
struct Cli {
    /// Worker threads (default: one per core). `--concurrency 1` runs a
    /// proxy on one thread, as Envoy's option of the same name does.
    #[arg(long, global = true, env = "WEFT_CONCURRENCY")]
    concurrency: Option<usize>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the whole mesh on this machine from a folder of YAML.
    Up(up::UpArgs),
    /// Check config files; print every problem with file:line:col and exit 1 on errors.
    Validate {
        /// Files or folders (folders are searched for *.yaml, *.yml, *.json).
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Run the control plane: watch a folder, serve xDS and the registration API.
    Control {
        #[arg(long)]
        config: PathBuf,
        /// Plaintext xDS, for loopback clients (an Envoy beside it); weft's
        /// proxies elsewhere take xDS on the TLS port (`--xds https://...`).
        #[arg(long, default_value = "127.0.0.1:15010")]
        xds_addr: SocketAddr,
        /// Serve plaintext xDS on a routable --xds-addr: anyone who reaches
        /// it reads the whole mesh's config.
        #[arg(long)]
        insecure_plaintext_xds: bool,
        #[arg(long, default_value = "127.0.0.1:15014")]
        api_addr: SocketAddr,
        #[command(flatten)]
        ca: ca_cmds::CaArgs,
        #[command(flatten)]
        limits: control_args::LimitArgs,
    },
    /// Run a sidecar proxy for one workload instance.
    Proxy(proxy_args::ProxyArgs),
    /// Run an ingress/egress gateway serving the Gateways that select its labels.
    Gateway(proxy_args::GatewayArgs),
    /// Run the demo workload (examples, tests, benchmarks).
    Demo(DemoArgs),
    /// Get a workload certificate from the mesh CA for a process that is not
    /// a weft proxy (an Envoy, a VM's service): writes cert.pem, key.pem and
    /// root.pem. The key is made here; only its CSR is sent, with a
    /// bootstrap token for the identity (or the admin token).
    Cert(ca_cmds::CertArgs),
    /// The mesh CA: `weft ca rotate` rotates its root in three steps.
    Ca {
        #[command(subcommand)]
        cmd: CaCmd,
    },
    /// Bootstrap tokens: `weft token create` makes one for one identity,
    /// which a proxy outside `weft up` exchanges for its certificate.
    Token {
        #[command(subcommand)]
        cmd: TokenCmd,
    },
    /// Every proxy connected to the control plane and whether it has the
    /// latest config (synced), an older one (stale) or refused it (NACK).
    Status(ops::status::StatusArgs),
    /// What one proxy really runs: its listeners, routes, clusters,
    /// endpoints and certificate, asked from the proxy itself.
    ProxyConfig(ops::proxy_config::ProxyConfigArgs),
    /// Is the running mesh healthy? Control plane, config, proxies' sync and
    /// NACKs, certificate expiry and renewal (exit 1 on a failure).
    Check(ops::check::CheckArgs),
    /// The diagnostics of the config the running mesh serves (and of a
    /// rejected edit: exit 1), as `weft validate` gives them for files.
    Analyze(ops::Target),
    /// One service or workload: the VirtualServices, DestinationRule,
    /// subsets, policies and endpoints that apply, their health, and where
    /// a request to it goes.
    Describe(ops::describe::DescribeArgs),
    /// Golden signals per service, workload or edge over a window: success
    /// rate, requests per second, p50/p95/p99 latency.
    Stat(ops::stat::StatArgs),
    /// The live dashboard's address (service graph, golden signals,
    /// proxies, upstream health, config), served by the control plane.
    Dashboard(ops::Target),
    /// The requests a proxy finishes, live: method, authority, path,
    /// status, flags, latency, caller and destination (never bodies).
    Tap(ops::tap::TapArgs),
    /// A proxy's busiest paths, live: count, rate, success, latency.
    Top(ops::tap::TapArgs),
    /// Authorization: `weft authz check` explains the decision on one request.
    Authz {
        #[command(subcommand)]
        cmd: AuthzCmd,
    },
}

#[derive(Subcommand)]
enum AuthzCmd {
    /// The decision the folder's AuthorizationPolicies make on one request
    /// to one workload, and the policy and rule that made it (exit 1 if denied).
    Check(authz_check::CheckArgs),
}

#[derive(Subcommand)]
enum CaCmd {
    /// One step of a root rotation on the CA directory: `trust` (a new root
    /// beside the old), `sign` (the new one signs), `retire` (the old goes).
    /// A running control plane takes each within seconds; let every proxy
    /// take it before the next (`weft status`).
    Rotate {
        /// The control plane's CA directory (`weft control --ca-dir`).
        #[arg(long)]
        ca_dir: PathBuf,
        /// trust, sign or retire.
        step: weft_control::ca_rotate::Step,
    },
}

#[derive(Subcommand)]
enum TokenCmd {
    /// Make a bootstrap token (needs the admin token); printed on stdout.
    Create(ca_cmds::TokenArgs),
}

#[derive(clap::Args)]
struct DemoArgs {
    #[arg(long, env = "WEFT_DEMO_NAME", default_value = "demo")]
    name: String,
    #[arg(long, env = "WEFT_DEMO_VERSION", default_value = "v1")]
    version: String,
    #[arg(long, env = "PORT", default_value_t = 8080)]
    port: u16,
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Services to call on `GET /` through the sidecar, comma separated (`reviews:9080,details:9080`).
    #[arg(long, env = "WEFT_DEMO_CALLS", value_delimiter = ',')]
    calls: Vec<String>,
    /// The sidecar's outbound address; defaults to $HTTP_PROXY.
    #[arg(long, env = "WEFT_OUTBOUND")]
    proxy: Option<String>,
    /// Answer this percentage of requests with --fail-status.
    #[arg(long, default_value_t = 0.0)]
    fail_percent: f64,
    #[arg(long)]
    fail_status: Option<u16>,
    #[arg(long, default_value_t = 0)]
    delay_ms: u64,
    /// Serve TCP instead of HTTP: each line comes back prefixed with who answered.
    #[arg(long)]
    tcp: bool,
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("WEFT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false).init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Cmd::Validate { paths } = &cli.cmd {
        return validate::run(paths);
    }
    if let Cmd::Authz { cmd: AuthzCmd::Check(a) } = cli.cmd {
        return match authz_check::run(a) {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::FAILURE,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::from(2)
            }
        };
    }
    weft_proxy::xds::set_memory_release(alloc::purge);
    init_tracing();
    let rt = match cli.concurrency {
        // One thread: no work stealing, no cross-thread wakeups.
        Some(1) => tokio::runtime::Builder::new_current_thread().enable_all().build(),
        Some(n) => tokio::runtime::Builder::new_multi_thread().worker_threads(n.max(1)).enable_all().build(),
        None => tokio::runtime::Builder::new_multi_thread().enable_all().build(),
    }
    .expect("tokio runtime");
    let result = rt.block_on(async move {
        let done = match cli.cmd {
            Cmd::Check(a) => return ops::check::run(a).await,
            Cmd::Analyze(t) => return ops::analyze(t).await,
            Cmd::Up(a) => up::run(a).await,
            Cmd::Control { config, xds_addr, insecure_plaintext_xds, api_addr, ca, limits } => {
                let trace_store_addr = limits.trace_store_addr;
                let limits = limits.limits();
                let control = weft_control::start(weft_control::ControlOptions {
                    config_dir: config,
                    xds_addr,
                    insecure_plaintext_xds,
                    api_addr,
                    api_tls_addr: ca.api_tls_addr,
                    ca_dir: ca.ca_dir,
                    workload_ttl: ca.workload_cert_ttl,
                    trace_store_addr,
                    limits,
                })
                .await?;
                eprintln!(
                    "weft control: xDS {}, API {} (TLS {}), trace store OTLP {}, CA in {} (admin token: {})",
                    control.xds_addr,
                    control.api_addr,
                    control.api_tls_addr,
                    control.trace_store_addr,
                    control.ca_dir.display(),
                    control.auth.admin_path().display()
                );
                weft_proxy::stop_signal().await?;
                Ok(())
            }
            Cmd::Proxy(a) => weft_proxy::run(a.into_options()?).await,
            Cmd::Gateway(a) => weft_proxy::run(a.into_options()?).await,
            Cmd::Demo(a) => {
                let proxy = a
                    .proxy
                    .or_else(|| std::env::var("HTTP_PROXY").ok())
                    .map(|p| p.trim_start_matches("http://").trim_end_matches('/').to_owned());
                let addr = format!("{}:{}", a.host, a.port).parse()?;
                let behavior = weft_demo::Behavior {
                    fail_percent: a.fail_percent,
                    fail_status: a.fail_status,
                    delay_ms: a.delay_ms,
                    health_fail: false,
                };
                let opts =
                    weft_demo::DemoOptions { name: a.name, version: a.version, addr, calls: a.calls, proxy, behavior };
                if a.tcp { weft_demo::run_tcp(opts).await } else { weft_demo::run(opts).await }
            }
            Cmd::Cert(a) => ca_cmds::cert(a).await,
            Cmd::Ca { cmd: CaCmd::Rotate { ca_dir, step } } => {
                println!("{}", weft_control::ca_rotate::rotate(&ca_dir, step)?);
                Ok(())
            }
            Cmd::Status(a) => ops::status::run(a).await,
            Cmd::ProxyConfig(a) => ops::proxy_config::run(a).await,
            Cmd::Stat(a) => ops::stat::run(a).await,
            Cmd::Describe(a) => ops::describe::run(a).await,
            Cmd::Dashboard(t) => ops::dashboard(t).await,
            Cmd::Tap(a) => ops::tap::tap(a).await,
            Cmd::Top(a) => ops::tap::top(a).await,
            Cmd::Token { cmd: TokenCmd::Create(a) } => ca_cmds::token(a).await,
            Cmd::Validate { .. } | Cmd::Authz { .. } => unreachable!("handled above"),
        };
        done.map(|()| ExitCode::SUCCESS)
    });
    // A stop signal ends the command; work still running on the blocking
    // pool (a large config's translation) must not hold the exit up.
    rt.shutdown_timeout(std::time::Duration::from_millis(500));
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
