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
pub mod ca;
pub mod health_view;
pub mod hub;
pub mod limits;
pub mod registry;
pub mod source;
pub mod translate;

use hub::Hub;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::net::TcpListener;

pub struct ControlOptions {
    pub config_dir: PathBuf,
    /// ADS (gRPC, plain): 15010 by Istio's convention.
    pub xds_addr: SocketAddr,
    /// HTTP API: 15014.
    pub api_addr: SocketAddr,
    pub limits: limits::Limits,
}

/// A running control plane's bound addresses.
pub struct Control {
    pub hub: Arc<Hub>,
    pub xds_addr: SocketAddr,
    pub api_addr: SocketAddr,
}

/// Binds the listeners and starts serving; returns once bound. The initial
/// config must validate, or this fails with its diagnostics.
pub async fn start(opts: ControlOptions) -> anyhow::Result<Control> {
    let hub = Arc::new(Hub::new(opts.limits.clone()));
    let mut folder = source::Folder::new(opts.config_dir.clone(), opts.limits.config.clone());
    if !folder.apply(&hub) {
        let diags = hub.rejected().join("\n");
        anyhow::bail!("the config in {} has errors:\n{diags}", opts.config_dir.display());
    }
    let xds = TcpListener::bind(opts.xds_addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot bind xDS address {}: {e}", opts.xds_addr))?;
    let api = TcpListener::bind(opts.api_addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot bind API address {}: {e}", opts.api_addr))?;
    let (xds_addr, api_addr) = (xds.local_addr()?, api.local_addr()?);

    let server = ads::Ads::server(hub.clone());
    tokio::spawn(async move {
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(xds);
        if let Err(e) = tonic::transport::Server::builder().add_service(server).serve_with_incoming(incoming).await {
            tracing::error!(error = %e, "xDS server stopped");
        }
    });
    let api_hub = hub.clone();
    let ca = Arc::new(ca::Ca::new(ca::TRUST_DOMAIN, ca::WORKLOAD_TTL)?);
    tokio::spawn(async move {
        loop {
            let Ok((sock, _)) = api.accept().await else { continue };
            let (hub, ca) = (api_hub.clone(), ca.clone());
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| api::handle(hub.clone(), ca.clone(), req));
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(sock), svc)
                    .await;
            });
        }
    });
    tokio::spawn(hub::run_expiry(hub.clone()));
    tokio::spawn(hub::run_publisher(hub.clone()));
    let watch_hub = hub.clone();
    tokio::spawn(async move {
        if let Err(e) = source::watch(folder, watch_hub).await {
            tracing::error!(error = %e, "cannot watch the config folder; edits will not be applied");
        }
    });
    tracing::info!(%xds_addr, %api_addr, "control plane ready");
    Ok(Control { hub, xds_addr, api_addr })
}
