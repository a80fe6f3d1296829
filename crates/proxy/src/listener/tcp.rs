//! A TCP listener's connections: the filter chain (by TLS server name when
//! the listener routes by it), an endpoint of its cluster (by weight when
//! split), tried up to three, and the bytes spliced both ways until either
//! side closes or the connection idles out.

use super::idle::Idle;
use super::replay::Replay;
use crate::config::access_log::Entry;
use crate::config::listener::{ListenerCfg, ListenerKind};
use crate::conn::ConnCtx;
use crate::telemetry::UNKNOWN;
use crate::telemetry::peer::CLUSTER;
use crate::telemetry::tcp::TcpLabels;
use crate::upstream::endpoint::Endpoint;
use crate::upstream::health::Observation;
use crate::upstream::watch;
use bytes::BytesMut;
use std::sync::Arc;
use std::task::Poll;
use tokio::net::TcpStream;

pub async fn tcp_proxy(ctx: Arc<ConnCtx>, mut down: TcpStream) {
    let cfg = ctx.state.config.load_full();
    let Some(l) = cfg.listeners.iter().find(|l| l.name == ctx.listener) else { return };
    let ListenerKind::Tcp(routes) = &l.kind else { return };
    // Routed by TLS server name: the ClientHello is read, then replayed
    // upstream, or to the TLS a gateway's chain ends first.
    let by_sni = routes.by_sni() || routes.ends_tls();
    let (sni, first) = if by_sni { super::sni::read(&mut down).await } else { (None, BytesMut::new()) };
    let io = Replay::new(first, down);
    match routes.opts(sni.as_deref()).and_then(|o| o.terminate.as_ref()) {
        Some(term) => {
            let Some((tls, ctx, _)) = super::tls::terminate(&ctx, term, io).await else { return };
            serve(&ctx, &cfg, l, tls, sni.as_deref()).await;
        }
        None => serve(&ctx, &cfg, l, io, sni.as_deref()).await,
    }
}

/// Judges a connection by the listener's RBAC filters, then splices it to
/// its filter chain's target (by `sni`), then logs it.
pub(super) async fn serve<D>(
    ctx: &ConnCtx,
    cfg: &crate::snapshot::Snapshot,
    l: &ListenerCfg,
    mut down: D,
    sni: Option<&str>,
) where
    D: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let ListenerKind::Tcp(routes) = &l.kind else { return };
    #[allow(clippy::disallowed_types)] // wall time for the log, not timing logic
    let start = (std::time::SystemTime::now(), std::time::Instant::now());
    let mut done = Spliced {
        flags: "-",
        upstream: None,
        cluster: None,
        failed_cluster: None,
        bytes: (0, 0),
        inbound: routes.inbound.is_some(),
    };
    let denied = !routes.authz.is_empty() && !crate::http::authz::admit_connection(ctx, l, &routes.authz);
    match routes.pick(sni) {
        _ if denied => {
            tracing::debug!(peer = %ctx.peer, listener = %l.name, "an AuthorizationPolicy denies this connection; closing");
        }
        Some(target) => connect(ctx, cfg, (target, routes.opts(sni).and_then(|o| o.idle)), &mut down, &mut done).await,
        None => {
            tracing::debug!(peer = %ctx.peer, sni = ?sni, "no filter chain takes this connection; closing");
            done.flags = "NR";
        }
    }
    if done.flags != "-" {
        // Refused before any byte moved; counted as Istio does, with its flags.
        let labels = labels(ctx, done.failed_cluster.as_ref().map(|c| &c.settings), None, done.flags, done.inbound);
        ctx.state.metrics.tcp.opened(&labels).closed((0, 0));
    }
    if let Some(logs) = &routes.access_log {
        logs.log(&Entry {
            start: start.0,
            duration: start.1.elapsed(),
            protocol: None,
            code: 0,
            details: denied.then_some("rbac_access_denied"),
            flags: done.flags,
            bytes_received: done.bytes.0,
            bytes_sent: done.bytes.1,
            request: None,
            response: None,
            upstream_host: done.upstream,
            upstream_cluster: done.cluster.as_deref(),
            downstream_local: l.addr,
            downstream_remote: ctx.peer,
            server_name: sni,
            route_name: None,
            peer_identity: ctx.mtls_peer.as_ref().and_then(|p| p.identity.as_deref()),
            trace_id: None,
        });
    }
}

