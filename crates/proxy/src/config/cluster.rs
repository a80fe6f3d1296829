//! A cluster's settings compiled from an Envoy `Cluster`: its protocol,
//! timeouts, balancing, health and circuit-breaker settings. Data only: the
//! runtime side (endpoints, pools, health state) is `upstream::Cluster`.

use super::balance::{LbKind, SetPolicy, Warmup};
use super::health_check::HealthCheckCfg;
use super::limits::Thresholds;
use super::outlier::OutlierCfg;
use super::{CompileError, duration};
use crate::names::Interner;
use envoy_types::pb::envoy::config::cluster::v3::{Cluster, cluster};
use envoy_types::pb::envoy::extensions::upstreams::http::v3::{HttpProtocolOptions, http_protocol_options};
use prost::Message;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Http1,
    Http2,
    /// Whatever the downstream spoke (inbound clusters).
    Downstream,
}

/// How a cluster's host names become addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dns {
    /// Every address a name resolves to is a host (STRICT_DNS).
    Strict,
    /// The first address only (LOGICAL_DNS).
    Logical,
}

/// How long and how much a connection may be used: from the cluster's
/// `idleTimeout`, `maxRequestsPerConnection` and `maxConnectionDuration`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ConnPolicy {
    /// Idle connections older than this are closed rather than reused
    /// (60 s unless the cluster says otherwise).
    pub idle_timeout: Duration,
    pub max_requests: Option<u32>,
    pub max_age: Option<Duration>,
    /// TCP keepalive on upstream connections (Envoy's
    /// `upstream_connection_options.tcp_keepalive`); None: the system's.
    pub keepalive: Option<Keepalive>,
}

impl Default for ConnPolicy {
    fn default() -> Self {
        ConnPolicy { idle_timeout: Duration::from_secs(60), max_requests: None, max_age: None, keepalive: None }
    }
}

/// Keepalive probes on a connection: after `time` idle, every `interval`,
/// `probes` unanswered ones closing it (each unset: the system's value).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keepalive {
    pub time: Option<Duration>,
    pub interval: Option<Duration>,
    pub probes: Option<u32>,
}

impl Keepalive {
    fn from_proto(c: &Cluster) -> Option<Keepalive> {
        let k = c.upstream_connection_options.as_ref()?.tcp_keepalive.as_ref()?;
        let secs = |v: Option<&envoy_types::pb::google::protobuf::UInt32Value>| {
            v.map(|v| Duration::from_secs(v.value.into())).filter(|d| !d.is_zero())
        };
        Some(Keepalive {
            time: secs(k.keepalive_time.as_ref()),
            interval: secs(k.keepalive_interval.as_ref()),
            probes: k.keepalive_probes.as_ref().map(|v| v.value).filter(|v| *v > 0),
        })
    }

    /// Turns keepalive on for `stream` with these settings (best effort: a
    /// socket that refuses keeps the system's).
    pub fn apply(&self, stream: &tokio::net::TcpStream) {
        let mut k = socket2::TcpKeepalive::new();
        if let Some(t) = self.time {
            k = k.with_time(t);
        }
        if let Some(i) = self.interval {
            k = k.with_interval(i);
        }
        if let Some(n) = self.probes {
            k = k.with_retries(n);
        }
        if let Err(e) = socket2::SockRef::from(stream).set_tcp_keepalive(&k) {
            tracing::debug!(error = %e, "could not set TCP keepalive on an upstream connection");
        }
    }
}

impl ConnPolicy {
    /// Whether a connection opened at `born` that has served `served`
    /// requests may take another.
    pub fn usable(&self, born: Instant, served: u32) -> bool {
        self.max_requests.is_none_or(|m| served < m) && self.max_age.is_none_or(|a| born.elapsed() < a)
    }
}

#[derive(Debug, Clone)]
pub struct ClusterSettings {
    pub name: Arc<str>,
    /// Destination service (FQDN) for telemetry, from the Istio-style name.
    pub service: Arc<str>,
    pub service_name: Arc<str>,
    pub service_namespace: Arc<str>,
    pub protocol: Protocol,
    pub connect_timeout: Duration,
    /// Balancer, panic threshold, locality weights, slow start.
    pub policy: SetPolicy,
    pub dns: Option<Dns>,
    /// How often a DNS cluster's names are resolved again (Envoy's
    /// `dns_refresh_rate`, 5 s unless set).
    pub dns_refresh: Duration,
    /// The EDS name its endpoints come under, if it uses EDS.
    pub eds: Option<Arc<str>>,
    /// Boxed: most clusters have none of these, and a sidecar holds thousands.
    pub outlier: Option<Box<OutlierCfg>>,
    pub health_check: Option<Box<HealthCheckCfg>>,
    /// Circuit breakers; None when every limit is unlimited.
    pub limits: Option<Box<Thresholds>>,
    pub conn_policy: ConnPolicy,
    /// Plaintext, mesh mutual TLS or TLS origination, per host.
    pub tls: super::upstream_tls::ClusterTls,
}

