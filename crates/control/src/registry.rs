//! Service instances: the static ones from config (WorkloadEntry, ServiceEntry
//! endpoints) and the ones that register at run time with a TTL.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};
use weft_api::Spec;
use weft_api::resource::Resource;
use weft_api::types::Labels;

/// One instance of a workload, reachable at `address`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Instance {
    pub name: String,
    #[serde(default = "default_ns")]
    pub namespace: String,
    pub address: String,
    /// Every service port reaches this port (an instance behind a sidecar
    /// whose inbound listener takes all its traffic).
    #[serde(default)]
    pub port: Option<u16>,
    /// Service port name to instance port, as in WorkloadEntry.
    #[serde(default)]
    pub ports: BTreeMap<String, u16>,
    #[serde(default)]
    pub labels: Labels,
    #[serde(default)]
    pub service_account: Option<String>,
    /// `region/zone/subzone`.
    #[serde(default)]
    pub locality: Option<String>,
    #[serde(default)]
    pub weight: Option<u32>,
    /// Only for these hosts (ServiceEntry endpoints belong to their entry).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub only_hosts: Option<Vec<String>>,
}

fn default_ns() -> String {
    weft_api::resource::DEFAULT_NAMESPACE.to_owned()
}

impl Instance {
    /// The instance port that serves a service port.
    pub fn port_for(&self, svc_port: &weft_api::index::SvcPort) -> u16 {
        if let Some(p) = self.port {
            return p;
        }
        if let Some(p) = self.ports.get(&svc_port.name) {
            return *p;
        }
        match &svc_port.target {
            Some(weft_api::types::IntOrString::Int(p)) => *p,
            Some(weft_api::types::IntOrString::Str(name)) => self.ports.get(name).copied().unwrap_or(svc_port.port),
            None => svc_port.port,
        }
    }
}

/// Instances declared in config files.
pub fn static_instances(resources: &[Resource]) -> Vec<Instance> {
    let mut out = Vec::new();
    for r in resources {
        match &r.spec {
            // An entry without an address (one behind another network's
            // gateway, in Istio) cannot be reached here: left out, not sent
            // to proxies that would refuse the whole endpoint set.
            Spec::WorkloadEntry(w) if !w.address.is_empty() => out.push(from_entry(r.name(), r.namespace(), w, None)),
            Spec::ServiceEntry(se) => {
                for (i, e) in se.endpoints.iter().enumerate().filter(|(_, e)| !e.address.is_empty()) {
                    let name = format!("{}-{i}", r.name());
                    out.push(from_entry(&name, r.namespace(), e, Some(se.hosts.clone())));
                }
            }
            _ => {}
        }
    }
    out
}

fn from_entry(name: &str, ns: &str, w: &weft_api::types::WorkloadEntrySpec, only: Option<Vec<String>>) -> Instance {
    Instance {
        name: name.to_owned(),
        namespace: ns.to_owned(),
        address: w.address.clone(),
        port: None,
        ports: w.ports.clone(),
        labels: w.labels.clone(),
        service_account: w.service_account.clone(),
        locality: w.locality.clone(),
        weight: w.weight,
        only_hosts: only,
    }
}

/// Run-time registrations, each alive while it heartbeats within its TTL.
/// An instance is keyed by its address and port: one live registration
/// owns them until it leaves or expires.
#[derive(Default)]
pub struct Registrations {
    /// By id, in order: snapshots list instances in a stable order.
    entries: BTreeMap<String, Entry>,
    /// Address and ports to the id registered there.
    at: HashMap<String, String>,
}

struct Entry {
    instance: Arc<Instance>,
    ttl: Duration,
    deadline: Instant,
}

/// Why a registration was refused.
#[derive(Debug, PartialEq)]
pub enum Refused {
    /// Another live instance holds this address and port.
    Taken { id: String, expires_in: Duration },
    /// The mesh holds its limit of instances already.
    Full { limit: usize },
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::Taken { id, expires_in } => write!(
                f,
                "this address and port are registered to a live instance ({id}) that differs from this one; \
                 deregister it first (DELETE /v1/instances/{id}) or wait for its TTL to end (in {} s)",
                expires_in.as_secs() + 1
            ),
            Refused::Full { limit } => write!(
                f,
                "the mesh holds its limit of {limit} registered instances; \
                 remove some or start the control plane with a higher --max-instances"
            ),
        }
    }
}

impl Registrations {
    /// An instance's id: its name, namespace, address and port.
    pub fn id(inst: &Instance) -> String {
        format!("{}.{}@{}:{}", inst.name, inst.namespace, inst.address, inst.port.unwrap_or(0))
    }

