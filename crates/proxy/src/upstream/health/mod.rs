//! Upstream host health: passive outlier detection (`outlier`) and active
//! health checks (`active`).
//!
//! The request path never reads health. A cluster with health configured
//! keeps its balancer built over the hosts that are available; when a host
//! changes state (ejected, readmitted, failing or passing its checks) the
//! cluster rebuilds its endpoint set (`Cluster::refresh`, `super::watch`), which is rare,
//! and the next pick sees the new set. What a request does feed back is
//! its outcome (`report`): a few atomic counters per attempt.
//!
//! State is kept per (cluster, address) in a registry that outlives config
//! versions, as Envoy keeps it per cluster host: an endpoint update or a
//! recompiled cluster keeps its hosts' ejections and check results.

pub mod active;
pub mod outlier;

/// The `user-agent` of active health probes, by which the destination
/// sidecar leaves them out of its request metrics.
pub const PROBE_USER_AGENT: &str = "weft-health-check";

use parking_lot::Mutex;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, AtomicU32, Ordering};
use std::sync::{Arc, Weak};
use tokio::time::Instant;

/// Why a host is unavailable: bits of `HostHealth::flags`. Names as in
/// Envoy's `/clusters` `health_flags`.
pub mod flag {

    pub const FAILED_OUTLIER_CHECK: u8 = 1;
    pub const FAILED_ACTIVE_HC: u8 = 2;
    /// New host of a cluster with active checks, not yet checked.
    pub const PENDING_ACTIVE_HC: u8 = 4;
}

/// What one attempt to a host came to, for outlier detection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observation {
    /// The host answered with this status (external origin); for TCP, a
    /// connection that opened counts as 200.
    Status(u16),
    /// Connect failure, reset or per-try timeout (local origin failure):
    /// the status the proxy answers for it.
    LocalFailure(u16),
}

#[derive(Debug, Default)]
pub struct HostHealth {
    /// `flag` bits; zero when available.
    flags: AtomicU8,
    pub(crate) consecutive_5xx: AtomicU32,
    pub(crate) consecutive_gateway: AtomicU32,
    pub(crate) consecutive_local: AtomicU32,
    /// Requests and failures since the last sweep (success-rate and
    /// failure-percentage detectors).
    pub(crate) window_total: AtomicU32,
    pub(crate) window_failed: AtomicU32,
    /// Times ejected; multiplies the ejection time, decays while healthy.
    pub(crate) ejections: AtomicU32,
    /// When the host was last ejected, readmitted or had its multiplier lowered.
    pub(crate) changed_at: Mutex<Option<Instant>>,
    /// Consecutive active check results (only the checker writes them).
    pub(crate) hc_passes: AtomicU32,
    pub(crate) hc_failures: AtomicU32,
    /// Why the host was last ejected or failed, for `/clusters`.
    pub(crate) reason: Mutex<&'static str>,
    /// When the host last became available (new, readmitted or passing its
    /// checks again): where its slow start begins.
    since: Mutex<Option<Instant>>,
}

impl HostHealth {
    pub fn flags(&self) -> u8 {
        self.flags.load(Ordering::Acquire)
    }

    pub fn available(&self) -> bool {
        self.flags() == 0
    }

    /// Sets or clears `bit`; true when that changed anything.
    pub(crate) fn set(&self, bit: u8, on: bool) -> bool {
        let old =
            if on { self.flags.fetch_or(bit, Ordering::AcqRel) } else { self.flags.fetch_and(!bit, Ordering::AcqRel) };
        if !on && old != 0 && old & !bit == 0 {
            *self.since.lock() = Some(Instant::now());
        }
        (old & bit != 0) != on
    }

    /// Since when the host is available; None while it is not.
    pub fn available_since(&self) -> Option<Instant> {
        if self.available() { *self.since.lock() } else { None }
    }

    pub fn ejection_count(&self) -> u32 {
        self.ejections.load(Ordering::Relaxed)
    }

    pub fn reason(&self) -> &'static str {
        *self.reason.lock()
    }

    /// Envoy's `/clusters` spelling: `healthy` or `/failed_outlier_check/...`.
    pub fn flags_text(&self) -> String {
        let f = self.flags();
        if f == 0 {
            return "healthy".into();
        }
        let mut s = String::new();
        for (bit, name) in [
            (flag::FAILED_ACTIVE_HC, "/failed_active_hc"),
            (flag::FAILED_OUTLIER_CHECK, "/failed_outlier_check"),
            (flag::PENDING_ACTIVE_HC, "/pending_active_hc"),
        ] {
            if f & bit != 0 {
                s.push_str(name);
            }
        }
        s
    }
}

/// How a cluster's hosts get health state: its name and the flags a host
/// seen for the first time starts with.
pub(crate) struct HealthKeys<'a> {
    pub cluster: &'a Arc<str>,
    pub initial: u8,
    /// Flags of checks the cluster no longer has, to clear.
    pub stale: u8,
}

/// A host of a cluster: (cluster name, address).
type HostKey = (Arc<str>, SocketAddr);

/// Health state by (cluster, address), shared across config versions.
#[derive(Default)]
pub struct HealthRegistry {
    /// With the map's size after its last purge.
    hosts: Mutex<(HashMap<HostKey, Weak<HostHealth>>, usize)>,
}

impl HealthRegistry {
    /// The state of `addr` in `cluster`; a host seen for the first time
    /// starts with `initial` flags. Called when an endpoint set is built
    /// (a cluster's first use, an update), never per request.
    pub fn get(&self, cluster: &Arc<str>, addr: SocketAddr, initial: u8) -> Arc<HostHealth> {
        let mut guard = self.hosts.lock();
        let (hosts, purged_at) = &mut *guard;
        let key = (cluster.clone(), addr);
        if let Some(h) = hosts.get(&key).and_then(Weak::upgrade) {
            return h;
        }
        crate::names::purge_dead(hosts, purged_at);
        let h = Arc::new(HostHealth {
            flags: AtomicU8::new(initial),
            reason: Mutex::new(""),
            since: Mutex::new(Some(Instant::now())),
            ..Default::default()
        });
        hosts.insert(key, Arc::downgrade(&h));
        h
    }
}
