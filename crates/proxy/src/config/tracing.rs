//! A connection manager's `tracing`, compiled: Envoy's sampling (random,
//! client-forced, overall, as parts per million), the custom tags and the
//! OpenTelemetry collector spans go to (a cluster, over OTLP/gRPC or OTLP/HTTP).

use super::CompileError;
use crate::telemetry::trace::{Exporter, Exporters, HttpTarget, Target};
use envoy_types::pb::envoy::config::core::v3::grpc_service::TargetSpecifier;
use envoy_types::pb::envoy::config::core::v3::{HttpService, http_uri};
use envoy_types::pb::envoy::config::trace::v3::OpenTelemetryConfig;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_connection_manager::Tracing as TracingProto;
use envoy_types::pb::envoy::r#type::tracing::v3::custom_tag;
use prost::Message;
use std::sync::Arc;

/// A custom tag's value: fixed, from the proxy's environment (read once,
/// at compile), or from a request header (with a default).
#[derive(Debug)]
pub enum TagValue {
    Fixed(String),
    Header(http::HeaderName, String),
}

#[derive(Debug)]
pub struct Tracing {
    /// Requests without a caller's decision sampled at random.
    pub random_ppm: u32,
    /// Requests with `x-client-trace-id` sampled.
    pub client_ppm: u32,
    /// A cap on everything sampled.
    pub overall_ppm: u32,
    pub tags: Box<[(Arc<str>, TagValue)]>,
    /// None: the trace is propagated and decided, and no span reported.
    pub exporter: Option<Arc<Exporter>>,
}

/// OTLP over HTTP: the cluster, and the path, host, timeout and headers
/// of each export.
fn http_target(h: HttpService) -> Result<(String, Target), CompileError> {
    let bad = |what: String| CompileError::new(format!("OpenTelemetry tracer http_service: {what}"));
    let uri = h.http_uri.ok_or_else(|| bad("needs http_uri".into()))?;
    let Some(http_uri::HttpUpstreamType::Cluster(cluster)) = uri.http_upstream_type else {
        return Err(bad("http_uri needs a cluster".into()));
    };
    let parsed: http::Uri = uri.uri.parse().map_err(|e| bad(format!("uri {:?}: {e}", uri.uri)))?;
    let host = match parsed.authority() {
        Some(a) => Some(http::HeaderValue::from_str(a.as_str()).map_err(|e| bad(e.to_string()))?),
        None => None,
    };
    let path = parsed.path_and_query().map_or("/v1/traces", |p| p.as_str());
    let timeout = uri.timeout.map_or(std::time::Duration::from_secs(5), |d| {
        std::time::Duration::new(d.seconds.max(0) as u64, d.nanos.max(0) as u32)
    });
    let mut headers = Vec::new();
    for o in h.request_headers_to_add {
        let Some(hv) = o.header else { continue };
        let name =
            http::HeaderName::from_bytes(hv.key.as_bytes()).map_err(|_| bad(format!("bad header {:?}", hv.key)))?;
        let value = http::HeaderValue::from_str(&hv.value).map_err(|_| bad(format!("bad value of {:?}", hv.key)))?;
        headers.push((name, value));
    }
    let path = if path == "/" && !uri.uri.ends_with('/') { "/v1/traces" } else { path };
    Ok((cluster, Target::Http(HttpTarget { path: path.to_owned(), host, timeout, headers })))
}

fn ppm(p: Option<&envoy_types::pb::envoy::r#type::v3::Percent>) -> u32 {
    // Envoy's default for each is 100%.
    p.map_or(1_000_000, |p| (p.value.clamp(0.0, 100.0) * 10_000.0).round() as u32)
}

impl Tracing {
    pub fn compile(t: &TracingProto, exporters: &Exporters) -> Result<Tracing, CompileError> {
        let mut tags = Vec::new();
        for tag in &t.custom_tags {
            let value = match &tag.r#type {
                Some(custom_tag::Type::Literal(l)) => TagValue::Fixed(l.value.clone()),
                Some(custom_tag::Type::Environment(e)) => {
                    TagValue::Fixed(std::env::var(&e.name).unwrap_or_else(|_| e.default_value.clone()))
                }
                Some(custom_tag::Type::RequestHeader(h)) => TagValue::Header(
                    http::HeaderName::from_bytes(h.name.to_ascii_lowercase().as_bytes()).map_err(|_| {
                        CompileError::new(format!("custom tag {}: bad header name {:?}", tag.tag, h.name))
                    })?,
                    h.default_value.clone(),
                ),
                _ => {
                    return Err(CompileError::new(format!(
                        "custom tag {}: weft's proxy takes literal, environment and request header tags",
                        tag.tag
                    )));
                }
            };
            tags.push((Arc::from(tag.tag.as_str()), value));
        }
        let exporter = match &t.provider {
            None => None,
            Some(p) => {
                use envoy_types::pb::envoy::config::trace::v3::tracing::http::ConfigType;
                let Some(ConfigType::TypedConfig(any)) = &p.config_type else {
                    return Err(CompileError::new("tracing provider needs a typed config"));
                };
                if !any.type_url.ends_with("envoy.config.trace.v3.OpenTelemetryConfig") {
                    return Err(CompileError::new(format!(
                        "tracing provider {}: weft's proxy exports to OpenTelemetry (OpenTelemetryConfig) only",
                        any.type_url
                    )));
                }
                let otel =
                    OpenTelemetryConfig::decode(any.value.as_slice()).map_err(|e| CompileError::new(e.to_string()))?;
                let (cluster, target) = match (otel.grpc_service.and_then(|g| g.target_specifier), otel.http_service) {
                    (Some(TargetSpecifier::EnvoyGrpc(g)), _) => (g.cluster_name, Target::Grpc),
                    (None, Some(h)) => http_target(h)?,
                    _ => {
                        return Err(CompileError::new(
                            "OpenTelemetry tracer: weft's proxy exports to a cluster, over gRPC (grpc_service.envoy_grpc) or HTTP (http_service)",
                        ));
                    }
                };
                Some(exporters.open(&cluster, &otel.service_name, target).map_err(CompileError::new)?)
            }
        };
        Ok(Tracing {
            random_ppm: ppm(t.random_sampling.as_ref()),
            client_ppm: ppm(t.client_sampling.as_ref()),
            overall_ppm: ppm(t.overall_sampling.as_ref()),
            tags: tags.into(),
            exporter,
        })
    }
}
