//! A VirtualService's rules: one action each, weights, faults, rewrites,
//! redirects, direct responses and retry conditions.

use super::fields::string_match;
use crate::diag::{Diagnostic, Severity::*, codes};
use crate::resource::Resource;
use crate::types::*;

pub(super) fn check(r: &Resource, vs: &VirtualServiceSpec, out: &mut Vec<Diagnostic>) {
    // A VirtualService without hosts is a delegate: `refs` checks one is delegated to.
    for (i, h) in vs.http.iter().enumerate() {
        let base = format!("spec.http[{i}]");
        let actions = [!h.route.is_empty(), h.redirect.is_some(), h.direct_response.is_some(), h.delegate.is_some()];
        match actions.iter().filter(|b| **b).count() {
            0 => out.push(r.diag(
                Error,
                codes::MISSING_FIELD,
                &base,
                "an http rule needs one of `route`, `redirect`, `directResponse` or `delegate`",
                Some("if `route` is below, check that it is indented beside `match`, not inside it".into()),
            )),
            1 => {}
            _ => out.push(r.diag(
                Error,
                codes::INVALID_VALUE,
                &base,
                "an http rule takes only one of `route`, `redirect`, `directResponse`, `delegate`",
                None,
            )),
        }
        for (j, m) in h.match_.iter().enumerate() {
            let mp = format!("{base}.match[{j}]");
            for (field, sm) in
                [("uri", &m.uri), ("scheme", &m.scheme), ("method", &m.method), ("authority", &m.authority)]
            {
                if let Some(sm) = sm {
                    string_match(r, &format!("{mp}.{field}"), sm, false, out);
                }
            }
            for (field, map) in
                [("headers", &m.headers), ("queryParams", &m.query_params), ("withoutHeaders", &m.without_headers)]
            {
                for (k, sm) in map {
                    string_match(r, &format!("{mp}.{field}.{k}"), sm, true, out);
                    if field != "queryParams" && k.chars().any(|c| c.is_ascii_uppercase()) {
                        out.push(r.diag(
                            Error,
                            codes::INVALID_VALUE,
                            &format!("{mp}.{field}.{k}"),
                            format!("header names must be lowercase: `{k}`"),
                            Some(format!("write `{}`", k.to_ascii_lowercase())),
                        ));
                    }
                }
            }
        }
        let dests = h.route.len();
        let weights: Vec<i64> = h.route.iter().map(|d| d.weight.unwrap_or(0)).collect();
        for (j, w) in weights.iter().enumerate() {
            if *w < 0 {
                out.push(r.diag(
                    Error,
                    codes::WEIGHTS,
                    &format!("{base}.route[{j}].weight"),
                    "weights cannot be negative",
                    None,
                ));
            }
        }
        if dests > 1 && weights.iter().all(|w| *w <= 0) {
            out.push(r.diag(
                Error,
                codes::WEIGHTS,
                &format!("{base}.route"),
                "no destination of this rule has a weight, so none receives traffic",
                Some("give each destination a `weight`; weights are relative, e.g. 90 and 10".into()),
            ));
        } else if dests > 1 && h.route.iter().any(|d| d.weight.is_none()) {
            let j = h.route.iter().position(|d| d.weight.is_none()).unwrap_or(0);
            out.push(r.diag(
                Warning,
                codes::WEIGHTS,
                &format!("{base}.route[{j}]"),
                "this destination has no `weight` beside weighted ones, so it receives no traffic",
                Some("set its weight, or weight: 0 to say so".into()),
            ));
        }
        if let Some(on) = h.retries.as_ref().and_then(|r| r.retry_on.as_deref()) {
            retry_on(r, &format!("{base}.retries.retryOn"), on, out);
        }
        if h.fault.is_some() && (h.retries.is_some() || h.timeout.is_some()) {
            out.push(r.diag(
                Warning,
                codes::INVALID_VALUE,
                &format!("{base}.fault"),
                "with `fault` set, `retries` and `timeout` of this rule are not applied (as in Istio)",
                None,
            ));
        }
        if let Some(f) = &h.fault {
            if let Some(a) = &f.abort
                && a.http_status.is_none()
                && a.grpc_status.is_none()
                && a.http2_error.is_none()
            {
                out.push(r.diag(
                    Error,
                    codes::MISSING_FIELD,
                    &format!("{base}.fault.abort"),
                    "an abort needs `httpStatus` or `grpcStatus`",
                    None,
                ));
            }
            if let Some(g) = f.abort.as_ref().and_then(|a| a.grpc_status.as_ref())
                && !GRPC_STATUS_CODES.iter().any(|c| c.eq_ignore_ascii_case(g))
                && g.parse::<u8>().map_or(true, |n| n as usize >= GRPC_STATUS_CODES.len())
            {
                out.push(r.diag(
                    Error,
                    codes::INVALID_VALUE,
                    &format!("{base}.fault.abort.grpcStatus"),
                    format!("unknown gRPC status `{g}`"),
                    Some(format!("use a name such as UNAVAILABLE; known: {}", GRPC_STATUS_CODES.join(", "))),
                ));
            }
            if let Some(d) = &f.delay
                && d.fixed_delay.is_none()
                && d.exponential_delay.is_none()
            {
                out.push(r.diag(
                    Error,
                    codes::MISSING_FIELD,
                    &format!("{base}.fault.delay"),
                    "a delay needs `fixedDelay`",
                    None,
                ));
            }
        }
        if let Some(rd) = &h.redirect
            && let Some(derive) = &rd.derive_port
        {
            let path = format!("{base}.redirect.derivePort");
            if !["FROM_PROTOCOL_DEFAULT", "FROM_REQUEST_PORT"].contains(&derive.as_str()) {
                let hint = "FROM_PROTOCOL_DEFAULT (80 or 443, left out) or FROM_REQUEST_PORT (the request's)";
                out.push(r.diag(
                    Error,
                    codes::INVALID_VALUE,
                    &path,
                    format!("unknown derivePort `{derive}`"),
                    Some(hint.into()),
                ));
            } else if rd.port.is_some() {
                out.push(r.diag(
                    Error,
                    codes::INVALID_VALUE,
                    &path,
                    "a redirect takes `port` or `derivePort`, not both",
                    None,
                ));
            }
        }
        if let Some(c) = &h.cors_policy {
            cors(r, &format!("{base}.corsPolicy"), c, out);
        }
        if let Some(rw) = &h.rewrite
            && let Some(rr) = &rw.uri_regex_rewrite
            && let Err(e) = regex::Regex::new(&rr.match_)
        {
            let first = e.to_string().lines().last().unwrap_or_default().to_owned();
            out.push(r.diag(
                Error,
                codes::INVALID_VALUE,
                &format!("{base}.rewrite.uriRegexRewrite.match"),
                format!("regex does not compile: {first}"),
                None,
            ));
        }
        if let Some(d) = &h.direct_response
            && !(200..=599).contains(&d.status)
        {
            out.push(r.diag(
                Error,
                codes::INVALID_VALUE,
                &format!("{base}.directResponse.status"),
                format!("{} is not an HTTP status", d.status),
                None,
            ));
        }
        if let Some(bytes) = h.direct_response.as_ref().and_then(|d| d.body.as_ref()).and_then(|b| b.bytes.as_ref())
            && base64::Engine::decode(&base64::engine::general_purpose::STANDARD, bytes).is_err()
        {
            out.push(r.diag(
                Error,
                codes::INVALID_VALUE,
                &format!("{base}.directResponse.body.bytes"),
                "`bytes` is not base64",
                Some("give the body base64-encoded, or as text in `string`".into()),
            ));
        }
        if let Some(rd) = &h.redirect
            && let Some(code) = rd.redirect_code
            && !matches!(code, 301 | 302 | 303 | 307 | 308)
        {
            out.push(r.diag(
                Error,
                codes::INVALID_VALUE,
                &format!("{base}.redirect.redirectCode"),
                format!("{code} is not a redirect status"),
                Some("use 301, 302, 303, 307 or 308".into()),
            ));
        }
    }
    for (i, t) in vs.tls.iter().enumerate() {
        for (j, m) in t.match_.iter().enumerate() {
            if m.sni_hosts.is_empty() {
                out.push(r.diag(
                    Error,
                    codes::MISSING_FIELD,
                    &format!("spec.tls[{i}].match[{j}].sniHosts"),
                    "a tls match needs `sniHosts`",
                    None,
                ));
            }
        }
    }
}

