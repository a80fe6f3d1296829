//! Active health check settings (Envoy's `health_checks`): what to probe,
//! how often, and how many results in a row change a host's state. The
//! checker runs in `upstream::health::active`.

use envoy_types::pb::envoy::config::core::v3::{HealthCheck, health_check};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq)]
pub enum Probe {
    /// GET `path` with Host `host`; healthy when the status is in one of
    /// the half-open ranges `[start, end)`.
    Http {
        path: String,
        host: String,
        expected: Vec<(u16, u16)>,
    },
    Tcp,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HealthCheckCfg {
    pub interval: Duration,
    pub jitter: Duration,
    pub timeout: Duration,
    pub healthy_threshold: u32,
    pub unhealthy_threshold: u32,
    pub probe: Probe,
}

fn dur(d: Option<&envoy_types::pb::google::protobuf::Duration>) -> Option<Duration> {
    d.map(super::duration)
}

impl HealthCheckCfg {
    /// The first HTTP or TCP check of a cluster; `host` is the Host header
    /// when the check names none.
    pub fn from_proto(hc: &HealthCheck, host: &str) -> Result<Self, String> {
        let probe = match &hc.health_checker {
            Some(health_check::HealthChecker::HttpHealthCheck(h)) => {
                let mut expected: Vec<(u16, u16)> = h
                    .expected_statuses
                    .iter()
                    .map(|r| (r.start.clamp(100, 600) as u16, r.end.clamp(100, 600) as u16))
                    .filter(|(a, b)| a < b)
                    .collect();
                if expected.is_empty() {
                    expected.push((200, 201)); // Envoy: only 200 unless told
                }
                if !h.path.starts_with('/') {
                    return Err(format!("health check path {:?} must start with '/'", h.path));
                }
                let host = if h.host.is_empty() { host.to_owned() } else { h.host.clone() };
                Probe::Http { path: h.path.clone(), host, expected }
            }
            Some(health_check::HealthChecker::TcpHealthCheck(_)) => Probe::Tcp,
            _ => return Err("only HTTP and TCP health checks are supported".into()),
        };
        let interval = dur(hc.interval.as_ref()).ok_or("health check needs an interval")?;
        let timeout = dur(hc.timeout.as_ref()).ok_or("health check needs a timeout")?;
        Ok(HealthCheckCfg {
            interval: interval.max(Duration::from_millis(10)),
            jitter: dur(hc.interval_jitter.as_ref()).unwrap_or_default(),
            timeout,
            healthy_threshold: hc.healthy_threshold.as_ref().map_or(1, |v| v.value.max(1)),
            unhealthy_threshold: hc.unhealthy_threshold.as_ref().map_or(1, |v| v.value.max(1)),
            probe,
        })
    }
}
