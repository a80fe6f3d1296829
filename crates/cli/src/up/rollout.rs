//! Applying an edited folder to the running processes, as a Deployment
//! rollout would: a `Workload` whose spec or annotations changed is
//! replaced replica by replica (surge one: the new replica is ready,
//! registered and known to every proxy before the old one drains), so
//! callers never lose a request. Changing only `replicas` scales without
//! restarting; new workloads start, removed ones stop.
//!
//! `kubectl rollout restart` works by editing an annotation; here any
//! annotation edit (e.g. `weft.dev/restartedAt: "2`) does the same.

use super::replica::{Launcher, Replica};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use weft_api::Spec;
use weft_api::types::WorkloadSpec;
use weft_control::hub::Hub;

/// (namespace, name) → (version of the pod template, spec).
pub type Desired = BTreeMap<(String, String), (String, WorkloadSpec)>;

/// The workloads a config asks for. The version covers everything but
/// `replicas`, so scaling does not restart anything.
pub fn desired(resources: &[weft_api::Resource]) -> Desired {
    resources
        .iter()
        .filter_map(|r| {
            let Spec::Workload(w) = &r.spec else { return None };
            let template = WorkloadSpec { replicas: None, ..w.clone() };
            let version = format!("{template:?}{:?}", r.meta.annotations);
            Some(((r.namespace().to_owned(), r.name().to_owned()), (version, w.clone())))
        })
        .collect()
}

/// Waits until `r` serves, is registered, and every proxy has the config
/// that includes it.
async fn wait_in_service(r: &mut Replica, hub: &Hub, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if r.ready().await && hub.registrations().iter().any(|(_, i)| i.address == r.ip) {
            let version = hub.snapshot().version;
            if hub.proxies().iter().all(|p| p.synced >= version) {
                return Ok(());
            }
        }
        for p in [&mut r.app, &mut r.sidecar] {
            if let Ok(Some(status)) = p.child.try_wait() {
                anyhow::bail!("{} exited while starting ({status})", p.name);
            }
        }
        if Instant::now() > deadline {
            anyhow::bail!("{} not in service after {}s", r.name, timeout.as_secs());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Makes the running replicas match `after` (what ran matched `before`).
/// A replica that does not come up is stopped and the old ones are kept:
/// a bad edit costs no capacity.
pub async fn apply(
    launcher: &mut Launcher,
    hub: &Hub,
    replicas: &mut Vec<Replica>,
    before: &Desired,
    after: &Desired,
    timeout: Duration,
    grace: Duration,
) {
    for (key, (version, spec)) in after {
        let (ns, name) = key;
        let n = spec.replicas.unwrap_or(1);
        let mut mine: Vec<usize> = (0..replicas.len()).filter(|i| replicas[*i].workload == *key).collect();
        let changed = before.get(key).is_some_and(|(v, _)| v != version);
        if changed {
            for (i, slot) in mine.iter().copied().enumerate().take(n as usize) {
                let started = launcher.start(name, ns, spec, i as u32, n);
                let mut fresh = match started {
                    Ok(r) => r,
                    Err(e) => {
                        eprintln!("rollout of {ns}/{name} stopped: {e:#}; the running replicas are kept");
                        break;
                    }
                };
                if let Err(e) = wait_in_service(&mut fresh, hub, timeout).await {
                    eprintln!("rollout of {ns}/{name} stopped: {e:#}; the running replicas are kept");
                    fresh.retire(grace).await;
                    break;
                }
                let mut old = std::mem::replace(&mut replicas[slot], fresh);
                old.retire(grace).await;
                eprintln!("rolled {} (replica {} of {n})", replicas[slot].name, i + 1);
            }
        }
        // Scale down from the last replica, or up.
        while mine.len() > n as usize {
            let slot = mine.pop().expect("non-empty");
            let mut r = replicas.remove(slot);
            r.retire(grace).await;
        }
        for i in mine.len() as u32..n {
            match launcher.start(name, ns, spec, i, n) {
                Ok(mut r) => match wait_in_service(&mut r, hub, timeout).await {
                    Ok(()) => replicas.push(r),
                    Err(e) => {
                        eprintln!("{ns}/{name}: {e:#}");
                        r.retire(grace).await;
                    }
                },
                Err(e) => eprintln!("{ns}/{name}: {e:#}"),
            }
        }
    }
    // Workloads no longer in the folder.
    let mut i = 0;
    while i < replicas.len() {
        if after.contains_key(&replicas[i].workload) {
            i += 1;
        } else {
            let mut r = replicas.remove(i);
            eprintln!("stopping {} (its Workload was removed)", r.name);
            r.retire(grace).await;
        }
    }
}
