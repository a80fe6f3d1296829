//! What Telemetry and the mesh config make of one proxy's observability:
//! the access logs it writes and the tracing it does, on each side of its
//! traffic. A Telemetry applies to the mesh (root namespace), a namespace,
//! or the workloads its selector picks; the most specific one decides.

use crate::index::scope_rank;
use crate::resource::{Resource, Spec};
use crate::types::mesh_config::{MeshConfig, Provider};
use crate::types::telemetry::{CustomTag, LogFilter, Side, TracingSpec, parse_filter};
use crate::types::*;
use std::collections::BTreeMap;

/// The mesh config: the `istio` ConfigMap of the root namespace, or
/// Istio's defaults.
pub fn mesh_config(resources: &[Resource]) -> &MeshConfig {
    static DEFAULT: std::sync::OnceLock<MeshConfig> = std::sync::OnceLock::new();
    resources
        .iter()
        .find_map(|r| match &r.spec {
            Spec::MeshConfig(m) => Some(m),
            _ => None,
        })
        .unwrap_or_else(|| DEFAULT.get_or_init(MeshConfig::default))
}

/// The Telemetries that apply to a proxy in `ns` with `labels`, the most
/// specific first (workload selector, namespace, root namespace; by name
/// among equals).
fn scoped<'a>(resources: &'a [Resource], ns: &str, labels: &Labels) -> Vec<&'a TelemetrySpec> {
    let rank = |r: &Resource, t: &TelemetrySpec| {
        let by_ref = t.target_ref.is_some() || !t.target_refs.is_empty();
        if !by_ref {
            scope_rank(t.selector.as_ref().map(|s| &s.match_labels), r.namespace(), ns, labels)
        } else {
            // Attached to a Gateway API gateway: as specific as a selector.
            let refs = t.target_ref.iter().chain(&t.target_refs);
            crate::gateway_api::targets(refs, r.namespace(), ns, labels).then_some(0)
        }
    };
    let mut found: Vec<_> = resources
        .iter()
        .filter_map(|r| match &r.spec {
            Spec::Telemetry(t) => rank(r, t).map(|k| (k, r.name(), t)),
            _ => None,
        })
        .collect();
    found.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
    found.into_iter().map(|(_, _, t)| t).collect()
}

/// One access log: where its lines go and which requests it takes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessLogChoice {
    pub path: String,
    pub filter: Option<LogFilter>,
}

/// The access logs a proxy in `ns` with `labels` writes on `side`. The
/// most specific Telemetry with `accessLogging` decides; in it, each entry
/// that matches the side is a log per provider (the mesh's default
/// providers when it names none, else Istio's `envoy`), and a `disabled`
/// entry turns logging off. A provider that is not a file log is skipped
/// (validation says so).
pub fn access_logs_for(resources: &[Resource], ns: &str, labels: &Labels, side: Side) -> Vec<AccessLogChoice> {
    let mesh = mesh_config(resources);
    let Some(t) = scoped(resources, ns, labels).into_iter().find(|t| !t.access_logging.is_empty()) else {
        return Vec::new();
    };
    let mut logs = Vec::new();
    for al in &t.access_logging {
        if !al.match_.as_ref().is_none_or(|m| m.takes(side).unwrap_or(false)) {
            continue;
        }
        if al.disabled == Some(true) {
            return Vec::new();
        }
        let named: Vec<&str> = match (al.providers.is_empty(), mesh.default_providers.access_logging.is_empty()) {
            (false, _) => al.providers.iter().map(|p| p.name.as_str()).collect(),
            (true, false) => mesh.default_providers.access_logging.iter().map(String::as_str).collect(),
            (true, true) => vec![crate::types::mesh_config::ENVOY],
        };
        // Validation refuses a filter weft cannot express; none is taken as none.
        let filter = al.filter.as_ref().and_then(|f| f.expression.as_deref()).and_then(|e| parse_filter(e).ok());
        for name in named {
            if let Some(Provider::File(path)) = mesh.provider(name) {
                logs.push(AccessLogChoice { path: path.to_owned(), filter: filter.clone() });
            }
        }
    }
    logs
}

/// A proxy's tracing on one side of its traffic.
#[derive(Clone, Debug, PartialEq)]
pub struct TracingChoice {
    /// Percent of requests sampled when the caller did not decide (Istio's
    /// default: 1).
    pub sampling: f64,
    /// The collector spans go to. None: traces are decided and
    /// propagated, no span is reported.
    pub collector: Option<Collector>,
    pub custom_tags: BTreeMap<String, CustomTag>,
}

/// Where spans go: a provider's collector.
#[derive(Clone, Debug, PartialEq)]
pub struct Collector {
    /// The provider's name.
    pub name: String,
    /// A host name or an IP address.
    pub host: String,
    pub port: u16,
    /// OTLP over HTTP; over gRPC when none.
    pub http: Option<crate::types::mesh_config::OtelHttp>,
}

/// Istio's default sampling percentage.
pub const DEFAULT_SAMPLING: f64 = 1.0;

