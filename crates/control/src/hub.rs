//! The control plane's state: the last good config plus the registry,
//! published as immutable snapshots that every ADS stream watches.
//!
//! A config edit publishes at once; registrations publish at most every
//! `PUBLISH_EVERY`, so a burst of them (a mesh starting, a control plane
//! restarting) costs one snapshot, not one per instance.

use crate::limits::{Limits, Metrics};
use crate::registry::{Instance, Refused, Registrations, static_instances};
use crate::translate::Snapshot;
use parking_lot::Mutex;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{Notify, watch};
use weft_api::resource::Resource;

/// What a connected proxy has accepted, for `/debug/proxies` and `weft status`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ProxyStatus {
    pub id: String,
    /// type URL (short name) to the version it last ACKed.
    pub acked: BTreeMap<String, String>,
    pub last_nack: Option<String>,
    /// The latest snapshot version this proxy has everything of: the stream
    /// handled it and every response it sent has been ACKed.
    pub synced: u64,
    /// The proxy's admin address, when it gave one (`ADMIN_ADDR`) on the
    /// host it connected from.
    pub admin: Option<String>,
    /// Why the admin address it gave is not used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_refused: Option<String>,
}

#[derive(Default)]
struct Inner {
    version: u64,
    resources: Arc<Vec<Resource>>,
    /// The config's own instances (WorkloadEntry, ServiceEntry endpoints).
    statics: Vec<Arc<Instance>>,
    registrations: Registrations,
    rejected: Vec<String>,
    /// What the config in force was warned of (fields not applied, ...).
    warnings: Vec<String>,
    /// Key sets fetched for RequestAuthentications (`crate::jwks`).
    jwks: Arc<BTreeMap<String, String>>,
}

/// How often registrations may publish a snapshot.
const PUBLISH_EVERY: Duration = Duration::from_millis(25);

pub struct Hub {
    inner: Mutex<Inner>,
    /// Translation parts shared by the ADS streams (see `translate::shared`).
    pub translations: Mutex<crate::translate::Cache>,
    tx: watch::Sender<Arc<Snapshot>>,
    proxies: Mutex<BTreeMap<u64, ProxyStatus>>,
    /// Registrations changed since the last snapshot (`run_publisher`).
    changed: Notify,
    pub limits: Limits,
    pub metrics: Metrics,
    /// Proxies that already have config wait until then for this control
    /// plane's first answer (`Limits::warmup`).
    warm_until: tokio::time::Instant,
    /// The trace store's OTLP address, given to proxies as the `weft`
    /// tracing provider (`with_trace_store`).
    trace_store: Option<std::net::SocketAddr>,
}

impl Default for Hub {
    fn default() -> Self {
        Hub::new(Limits::default())
    }
}

impl Hub {
    pub fn new(limits: Limits) -> Self {
        Hub {
            inner: Mutex::default(),
            translations: Mutex::default(),
            tx: watch::Sender::new(Arc::new(Snapshot::default())),
            proxies: Mutex::default(),
            changed: Notify::new(),
            warm_until: tokio::time::Instant::now() + limits.warmup,
            limits,
            metrics: Metrics::default(),
            trace_store: None,
        }
    }

    /// Proxies told to report spans to `addr` for the `weft` provider.
    pub fn with_trace_store(mut self, addr: std::net::SocketAddr) -> Self {
        self.trace_store = Some(addr);
        self
    }

    pub fn warm_until(&self) -> tokio::time::Instant {
        self.warm_until
    }

