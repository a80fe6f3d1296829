//! Telemetry checks: a filter expression weft can express (a subset of
//! CEL, see `types::telemetry`), a known match mode, and providers the
//! mesh config defines for the job (another's entry does nothing, and
//! says so); the mesh config's settings weft does not apply.

use crate::diag::{Diagnostic, Severity::*, codes};
use crate::resource::Resource;
use crate::resource::Spec;
use crate::types::mesh_config::Provider;
use crate::types::telemetry::{FILTER_SUBSET, Side, WorkloadMatch, parse_filter};
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
        match_mode(r, &at, al.match_.as_ref(), out);
    }
    for (i, tr) in t.tracing.iter().enumerate() {
        let at = format!("spec.tracing[{i}]");
        match_mode(r, &at, tr.match_.as_ref(), out);
        if let Some(p) = tr.random_sampling_percentage.filter(|p| !(0.0..=100.0).contains(p)) {
            out.push(r.diag(
                Error,
                codes::INVALID_VALUE,
                &format!("{at}.randomSamplingPercentage"),
                format!("{p} is not a percentage"),
                Some("give a number from 0 to 100 (Istio's default is 1)".into()),
            ));
        }
        for (name, tag) in &tr.custom_tags {
            let kinds = [tag.literal.is_some(), tag.environment.is_some(), tag.header.is_some()];
            if kinds.iter().filter(|k| **k).count() != 1 {
                out.push(r.diag(
                    Error,
                    codes::INVALID_VALUE,
                    &format!("{at}.customTags.{name}"),
                    format!("custom tag `{name}` needs exactly one of `literal`, `environment` and `header`"),
                    Some("e.g. `{literal: {value: shop}}` or `{header: {name: x-team}}`".into()),
                ));
            }
        }
    }
}

/// An entry's `match.mode` is one Istio knows.
fn match_mode(r: &Resource, at: &str, m: Option<&WorkloadMatch>, out: &mut Vec<Diagnostic>) {
    if let Some(Err(mode)) = m.map(|m| m.takes(Side::Client)) {
        out.push(r.diag(
            Error,
            codes::INVALID_VALUE,
            &format!("{at}.match.mode"),
            format!("unknown mode `{mode}`"),
            Some("use CLIENT_AND_SERVER (the default), CLIENT or SERVER".into()),
        ));
    }
}

fn not_applied(r: &Resource, path: &str, message: String, hint: &str, out: &mut Vec<Diagnostic>) {
    out.push(r.diag(Warning, codes::NOT_APPLIED, path, message, Some(hint.to_owned())));
}

/// An OTLP/HTTP collector's path and headers, which its exports would fail with.
fn otlp_http(r: &Resource, provider: &str, h: &crate::types::mesh_config::OtelHttp, out: &mut Vec<Diagnostic>) {
    let mut bad = |what: String, hint: &str| {
        let msg = format!("extension provider `{provider}`: {what}");
        out.push(r.diag(Error, codes::INVALID_VALUE, "data.mesh", msg, Some(hint.to_owned())));
    };
    if !h.path.is_empty() && !h.path.starts_with('/') {
        bad(format!("`http.path` {:?} does not start with `/`", h.path), "write the path OTLP takes, `/v1/traces`");
    }
    for x in &h.headers {
        if http_header_invalid(&x.name, &x.value) {
            bad(
                format!("`http.headers` {}: {:?} is not an HTTP header", x.name, x.value),
                "name and value as HTTP writes them",
            );
        }
    }
}

/// Whether `name: value` cannot be an HTTP header (RFC 9110 token name, visible value).
fn http_header_invalid(name: &str, value: &str) -> bool {
    let token = |c: u8| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c);
    name.is_empty() || !name.bytes().all(token) || value.bytes().any(|c| c < b' ' && c != b'\t' || c == 0x7f)
}

