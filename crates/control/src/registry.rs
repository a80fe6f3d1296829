//! Service instances: the static ones from config (WorkloadEntry, ServiceEntry
//! endpoints) and the ones that register at run time with a TTL.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
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
            Spec::WorkloadEntry(w) => out.push(from_entry(r.name(), r.namespace(), w, None)),
            Spec::ServiceEntry(se) => {
                for (i, e) in se.endpoints.iter().enumerate() {
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
#[derive(Default)]
pub struct Registrations {
    entries: HashMap<String, (Instance, Duration, Instant)>,
}

impl Registrations {
    /// Registers (or replaces) an instance; returns its id.
    pub fn register(&mut self, inst: Instance, ttl: Duration, now: Instant) -> String {
        let id = format!("{}.{}@{}:{}", inst.name, inst.namespace, inst.address, inst.port.unwrap_or(0));
        self.entries.insert(id.clone(), (inst, ttl, now + ttl));
        id
    }

    /// Extends an instance's life; false if it is unknown (expired or never seen).
    pub fn heartbeat(&mut self, id: &str, now: Instant) -> bool {
        match self.entries.get_mut(id) {
            Some((_, ttl, deadline)) => {
                *deadline = now + *ttl;
                true
            }
            None => false,
        }
    }

    pub fn remove(&mut self, id: &str) -> bool {
        self.entries.remove(id).is_some()
    }

    /// Drops expired instances; true if any went.
    pub fn expire(&mut self, now: Instant) -> bool {
        let before = self.entries.len();
        self.entries.retain(|id, (_, _, deadline)| {
            let alive = *deadline > now;
            if !alive {
                tracing::info!(instance = %id, "registration expired: no heartbeat within its TTL");
            }
            alive
        });
        before != self.entries.len()
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.entries.values().map(|(_, _, d)| *d).min()
    }

    pub fn instances(&self) -> Vec<(String, Instance)> {
        let mut v: Vec<_> = self.entries.iter().map(|(id, (i, _, _))| (id.clone(), i.clone())).collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
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
        let a = r.register(
            Instance { name: "a".into(), address: "127.0.0.1".into(), port: Some(1), ..Default::default() },
            ttl,
            t0,
        );
        let b = r.register(
            Instance { name: "b".into(), address: "127.0.0.1".into(), port: Some(2), ..Default::default() },
            ttl,
            t0,
        );
        assert!(r.heartbeat(&a, t0 + Duration::from_secs(2)));
        assert!(r.expire(t0 + Duration::from_secs(4)));
        let left: Vec<_> = r.instances().into_iter().map(|(id, _)| id).collect();
        assert_eq!(left, vec![a.clone()]);
        assert!(!r.heartbeat(&b, t0 + Duration::from_secs(4)));
    }
}