fn http_options(c: &Cluster) -> Option<HttpProtocolOptions> {
    let any = c.typed_extension_protocol_options.get("envoy.extensions.upstreams.http.v3.HttpProtocolOptions")?;
    HttpProtocolOptions::decode(any.value.as_slice()).ok()
}

fn protocol(c: &Cluster, opts: Option<&HttpProtocolOptions>) -> Protocol {
    use http_protocol_options::{UpstreamProtocolOptions as U, explicit_http_config::ProtocolConfig as P};
    #[allow(deprecated)]
    if c.http2_protocol_options.is_some() {
        return Protocol::Http2;
    }
    match opts.and_then(|o| o.upstream_protocol_options.as_ref()) {
        Some(U::ExplicitHttpConfig(e)) => match e.protocol_config {
            Some(P::Http2ProtocolOptions(_)) => Protocol::Http2,
            _ => Protocol::Http1,
        },
        Some(U::UseDownstreamProtocolConfig(_)) | Some(U::AutoConfig(_)) => Protocol::Downstream,
        None => Protocol::Http1,
    }
}

fn conn_policy(c: &Cluster, opts: Option<&HttpProtocolOptions>) -> ConnPolicy {
    let common = opts.and_then(|o| o.common_http_protocol_options.as_ref());
    let mut p = ConnPolicy { keepalive: Keepalive::from_proto(c), ..ConnPolicy::default() };
    if let Some(c) = common {
        if let Some(d) = c.idle_timeout.as_ref().map(duration).filter(|d| !d.is_zero()) {
            p.idle_timeout = d;
        }
        p.max_requests = c.max_requests_per_connection.as_ref().map(|v| v.value).filter(|v| *v > 0);
        p.max_age = c.max_connection_duration.as_ref().map(duration).filter(|d| !d.is_zero());
    }
    p
}

/// Slow start, from the round robin or least request config (as Istio
/// writes `warmup`); hash-based balancers have none.
fn warmup(c: &Cluster) -> Option<Warmup> {
    let ss = match &c.lb_config {
        Some(cluster::LbConfig::RoundRobinLbConfig(r)) => r.slow_start_config.as_ref(),
        Some(cluster::LbConfig::LeastRequestLbConfig(l)) => l.slow_start_config.as_ref(),
        _ => None,
    }?;
    let window = ss.slow_start_window.as_ref().map(duration).filter(|d| !d.is_zero())?;
    Some(Warmup {
        window,
        // Envoy's defaults: 10% and 1.0.
        min_factor: ss.min_weight_percent.as_ref().map_or(0.1, |p| p.value / 100.0),
        aggression: ss.aggression.as_ref().map_or(1.0, |a| a.default_value),
    })
}

fn lb_kind(c: &Cluster) -> LbKind {
    use cluster::LbPolicy as P;
    match P::try_from(c.lb_policy).unwrap_or(P::RoundRobin) {
        P::Random => LbKind::Random,
        P::LeastRequest => LbKind::LeastRequest,
        P::RingHash => LbKind::RingHash {
            min_ring: match &c.lb_config {
                Some(cluster::LbConfig::RingHashLbConfig(r)) => {
                    r.minimum_ring_size.as_ref().map_or(1024, |v| v.value as usize)
                }
                _ => 1024,
            }
            .min(1 << 20),
        },
        P::Maglev => LbKind::Maglev {
            table_size: match &c.lb_config {
                Some(cluster::LbConfig::MaglevLbConfig(m)) => m.table_size.as_ref().map_or(65537, |v| v.value as usize),
                _ => 65537,
            }
            .min(5_000_011),
        },
        _ => LbKind::RoundRobin,
    }
}

