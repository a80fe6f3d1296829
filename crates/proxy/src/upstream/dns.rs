//! Host names of STRICT_DNS and LOGICAL_DNS clusters, resolved off the
//! config path: a cluster is built from the addresses already known
//! (`DnsCache`, shared by its versions), and its resolver task
//! (`super::watch`) looks the names up again every refresh interval
//! (Envoy's `dns_refresh_rate`, 5 s by default), rebuilding the endpoint
//! set when the answer changes. A slow or dead resolver delays only the
//! cluster that needs it, never the xDS task.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

/// How long one lookup may take before it counts as an empty answer.
pub const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);

/// The last answer for each (name, port), kept across config versions.
#[derive(Default)]
pub struct DnsCache {
    answers: Mutex<HashMap<(String, u16), Vec<IpAddr>>>,
}

impl DnsCache {
    /// The addresses last resolved for `host`, if it ever was.
    pub fn get(&self, host: &str, port: u16) -> Option<Vec<IpAddr>> {
        self.answers.lock().get(&(host.to_owned(), port)).cloned()
    }

    /// Records an answer; true when it differs from the last one.
    pub fn set(&self, host: &str, port: u16, ips: Vec<IpAddr>) -> bool {
        let mut answers = self.answers.lock();
        answers.insert((host.to_owned(), port), ips.clone()).is_none_or(|old| old != ips)
    }
}

/// Addresses of `host`, an endpoint of `cluster`, IPv4 first when it has
/// any (Envoy's V4_PREFERRED); empty when it does not resolve in
/// `LOOKUP_TIMEOUT`. The system resolver runs on tokio's blocking pool.
pub async fn resolve(cluster: &str, host: &str, port: u16) -> Vec<IpAddr> {
    let lookup = tokio::net::lookup_host((host, port));
    let all: Vec<IpAddr> = match tokio::time::timeout(LOOKUP_TIMEOUT, lookup).await {
        Ok(Ok(addrs)) => addrs.map(|a| a.ip()).collect(),
        Ok(Err(e)) => {
            tracing::warn!(cluster, host, error = %e, "cannot resolve endpoint; it is left out until it resolves (check the ServiceEntry's endpoint address and this machine's resolver)");
            Vec::new()
        }
        Err(_) => {
            tracing::warn!(cluster, host, timeout = ?LOOKUP_TIMEOUT, "resolving endpoint timed out; it is left out until it resolves (check this machine's resolver)");
            Vec::new()
        }
    };
    let v4: Vec<_> = all.iter().copied().filter(|ip| ip.is_ipv4()).collect();
    if v4.is_empty() { all } else { v4 }
}
