//! Outlier detection settings (Envoy's `outlier_detection`, Istio's
//! `outlierDetection`), with Envoy's defaults for what is unset. The
//! detectors themselves run in `upstream::health::outlier`.

use envoy_types::pb::envoy::config::cluster::v3::OutlierDetection;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq)]
pub struct OutlierCfg {
    pub consecutive_5xx: u32,
    pub enforcing_5xx: u32,
    pub consecutive_gateway: u32,
    pub enforcing_gateway: u32,
    pub split_local: bool,
    pub consecutive_local: u32,
    pub enforcing_local: u32,
    pub interval: Duration,
    pub base_ejection: Duration,
    pub max_ejection: Duration,
    pub max_ejection_percent: u32,
    pub success_rate: SuccessRate,
    pub failure_percentage: FailurePercentage,
}

/// Hosts whose success rate falls below mean − factor × stdev are ejected.
#[derive(Debug, Clone, PartialEq)]
pub struct SuccessRate {
    pub enforcing: u32,
    pub minimum_hosts: usize,
    pub request_volume: u32,
    /// Divided by 1000, as in Envoy (1900 = 1.9).
    pub stdev_factor: u32,
}

/// Hosts failing at least `threshold` percent of their requests are ejected.
#[derive(Debug, Clone, PartialEq)]
pub struct FailurePercentage {
    pub threshold: u32,
    pub enforcing: u32,
    pub minimum_hosts: usize,
    pub request_volume: u32,
}

fn dur(d: Option<&envoy_types::pb::google::protobuf::Duration>, default: Duration) -> Duration {
    d.map_or(default, super::duration)
}

impl OutlierCfg {
    /// Envoy's defaults for every field left unset.
    pub fn from_proto(o: &OutlierDetection) -> Self {
        let u = |v: &Option<envoy_types::pb::google::protobuf::UInt32Value>, d: u32| v.as_ref().map_or(d, |v| v.value);
        let base_ejection = dur(o.base_ejection_time.as_ref(), Duration::from_secs(30));
        OutlierCfg {
            consecutive_5xx: u(&o.consecutive_5xx, 5),
            enforcing_5xx: u(&o.enforcing_consecutive_5xx, 100),
            consecutive_gateway: u(&o.consecutive_gateway_failure, 5),
            enforcing_gateway: u(&o.enforcing_consecutive_gateway_failure, 0),
            split_local: o.split_external_local_origin_errors,
            consecutive_local: u(&o.consecutive_local_origin_failure, 5),
            enforcing_local: u(&o.enforcing_consecutive_local_origin_failure, 100),
            interval: dur(o.interval.as_ref(), Duration::from_secs(10)).max(Duration::from_millis(10)),
            base_ejection,
            max_ejection: dur(o.max_ejection_time.as_ref(), Duration::from_secs(300)).max(base_ejection),
            max_ejection_percent: u(&o.max_ejection_percent, 10).min(100),
            success_rate: SuccessRate {
                enforcing: u(&o.enforcing_success_rate, 100),
                minimum_hosts: u(&o.success_rate_minimum_hosts, 5) as usize,
                request_volume: u(&o.success_rate_request_volume, 100),
                stdev_factor: u(&o.success_rate_stdev_factor, 1900),
            },
            failure_percentage: FailurePercentage {
                threshold: u(&o.failure_percentage_threshold, 85),
                enforcing: u(&o.enforcing_failure_percentage, 0),
                minimum_hosts: u(&o.failure_percentage_minimum_hosts, 5) as usize,
                request_volume: u(&o.failure_percentage_request_volume, 50),
            },
        }
    }
}
