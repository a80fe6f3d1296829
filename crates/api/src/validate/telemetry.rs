//! Telemetry checks: a filter expression weft can express (a subset of
//! CEL, see `types::telemetry`), a known match mode, and a provider weft
//! has (another's entry logs nothing, and says so).

use crate::diag::{Diagnostic, Severity::*, codes};
use crate::resource::Resource;
use crate::types::telemetry::{FILTER_SUBSET, PROVIDERS, Side, parse_filter};
use crate::types::*;

pub(super) fn check(r: &Resource, t: &TelemetrySpec, out: &mut Vec<Diagnostic>) {
    if t.selector.is_some() && (t.target_ref.is_some() || !t.target_refs.is_empty()) {
        out.push(r.diag(
            Error,
            codes::INVALID_VALUE,
            "spec.selector",
            "a Telemetry takes `selector` or `targetRefs`, not both",
            Some("keep one; `selector` picks workloads by their labels".into()),
        ));
    }
    for (i, al) in t.access_logging.iter().enumerate() {
        let at = format!("spec.accessLogging[{i}]");
        if let Some(expr) = al.filter.as_ref().and_then(|f| f.expression.as_deref())
            && let Err(e) = parse_filter(expr)
        {
            out.push(r.diag(
                Error,
                codes::INVALID_VALUE,
                &format!("{at}.filter.expression"),
                format!("weft cannot apply the filter `{expr}`: {e}"),
                Some(format!("weft's filters take {FILTER_SUBSET}")),
            ));
        }
        if let Some(m) = &al.match_
            && let Err(mode) = m.takes(Side::Client)
        {
            out.push(r.diag(
                Error,
                codes::INVALID_VALUE,
                &format!("{at}.match.mode"),
                format!("unknown mode `{mode}`"),
                Some("use CLIENT_AND_SERVER (the default), CLIENT or SERVER".into()),
            ));
        }
        for (j, p) in al.providers.iter().enumerate() {
            if !PROVIDERS.contains(&p.name.as_str()) {
                out.push(r.diag(
                    Warning,
                    codes::NOT_APPLIED,
                    &format!("{at}.providers[{j}].name"),
                    format!(
                        "provider `{}` is not applied: weft has the `envoy` provider only (JSON lines on each \
                         proxy's stdout), so this provider logs nothing",
                        p.name
                    ),
                    Some("use `name: envoy`".into()),
                ));
            }
        }
    }
}
