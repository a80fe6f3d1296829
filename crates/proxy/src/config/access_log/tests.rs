use super::*;
use envoy_types::pb::envoy::config::accesslog::v3::{
    AccessLogFilter, ComparisonFilter, OrFilter, ResponseFlagFilter, StatusCodeFilter,
    access_log_filter::FilterSpecifier,
};
use envoy_types::pb::envoy::config::core::v3::{RuntimeUInt32, SubstitutionFormatString};
use envoy_types::pb::google::protobuf::{Any, Struct, Value, value::Kind};

fn json_format(fields: &[(&str, &str)]) -> Struct {
    Struct {
        fields: fields
            .iter()
            .map(|(k, v)| (k.to_string(), Value { kind: Some(Kind::StringValue(v.to_string())) }))
            .collect(),
    }
}

fn file_log(path: &str, format: Option<Substitution>, filter: Option<AccessLogFilter>) -> AccessLog {
    let file = FileAccessLog {
        path: path.into(),
        access_log_format: format.map(|f| {
            file_access_log::AccessLogFormat::LogFormat(SubstitutionFormatString {
                format: Some(f),
                ..Default::default()
            })
        }),
    };
    AccessLog {
        name: "envoy.access_loggers.file".into(),
        filter,
        config_type: Some(access_log::ConfigType::TypedConfig(Any {
            type_url: "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog".into(),
            value: file.encode_to_vec(),
        })),
    }
}

fn text(t: &str) -> Substitution {
    use envoy_types::pb::envoy::config::core::v3::{DataSource, data_source::Specifier};
    Substitution::TextFormatSource(DataSource {
        specifier: Some(Specifier::InlineString(t.into())),
        ..Default::default()
    })
}

fn status_at_least(code: u32) -> AccessLogFilter {
    AccessLogFilter {
        filter_specifier: Some(FilterSpecifier::StatusCodeFilter(StatusCodeFilter {
            comparison: Some(ComparisonFilter {
                op: 1,
                value: Some(RuntimeUInt32 { default_value: code, runtime_key: String::new() }),
            }),
        })),
    }
}

fn request(headers: &[(&'static str, &'static str)]) -> (http::Method, http::HeaderMap) {
    let mut map = http::HeaderMap::new();
    for (k, v) in headers {
        map.insert(*k, HeaderValue::from_static(v));
    }
    (http::Method::GET, map)
}

fn entry<'a>(captured: &'a Captured, code: u16, flags: &'a str) -> Entry<'a> {
    Entry {
        start: SystemTime::UNIX_EPOCH + Duration::from_millis(1_780_000_000_123),
        duration: Duration::from_millis(42),
        protocol: Some("HTTP/1.1"),
        code,
        details: None,
        flags,
        bytes_received: 3,
        bytes_sent: 11,
        request: Some(captured),
        response: None,
        upstream_host: Some("127.0.0.1:9080".parse().unwrap()),
        upstream_cluster: Some("outbound|9080||reviews.default.svc.cluster.local"),
        downstream_local: "127.0.0.1:15001".parse().unwrap(),
        downstream_remote: "127.0.0.9:40000".parse().unwrap(),
        server_name: None,
        route_name: Some("default"),
        peer_identity: None,
        trace_id: None,
    }
}

fn capture(logs: &AccessLogs, method: &http::Method, headers: &http::HeaderMap) -> Box<Captured> {
    logs.capture(method, &"http://reviews:9080/r/1?a=b".parse().unwrap(), headers, &[])
}