    pub fn subscribe(&self) -> watch::Receiver<Arc<Snapshot>> {
        self.tx.subscribe()
    }

    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.tx.borrow().clone()
    }

    fn publish(&self, inner: &mut Inner) {
        inner.version += 1;
        let instances = inner.statics.iter().cloned().chain(inner.registrations.shared());
        let mut snap = Snapshot::new(inner.version, inner.resources.clone(), instances);
        snap.trace_store = self.trace_store;
        snap.jwks = inner.jwks.clone();
        tracing::debug!(version = inner.version, "publishing snapshot");
        self.tx.send_replace(Arc::new(snap));
    }

    /// Installs a config that validated with no error, and its warnings.
    pub fn set_config(&self, resources: Vec<Resource>, warnings: Vec<String>) {
        let mut inner = self.inner.lock();
        inner.warnings = warnings;
        inner.statics = static_instances(&resources).into_iter().map(Arc::new).collect();
        inner.resources = Arc::new(resources);
        inner.rejected.clear();
        self.publish(&mut inner);
    }

    /// Installs newly fetched key sets (`crate::jwks`).
    pub fn set_jwks(&self, jwks: BTreeMap<String, String>) {
        let mut inner = self.inner.lock();
        inner.jwks = Arc::new(jwks);
        self.publish(&mut inner);
    }

    /// Records why the latest edit was not applied (the last good config stays).
    pub fn set_rejected(&self, diagnostics: Vec<String>) {
        self.inner.lock().rejected = diagnostics;
    }

    pub fn rejected(&self) -> Vec<String> {
        self.inner.lock().rejected.clone()
    }

    pub fn warnings(&self) -> Vec<String> {
        self.inner.lock().warnings.clone()
    }

    /// Registers an instance (see `Registrations::register`); the
    /// snapshot that holds it follows within `PUBLISH_EVERY`.
    pub fn register(&self, inst: Instance, ttl: Duration) -> Result<String, Refused> {
        let mut inner = self.inner.lock();
        let id = inner.registrations.register(inst, ttl, Instant::now(), self.limits.max_instances)?;
        self.metrics.instances.set(inner.registrations.len() as i64);
        self.changed.notify_one();
        Ok(id)
    }

    /// A registered instance by its id.
    pub fn registered(&self, id: &str) -> Option<Arc<Instance>> {
        self.inner.lock().registrations.get(id)
    }

    pub fn heartbeat(&self, id: &str) -> bool {
        self.inner.lock().registrations.heartbeat(id, Instant::now())
    }

    pub fn deregister(&self, id: &str) -> bool {
        let mut inner = self.inner.lock();
        let gone = inner.registrations.remove(id);
        if gone {
            self.metrics.instances.set(inner.registrations.len() as i64);
            self.changed.notify_one();
        }
        gone
    }

    pub fn registrations(&self) -> Vec<(String, Instance)> {
        self.inner.lock().registrations.instances()
    }

    /// Expires stale registrations; returns when the next one may expire.
    pub fn expire(&self) -> Option<Instant> {
        let mut inner = self.inner.lock();
        if inner.registrations.expire(Instant::now()) {
            self.metrics.instances.set(inner.registrations.len() as i64);
            self.changed.notify_one();
        }
        inner.registrations.next_deadline()
    }

    pub fn proxy_update(&self, stream: u64, f: impl FnOnce(&mut ProxyStatus)) {
        f(self.proxies.lock().entry(stream).or_default());
    }

    pub fn proxy_gone(&self, stream: u64) {
        self.proxies.lock().remove(&stream);
    }

    pub fn proxies(&self) -> Vec<ProxyStatus> {
        self.proxies.lock().values().cloned().collect()
    }
}

/// Removes registrations whose heartbeats stopped, as soon as they expire.
pub async fn run_expiry(hub: Arc<Hub>) {
    loop {
        let next = hub.expire().map_or(Duration::from_secs(1), |d| d.saturating_duration_since(Instant::now()));
        tokio::time::sleep(next.clamp(Duration::from_millis(50), Duration::from_secs(1))).await;
    }
}

/// Publishes registration changes, at most one snapshot per `PUBLISH_EVERY`.
pub async fn run_publisher(hub: Arc<Hub>) {
    loop {
        hub.changed.notified().await;
        hub.publish(&mut hub.inner.lock());
        tokio::time::sleep(PUBLISH_EVERY).await;
    }
}
