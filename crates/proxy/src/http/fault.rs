//! Fault injection on a route, before forwarding (Envoy's fault filter):
//! a delay, then possibly an abort, each for its fraction of requests.

use super::outcome::{Dest, Outcome};
use super::respond::{error_response, flags, full};
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
            Abort::Http(status) => error_response(status, "fault filter abort"),
            Abort::Grpc(code) => {
                // Trailers-only gRPC answer: HTTP 200 with the status in headers.
                let mut r = http::Response::new(full(bytes::Bytes::new()));
                let h = r.headers_mut();
                h.insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/grpc"));
                h.insert("grpc-status", code.into());
                h.insert("grpc-message", http::HeaderValue::from_static("fault filter abort"));
                r
            }
        };
        let dest = match clusters.pick(target) {
            Ok(p) => Dest::cluster(p.cluster),
            Err(_) => Dest::unknown(),
        };
        return Err(Outcome { response, flags: flags::FAULT_ABORT, dest, request_bytes: 0 });
    }
    Ok(delayed)
}
