//! VirtualService `fault` as Envoy's fault filter, per route (as Istio
//! writes it): a delay and/or an abort, each applied to a percentage of
//! requests. The listener carries the filter with an empty config; the
//! route's config is what takes effect.

use super::routes::fraction;
use envoy_types::pb::envoy::extensions::filters::common::fault::v3::{FaultDelay, fault_delay};
use envoy_types::pb::envoy::extensions::filters::http::fault::v3::{FaultAbort, HttpFault, fault_abort};
use envoy_types::pb::google::protobuf::Any;
use envoy_types::util::pack_any;
use weft_api::types::{HttpFaultInjection, Percent};

pub const FILTER: &str = "envoy.filters.http.fault";

/// The empty filter config the HTTP connection manager carries.
pub fn filter_config() -> Any {
    pack_any(HttpFault::default())
}

/// The route's fault config, if the rule has one.
pub fn per_route(f: Option<&HttpFaultInjection>) -> Option<(String, Any)> {
    let f = f?;
    let delay = f.delay.as_ref().and_then(|d| {
        let fixed = d.fixed_delay.or(d.exponential_delay)?;
        Some(FaultDelay {
            // `percent` is the deprecated integer form.
            percentage: Some(fraction(d.percentage.or(d.percent.map(|v| Percent { value: v as f64 })))),
            fault_delay_secifier: Some(fault_delay::FaultDelaySecifier::FixedDelay(super::routes::pb_duration(
                fixed.0,
            ))),
        })
    });
    let abort = f.abort.as_ref().and_then(|a| {
        let error_type = match (a.http_status, &a.grpc_status) {
            (Some(s), _) => fault_abort::ErrorType::HttpStatus(s as u32),
            (None, Some(name)) => {
                let code = weft_api::types::GRPC_STATUS_CODES
                    .iter()
                    .position(|c| c.eq_ignore_ascii_case(name))
                    .or(name.parse().ok())?;
                fault_abort::ErrorType::GrpcStatus(code as u32)
            }
            _ => return None,
        };
        Some(FaultAbort {
            percentage: Some(fraction(a.percentage)),
            error_type: Some(error_type),
            ..Default::default()
        })
    });
    if delay.is_none() && abort.is_none() {
        return None;
    }
    Some((FILTER.to_owned(), pack_any(HttpFault { delay, abort, ..Default::default() })))
}
