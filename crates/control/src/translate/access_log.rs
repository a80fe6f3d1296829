//! Access logs from Istio's Telemetry: Envoy's file logger to the proxy's
//! stdout, JSON lines with Istio's default fields (and the trace id and
//! peer identity), filtered by Envoy's own access log filters into which
//! weft's subset of CEL translates. Envoy and weft's proxy read the same.

use super::node::ProxyNode;
use envoy_types::pb::envoy::config::accesslog::v3::{
    AccessLog, AccessLogFilter, AndFilter, ComparisonFilter, DurationFilter, HeaderFilter, OrFilter, StatusCodeFilter,
    access_log, access_log_filter::FilterSpecifier, comparison_filter,
};
use envoy_types::pb::envoy::config::core::v3::{RuntimeUInt32, SubstitutionFormatString, substitution_format_string};
use envoy_types::pb::envoy::config::route::v3::{HeaderMatcher, header_matcher};
use envoy_types::pb::envoy::extensions::access_loggers::file::v3::{FileAccessLog, file_access_log};
use envoy_types::pb::envoy::r#type::matcher::v3::{StringMatcher, string_matcher};
use envoy_types::pb::google::protobuf::{Struct, Value, value};
use envoy_types::util::pack_any;
use weft_api::index::Index;
use weft_api::observability::access_logs_for;
use weft_api::types::telemetry::{CmpOp, LogFilter, Side};

/// Istio's default JSON access log fields, with the trace id and the
/// caller's identity.
const FIELDS: &[(&str, &str)] = &[
    ("start_time", "%START_TIME%"),
    ("route_name", "%ROUTE_NAME%"),
    ("method", "%REQ(:METHOD)%"),
    ("path", "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%"),
    ("protocol", "%PROTOCOL%"),
    ("response_code", "%RESPONSE_CODE%"),
    ("response_flags", "%RESPONSE_FLAGS%"),
    ("response_code_details", "%RESPONSE_CODE_DETAILS%"),
    ("connection_termination_details", "%CONNECTION_TERMINATION_DETAILS%"),
    ("bytes_received", "%BYTES_RECEIVED%"),
    ("bytes_sent", "%BYTES_SENT%"),
    ("duration", "%DURATION%"),
    ("upstream_service_time", "%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%"),
    ("x_forwarded_for", "%REQ(X-FORWARDED-FOR)%"),
    ("user_agent", "%REQ(USER-AGENT)%"),
    ("request_id", "%REQ(X-REQUEST-ID)%"),
    ("authority", "%REQ(:AUTHORITY)%"),
    ("upstream_host", "%UPSTREAM_HOST%"),
    ("upstream_cluster", "%UPSTREAM_CLUSTER%"),
    ("upstream_local_address", "%UPSTREAM_LOCAL_ADDRESS%"),
    ("downstream_local_address", "%DOWNSTREAM_LOCAL_ADDRESS%"),
    ("downstream_remote_address", "%DOWNSTREAM_REMOTE_ADDRESS%"),
    ("requested_server_name", "%REQUESTED_SERVER_NAME%"),
    ("upstream_transport_failure_reason", "%UPSTREAM_TRANSPORT_FAILURE_REASON%"),
    ("downstream_peer_uri_san", "%DOWNSTREAM_PEER_URI_SAN%"),
    ("trace_id", "%TRACE_ID%"),
];

/// The access logs of `node`'s listeners on `side`.
pub fn logs(index: &Index, node: &ProxyNode, side: Side) -> Vec<AccessLog> {
    access_logs_for(index.resources, &node.namespace, &node.labels, side)
        .iter()
        .map(|l| file_log(&l.path, l.filter.as_ref()))
        .collect()
}

fn file_log(path: &str, filter: Option<&LogFilter>) -> AccessLog {
    let json = Struct {
        fields: FIELDS
            .iter()
            .map(|(k, v)| (k.to_string(), Value { kind: Some(value::Kind::StringValue(v.to_string())) }))
            .collect(),
    };
    let file = FileAccessLog {
        path: path.into(),
        access_log_format: Some(file_access_log::AccessLogFormat::LogFormat(SubstitutionFormatString {
            format: Some(substitution_format_string::Format::JsonFormat(json)),
            ..Default::default()
        })),
    };
    AccessLog {
        name: "envoy.access_loggers.file".into(),
        filter: filter.map(|f| translate(f, false)),
        config_type: Some(access_log::ConfigType::TypedConfig(pack_any(file))),
    }
}

fn spec(f: FilterSpecifier) -> AccessLogFilter {
    AccessLogFilter { filter_specifier: Some(f) }
}

/// Envoy compares with `==`, `>=` and `<=` only; the others are made of them.
fn comparisons(op: CmpOp, n: u32) -> Vec<(comparison_filter::Op, u32)> {
    use comparison_filter::Op::*;
    match op {
        CmpOp::Eq => vec![(Eq, n)],
        CmpOp::Ge => vec![(Ge, n)],
        CmpOp::Le => vec![(Le, n)],
        CmpOp::Gt => vec![(Ge, n.saturating_add(1))],
        // `< 0` holds for nothing: `== u32::MAX` is as good.
        CmpOp::Lt => vec![n.checked_sub(1).map_or((Eq, u32::MAX), |m| (Le, m))],
        CmpOp::Ne => {
            let mut v = vec![(Ge, n.saturating_add(1))];
            v.extend(n.checked_sub(1).map(|m| (Le, m)));
            v
        }
    }
}