/// The mesh config's settings weft does not apply, each said once.
pub(super) fn mesh_config(r: &Resource, m: &MeshConfig, out: &mut Vec<Diagnostic>) {
    const AT: &str = "data.mesh";
    const HINT: &str = "weft reads `extensionProviders` (opentelemetry, envoyFileAccessLog) and `defaultProviders` \
         (tracing, accessLogging)";
    for k in m.other.keys() {
        not_applied(r, AT, format!("mesh config `{k}` is not applied"), HINT, out);
    }
    for p in &m.extension_providers {
        for kind in p.other.keys() {
            let msg = format!("extension provider `{}` ({kind}) is not applied: nothing uses it", p.name);
            not_applied(r, AT, msg, HINT, out);
        }
        let http = p.opentelemetry.iter().flat_map(|o| o.http.as_ref());
        let extra = p.opentelemetry.iter().flat_map(|o| o.other.keys().cloned());
        let extra = extra.chain(http.clone().flat_map(|h| h.other.keys().map(|k| format!("http.{k}"))));
        let extra = extra.chain(
            http.clone().flat_map(|h| &h.headers).flat_map(|h| h.other.keys()).map(|k| format!("http.headers[].{k}")),
        );
        for h in http {
            otlp_http(r, &p.name, h, out);
        }
        let files = p.envoy_file_access_log.iter().flat_map(|f| f.other.keys().cloned());
        for k in extra.chain(files) {
            let msg = format!("`{k}` of extension provider `{}` is not applied", p.name);
            not_applied(
                r,
                AT,
                msg,
                "weft's proxies write Istio's default JSON fields and report to the collector as is",
                out,
            );
        }
    }
    let defaults = [("tracing", &m.default_providers.tracing), ("accessLogging", &m.default_providers.access_logging)];
    for (field, names) in defaults {
        for name in names {
            let fits = match m.provider(name) {
                Some(Provider::Otel { .. } | Provider::Store) => field == "tracing",
                Some(Provider::File(_)) => field == "accessLogging",
                None => false,
            };
            if !fits {
                let msg = format!(
                    "`defaultProviders.{field}` names `{name}`, which is not an extension provider for {field}: \
                     Telemetry entries that name no provider get nothing from it"
                );
                not_applied(r, AT, msg, "define it under `extensionProviders`, or remove it", out);
            }
        }
    }
    if !m.default_providers.metrics.is_empty() {
        not_applied(
            r,
            AT,
            "`defaultProviders.metrics` is not applied".into(),
            "every proxy serves Prometheus metrics",
            out,
        );
    }
}

/// Each provider a Telemetry names is one the mesh config defines for the
/// job: a file access log (or Istio's `envoy`) for logs, an OpenTelemetry
/// collector for traces.
pub(super) fn providers(resources: &[Resource], out: &mut Vec<Diagnostic>) {
    let mesh = crate::observability::mesh_config(resources);
    for r in resources {
        let Spec::Telemetry(t) = &r.spec else { continue };
        for (i, al) in t.access_logging.iter().enumerate() {
            for (j, p) in al.providers.iter().enumerate() {
                if !matches!(mesh.provider(&p.name), Some(Provider::File(_))) {
                    let msg = format!(
                        "access log provider `{}` is not applied: it is neither `envoy` nor an `envoyFileAccessLog` \
                         extension provider of the mesh config, so this entry logs nothing",
                        p.name
                    );
                    let at = format!("spec.accessLogging[{i}].providers[{j}].name");
                    not_applied(r, &at, msg, "use `envoy` (JSON lines on each proxy's stdout), or define it", out);
                }
            }
        }
        for (i, tr) in t.tracing.iter().enumerate() {
            for (j, p) in tr.providers.iter().enumerate() {
                if !matches!(mesh.provider(&p.name), Some(Provider::Otel { .. } | Provider::Store)) {
                    let msg = format!(
                        "tracing provider `{}` is not applied: the mesh config (the `istio` ConfigMap in \
                         istio-system) defines no `opentelemetry` extension provider of that name, so no span is \
                         reported",
                        p.name
                    );
                    let at = format!("spec.tracing[{i}].providers[{j}].name");
                    not_applied(
                        r,
                        &at,
                        msg,
                        "define it under `extensionProviders` with `opentelemetry: {service, port}`",
                        out,
                    );
                }
            }
        }
    }
}
