//! Keeping the replicas running: an app or sidecar that exits is reaped and
//! its exit logged; what is left of its replica is stopped (the sidecar
//! deregisters the instance as it drains) and the replica is started again
//! after a backoff. A replica that keeps crashing makes `weft up` give up.

use super::GatewayProc;
use super::replica::{Launcher, Replica};
use super::rollout::{Desired, start_in_service};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use weft_control::hub::Hub;

/// Restarts allowed within `WINDOW` before `weft up` gives up on a replica.
const MAX_RESTARTS: usize = 5;
const WINDOW: Duration = Duration::from_secs(120);

/// A replica waiting to be started again.
struct Pending {
    workload: (String, String),
    index: u32,
    at: Instant,
}

#[derive(Default)]
pub struct Supervisor {
    /// Replica name to the times it was restarted within `WINDOW`.
    restarts: BTreeMap<String, Vec<Instant>>,
    /// Replica name to when it starts again.
    pending: BTreeMap<String, Pending>,
    /// Gateway name to when it starts again.
    pending_gateways: BTreeMap<String, Instant>,
}

impl Supervisor {
    /// Counts a restart of `name`; Err once it crashed too often. Returns
    /// the backoff before the next start.
    fn restarted(&mut self, name: &str, what: &str) -> anyhow::Result<Duration> {
        let now = Instant::now();
        let times = self.restarts.entry(name.to_owned()).or_default();
        times.retain(|t| now.duration_since(*t) < WINDOW);
        times.push(now);
        if times.len() > MAX_RESTARTS {
            anyhow::bail!(
                "{what}; it crashed {} times within {} s, so weft up gives up (see its output above)",
                times.len(),
                WINDOW.as_secs()
            );
        }
        Ok(Duration::from_secs(1 << (times.len() - 1).min(5)))
    }

    /// Reaps and logs a gateway's exit and starts it again once its backoff ended.
    pub fn check_gateways(&mut self, gateways: &mut [GatewayProc], exe: &std::path::Path) -> anyhow::Result<bool> {
        let mut changed = false;
        for g in gateways.iter_mut() {
            let key = format!("gateway {}", g.proc.name);
            if let Some(at) = self.pending_gateways.get(&key) {
                if *at <= Instant::now() {
                    self.pending_gateways.remove(&key);
                    g.respawn(exe)?;
                    eprintln!("restarted {key}");
                    changed = true;
                }
                continue;
            }
            if let Ok(Some(status)) = g.proc.child.try_wait() {
                let what = format!("{key} exited ({status})");
                let backoff = self.restarted(&key, &what)?;
                eprintln!("{what}; restarting it in {} s", backoff.as_secs());
                self.pending_gateways.insert(key, Instant::now() + backoff);
            }
        }
        Ok(changed)
    }

    /// One round: reaps exits, stops what is left of those replicas, and
    /// starts those whose backoff ended. Ok(true) when the set changed;
    /// Err when a replica crashed too often to go on.
    pub async fn check(
        &mut self,
        launcher: &mut Launcher,
        hub: &Hub,
        replicas: &mut Vec<Replica>,
        applied: &Desired,
        timeout: Duration,
        grace: Duration,
    ) -> anyhow::Result<bool> {
        let mut changed = false;
        let mut i = 0;
        while i < replicas.len() {
            let r = &mut replicas[i];
            let mut exits = Vec::new();
            for p in [&mut r.app, &mut r.sidecar] {
                if let Ok(Some(status)) = p.child.try_wait() {
                    exits.push(format!("{} exited ({status})", p.name));
                }
            }
            if exits.is_empty() {
                i += 1;
                continue;
            }
            let mut r = replicas.remove(i);
            changed = true;
            let now = Instant::now();
            let backoff = match self.restarted(&r.name, &exits.join(", ")) {
                Ok(b) => b,
                Err(e) => {
                    r.retire(grace).await;
                    return Err(e);
                }
            };
            eprintln!("{}; restarting replica {} in {} s", exits.join(", "), r.name, backoff.as_secs());
            // The sidecar leaves the registry as it drains; the app is stopped.
            r.retire(grace).await;
            self.pending
                .insert(r.name.clone(), Pending { workload: r.workload.clone(), index: r.index, at: now + backoff });
        }
        let due: Vec<String> =
            self.pending.iter().filter(|(_, p)| p.at <= Instant::now()).map(|(n, _)| n.clone()).collect();
        for name in due {
            let Some(p) = self.pending.remove(&name) else { continue };
            // A Workload removed or scaled down meanwhile is not started again.
            let Some(w) = applied.get(&p.workload).filter(|w| p.index < w.replicas) else { continue };
            match start_in_service(launcher, hub, &p.workload, &w.template, p.index, w.replicas, timeout, grace).await {
                Some(r) => {
                    eprintln!("restarted {}", r.name);
                    replicas.push(r);
                    changed = true;
                }
                None => {
                    let backoff = self.restarted(&name, &format!("replica {name} did not come back"))?;
                    self.pending.insert(name, Pending { at: Instant::now() + backoff, ..p });
                }
            }
        }
        Ok(changed)
    }
}
