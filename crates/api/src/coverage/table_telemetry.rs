//! The coverage table's rows for Istio's `Telemetry` (see `table.rs`).

use super::Support::*;
use super::{Field, row};

const LOGS: &str = "access_log.rs::telemetry_turns_access_logs_on_by_scope_and_filter";
const NO_TARGET_REFS: &str = "Telemetry attaches to workloads by `selector`, or to a whole namespace without one: \
     one with only target references applies to no workload";

pub static TELEMETRY: &[Field] = &[
    row("Telemetry", "spec", Applied(LOGS)),
    row("Telemetry", "spec.selector", Applied(LOGS)),
    row("Telemetry", "spec.selector.matchLabels", Applied(LOGS)),
    row("Telemetry", "spec.targetRef", NotApplied(NO_TARGET_REFS)),
    row("Telemetry", "spec.targetRefs", NotApplied(NO_TARGET_REFS)),
    row("Telemetry", "spec.accessLogging", Applied(LOGS)),
    row("Telemetry", "spec.accessLogging[].providers", Applied(LOGS)),
    row("Telemetry", "spec.accessLogging[].providers[].name", Applied(LOGS)),
    row("Telemetry", "spec.accessLogging[].disabled", Applied(LOGS)),
    row("Telemetry", "spec.accessLogging[].filter", Applied(LOGS)),
    row("Telemetry", "spec.accessLogging[].filter.expression", Applied(LOGS)),
    row("Telemetry", "spec.accessLogging[].match", Applied(LOGS)),
    row("Telemetry", "spec.accessLogging[].match.mode", Applied(LOGS)),
    row(
        "Telemetry",
        "spec.tracing",
        NotApplied("weft's proxies make no spans yet: requests are neither sampled nor reported"),
    ),
    row(
        "Telemetry",
        "spec.metrics",
        NotApplied(
            "every proxy reports Istio's standard metrics on its admin port; providers, overrides and tag changes \
             are not applied",
        ),
    ),
];