/// Envoy's `dns_refresh_rate` (5 s unless set). Deprecated in favour of
/// the DNS cluster extension's, and still what Istio writes.
#[allow(deprecated)]
fn dns_refresh(c: &Cluster) -> Duration {
    if c.respect_dns_ttl {
        tracing::warn!(cluster = %c.name, "respect_dns_ttl is not applied: the system resolver gives no TTL, so names are resolved again every dns_refresh_rate");
    }
    c.dns_refresh_rate.as_ref().map(duration).filter(|d| !d.is_zero()).unwrap_or(Duration::from_secs(5))
}

/// The first of the cluster's `istio.services` metadata: host, name, namespace.
fn istio_service(c: &Cluster) -> Option<(String, String, String)> {
    use envoy_types::pb::google::protobuf::value::Kind;
    let services = c.metadata.as_ref()?.filter_metadata.get("istio")?.fields.get("services")?;
    let Some(Kind::ListValue(list)) = &services.kind else { return None };
    let Some(Kind::StructValue(first)) = &list.values.first()?.kind else { return None };
    let field = |k: &str| match &first.fields.get(k)?.kind {
        Some(Kind::StringValue(v)) => Some(v.clone()),
        _ => None,
    };
    Some((field("host")?, field("name")?, field("namespace")?))
}

impl ClusterSettings {
    pub fn from_proto(c: &Cluster, names: &Interner) -> Result<Self, CompileError> {
        use cluster::DiscoveryType as D;
        let dns = match c.cluster_discovery_type {
            Some(cluster::ClusterDiscoveryType::Type(t)) if t == D::StrictDns as i32 => Some(Dns::Strict),
            Some(cluster::ClusterDiscoveryType::Type(t)) if t == D::LogicalDns as i32 => Some(Dns::Logical),
            _ => None,
        };
        let kind = lb_kind(c);
        // Istio's `istio.services` metadata names it (an inbound cluster's
        // services); else the name does: outbound|port|subset|fqdn.
        let (service, service_name, service_namespace) = match istio_service(c) {
            Some(named) => named,
            None => {
                let parts: Vec<&str> = c.name.split('|').collect();
                let service = if parts.len() == 4 && !parts[3].is_empty() { parts[3] } else { c.name.as_str() };
                let mut labels = service.split('.');
                let (name, ns) = (labels.next().unwrap_or(service), labels.next().unwrap_or("unknown"));
                (service.to_owned(), name.to_owned(), ns.to_owned())
            }
        };
        let (service, service_name, service_namespace) =
            (service.as_str(), service_name.as_str(), service_namespace.as_str());
        let health_check = match c.health_checks.first() {
            Some(hc) => Some(Box::new(
                HealthCheckCfg::from_proto(hc, service)
                    .map_err(|e| CompileError::new(format!("cluster {}: {e}", c.name)))?,
            )),
            None => None,
        };
        let opts = http_options(c);
        let policy = SetPolicy {
            kind,
            // Envoy's default is 50%.
            panic_threshold: c
                .common_lb_config
                .as_ref()
                .and_then(|l| l.healthy_panic_threshold.as_ref())
                .map_or(50, |p| p.value.clamp(0.0, 100.0) as u32),
            locality_weighted: matches!(
                c.common_lb_config.as_ref().and_then(|l| l.locality_config_specifier.as_ref()),
                Some(cluster::common_lb_config::LocalityConfigSpecifier::LocalityWeightedLbConfig(_))
            ),
            // Envoy ramps round robin and least request only.
            warmup: warmup(c).filter(|_| !matches!(kind, LbKind::RingHash { .. } | LbKind::Maglev { .. })),
        };
        Ok(ClusterSettings {
            eds: super::wire::eds_name(c).map(|n| names.get(&n)),
            name: names.get(&c.name),
            service: service.into(),
            service_name: service_name.into(),
            service_namespace: names.get(service_namespace),
            protocol: protocol(c, opts.as_ref()),
            limits: Thresholds::from_proto(c).map(Box::new),
            conn_policy: conn_policy(c, opts.as_ref()),
            tls: super::upstream_tls::ClusterTls::from_proto(c)
                .map_err(|e| CompileError::new(format!("cluster {}: {e}", c.name)))?,
            connect_timeout: c.connect_timeout.as_ref().map_or(Duration::from_secs(10), duration),
            policy,
            dns,
            dns_refresh: dns_refresh(c),
            outlier: c.outlier_detection.as_ref().map(|o| Box::new(OutlierCfg::from_proto(o))),
            health_check,
        })
    }
}
