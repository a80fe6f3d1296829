//! weft's data plane: a sidecar or gateway proxy driven over xDS.
//!
//! ```text
//! xds (ADS client) ─▶ snapshot (config + upstream) ─▶ ArcSwap<Snapshot> ◀─ request path (lock-free read)
//!                                              └──▶ listener manager (bind/unbind)
//! accept ─▶ http::handle ─▶ route table ─▶ forward: balancer pick ─▶ pooled upstream ─▶ telemetry
//! ```
//!
//! The rooms and the one-way order of their imports: ARCHITECTURE.md.

// rustls' types nest deep enough that proving the admin server's future
// `Send` outgrows the default limit of 128.
#![recursion_limit = "256"]

pub mod admin;
#[cfg(test)]
mod assertions;
pub mod config;
pub mod conn;
pub mod http;
pub mod listener;
pub mod mtls;
pub mod names;
pub mod node;
pub mod register;
pub mod rng;
pub mod snapshot;
pub mod state;
pub mod telemetry;
pub mod upstream;
pub mod xds;

pub use state::{NodeInfo, ProxyState};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

pub struct ProxyOptions {
    /// Control plane xDS address, `host:port`.
    pub xds: String,
    pub node: NodeInfo,
    pub admin_addr: Option<SocketAddr>,
    pub metrics_addr: Option<SocketAddr>,
    pub health_addr: Option<SocketAddr>,
    pub register: Option<register::Registration>,
    /// The mesh CA (the control plane's API) and this proxy's SPIFFE ID:
    /// with them, the proxy speaks mutual TLS with the mesh (`mtls`).
    pub ca: Option<(Arc<mtls::control::ControlApi>, String)>,
    /// How long in-flight requests may take to finish once draining starts.
    pub drain: Duration,
    /// Downstream connections' idle and request-head timeouts (`idle`);
    /// `None` turns one off.
    pub timeouts: listener::idle::Timeouts,
    /// Label sets the request metrics may hold (`telemetry`).
    pub max_metric_series: usize,
}

/// Resolves on the first SIGINT (Ctrl-C) or SIGTERM (systemd, Kubernetes,
/// a supervisor's stop), naming it: every long-running weft command stops
/// on either, cleanly.
pub async fn stop_signal() -> std::io::Result<&'static str> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.map(|()| "SIGINT"),
        _ = term.recv() => Ok("SIGTERM"),
    }
}

/// Runs the proxy until SIGINT, SIGTERM or `POST /quitquitquit`, then drains.
pub async fn run(opts: ProxyOptions) -> anyhow::Result<()> {
    let state = ProxyState::new(opts.node.clone(), opts.timeouts);
    state.metrics.set_max_series(opts.max_metric_series);
    // Span exporters find their collector in the config of the moment.
    let weak = Arc::downgrade(&state);
    let resolver = Arc::new(move |cluster: &str| {
        let state = weak.upgrade()?;
        let cfg = state.config.load();
        let set = cfg.clusters.get(cluster)?.endpoints();
        set.endpoints.first().map(|e| e.addr)
    });
    state.hosts.spans.start(resolver, &state.node);
    let (quit_tx, mut quit_rx) = tokio::sync::mpsc::channel(1);
    for addr in [opts.admin_addr, opts.metrics_addr, opts.health_addr].into_iter().flatten() {
        let bound = admin::serve(addr, state.clone(), quit_tx.clone()).await?;
        tracing::info!(%bound, "admin endpoint");
    }
    tokio::spawn(xds::run(opts.xds.clone(), state.clone()));
    let listeners = tokio::spawn(listener::run(state.clone()));
    let janitor = state.clone();
    tokio::spawn(async move { janitor.hosts.pools.sweep_every(Duration::from_secs(5), janitor.drained()).await });
    let reg_id = Arc::new(parking_lot::Mutex::new(None));
    if let Some((api, identity)) = opts.ca.clone() {
        state.wants_cert.store(true, std::sync::atomic::Ordering::Relaxed);
        tokio::spawn(mtls::ca_client::run(state.clone(), api, identity));
    }
    let registration = opts.register.clone().map(|r| tokio::spawn(register::run(state.clone(), r, reg_id.clone())));

    tokio::select! {
        signal = stop_signal() => tracing::info!("{}: draining", signal?),
        _ = quit_rx.recv() => tracing::info!("quitquitquit: draining"),
    }
    // Leave the registry first so new traffic goes elsewhere (no heartbeat
    // may register again meanwhile), then stop accepting and drain.
    if let Some(task) = registration {
        task.abort();
    }
    let id = reg_id.lock().clone();
    if let (Some(r), Some(id)) = (&opts.register, id) {
        register::deregister(&state, &r.api, &id).await;
    }
    state.draining.send_replace(true);
    let _ = listeners.await;
    let deadline = Instant::now() + opts.drain;
    // Upgraded connections and TCP splices get the same time as requests,
    // as in Envoy's drain: a short WebSocket session ends on its own.
    let busy = || state.metrics.active_requests.get() + state.metrics.active_tunnels.get() > 0;
    while busy() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}