#[test]
fn json_lines_keep_types_and_null_what_is_unknown() {
    let format = json_format(&[
        ("start_time", "%START_TIME%"),
        ("method", "%REQ(:METHOD)%"),
        ("path", "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%"),
        ("response_code", "%RESPONSE_CODE%"),
        ("duration", "%DURATION%"),
        ("user_agent", "%REQ(USER-AGENT)%"),
        ("request_id", "%REQ(X-REQUEST-ID)%"),
        ("upstream", "%UPSTREAM_HOST% via %UPSTREAM_CLUSTER%"),
        ("sni", "%REQUESTED_SERVER_NAME%"),
        ("short", "%REQ(USER-AGENT):4%"),
        ("local", "%UPSTREAM_LOCAL_ADDRESS%"),
        ("fixed", "a \"literal\""),
        ("empty", ""),
        ("service_time", "%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%"),
        ("content_type", "%RESP(CONTENT-TYPE)%"),
    ]);
    // Nested objects, numbers and bools, as Envoy takes them.
    let mut format = format;
    let nested = json_format(&[("code", "%RESPONSE_CODE%"), ("flags", "%RESPONSE_FLAGS%")]);
    let mut nested = nested;
    nested.fields.insert("ratio".into(), Value { kind: Some(Kind::NumberValue(0.5)) });
    nested.fields.insert("on".into(), Value { kind: Some(Kind::BoolValue(true)) });
    format.fields.insert("outcome".into(), Value { kind: Some(Kind::StructValue(nested)) });
    let sinks = Sinks::default();
    let logs = AccessLogs::compile(&[file_log("/dev/null", Some(Substitution::JsonFormat(format)), None)], &sinks)
        .unwrap()
        .unwrap();
    let (method, headers) = request(&[("user-agent", "curl/8.0")]);
    let captured = capture(&logs, &method, &headers);
    let mut response = http::HeaderMap::new();
    response.insert("content-length", HeaderValue::from_static("2"));
    response.insert("x-envoy-upstream-service-time", HeaderValue::from_static("7"));
    let line = logs.logs[0].format.render(&Entry { response: Some(&response), ..entry(&captured, 200, "-") });
    assert!(line.ends_with('\n'));
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["start_time"], "2026-05-28T20:26:40.123Z");
    assert_eq!(v["method"], "GET");
    assert_eq!(v["path"], "/r/1?a=b", "the alternative when the first is absent");
    assert_eq!(v["response_code"], 200, "a number, as Envoy's");
    assert_eq!(v["duration"], 42);
    assert_eq!(v["user_agent"], "curl/8.0");
    assert_eq!(v["request_id"], serde_json::Value::Null);
    assert_eq!(v["upstream"], "127.0.0.1:9080 via outbound|9080||reviews.default.svc.cluster.local");
    assert_eq!(v["sni"], serde_json::Value::Null);
    assert_eq!(v["short"], "curl");
    assert_eq!(v["local"], serde_json::Value::Null, "a value weft's proxy never has");
    assert_eq!((&v["service_time"], &v["content_type"]), (&serde_json::json!("7"), &serde_json::Value::Null));
    assert_eq!((&v["fixed"], &v["empty"]), (&serde_json::json!("a \"literal\""), &serde_json::json!("")));
    assert_eq!(v["outcome"], serde_json::json!({"code": 200, "flags": "-", "ratio": 0.5, "on": true}));
    let at = |k: &str| line.find(&format!("\"{k}\":")).unwrap();
    assert!(at("duration") < at("empty") && at("empty") < at("fixed") && at("code") < at("on"), "sorted: {line}");
}

#[test]
fn envoy_default_text_format() {
    let sinks = Sinks::default();
    let logs = AccessLogs::compile(&[file_log("/dev/null", None, None)], &sinks).unwrap().unwrap();
    let (method, headers) = request(&[("x-request-id", "abc")]);
    let captured = capture(&logs, &method, &headers);
    let line = logs.logs[0].format.render(&entry(&captured, 503, "UH"));
    assert_eq!(
        line,
        "[2026-05-28T20:26:40.123Z] \"GET /r/1?a=b HTTP/1.1\" 503 UH 3 11 42 - \"-\" \"-\" \"abc\" \"reviews:9080\" \"127.0.0.1:9080\"\n"
    );
}

#[test]
fn filters_decide_from_the_outcome_and_the_request() {
    let sinks = Sinks::default();
    let flagged = AccessLogFilter {
        filter_specifier: Some(FilterSpecifier::ResponseFlagFilter(ResponseFlagFilter { flags: vec!["UH".into()] })),
    };
    let either = AccessLogFilter {
        filter_specifier: Some(FilterSpecifier::OrFilter(OrFilter { filters: vec![status_at_least(500), flagged] })),
    };
    let logs = AccessLogs::compile(&[file_log("/dev/null", None, Some(either))], &sinks).unwrap().unwrap();
    let filter = logs.logs[0].filter.as_ref().unwrap();
    let (method, headers) = request(&[]);
    let captured = capture(&logs, &method, &headers);
    assert!(!filter.matches(&entry(&captured, 200, "-"), 0));
    assert!(filter.matches(&entry(&captured, 503, "-"), 0));
    assert!(filter.matches(&entry(&captured, 200, "UH"), 0));
    assert!(!filter.matches(&entry(&captured, 404, "NR"), 0));
}

#[test]
fn an_unknown_operator_or_logger_is_refused_by_name() {
    let sinks = Sinks::default();
    let bad = text("%NOT_AN_OPERATOR% %START_TIME%");
    let e = AccessLogs::compile(&[file_log("/dev/null", Some(bad), None)], &sinks).unwrap_err();
    assert!(e.0.contains("%NOT_AN_OPERATOR%") && e.0.contains("START_TIME"), "{e}");
    let unclosed = text("%REQ(:PATH%");
    assert!(AccessLogs::compile(&[file_log("/dev/null", Some(unclosed), None)], &sinks).is_err());
    let mut grpc = file_log("/dev/null", None, None);
    if let Some(access_log::ConfigType::TypedConfig(any)) = &mut grpc.config_type {
        any.type_url = "type.googleapis.com/envoy.extensions.access_loggers.grpc.v3.HttpGrpcAccessLogConfig".into();
    }
    let e = AccessLogs::compile(&[grpc], &sinks).unwrap_err();
    assert!(e.0.contains("HttpGrpcAccessLogConfig"), "{e}");
}