/// What became of a TCP connection, for its access log.
struct Spliced {
    /// Envoy's response flags: `UH` no endpoint, `UF` none connected, `NR`
    /// no filter chain, `NC` no such cluster.
    flags: &'static str,
    upstream: Option<std::net::SocketAddr>,
    cluster: Option<Arc<str>>,
    /// Its cluster, for the metrics of a connection that failed.
    failed_cluster: Option<Arc<crate::upstream::cluster::Cluster>>,
    /// From the client, to the client.
    bytes: (u64, u64),
    /// On a sidecar's inbound listener: counted by the destination.
    inbound: bool,
}

async fn connect<D>(
    ctx: &ConnCtx,
    cfg: &crate::snapshot::Snapshot,
    (target, idle): (&crate::config::route::Target, Option<std::time::Duration>),
    down: &mut D,
    done: &mut Spliced,
) where
    D: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let cluster = match cfg.clusters.pick(target) {
        Ok(p) => p.cluster,
        Err(name) => {
            tracing::warn!(cluster = %name, "tcp listener's cluster is unknown; closing");
            done.flags = "NC";
            return;
        }
    };
    done.cluster = Some(cluster.name().clone());
    let mut tried = Vec::new();
    let set = cluster.endpoints();
    done.flags = if set.endpoints.is_empty() { "UH" } else { "UF" };
    for _ in 0..set.endpoints.len().min(3) {
        let Some(i) = set.pick(None, &tried, false) else { break };
        tried.push(i);
        let ep = &set.endpoints[i];
        done.upstream = Some(ep.addr);
        let keepalive = cluster.settings.conn_policy.keepalive.as_ref();
        let Ok(mut up) = ep.pool.connect_tcp(cluster.settings.connect_timeout, keepalive).await else {
            watch::report(cluster, ep.health.as_ref(), Observation::LocalFailure(503));
            continue;
        };
        watch::report(cluster, ep.health.as_ref(), Observation::Status(200));
        done.flags = "-";
        let _guard = ep.start();
        let _tunnel = crate::telemetry::Held::new(&ctx.state.metrics.active_tunnels);
        // The labels are not kept across the splice: their series is.
        let opened = ctx.state.metrics.tcp.opened(&labels(ctx, Some(&cluster.settings), Some(ep), "-", done.inbound));
        done.bytes = splice(ctx, down, &mut up, idle).await;
        opened.closed(done.bytes);
        return;
    }
    done.failed_cluster = Some(cluster.clone());
}

