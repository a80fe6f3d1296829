//! The control plane's state: the last good config plus the registry,
//! published as immutable snapshots that every ADS stream watches.

use crate::registry::{Instance, Registrations, static_instances};
use crate::translate::Snapshot;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;
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
    /// The proxy's admin address, when it gave one (`ADMIN_ADDR`).
    pub admin: Option<String>,
}

#[derive(Default)]
struct Inner {
    version: u64,
    resources: Arc<Vec<Resource>>,
    registrations: Registrations,
    rejected: Vec<String>,
}

pub struct Hub {
    inner: Mutex<Inner>,
    /// Translation parts shared by the ADS streams (see `translate::shared`).
    pub translations: Mutex<crate::translate::Cache>,
    tx: watch::Sender<Arc<Snapshot>>,
    proxies: Mutex<BTreeMap<u64, ProxyStatus>>,
}

impl Default for Hub {
    fn default() -> Self {
        Hub {
            inner: Mutex::default(),
            translations: Mutex::default(),
            tx: watch::Sender::new(Arc::new(Snapshot::default())),
            proxies: Mutex::default(),
        }
    }
}

impl Hub {
    pub fn subscribe(&self) -> watch::Receiver<Arc<Snapshot>> {
        self.tx.subscribe()
    }

    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.tx.borrow().clone()
    }

    fn publish(&self, inner: &mut Inner) {
        inner.version += 1;
        let mut instances: Vec<Instance> = static_instances(&inner.resources);
        instances.extend(inner.registrations.instances().into_iter().map(|(_, i)| i));
        let snap = Snapshot::new(inner.version, inner.resources.clone(), instances);
        tracing::debug!(version = inner.version, "publishing snapshot");
        self.tx.send_replace(Arc::new(snap));
    }

    /// Installs a config that validated clean.
    pub fn set_config(&self, resources: Vec<Resource>) {
        let mut inner = self.inner.lock().expect("hub lock");
        inner.resources = Arc::new(resources);
        inner.rejected.clear();
        self.publish(&mut inner);
    }

    /// Records why the latest edit was not applied (the last good config stays).
    pub fn set_rejected(&self, diagnostics: Vec<String>) {
        self.inner.lock().expect("hub lock").rejected = diagnostics;
    }

    pub fn rejected(&self) -> Vec<String> {
        self.inner.lock().expect("hub lock").rejected.clone()
    }

    pub fn register(&self, inst: Instance, ttl: Duration) -> String {
        let mut inner = self.inner.lock().expect("hub lock");
        let id = inner.registrations.register(inst, ttl, Instant::now());
        self.publish(&mut inner);
        id
    }

    pub fn heartbeat(&self, id: &str) -> bool {
        self.inner.lock().expect("hub lock").registrations.heartbeat(id, Instant::now())
    }

    pub fn deregister(&self, id: &str) -> bool {
        let mut inner = self.inner.lock().expect("hub lock");
        let gone = inner.registrations.remove(id);
        if gone {
            self.publish(&mut inner);
        }
        gone
    }

    pub fn registrations(&self) -> Vec<(String, Instance)> {
        self.inner.lock().expect("hub lock").registrations.instances()
    }

    /// Expires stale registrations; returns when the next one may expire.
    pub fn expire(&self) -> Option<Instant> {
        let mut inner = self.inner.lock().expect("hub lock");
        if inner.registrations.expire(Instant::now()) {
            self.publish(&mut inner);
        }
        inner.registrations.next_deadline()
    }

    pub fn proxy_update(&self, stream: u64, f: impl FnOnce(&mut ProxyStatus)) {
        f(self.proxies.lock().expect("proxies lock").entry(stream).or_default());
    }

    pub fn proxy_gone(&self, stream: u64) {
        self.proxies.lock().expect("proxies lock").remove(&stream);
    }

    pub fn proxies(&self) -> Vec<ProxyStatus> {
        self.proxies.lock().expect("proxies lock").values().cloned().collect()
    }
}

/// Removes registrations whose heartbeats stopped, as soon as they expire.
pub async fn run_expiry(hub: Arc<Hub>) {
    loop {
        let next = hub.expire().map_or(Duration::from_secs(1), |d| d.saturating_duration_since(Instant::now()));
        tokio::time::sleep(next.clamp(Duration::from_millis(50), Duration::from_secs(1))).await;
    }
}