fn negated(op: CmpOp) -> CmpOp {
    match op {
        CmpOp::Eq => CmpOp::Ne,
        CmpOp::Ne => CmpOp::Eq,
        CmpOp::Ge => CmpOp::Lt,
        CmpOp::Gt => CmpOp::Le,
        CmpOp::Le => CmpOp::Gt,
        CmpOp::Lt => CmpOp::Ge,
    }
}

fn compare(op: CmpOp, n: u32, make: impl Fn(ComparisonFilter) -> FilterSpecifier) -> AccessLogFilter {
    let mut any: Vec<AccessLogFilter> = comparisons(op, n)
        .into_iter()
        .map(|(op, v)| {
            let value = Some(RuntimeUInt32 { default_value: v, runtime_key: String::new() });
            spec(make(ComparisonFilter { op: op as i32, value }))
        })
        .collect();
    if any.len() == 1 { any.remove(0) } else { spec(FilterSpecifier::OrFilter(OrFilter { filters: any })) }
}

fn header(name: &str, exact: Option<&str>, invert: bool) -> AccessLogFilter {
    let m = match exact {
        Some(v) => header_matcher::HeaderMatchSpecifier::StringMatch(StringMatcher {
            match_pattern: Some(string_matcher::MatchPattern::Exact(v.to_owned())),
            ignore_case: false,
        }),
        None => header_matcher::HeaderMatchSpecifier::PresentMatch(true),
    };
    spec(FilterSpecifier::HeaderFilter(HeaderFilter {
        header: Some(HeaderMatcher {
            name: name.to_owned(),
            invert_match: invert,
            header_match_specifier: Some(m),
            ..Default::default()
        }),
    }))
}

/// `f` (or its negation, pushed down to the comparisons: Envoy has no `not`).
fn translate(f: &LogFilter, not: bool) -> AccessLogFilter {
    let op = |op: CmpOp| if not { negated(op) } else { op };
    match f {
        LogFilter::Code(o, n) => {
            compare(op(*o), *n, |c| FilterSpecifier::StatusCodeFilter(StatusCodeFilter { comparison: Some(c) }))
        }
        LogFilter::Duration(o, ms) => {
            compare(op(*o), *ms, |c| FilterSpecifier::DurationFilter(DurationFilter { comparison: Some(c) }))
        }
        LogFilter::Header(name, v, eq) => header(name, Some(v), *eq == not),
        LogFilter::HasHeader(name) => header(name, None, not),
        LogFilter::Not(inner) => translate(inner, !not),
        LogFilter::And(a, b) | LogFilter::Or(a, b) => {
            let filters = vec![translate(a, not), translate(b, not)];
            // De Morgan: a negated `and` is an `or` of the negations.
            if matches!(f, LogFilter::And(..)) != not {
                spec(FilterSpecifier::AndFilter(AndFilter { filters }))
            } else {
                spec(FilterSpecifier::OrFilter(OrFilter { filters }))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_api::types::telemetry::parse_filter;

    /// Evaluates an Envoy filter the way Envoy does, for the status code
    /// and a header's value.
    fn eval(f: &AccessLogFilter, code: u32, h: Option<&str>) -> bool {
        let cmp = |c: &ComparisonFilter, v: u32| {
            let want = c.value.as_ref().unwrap().default_value;
            match c.op {
                0 => v == want,
                1 => v >= want,
                _ => v <= want,
            }
        };
        match f.filter_specifier.as_ref().unwrap() {
            FilterSpecifier::StatusCodeFilter(s) => cmp(s.comparison.as_ref().unwrap(), code),
            FilterSpecifier::AndFilter(a) => a.filters.iter().all(|f| eval(f, code, h)),
            FilterSpecifier::OrFilter(o) => o.filters.iter().any(|f| eval(f, code, h)),
            FilterSpecifier::HeaderFilter(hf) => {
                let m = hf.header.as_ref().unwrap();
                let hit = match (&m.header_match_specifier, h) {
                    (_, None) => false,
                    (Some(header_matcher::HeaderMatchSpecifier::StringMatch(s)), Some(v)) => {
                        s.match_pattern == Some(string_matcher::MatchPattern::Exact(v.into()))
                    }
                    (_, Some(_)) => true,
                };
                hit != m.invert_match
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn every_comparison_and_negation_means_what_cel_says() {
        type Want = fn(u32, Option<&str>) -> bool;
        let cases: &[(&str, Want)] = &[
            ("response.code >= 400", |c, _| c >= 400),
            ("response.code > 400", |c, _| c > 400),
            ("response.code < 400", |c, _| c < 400),
            ("response.code <= 400", |c, _| c <= 400),
            ("response.code != 200", |c, _| c != 200),
            ("!(response.code == 200)", |c, _| c != 200),
            ("!(response.code >= 500 || response.code < 300)", |c, _| (300..500).contains(&c)),
            ("response.code >= 400 && !has(request.headers.x_debug)", |c, h| c >= 400 && h.is_none()),
            ("!(request.headers['x-debug'] == '1') || response.code == 503", |c, h| h != Some("1") || c == 503),
        ];
        for (expr, want) in cases {
            let f = translate(&parse_filter(expr).unwrap(), false);
            for code in [0, 199, 200, 201, 299, 300, 399, 400, 401, 499, 500, 503] {
                for h in [None, Some("1"), Some("2")] {
                    assert_eq!(eval(&f, code, h), want(code, h), "{expr} at {code} with {h:?}");
                }
            }
        }
    }
}
