//! The ADS server (state of the world): one gRPC stream per proxy carries
//! Listeners, RouteConfigurations, Clusters and ClusterLoadAssignments.
//!
//! A response is sent when a type is first requested, when the requested
//! names change, and when a new snapshot changes what this proxy would get.
//! Listeners and clusters go out whole (state of the world requires it);
//! route tables and endpoint sets go out one by one, only those whose bytes
//! changed, which the protocol allows for these two types. A NACK is logged
//! with its reason; the proxy keeps its last good config and is not sent the
//! same content again.

use crate::hub::Hub;
use crate::sds::SECRET;
use crate::translate::{Encoded, ProxyNode, Res, encoded};
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_server::{
    AggregatedDiscoveryService, AggregatedDiscoveryServiceServer,
};
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use futures::Stream;
use std::collections::{BTreeSet, HashMap};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

pub const LISTENER: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";
pub const ROUTE: &str = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration";
pub const CLUSTER: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
pub const ENDPOINT: &str = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment";

fn short(type_url: &str) -> &str {
    type_url.rsplit('.').next().unwrap_or(type_url)
}

pub struct Ads {
    hub: Arc<Hub>,
    streams: AtomicU64,
    /// The CA, for SDS to Envoys proven on the TLS port (`crate::sds`).
    ca: Arc<arc_swap::ArcSwap<crate::ca::Ca>>,
}

/// The identity a stream's TLS client certificate proved (the API's TLS
/// port puts it in the request's extensions); a plaintext stream has none.
#[derive(Clone, Debug)]
pub struct Proven(pub crate::auth::Identity);

pub type AdsServer = AggregatedDiscoveryServiceServer<Ads>;

impl Ads {
    pub fn server(hub: Arc<Hub>, ca: Arc<arc_swap::ArcSwap<crate::ca::Ca>>) -> AdsServer {
        AggregatedDiscoveryServiceServer::new(Ads { hub, streams: AtomicU64::new(0), ca })
            .max_decoding_message_size(64 << 20)
            .max_encoding_message_size(256 << 20)
    }
}

/// Per type: what the proxy asked for and what it was last sent.
#[derive(Default)]
struct Sub {
    names: BTreeSet<String>,
    nonce: String,
    /// Name to content hash of what the proxy was last sent.
    sent: HashMap<String, u64>,
    sent_once: bool,
    /// Nonce of the last response the proxy ACKed.
    acked_nonce: String,
}

/// The admin address a proxy declares (`ADMIN_ADDR`), if the control plane
/// may fetch from it: an IP address and port on the host the proxy
/// connected from. Anything else would let a proxy point the control plane
/// (`/debug/health`) at any address it likes.
fn admin_addr(declared: &str, peer: Option<std::net::SocketAddr>) -> Result<String, String> {
    let addr: std::net::SocketAddr =
        declared.parse().map_err(|_| format!("ADMIN_ADDR `{declared}` is not an IP address and port; not fetched"))?;
    let same_host = peer.is_some_and(|p| {
        let (a, p) = (addr.ip().to_canonical(), p.ip().to_canonical());
        a == p || (a.is_loopback() && p.is_loopback())
    });
    if same_host {
        Ok(addr.to_string())
    } else {
        Err(format!(
            "ADMIN_ADDR {addr} is not on the host the proxy connected from ({}); not fetched",
            peer.map_or("unknown".to_owned(), |p| p.ip().to_string())
        ))
    }
}

fn resources_of<'a>(cfg: &'a Encoded, type_url: &str) -> &'a [Arc<Res>] {
    match type_url {
        LISTENER => &cfg.listeners,
        ROUTE => &cfg.routes,
        CLUSTER => &cfg.clusters,
        ENDPOINT => &cfg.endpoints,
        _ => &[],
    }
}