/// A connection's labels as the source reports them (Istio's: the source
/// cannot know how the destination secured it), or on a sidecar's inbound
/// listener (`inbound`) as the destination does.
fn labels(
    ctx: &ConnCtx,
    settings: Option<&crate::config::cluster::ClusterSettings>,
    ep: Option<&Endpoint>,
    flags: &'static str,
    inbound: bool,
) -> TcpLabels {
    let unknown = || Arc::<str>::from(UNKNOWN);
    let m = &ctx.state.metrics;
    if inbound {
        // The caller is known by its certificate alone: no bytes of a TCP
        // stream say which workload it is.
        let peer = ctx.mtls_peer.as_ref();
        let ns = peer.and_then(|p| p.namespace.as_deref()).map_or_else(unknown, Arc::from);
        return TcpLabels {
            reporter: "destination",
            source_workload: unknown(),
            source_workload_namespace: ns,
            destination_workload: m.workload.clone(),
            destination_workload_namespace: m.namespace.clone(),
            destination_service: settings.map_or_else(unknown, |s| s.service.clone()),
            destination_service_name: settings.map_or_else(unknown, |s| s.service_name.clone()),
            destination_service_namespace: settings.map_or_else(unknown, |s| s.service_namespace.clone()),
            request_protocol: "tcp",
            response_flags: flags,
            connection_security_policy: if peer.is_some() { "mutual_tls" } else { "none" },
            source_principal: peer.and_then(|p| p.identity.as_deref()).map_or_else(unknown, Arc::from),
            source_app: unknown(),
            source_version: unknown(),
            source_canonical_service: unknown(),
            source_canonical_revision: unknown(),
            source_cluster: CLUSTER,
            destination_principal: m.own.principal.clone(),
            destination_app: m.own.app.clone(),
            destination_version: m.own.version.clone(),
            destination_canonical_service: m.own.canonical_service.clone(),
            destination_canonical_revision: m.own.canonical_revision.clone(),
            destination_cluster: CLUSTER,
        };
    }
    let dest = ep.map_or_else(crate::telemetry::peer::Workload::unknown, |e| e.meta.clone());
    TcpLabels {
        reporter: "source",
        source_workload: m.workload.clone(),
        source_workload_namespace: m.namespace.clone(),
        destination_workload: ep.map_or_else(unknown, |e| e.workload.clone()),
        destination_workload_namespace: ep.map_or_else(unknown, |e| e.namespace.clone()),
        destination_service: settings.map_or_else(unknown, |s| s.service.clone()),
        destination_service_name: settings.map_or_else(unknown, |s| s.service_name.clone()),
        destination_service_namespace: settings.map_or_else(unknown, |s| s.service_namespace.clone()),
        request_protocol: "tcp",
        response_flags: flags,
        connection_security_policy: UNKNOWN,
        source_principal: m.own.principal.clone(),
        source_app: m.own.app.clone(),
        source_version: m.own.version.clone(),
        source_canonical_service: m.own.canonical_service.clone(),
        source_canonical_revision: m.own.canonical_revision.clone(),
        source_cluster: CLUSTER,
        // The identity the mesh's mutual TLS to the endpoint proved, where one alone is accepted.
        destination_principal: ep
            .filter(|e| e.mesh)
            .and_then(|_| settings?.tls.mesh_principal.clone())
            .unwrap_or_else(unknown),
        destination_app: dest.app.clone(),
        destination_version: dest.version.clone(),
        destination_canonical_service: dest.canonical_service.clone(),
        destination_canonical_revision: dest.canonical_revision.clone(),
        destination_cluster: CLUSTER,
    }
}

/// Copies both ways until either side closes, or the connection has moved
/// no byte for its idle timeout (its chain's, else the proxy's; Envoy's
/// `tcp_proxy` default is the same hour; zero: none): then both sockets
/// are closed.
async fn splice<D, U>(ctx: &ConnCtx, down: &mut D, up: &mut U, idle: Option<std::time::Duration>) -> (u64, u64)
where
    D: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    U: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut timeouts = ctx.state.timeouts.idle_only();
    if let Some(d) = idle {
        timeouts.idle = Some(d).filter(|d| !d.is_zero());
    }
    let tick = tokio::time::sleep(timeouts.tick().unwrap_or_default());
    tokio::pin!(tick);
    let mut idle = Idle::new(tick.as_mut(), timeouts);
    let mut copy = std::pin::pin!(tokio::io::copy_bidirectional(down, up));
    let copied = std::future::poll_fn(|cx| {
        if let Poll::Ready(r) = copy.as_mut().poll(cx) {
            return Poll::Ready(Some(r.unwrap_or_default()));
        }
        // A splice is never busy without bytes moving: any byte polls it.
        let expired = idle.as_mut().and_then(|i| i.poll(cx, &ctx.activity, || false));
        if expired.is_some() { Poll::Ready(None) } else { Poll::Pending }
    })
    .await;
    if copied.is_none() {
        ctx.state.metrics.idle_timeouts.inc();
        tracing::debug!(peer = %ctx.peer, "closing a tcp connection idle for its timeout");
    }
    copied.unwrap_or_default()
}