/// Retry conditions weft's proxy applies (Envoy's names, HTTP and gRPC).
const RETRY_ON: &[&str] = &[
    "5xx",
    "gateway-error",
    "reset",
    "connect-failure",
    "refused-stream",
    "retriable-4xx",
    "retriable-status-codes",
    "cancelled",
    "deadline-exceeded",
    "resource-exhausted",
    "unavailable",
    "internal",
];

/// Envoy's other conditions: accepted by Istio, not applied by weft.
const RETRY_ON_ENVOY_ONLY: &[&str] =
    &["reset-before-request", "envoy-ratelimited", "retriable-headers", "http3-post-connect-failure"];

/// `retryOn`: each token a known condition or an HTTP status (Istio's form).
fn retry_on(r: &Resource, path: &str, on: &str, out: &mut Vec<Diagnostic>) {
    for t in on.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        if RETRY_ON.contains(&t) || t.parse::<u16>().is_ok_and(|c| (100..=599).contains(&c)) {
            continue;
        }
        out.push(if RETRY_ON_ENVOY_ONLY.contains(&t) {
            r.diag(
                Warning,
                codes::NOT_APPLIED,
                path,
                format!("retry condition `{t}` is not applied by weft's proxy; the others in the list are"),
                Some(format!("weft retries on: {} and HTTP status codes", RETRY_ON.join(", "))),
            )
        } else {
            r.diag(
                Error,
                codes::INVALID_VALUE,
                path,
                format!("unknown retry condition `{t}`"),
                Some(format!("use {} or HTTP status codes such as 503", RETRY_ON.join(", "))),
            )
        });
    }
}