struct Stream_ {
    id: u64,
    /// Answers to a proxy that already has config are held until the
    /// control plane's warm-up ends (`Hub::warm_until`).
    hold_until: Option<tokio::time::Instant>,
    /// The proxy's address as this connection sees it.
    peer: Option<std::net::SocketAddr>,
    /// Who its TLS client certificate proved (xDS on the TLS port).
    proven: Option<crate::auth::Identity>,
    /// SDS secrets made for it (an Envoy proven on the TLS port), the CA
    /// they were made from (its signer and roots) and when, to be made
    /// anew at half-life or when the CA changes.
    secrets: Vec<Arc<Res>>,
    secrets_made: Option<(String, String, tokio::time::Instant)>,
    ca: Arc<arc_swap::ArcSwap<crate::ca::Ca>>,
    hub: Arc<Hub>,
    node: Option<ProxyNode>,
    subs: HashMap<String, Sub>,
    nonce: u64,
    /// The encoded config for that snapshot version.
    cfg: Option<(u64, Encoded)>,
    /// The snapshot version this stream last pushed from.
    handled: u64,
    out: mpsc::Sender<Result<DiscoveryResponse, Status>>,
}

impl Stream_ {
    /// Makes the SDS secrets for the proven identity; false if the CA cannot.
    fn make_secrets(&mut self) -> bool {
        let Some(id) = &self.proven else { return false };
        let ca = self.ca.load();
        match crate::sds::secrets(&ca, id) {
            Ok(s) => {
                self.secrets = s;
                self.secrets_made =
                    Some((ca.signer_id().to_owned(), ca.root_pem().to_owned(), tokio::time::Instant::now()));
                true
            }
            Err(e) => {
                tracing::error!(stream = self.id, error = %e, "cannot make an SDS certificate; the proxy gets none");
                false
            }
        }
    }

    /// Whether the secrets are due anew: the CA signs with another root or
    /// trusts other roots (a rotation's step), or half their life is gone
    /// (as a weft proxy renews).
    fn secrets_due(&self) -> bool {
        let Some((signer, roots, made)) = &self.secrets_made else { return false };
        let ca = self.ca.load();
        *signer != ca.signer_id() || roots != ca.root_pem() || made.elapsed() > ca.ttl() / 2
    }