    /// Registers an instance, or renews it when the same one registers
    /// again; returns its id. Refused when another live instance holds its
    /// address and port, or when `limit` instances are registered.
    pub fn register(&mut self, inst: Instance, ttl: Duration, now: Instant, limit: usize) -> Result<String, Refused> {
        let at = Self::at(&inst);
        if let Some(held) = self.at.get(&at)
            && let Some(e) = self.entries.get(held)
            && e.deadline > now
            && *e.instance != inst
        {
            return Err(Refused::Taken { id: held.clone(), expires_in: e.deadline - now });
        }
        if let Some(old) = self.at.remove(&at) {
            self.entries.remove(&old);
        }
        let id = Self::id(&inst);
        if !self.entries.contains_key(&id) && self.entries.len() >= limit {
            // Expired ones the sweep has not reached yet do not count.
            self.expire(now);
            if self.entries.len() >= limit {
                return Err(Refused::Full { limit });
            }
        }
        if let Some(e) = self.entries.remove(&id) {
            self.at.remove(&Self::at(&e.instance));
        }
        self.at.insert(at, id.clone());
        self.entries.insert(id.clone(), Entry { instance: Arc::new(inst), ttl, deadline: now + ttl });
        Ok(id)
    }

    /// Where an instance is reached: two live registrations may not share it.
    fn at(inst: &Instance) -> String {
        match inst.port {
            Some(p) => format!("{}:{p}", inst.address),
            None => format!("{}:{:?}", inst.address, inst.ports),
        }
    }

    /// A registered instance by its id.
    pub fn get(&self, id: &str) -> Option<Arc<Instance>> {
        self.entries.get(id).map(|e| e.instance.clone())
    }

    /// Extends an instance's life; false if it is unknown (expired or never seen).
    pub fn heartbeat(&mut self, id: &str, now: Instant) -> bool {
        match self.entries.get_mut(id) {
            Some(e) => {
                e.deadline = now + e.ttl;
                true
            }
            None => false,
        }
    }

    pub fn remove(&mut self, id: &str) -> bool {
        match self.entries.remove(id) {
            Some(e) => {
                self.at.remove(&Self::at(&e.instance));
                true
            }
            None => false,
        }
    }

    /// Drops expired instances; true if any went.
    pub fn expire(&mut self, now: Instant) -> bool {
        let before = self.entries.len();
        let at = &mut self.at;
        self.entries.retain(|id, e| {
            let alive = e.deadline > now;
            if !alive {
                tracing::info!(instance = %id, "registration expired: no heartbeat within its TTL");
                at.remove(&Self::at(&e.instance));
            }
            alive
        });
        before != self.entries.len()
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.entries.values().map(|e| e.deadline).min()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every registered instance with its id, in id order.
    pub fn instances(&self) -> Vec<(String, Instance)> {
        self.entries.iter().map(|(id, e)| (id.clone(), (*e.instance).clone())).collect()
    }

    /// The registered instances, shared, in id order.
    pub fn shared(&self) -> impl Iterator<Item = Arc<Instance>> + '_ {
        self.entries.values().map(|e| e.instance.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expires_without_heartbeat_and_survives_with_it() {
        let mut r = Registrations::default();
        let t0 = Instant::now();
        let ttl = Duration::from_secs(3);
        let a = r
            .register(
                Instance { name: "a".into(), address: "127.0.0.1".into(), port: Some(1), ..Default::default() },
                ttl,
                t0,
                10,
            )
            .unwrap();
        let b = r
            .register(
                Instance { name: "b".into(), address: "127.0.0.1".into(), port: Some(2), ..Default::default() },
                ttl,
                t0,
                10,
            )
            .unwrap();
        assert!(r.heartbeat(&a, t0 + Duration::from_secs(2)));
        assert!(r.expire(t0 + Duration::from_secs(4)));
        let left: Vec<_> = r.instances().into_iter().map(|(id, _)| id).collect();
        assert_eq!(left, vec![a.clone()]);
        assert!(!r.heartbeat(&b, t0 + Duration::from_secs(4)));
    }

    #[test]
    fn a_live_address_is_not_taken_over_and_the_count_is_capped() {
        let mut r = Registrations::default();
        let t0 = Instant::now();
        let ttl = Duration::from_secs(10);
        let real =
            Instance { name: "reviews".into(), address: "10.0.0.1".into(), port: Some(80), ..Default::default() };
        let id = r.register(real.clone(), ttl, t0, 2).unwrap();
        // The same instance again renews it.
        assert_eq!(r.register(real.clone(), ttl, t0 + Duration::from_secs(1), 2), Ok(id.clone()));
        // Another claiming its address and port, even under another name, is refused while it lives...
        let mut impostor = real.clone();
        impostor.labels.insert("version".into(), "evil".into());
        assert!(matches!(
            r.register(impostor.clone(), ttl, t0 + Duration::from_secs(2), 2),
            Err(Refused::Taken { .. })
        ));
        impostor.name = "other".into();
        let taken = r.register(impostor.clone(), ttl, t0 + Duration::from_secs(2), 2).unwrap_err();
        assert!(taken.to_string().contains(&id), "{taken}");
        assert_eq!(r.instances()[0].1, real, "the live instance keeps its labels");
        // ...and welcome once it has expired.
        assert!(r.register(impostor, ttl, t0 + Duration::from_secs(12), 2).is_ok());

        let other = Instance { name: "x".into(), address: "10.0.0.2".into(), port: Some(80), ..Default::default() };
        r.register(other, ttl, t0 + Duration::from_secs(12), 2).unwrap();
        let third = Instance { name: "y".into(), address: "10.0.0.3".into(), port: Some(80), ..Default::default() };
        assert_eq!(r.register(third, ttl, t0 + Duration::from_secs(12), 2), Err(Refused::Full { limit: 2 }));
    }
}