/// The tracing of a proxy in `ns` with `labels` on `side`, none when no
/// Telemetry traces it. Fields are merged from the mesh's Telemetry to
/// the workload's, the most specific setting each (Istio's inheritance);
/// each Telemetry's first `tracing` entry that matches the side counts.
/// Spans go to the first provider named (the mesh's default tracing
/// providers, else weft's trace store at `store`).
pub fn tracing_for(
    resources: &[Resource],
    ns: &str,
    labels: &Labels,
    side: Side,
    store: Option<std::net::SocketAddr>,
) -> Option<TracingChoice> {
    let mesh = mesh_config(resources);
    let entries: Vec<&TracingSpec> = scoped(resources, ns, labels)
        .into_iter()
        .rev()
        .filter_map(|t| t.tracing.iter().find(|e| e.match_.as_ref().is_none_or(|m| m.takes(side).unwrap_or(false))))
        .collect();
    if entries.is_empty() {
        return None;
    }
    let mut sampling = DEFAULT_SAMPLING;
    let mut providers: Vec<&str> = mesh.default_providers.tracing.iter().map(String::as_str).collect();
    if providers.is_empty() {
        providers.push(crate::types::mesh_config::WEFT);
    }
    let mut reporting = true;
    let mut custom_tags = BTreeMap::new();
    for e in entries {
        if let Some(p) = e.random_sampling_percentage {
            sampling = p.clamp(0.0, 100.0);
        }
        if !e.providers.is_empty() {
            providers = e.providers.iter().map(|p| p.name.as_str()).collect();
        }
        if let Some(d) = e.disable_span_reporting {
            reporting = !d;
        }
        custom_tags.extend(e.custom_tags.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    let collector = providers.iter().find_map(|n| match mesh.provider(n) {
        Some(Provider::Otel { name, service, port, http }) => {
            Some(Collector { name: name.to_owned(), host: service.to_owned(), port, http: http.cloned() })
        }
        Some(Provider::Store) => {
            store.map(|a| Collector { name: n.to_string(), host: a.ip().to_string(), port: a.port(), http: None })
        }
        _ => None,
    });
    Some(TracingChoice { sampling, collector: collector.filter(|_| reporting), custom_tags })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::telemetry::CmpOp;

    const MESH: &str = r#"
apiVersion: v1
kind: ConfigMap
metadata: {name: istio, namespace: istio-system}
data:
  mesh: |
    extensionProviders:
    - name: otel
      opentelemetry: {service: 127.0.0.1, port: 4317}
    - name: audit-file
      envoyFileAccessLog: {path: /tmp/audit.log}
    defaultProviders:
      tracing: [otel]
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: mesh-default, namespace: istio-system}
spec:
  accessLogging: [{providers: [{name: envoy}, {name: audit-file}]}]
  tracing: [{randomSamplingPercentage: 10}]
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: errors, namespace: shop}
spec:
  accessLogging:
  - filter: {expression: "response.code >= 400"}
    match: {mode: SERVER}
  tracing: [{customTags: {team: {literal: {value: shop}}}}]
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: quiet, namespace: shop}
spec:
  selector: {matchLabels: {app: db}}
  accessLogging: [{disabled: true}]
  tracing: [{disableSpanReporting: true}]
"#;

    fn labels(app: &str) -> Labels {
        Labels::from([("app".to_string(), app.to_string())])
    }

    #[test]
    fn the_most_specific_telemetry_decides_access_logs() {
        let loaded = crate::parse_str("t.yaml", MESH);
        assert!(loaded.diagnostics.is_empty(), "{:#?}", loaded.diagnostics);
        let logs = |ns: &str, app: &str, side| access_logs_for(&loaded.resources, ns, &labels(app), side);
        let paths: Vec<_> = logs("default", "web", Side::Client).into_iter().map(|l| l.path).collect();
        assert_eq!(paths, ["/dev/stdout", "/tmp/audit.log"], "the mesh's, to both providers");
        assert_eq!(
            logs("shop", "web", Side::Server),
            vec![AccessLogChoice { path: "/dev/stdout".into(), filter: Some(LogFilter::Code(CmpOp::Ge, 400)) }],
            "the namespace's"
        );
        assert!(logs("shop", "web", Side::Client).is_empty(), "the namespace's is for the server side only");
        assert!(logs("shop", "db", Side::Server).is_empty(), "the workload's turns it off");
    }

    #[test]
    fn tracing_fields_are_inherited_and_overridden_per_field() {
        let loaded = crate::parse_str("t.yaml", MESH);
        let tracing =
            |ns: &str, app: &str| tracing_for(&loaded.resources, ns, &labels(app), Side::Server, None).unwrap();
        let mesh = tracing("default", "web");
        assert_eq!(mesh.sampling, 10.0);
        let otel = Collector { name: "otel".into(), host: "127.0.0.1".into(), port: 4317, http: None };
        assert_eq!(mesh.collector, Some(otel), "the default provider");
        let shop = tracing("shop", "web");
        assert_eq!((shop.sampling, shop.custom_tags.len()), (10.0, 1), "sampling inherited, a tag added");
        assert_eq!(tracing("shop", "db").collector, None, "reporting disabled for the workload");
        let none = crate::parse_str("t.yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: s}\n");
        assert_eq!(tracing_for(&none.resources, "default", &labels("web"), Side::Client, None), None);
        // No default provider: spans go to weft's trace store, where there is one.
        let own = "apiVersion: telemetry.istio.io/v1\nkind: Telemetry\nmetadata: {name: t, namespace: istio-system}\nspec:\n  tracing: [{}]\n";
        let own = crate::parse_str("t.yaml", own);
        let to = |store| tracing_for(&own.resources, "default", &labels("web"), Side::Client, store).unwrap().collector;
        let store = Collector { name: "weft".into(), host: "127.0.0.1".into(), port: 4999, http: None };
        assert_eq!(to(Some("127.0.0.1:4999".parse().unwrap())), Some(store));
        assert_eq!(to(None), None);
    }
}
