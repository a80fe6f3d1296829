//! Istio's MeshConfig, as its operators write it: the `istio` ConfigMap in
//! `istio-system`, its `data.mesh` a YAML document. weft reads the
//! extension providers Telemetry names (OpenTelemetry collectors, file
//! access logs) and the default providers; any other setting is reported
//! as not applied.

use serde::Deserialize;
use std::collections::BTreeMap;

/// The ConfigMap that holds the mesh's config, and its key.
pub const MESH_CONFIG_MAP: &str = "istio";
pub const MESH_KEY: &str = "mesh";

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MeshConfig {
    #[serde(default)]
    pub extension_providers: Vec<ExtensionProviderSpec>,
    #[serde(default)]
    pub default_providers: DefaultProviders,
    /// Settings weft does not apply, by name.
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExtensionProviderSpec {
    pub name: String,
    pub opentelemetry: Option<OtelProvider>,
    pub envoy_file_access_log: Option<FileLogProvider>,
    /// Provider kinds weft does not have (zipkin, envoyExtAuthzHttp, ...).
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

/// An OpenTelemetry collector taking OTLP over gRPC, or over HTTP with `http`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OtelProvider {
    /// A host name or an IP address.
    pub service: String,
    pub port: u16,
    pub http: Option<OtelHttp>,
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

/// OTLP over HTTP (protobuf bodies POSTed to `path`), as Istio's
/// `opentelemetry.http`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct OtelHttp {
    /// `/v1/traces` when empty, OTLP's.
    #[serde(default)]
    pub path: String,
    pub timeout: Option<super::Duration>,
    #[serde(default)]
    pub headers: Vec<OtelHeader>,
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

/// A header sent with each export.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct OtelHeader {
    pub name: String,
    #[serde(default)]
    pub value: String,
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileLogProvider {
    pub path: String,
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DefaultProviders {
    #[serde(default)]
    pub tracing: Vec<String>,
    #[serde(default)]
    pub access_logging: Vec<String>,
    #[serde(default)]
    pub metrics: Vec<String>,
}

/// What a provider is to weft.
#[derive(Clone, Debug, PartialEq)]
pub enum Provider<'a> {
    /// Access log lines to this path (`envoy` is `/dev/stdout`).
    File(&'a str),
    /// Spans to this collector, over gRPC or, with `http`, HTTP.
    Otel { name: &'a str, service: &'a str, port: u16, http: Option<&'a OtelHttp> },
    /// Spans to the control plane's own trace store (`weft`).
    Store,
}

/// Istio's built-in access log provider.
pub const ENVOY: &str = "envoy";

/// weft's built-in tracing provider: the trace store the control plane
/// keeps (the dashboard's recent traces); the default when the mesh config
/// names no default tracing provider.
pub const WEFT: &str = "weft";

impl MeshConfig {
    /// The provider named `name`: the mesh's, or a built-in one (Istio's
    /// `envoy`, weft's `weft`).
    pub fn provider(&self, name: &str) -> Option<Provider<'_>> {
        let Some(p) = self.extension_providers.iter().find(|p| p.name == name) else {
            return match name {
                ENVOY => Some(Provider::File("/dev/stdout")),
                WEFT => Some(Provider::Store),
                _ => None,
            };
        };
        match (&p.opentelemetry, &p.envoy_file_access_log) {
            (Some(o), _) => {
                Some(Provider::Otel { name: &p.name, service: &o.service, port: o.port, http: o.http.as_ref() })
            }
            (None, Some(f)) => Some(Provider::File(&f.path)),
            (None, None) => None,
        }
    }
}