/// A CORS policy the proxy can build: origins that compile, list items
/// that are one header token each (they are joined with `,`), a known
/// `unmatchedPreflights`.
fn cors(r: &Resource, path: &str, c: &CorsPolicy, out: &mut Vec<Diagnostic>) {
    for (i, m) in c.allow_origins.iter().enumerate() {
        super::fields::string_match(r, &format!("{path}.allowOrigins[{i}]"), m, false, out);
    }
    let lists = [
        ("allowOrigin", &c.allow_origin),
        ("allowMethods", &c.allow_methods),
        ("allowHeaders", &c.allow_headers),
        ("exposeHeaders", &c.expose_headers),
    ];
    for (field, list) in lists {
        for (i, v) in list.iter().enumerate() {
            if v.is_empty() || v.contains(',') || !v.bytes().all(|b| b.is_ascii_graphic()) {
                out.push(r.diag(
                    Error,
                    codes::INVALID_VALUE,
                    &format!("{path}.{field}[{i}]"),
                    format!("`{v}` is not one method, header name or origin"),
                    Some("write one item per list entry, without spaces or commas".into()),
                ));
            }
        }
    }
    if let Some(u) = &c.unmatched_preflights
        && !["UNSPECIFIED", "FORWARD", "IGNORE"].contains(&u.as_str())
    {
        out.push(r.diag(
            Error,
            codes::INVALID_VALUE,
            &format!("{path}.unmatchedPreflights"),
            format!("unknown unmatchedPreflights `{u}`"),
            Some(
                "use FORWARD (the default: the app answers) or IGNORE (the proxy answers, without CORS headers)".into(),
            ),
        ));
    }
}
