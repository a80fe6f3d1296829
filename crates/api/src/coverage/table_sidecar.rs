//! The coverage table's rows for Istio's `Sidecar` (see `table.rs`).

use super::Support::*;
use super::{Field, row};

const SCOPE: &str = "sidecar_scope.rs::a_sidecar_resource_scopes_what_each_sidecar_reaches";
const NO_INGRESS: &str = "inbound traffic goes to the workload's own port; ingress listeners are not configured";
const NO_PASSTHROUGH: &str =
    "a host outside the registry or the egress hosts gets 404 (no route): passthrough is not served";

pub static SIDECAR: &[Field] = &[
    row("Sidecar", "spec", Applied(SCOPE)),
    row("Sidecar", "spec.workloadSelector", Applied(SCOPE)),
    row("Sidecar", "spec.workloadSelector.labels", Applied(SCOPE)),
    row("Sidecar", "spec.egress", Applied(SCOPE)),
    row("Sidecar", "spec.egress[].hosts", Applied(SCOPE)),
    row("Sidecar", "spec.egress[].port", NotApplied("the listener's hosts apply on every port")),
    row("Sidecar", "spec.egress[].bind", NotApplied("the sidecar binds its --listen-ip")),
    row("Sidecar", "spec.egress[].captureMode", NotApplied("weft captures no traffic: apps address their sidecar")),
    row("Sidecar", "spec.ingress", NotApplied(NO_INGRESS)),
    row("Sidecar", "spec.inboundConnectionPool", NotApplied("inbound connections are not pooled or limited")),
    row("Sidecar", "spec.outboundTrafficPolicy", Applied(SCOPE)),
    row("Sidecar", "spec.outboundTrafficPolicy.mode", Values(&["REGISTRY_ONLY"], NO_PASSTHROUGH)),
    row("Sidecar", "spec.outboundTrafficPolicy.egressProxy", NotApplied(NO_PASSTHROUGH)),
];
