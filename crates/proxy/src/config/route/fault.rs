//! Envoy's fault filter config on a route (`typed_per_filter_config`):
//! delay and abort, each for a fraction of requests.

use super::CompileError;
use crate::config::{duration, parts_per_million as ppm};
use envoy_types::pb::envoy::config::route::v3 as rt;
use envoy_types::pb::envoy::extensions::filters::common::fault::v3::fault_delay;
use envoy_types::pb::envoy::extensions::filters::http::fault::v3::{HttpFault, fault_abort};
use prost::Message;
use std::time::Duration;

pub const FILTER: &str = "envoy.filters.http.fault";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Abort {
    Http(u16),
    /// An HTTP 200 carrying this gRPC status, as Envoy answers.
    Grpc(u32),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// (delay, parts per million of requests).
    pub delay: Option<(Duration, u32)>,
    pub abort: Option<(Abort, u32)>,
}

/// The route's fault config, if it has one.
pub fn compile(r: &rt::Route) -> Result<Option<Fault>, CompileError> {
    let Some(any) = r.typed_per_filter_config.get(FILTER) else { return Ok(None) };
    let f = HttpFault::decode(any.value.as_slice())
        .map_err(|e| CompileError::new(format!("route {}: bad fault config: {e}", r.name)))?;
    let delay = match f.delay {
        Some(d) => match d.fault_delay_secifier {
            Some(fault_delay::FaultDelaySecifier::FixedDelay(t)) => Some((duration(&t), ppm(d.percentage.as_ref()))),
            _ => return Err(CompileError::new(format!("route {}: only fixed fault delays are supported", r.name))),
        },
        None => None,
    };
    let abort = match f.abort {
        Some(a) => {
            let kind = match a.error_type {
                Some(fault_abort::ErrorType::HttpStatus(s)) if (200..600).contains(&s) => Abort::Http(s as u16),
                Some(fault_abort::ErrorType::GrpcStatus(c)) => Abort::Grpc(c),
                _ => {
                    return Err(CompileError::new(format!(
                        "route {}: a fault abort needs an HTTP status (200-599) or a gRPC status",
                        r.name
                    )));
                }
            };
            Some((kind, ppm(a.percentage.as_ref())))
        }
        None => None,
    };
    Ok((delay.is_some() || abort.is_some()).then_some(Fault { delay, abort }))
}
