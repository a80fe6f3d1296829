//! Fault injection on a route, before forwarding (Envoy's fault filter):
//! a delay, then possibly an abort, each for its fraction of requests.

use super::error::{grpc_status, text};
use super::flags::Flags;
use super::outcome::{Dest, Outcome};
use crate::config::chance as hit;
use crate::config::route::Target;
use crate::config::route::fault::{Abort, Fault};
use crate::snapshot::Clusters;

/// What injection did: `Err` is the abort response; `Ok(true)` means the
/// request was delayed and goes on.
pub async fn inject(fault: &Fault, target: &Target, clusters: &Clusters) -> Result<bool, Outcome> {
    let mut delayed = false;
    if let Some((d, ppm)) = fault.delay
        && hit(ppm)
    {
        tokio::time::sleep(d).await;
        delayed = true;
    }
    if let Some((abort, ppm)) = fault.abort
        && hit(ppm)
    {
        let response = match abort {
            Abort::Http(status) => text(status, "fault filter abort"),
            // Trailers-only gRPC answer: HTTP 200 with the status in headers.
            Abort::Grpc(code) => grpc_status(code, "fault filter abort"),
        };
        let dest = match clusters.pick(target) {
            Ok(p) => Dest::cluster(p.cluster),
            Err(_) => Dest::unknown(),
        };
        return Err(Outcome { response, flags: Flags::FAULT_ABORT, dest, request_bytes: 0 });
    }
    Ok(delayed)
}
