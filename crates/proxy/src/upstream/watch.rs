//! What keeps a cluster's endpoint set current while it is in use: the
//! outcome each request reports (`report`), and per cluster version the
//! outlier sweep, the active health checker and the slow-start steps
//! (`watch`). Each task stops once its cluster version is dropped.

use super::cluster::Cluster;
use super::health::{HostHealth, Observation, active, outlier};
use std::sync::Arc;
use tokio::time::Instant;

/// Feeds one attempt's outcome to the cluster's outlier detector, ejecting
/// the host when a detector trips.
pub fn report(cluster: &Cluster, h: Option<&HostHealth>, obs: Observation) {
    let (Some(cfg), Some(h)) = (&cluster.settings.outlier, h) else { return };
    let Some(reason) = outlier::record(h, obs, cfg) else { return };
    let ejected = cluster.with_set(|set| outlier::eject(&set.endpoints, h, reason, Instant::now(), cfg)) == Some(true);
    if ejected {
        tracing::warn!(cluster = %cluster.name(), reason, times = h.ejection_count(), "host ejected");
    }
}

/// Starts the cluster's outlier sweep and health checker, if it has them;
/// each stops once this version of the cluster is dropped.
pub fn watch(cluster: &Arc<Cluster>) {
    let Ok(rt) = tokio::runtime::Handle::try_current() else { return };
    if let Some(cfg) = cluster.settings.outlier.clone() {
        let weak = Arc::downgrade(cluster);
        rt.spawn(async move {
            loop {
                tokio::time::sleep(cfg.interval).await;
                let Some(c) = weak.upgrade() else { return };
                let (out, back) =
                    c.with_set(|set| outlier::sweep(&set.endpoints, Instant::now(), &cfg)).unwrap_or((0, 0));
                if out + back > 0 {
                    tracing::info!(cluster = %c.name(), ejected = out, readmitted = back, "outlier sweep");
                }
            }
        });
    }
    if let Some(cfg) = cluster.settings.health_check.clone() {
        rt.spawn(active::run(Arc::downgrade(cluster), *cfg));
    }
    if let Some(w) = cluster.settings.policy.warmup {
        // Slow start: rebuild the balancer in 20 steps per window while a
        // host ramps up. Health changes rebuild on their own (`with_set`),
        // so a set that is not warming costs this loop one load.
        let step = (w.window / 20).clamp(std::time::Duration::from_millis(50), std::time::Duration::from_secs(5));
        let weak = Arc::downgrade(cluster);
        rt.spawn(async move {
            loop {
                tokio::time::sleep(step).await;
                let Some(c) = weak.upgrade() else { return };
                if c.built().is_some_and(|s| s.warming) {
                    c.refresh();
                }
            }
        });
    }
}
