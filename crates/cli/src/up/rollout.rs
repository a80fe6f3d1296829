//! Applying an edited folder to the running processes, as a Deployment
//! rollout would: a `Workload` whose spec or annotations changed is
//! replaced replica by replica (surge one: the new replica is ready,
//! registered and known to every proxy before the old one drains), so
//! callers never lose a request. Changing only `replicas` scales without
//! restarting; new workloads start, removed ones stop.
//!
//! `kubectl rollout restart` works by editing an annotation; here any
//! annotation edit (e.g. `weft.dev/restartedAt: "2"`) does the same.

use super::replica::{Launcher, Replica};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};
use weft_api::Spec;
use weft_api::types::{Labels, WorkloadSpec};
use weft_control::hub::Hub;

/// What one Workload asks for. A change to the template (the spec but
/// `replicas`, and the annotations) restarts; a change of `replicas` scales.
#[derive(PartialEq)]
pub struct Wanted {
    pub template: WorkloadSpec,
    annotations: Labels,
    pub replicas: u32,
}

/// (namespace, name) → what that Workload asks for.
pub type Desired = BTreeMap<(String, String), Wanted>;

/// The workloads a config asks for.
pub fn desired(resources: &[weft_api::Resource]) -> Desired {
    resources
        .iter()
        .filter_map(|r| {
            let Spec::Workload(w) = &r.spec else { return None };
            let wanted = Wanted {
                template: WorkloadSpec { replicas: None, ..w.clone() },
                annotations: r.meta.annotations.clone(),
                replicas: w.replicas.unwrap_or(1),
            };
            Some(((r.namespace().to_owned(), r.name().to_owned()), wanted))
        })
        .collect()
}

/// How long a rollout waits for any one proxy to apply the config that
/// holds a new replica. A proxy that takes longer (stopped, wedged, a
/// client that never ACKs) is named and not waited for again until it
/// catches up: one silent proxy must not hold every rollout.
const PROXY_SYNC_TIMEOUT: Duration = Duration::from_secs(10);

/// Waits until `r` serves, is registered, and every proxy has the config
/// that includes it (each within `PROXY_SYNC_TIMEOUT`).
async fn wait_in_service(
    r: &mut Replica,
    hub: &Hub,
    stalled: &mut BTreeSet<String>,
    timeout: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    let version = loop {
        let snap = hub.snapshot();
        if r.ready().await && snap.instances.iter().any(|i| i.address == r.ip) {
            break snap.version;
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
    };
    let sync_deadline = Instant::now() + PROXY_SYNC_TIMEOUT;
    let mut named = false;
    loop {
        let proxies = hub.proxies();
        // One that caught up is waited for again next time.
        stalled.retain(|id| proxies.iter().any(|p| p.id == *id && p.synced < version));
        let behind: Vec<_> = proxies.iter().filter(|p| p.synced < version && !stalled.contains(&p.id)).collect();
        if behind.is_empty() {
            return Ok(());
        }
        let waited = PROXY_SYNC_TIMEOUT - sync_deadline.saturating_duration_since(Instant::now());
        if !named && waited > Duration::from_secs(2) {
            named = true;
            for p in &behind {
                eprintln!(
                    "{}: waiting for proxy {} to apply config version {version} (it has {})",
                    r.name, p.id, p.synced
                );
            }
        }
        if Instant::now() > sync_deadline {
            for p in behind {
                let nack = p.last_nack.as_deref().map(|n| format!("; its last NACK: {n}")).unwrap_or_default();
                eprintln!(
                    "warning: proxy {} did not apply config version {version} within {}s (it has {}{nack}); \
                     the rollout goes on without it and will not wait for it again until it catches up",
                    p.id,
                    PROXY_SYNC_TIMEOUT.as_secs(),
                    p.synced
                );
                stalled.insert(p.id.clone());
            }
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Starts replica `i` of `n` and waits until it is in service; on failure
/// says why and how to go on, and leaves nothing running.
#[allow(clippy::too_many_arguments)]
pub async fn start_in_service(
    launcher: &mut Launcher,
    hub: &Hub,
    (ns, name): &(String, String),
    spec: &WorkloadSpec,
    i: u32,
    n: u32,
    timeout: Duration,
    grace: Duration,
) -> Option<Replica> {
    let result = match launcher.start(name, ns, spec, i, n) {
        Ok(mut r) => match wait_in_service(&mut r, hub, &mut launcher.stalled, timeout).await {
            Ok(()) => return Some(r),
            Err(e) => {
                r.retire(grace).await;
                e
            }
        },
        Err(e) => e,
    };
    eprintln!(
        "Workload {ns}/{name}: replica {} of {n} did not come up: {result:#}\n  fix the Workload in the folder and save it again to retry (a replica that started printed its output above)",
        i + 1
    );
    None
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
    for (key, w) in after {
        let (ns, name) = key;
        let (spec, n) = (&w.template, w.replicas);
        let mut mine: Vec<usize> = (0..replicas.len()).filter(|i| replicas[*i].workload == *key).collect();
        let changed = before.get(key).is_some_and(|b| b.template != w.template || b.annotations != w.annotations);
        if changed {
            for (i, slot) in mine.iter().copied().enumerate().take(n as usize) {
                let Some(fresh) = start_in_service(launcher, hub, key, spec, i as u32, n, timeout, grace).await else {
                    eprintln!("rollout of {ns}/{name} stopped; the running replicas are kept");
                    break;
                };
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
            if let Some(r) = start_in_service(launcher, hub, key, spec, i, n, timeout, grace).await {
                replicas.push(r);
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
