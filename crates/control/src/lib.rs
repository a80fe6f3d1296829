//! weft's control plane: config sources, the registry of instances,
//! translation to Envoy v3 resources and the ADS server that serves them.
//!
//! ```text
//! folder (watch) ──▶ load + validate ──▶ Hub (config + registry) ──▶ Snapshot
//! registration API ──────────────────────▲                            │ per proxy
//!                                                          translate ─▶ ADS stream
//! ```

pub mod ads;
pub mod api;
pub mod auth;
pub mod ca;
pub mod ca_reload;
pub mod ca_rotate;
pub mod dashboard;
pub mod describe;
pub mod health_view;
pub mod hub;
pub mod jwks;
pub mod limits;
pub mod reach;
pub mod registry;
pub mod sds;
pub mod source;
pub mod stats;
pub mod traces;
pub mod translate;

use hub::Hub;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::net::TcpListener;

pub struct ControlOptions {
    pub config_dir: PathBuf,
    /// ADS (gRPC, plain): 15010 by Istio's convention. Loopback only unless
    /// `insecure_plaintext_xds`: it serves anyone who reaches it the whole
    /// mesh's config. Proxies elsewhere take xDS on the TLS port.
    pub xds_addr: SocketAddr,
    pub insecure_plaintext_xds: bool,
    /// HTTP API: 15014.
    pub api_addr: SocketAddr,
    /// The API over TLS (Istio's 15012 is its CA port).
    pub api_tls_addr: SocketAddr,
    /// Where the CA's root and key and the admin token are kept; a new
    /// private directory when `None` (a new root each start).
    pub ca_dir: Option<PathBuf>,
    /// Workload certificates' lifetime.
    pub workload_ttl: std::time::Duration,
    /// The trace store's OTLP/gRPC port (`traces`; port 0: any free one).
    pub trace_store_addr: SocketAddr,
    pub limits: limits::Limits,
}

/// A running control plane's bound addresses and credentials.
pub struct Control {
    pub hub: Arc<Hub>,
    pub xds_addr: SocketAddr,
    pub api_addr: SocketAddr,
    pub api_tls_addr: SocketAddr,
    pub trace_store_addr: SocketAddr,
    pub auth: Arc<auth::Auth>,
    pub ca: Arc<ca::Ca>,
    pub ca_dir: PathBuf,
}

/// A new directory only this user can enter, for a CA kept nowhere else.
fn private_dir() -> anyhow::Result<PathBuf> {
    use ring::rand::SecureRandom;
    use std::os::unix::fs::DirBuilderExt;
    let mut b = [0u8; 8];
    ring::rand::SystemRandom::new().fill(&mut b).map_err(|_| anyhow::anyhow!("no randomness"))?;
    let name: String = b.iter().map(|x| format!("{x:02x}")).collect();
    let dir = std::env::temp_dir().join(format!("weft-ca-{name}"));
    std::fs::DirBuilder::new().mode(0o700).create(&dir)?;
    Ok(dir)
}

/// Binds the listeners and starts serving; returns once bound. The initial
/// config must validate, or this fails with its diagnostics.
pub async fn start(opts: ControlOptions) -> anyhow::Result<Control> {
    // Bound first: the snapshots tell proxies where it is.
    let otlp = TcpListener::bind(opts.trace_store_addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot bind the trace store's address {}: {e}", opts.trace_store_addr))?;
    let trace_store_addr = otlp.local_addr()?;
    let hub = Arc::new(Hub::new(opts.limits.clone()).with_trace_store(trace_store_addr));
    let mut folder = source::Folder::new(opts.config_dir.clone(), opts.limits.config.clone());
    if !folder.apply(&hub) {
        let diags = hub.rejected().join("\n");
        anyhow::bail!("the config in {} has errors:\n{diags}", opts.config_dir.display());
    }
    // The credentials exist before any port answers: a client that sees
    // the API up can read the admin token.
    let ca_dir = match opts.ca_dir {
        Some(d) => {
            std::fs::create_dir_all(&d)
                .map_err(|e| anyhow::anyhow!("cannot make the CA directory {}: {e}", d.display()))?;
            d
        }
        None => private_dir()?,
    };
    let ca = Arc::new(ca::Ca::open(&ca_dir, ca::TRUST_DOMAIN, opts.workload_ttl)?);
    let auth = Arc::new(auth::Auth::open(&ca_dir)?);
    if !opts.xds_addr.ip().is_loopback() && !opts.insecure_plaintext_xds {
        anyhow::bail!(
            "plaintext xDS on {} would serve the whole mesh's config to anyone who reaches it: keep --xds-addr on              loopback and point proxies on other hosts at the TLS port (`weft proxy --xds https://<--api-tls-addr>`),              or pass --insecure-plaintext-xds to serve it anyway",
            opts.xds_addr
        );
    }
    let xds = TcpListener::bind(opts.xds_addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot bind xDS address {}: {e}", opts.xds_addr))?;
    let api = TcpListener::bind(opts.api_addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot bind API address {}: {e}", opts.api_addr))?;
    let api_tls = TcpListener::bind(opts.api_tls_addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot bind the API's TLS address {}: {e}", opts.api_tls_addr))?;
    let (xds_addr, api_addr, api_tls_addr) = (xds.local_addr()?, api.local_addr()?, api_tls.local_addr()?);

    let ca_now = Arc::new(arc_swap::ArcSwap::new(ca.clone()));
    let server = ads::Ads::server(hub.clone(), ca_now.clone());
    let xds_server = server.clone();
    tokio::spawn(async move {
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(xds);
        if let Err(e) = tonic::transport::Server::builder().add_service(server).serve_with_incoming(incoming).await {
            tracing::error!(error = %e, "xDS server stopped");
        }
    });
    let stats = Arc::new(stats::Stats::default());
    tokio::spawn(stats::run(hub.clone(), stats.clone(), opts.limits.stats_every));
    let traces = Arc::new(traces::Traces::default());
    tokio::spawn(traces::serve(otlp, traces.clone()));
    let served = Arc::new(api::Api {
        hub: hub.clone(),
        ca: ca_now,
        tls: arc_swap::ArcSwap::new(api::tls::server_config(&ca, api_tls_addr.ip())?),
        auth: auth.clone(),
        stats,
        traces,
        xds: xds_server,
    });
    tokio::spawn(api::tls::serve(served.clone(), api_tls));
    tokio::spawn(ca_reload::run(served.clone(), ca_dir.clone(), api_tls_addr.ip()));
    tokio::spawn(async move {
        loop {
            let Ok((sock, _)) = api.accept().await else { continue };
            let served = served.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| api::handle(served.clone(), None, req));
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(sock), svc)
                    .await;
            });
        }
    });
    tokio::spawn(hub::run_expiry(hub.clone()));
    tokio::spawn(hub::run_publisher(hub.clone()));
    tokio::spawn(jwks::run(hub.clone()));
    let watch_hub = hub.clone();
    tokio::spawn(async move {
        if let Err(e) = source::watch(folder, watch_hub).await {
            tracing::error!(error = %e, "cannot watch the config folder; edits will not be applied");
        }
    });
    tracing::info!(%xds_addr, %api_addr, %api_tls_addr, admin_token = %auth.admin_path().display(), "control plane ready");
    Ok(Control { hub, xds_addr, api_addr, api_tls_addr, trace_store_addr, auth, ca, ca_dir })
}