    /// Sends what of `type_url` the proxy does not have yet (all of it if
    /// `force`). `Some(sent)`, or None once the stream is gone.
    async fn push(&mut self, type_url: &str, force: bool) -> Option<bool> {
        let Some(node) = &self.node else { return Some(false) };
        if self.hold_until.is_some() {
            return Some(false);
        }
        let snap = self.hub.snapshot();
        if self.cfg.as_ref().is_none_or(|(v, _)| *v != snap.version) {
            self.cfg = Some((snap.version, encoded(&snap, node, &self.hub.translations).await));
        }
        self.handled = snap.version;
        let (_, cfg) = self.cfg.as_ref()?;
        let Some(sub) = self.subs.get_mut(type_url) else { return Some(false) };
        let whole = matches!(type_url, LISTENER | CLUSTER);
        let pool = if type_url == SECRET { &self.secrets[..] } else { resources_of(cfg, type_url) };
        let wanted: Vec<&Arc<Res>> =
            pool.iter().filter(|r| (whole && sub.names.is_empty()) || sub.names.contains(&r.name)).collect();
        let changed: Vec<&Arc<Res>> =
            wanted.iter().copied().filter(|r| sub.sent.get(&r.name) != Some(&r.hash)).collect();
        let removed =
            sub.sent.len() + changed.iter().filter(|r| !sub.sent.contains_key(&r.name)).count() != wanted.len();
        if !force && changed.is_empty() && !(whole && removed) && sub.sent_once {
            return Some(false);
        }
        // Whole types go out complete; route tables and endpoint sets only
        // as they changed (on request, all that were asked for).
        let to_send = if whole || force { wanted } else { changed };
        sub.sent.retain(|name, _| sub.names.is_empty() || sub.names.contains(name));
        if whole {
            sub.sent.clear();
        }
        for r in &to_send {
            sub.sent.insert(r.name.clone(), r.hash);
        }
        sub.sent_once = true;
        self.nonce += 1;
        sub.nonce = self.nonce.to_string();
        tracing::debug!(stream = self.id, r#type = short(type_url), n = to_send.len(), version = snap.version, "push");
        let resp = DiscoveryResponse {
            version_info: snap.version.to_string(),
            resources: to_send.iter().map(|r| r.any.clone()).collect(),
            type_url: type_url.to_owned(),
            nonce: sub.nonce.clone(),
            ..Default::default()
        };
        self.out.send(Ok(resp)).await.ok().map(|_| true)
    }

    async fn on_request(&mut self, req: DiscoveryRequest) -> bool {
        if self.node.is_none() {
            let Some(node) = req.node.as_ref() else {
                let _ =
                    self.out.send(Err(Status::invalid_argument("the first DiscoveryRequest must carry `node`"))).await;
                return false;
            };
            let mut node = ProxyNode::from_node(node);
            // Over TLS a proxy's config is that of the namespace its
            // certificate proves, never another's.
            if let Some(p) = self.proven.as_ref().filter(|p| p.namespace != node.namespace) {
                self.hub.metrics.unauthorized("xds");
                tracing::warn!(stream = self.id, proxy = %node.id, proven = %p.namespace, "refused: a proxy asked for another namespace's config");
                let msg = format!(
                    "this certificate proves namespace `{}`; the node says `{}`: a proxy gets its own namespace's config",
                    p.namespace, node.namespace
                );
                let _ = self.out.send(Err(Status::permission_denied(msg))).await;
                return false;
            }
            // An Envoy proven on the TLS port takes its certificate over SDS.
            if !node.holds_mesh_cert && self.proven.is_some() {
                node.holds_mesh_cert = self.make_secrets();
                node.sds = node.holds_mesh_cert;
            }
            tracing::info!(stream = self.id, proxy = %node.id, role = ?node.role, "proxy connected");
            let admin = node.admin.as_deref().map(|a| admin_addr(a, self.peer));
            if let Some(Err(e)) = &admin {
                tracing::warn!(stream = self.id, proxy = %node.id, "{e}");
            }
            self.hub.proxy_update(self.id, |s| {
                s.id = node.id.clone();
                (s.admin, s.admin_refused) = match admin {
                    Some(Ok(a)) => (Some(a), None),
                    Some(Err(e)) => (None, Some(e)),
                    None => (None, None),
                };
            });
            // A proxy that has config from before (a control plane restart)
            // keeps it until the instances have registered here again,
            // rather than get endpoint sets emptied only because they have not yet.
            let warm_until = self.hub.warm_until();
            if !req.version_info.is_empty() && warm_until > tokio::time::Instant::now() {
                tracing::info!(stream = self.id, proxy = %node.id, "holding config for a proxy that has some until registrations are back");
                self.hold_until = Some(warm_until);
            }
            self.node = Some(node);
        }
        let type_url = req.type_url.clone();
        let names: BTreeSet<String> = req.resource_names.iter().cloned().collect();
        let sub = self.subs.entry(type_url.clone()).or_default();
        if !req.response_nonce.is_empty() && req.response_nonce != sub.nonce {
            return true; // a reply to an older response: superseded
        }
        let proxy = self.node.as_ref().map_or("", |n| n.id.as_str()).to_owned();
        if let Some(err) = &req.error_detail {
            tracing::warn!(proxy = %proxy, r#type = short(&type_url), nonce = %req.response_nonce, reason = %err.message,
                "proxy rejected config (NACK); it keeps its last good config");
            let msg = format!("{}: {}", short(&type_url), err.message);
            self.hub.proxy_update(self.id, |s| s.last_nack = Some(msg));
            sub.names = names;
            return true;
        }
        if !req.response_nonce.is_empty() {
            sub.acked_nonce = req.response_nonce.clone();
            let v = req.version_info.clone();
            self.hub.proxy_update(self.id, |s| {
                s.acked.insert(short(&type_url).to_owned(), v);
            });
            self.report_sync();
        }
        let sub = self.subs.entry(type_url.clone()).or_default();
        let changed = sub.names != names;
        sub.names = names;
        let first = req.response_nonce.is_empty();
        if first || changed {
            return self.push(&type_url, true).await.is_some();
        }
        true
    }

    /// Records the proxy as synced once nothing it was sent is un-ACKed.
    fn report_sync(&self) {
        if self.subs.values().all(|s| s.nonce.is_empty() || s.acked_nonce == s.nonce) {
            let v = self.handled;
            self.hub.proxy_update(self.id, |s| s.synced = s.synced.max(v));
        }
    }

    async fn on_snapshot(&mut self) -> bool {
        // Clusters before endpoints, listeners before routes (Envoy's order).
        // After a cluster update Envoy re-warms the clusters and waits for
        // their endpoints, so endpoints follow even when unchanged.
        if self.secrets_due() && self.make_secrets() && self.push(SECRET, false).await.is_none() {
            return false;
        }
        let Some(clusters_sent) = self.push(CLUSTER, false).await else { return false };
        for (t, force) in [(ENDPOINT, clusters_sent), (LISTENER, false), (ROUTE, false)] {
            if self.push(t, force && self.subs.contains_key(t)).await.is_none() {
                return false;
            }
        }
        self.report_sync();
        true
    }
}

#[tonic::async_trait]
impl AggregatedDiscoveryService for Ads {
    type StreamAggregatedResourcesStream = Pin<Box<dyn Stream<Item = Result<DiscoveryResponse, Status>> + Send>>;
    type DeltaAggregatedResourcesStream = Pin<Box<dyn Stream<Item = Result<DeltaDiscoveryResponse, Status>> + Send>>;

