//! The coverage table's rows for Istio's `Telemetry` (see `table.rs`).

use super::Support::*;
use super::table_authz::NOT_A_GATEWAY;
use super::{Field, row};

const LOGS: &str = "access_log.rs::telemetry_turns_access_logs_on_by_scope_and_filter";
const TRACES: &str = "tracing.rs::one_trace_crosses_the_gateway_a_frontend_and_two_services";
pub static TELEMETRY: &[Field] = &[
    row("Telemetry", "spec", Applied(LOGS)),
    row("Telemetry", "spec.selector", Applied(LOGS)),
    row("Telemetry", "spec.selector.matchLabels", Applied(LOGS)),
    row("Telemetry", "spec.targetRef", Untested),
    row("Telemetry", "spec.targetRef.kind", Values(&["Gateway"], NOT_A_GATEWAY)),
    row("Telemetry", "spec.targetRef.group", Values(&[crate::gateway_api::GROUP], NOT_A_GATEWAY)),
    row("Telemetry", "spec.targetRef.name", Untested),
    row("Telemetry", "spec.targetRef.namespace", Untested),
    row("Telemetry", "spec.targetRefs", Untested),
    row("Telemetry", "spec.targetRefs[].kind", Values(&["Gateway"], NOT_A_GATEWAY)),
    row("Telemetry", "spec.targetRefs[].group", Values(&[crate::gateway_api::GROUP], NOT_A_GATEWAY)),
    row("Telemetry", "spec.targetRefs[].name", Untested),
    row("Telemetry", "spec.targetRefs[].namespace", Untested),
    row("Telemetry", "spec.accessLogging", Applied(LOGS)),
    row("Telemetry", "spec.accessLogging[].providers", Applied(LOGS)),
    row("Telemetry", "spec.accessLogging[].providers[].name", Applied(LOGS)),
    row("Telemetry", "spec.accessLogging[].disabled", Applied(LOGS)),
    row("Telemetry", "spec.accessLogging[].filter", Applied(LOGS)),
    row("Telemetry", "spec.accessLogging[].filter.expression", Applied(LOGS)),
    row("Telemetry", "spec.accessLogging[].match", Applied(LOGS)),
    row("Telemetry", "spec.accessLogging[].match.mode", Applied(LOGS)),
    row("Telemetry", "spec.tracing", Applied(TRACES)),
    row("Telemetry", "spec.tracing[].providers", Applied(TRACES)),
    row("Telemetry", "spec.tracing[].providers[].name", Applied(TRACES)),
    row("Telemetry", "spec.tracing[].randomSamplingPercentage", Applied(TRACES)),
    row("Telemetry", "spec.tracing[].disableSpanReporting", Applied(TRACES)),
    row("Telemetry", "spec.tracing[].customTags", Applied(TRACES)),
    row("Telemetry", "spec.tracing[].customTags.*.literal", Applied(TRACES)),
    row("Telemetry", "spec.tracing[].customTags.*.literal.value", Applied(TRACES)),
    row("Telemetry", "spec.tracing[].customTags.*.environment", Applied(TRACES)),
    row("Telemetry", "spec.tracing[].customTags.*.environment.name", Applied(TRACES)),
    row("Telemetry", "spec.tracing[].customTags.*.environment.defaultValue", Applied(TRACES)),
    row("Telemetry", "spec.tracing[].customTags.*.header", Applied(TRACES)),
    row("Telemetry", "spec.tracing[].customTags.*.header.name", Applied(TRACES)),
    row("Telemetry", "spec.tracing[].customTags.*.header.defaultValue", Applied(TRACES)),
    row("Telemetry", "spec.tracing[].match", Applied(TRACES)),
    row("Telemetry", "spec.tracing[].match.mode", Applied(TRACES)),
    row(
        "Telemetry",
        "spec.tracing[].useRequestIdForTraceSampling",
        NotApplied("sampling is decided at random, whatever the request id"),
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