    async fn stream_aggregated_resources(
        &self,
        req: Request<Streaming<DiscoveryRequest>>,
    ) -> Result<Response<Self::StreamAggregatedResourcesStream>, Status> {
        let peer = req.remote_addr();
        let proven = req.extensions().get::<Proven>().map(|p| p.0.clone());
        let mut input = req.into_inner();
        let (tx, rx) = mpsc::channel(16);
        let id = self.streams.fetch_add(1, Ordering::Relaxed);
        let (hub, ca) = (self.hub.clone(), self.ca.clone());
        tokio::spawn(async move {
            let mut snaps = hub.subscribe();
            // SDS secrets are checked this often, as weft proxies check the CA (a rotation step reaches both alike).
            let mut renew = tokio::time::interval(std::time::Duration::from_secs(5));
            let mut st = Stream_ {
                id,
                hold_until: None,
                peer,
                proven,
                secrets: Vec::new(),
                secrets_made: None,
                ca: ca.clone(),
                hub: hub.clone(),
                node: None,
                subs: HashMap::new(),
                nonce: 0,
                cfg: None,
                handled: 0,
                out: tx,
            };
            loop {
                let ok = tokio::select! {
                    req = input.next() => match req {
                        Some(Ok(req)) => st.on_request(req).await,
                        Some(Err(e)) => { tracing::debug!(stream = id, error = %e, "stream error"); false }
                        None => false,
                    },
                    changed = snaps.changed() => changed.is_ok() && st.on_snapshot().await,
                    _ = renew.tick(), if st.secrets_made.is_some() => {
                        !st.secrets_due() || !st.make_secrets() || st.push(SECRET, false).await.is_some()
                    }
                    () = tokio::time::sleep_until(st.hold_until.unwrap_or_else(tokio::time::Instant::now)), if st.hold_until.is_some() => {
                        st.hold_until = None;
                        st.on_snapshot().await
                    }
                };
                if !ok {
                    break;
                }
            }
            if let Some(n) = &st.node {
                tracing::info!(stream = id, proxy = %n.id, "proxy disconnected");
            }
            hub.proxy_gone(id);
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn delta_aggregated_resources(
        &self,
        _: Request<Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<Response<Self::DeltaAggregatedResourcesStream>, Status> {
        Err(Status::unimplemented("weft serves state-of-the-world ADS; delta xDS is not implemented yet"))
    }
}

#[cfg(test)]
mod admin_tests {
    use super::admin_addr;

    #[test]
    fn only_an_admin_address_on_the_proxys_own_host_is_fetched() {
        let local = Some("127.0.0.1:40000".parse().unwrap());
        let remote = Some("10.0.0.7:40000".parse().unwrap());
        assert_eq!(admin_addr("127.0.0.1:15000", local).unwrap(), "127.0.0.1:15000");
        assert_eq!(admin_addr("10.0.0.7:15000", remote).unwrap(), "10.0.0.7:15000");
        // Loopback and v4-mapped forms of the same host are the same host.
        assert!(admin_addr("[::1]:15000", local).is_ok());
        assert!(admin_addr("10.0.0.7:15000", Some("[::ffff:10.0.0.7]:1".parse().unwrap())).is_ok());
        for (declared, peer) in [
            ("169.254.169.254:80", local),
            ("127.0.0.1:15000", remote),
            ("10.0.0.8:15000", remote),
            ("metadata.internal:80", local),
            ("127.0.0.1:15000", None),
        ] {
            let e = admin_addr(declared, peer).unwrap_err();
            assert!(e.contains("not fetched"), "{declared} from {peer:?}: {e}");
        }
    }
}
