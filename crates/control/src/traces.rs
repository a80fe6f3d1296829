//! The trace store: the control plane takes spans over OTLP/gRPC (the
//! `weft` tracing provider, the default) and keeps the most recent traces
//! in memory for the dashboard's waterfall (`/debug/traces`). Bounded by
//! traces and by spans: the oldest traces leave first. Production meshes
//! send spans to their own collector as well or instead (Telemetry's
//! providers).

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use parking_lot::Mutex;
use serde_json::{Value, json};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

/// The most traces kept, and spans across them.
pub const MAX_TRACES: usize = 1000;
pub const MAX_SPANS: usize = 20_000;

/// One span as the dashboard draws it.
#[derive(Clone, Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SpanView {
    pub span_id: String,
    pub parent: Option<String>,
    pub name: String,
    pub service: String,
    pub kind: &'static str,
    pub start_ns: u64,
    pub end_ns: u64,
    pub error: bool,
    /// Istio's attributes, as strings.
    pub attributes: serde_json::Map<String, Value>,
}

#[derive(Default)]
struct Inner {
    /// Trace ids, the oldest first.
    order: VecDeque<String>,
    traces: HashMap<String, Vec<SpanView>>,
    spans: usize,
}

#[derive(Default)]
pub struct Traces {
    inner: Mutex<Inner>,
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn text(v: &Option<AnyValue>) -> Value {
    match v.as_ref().and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone().into(),
        Some(any_value::Value::IntValue(i)) => (*i).into(),
        Some(any_value::Value::BoolValue(b)) => (*b).into(),
        Some(any_value::Value::DoubleValue(d)) => (*d).into(),
        _ => Value::Null,
    }
}

fn attrs(kv: &[KeyValue]) -> serde_json::Map<String, Value> {
    kv.iter().map(|a| (a.key.clone(), text(&a.value))).collect()
}

impl Traces {
    pub fn take(&self, req: ExportTraceServiceRequest) {
        let mut inner = self.inner.lock();
        for rs in req.resource_spans {
            let resource = rs.resource.map(|r| attrs(&r.attributes)).unwrap_or_default();
            let service = resource.get("service.name").and_then(Value::as_str).unwrap_or("unknown").to_owned();
            for s in rs.scope_spans.into_iter().flat_map(|ss| ss.spans) {
                let kind = match s.kind {
                    2 => "server",
                    3 => "client",
                    _ => "internal",
                };
                let view = SpanView {
                    span_id: hex(&s.span_id),
                    parent: (!s.parent_span_id.is_empty()).then(|| hex(&s.parent_span_id)),
                    name: s.name,
                    service: service.clone(),
                    kind,
                    start_ns: s.start_time_unix_nano,
                    end_ns: s.end_time_unix_nano.max(s.start_time_unix_nano),
                    error: s.status.is_some_and(|st| st.code == 2),
                    attributes: attrs(&s.attributes),
                };
                let id = hex(&s.trace_id);
                if !inner.traces.contains_key(&id) {
                    inner.order.push_back(id.clone());
                }
                inner.traces.entry(id).or_default().push(view);
                inner.spans += 1;
            }
        }
        while inner.order.len() > MAX_TRACES || inner.spans > MAX_SPANS {
            let Some(oldest) = inner.order.pop_front() else { break };
            let gone = inner.traces.remove(&oldest).map_or(0, |t| t.len());
            inner.spans -= gone;
        }
    }

    /// The latest `limit` traces, newest first: root span, services, timing.
    pub fn recent(&self, limit: usize) -> Value {
        let inner = self.inner.lock();
        let list: Vec<Value> = inner
            .order
            .iter()
            .rev()
            .take(limit)
            .filter_map(|id| {
                let spans = inner.traces.get(id)?;
                let start = spans.iter().map(|s| s.start_ns).min()?;
                let end = spans.iter().map(|s| s.end_ns).max()?;
                let root =
                    spans.iter().find(|s| s.parent.as_ref().is_none_or(|p| !spans.iter().any(|o| &o.span_id == p)));
                let mut services: Vec<&str> = spans.iter().map(|s| s.service.as_str()).collect();
                services.sort();
                services.dedup();
                Some(json!({
                    "traceId": id,
                    "root": root.map(|r| format!("{}: {}", r.service, r.name)),
                    "startUnixMs": start / 1_000_000,
                    "durationMs": (end - start) as f64 / 1e6,
                    "spans": spans.len(),
                    "errors": spans.iter().filter(|s| s.error).count(),
                    "services": services,
                }))
            })
            .collect();
        json!({"traces": list, "kept": inner.order.len()})
    }

    /// One trace's spans by start time, or None when it is not kept.
    pub fn trace(&self, id: &str) -> Option<Value> {
        let inner = self.inner.lock();
        let mut spans = inner.traces.get(id)?.clone();
        spans.sort_by_key(|s| s.start_ns);
        Some(json!({"traceId": id, "spans": spans}))
    }
}

struct Receiver(Arc<Traces>);

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        req: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.0.take(req.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

/// Serves OTLP/gRPC on `listener` into `traces` while the process runs.
pub async fn serve(listener: tokio::net::TcpListener, traces: Arc<Traces>) {
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    let svc = TraceServiceServer::new(Receiver(traces)).max_decoding_message_size(16 << 20);
    if let Err(e) = tonic::transport::Server::builder().add_service(svc).serve_with_incoming(incoming).await {
        tracing::error!(error = %e, "the trace store's OTLP server stopped");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

    fn request(trace: u8, spans: u8) -> ExportTraceServiceRequest {
        let spans = (0..spans)
            .map(|i| Span {
                trace_id: vec![trace; 16],
                span_id: vec![i + 1; 8],
                parent_span_id: if i == 0 { vec![] } else { vec![1; 8] },
                name: format!("s{i}"),
                kind: 2,
                start_time_unix_nano: 1_000_000 * u64::from(i),
                end_time_unix_nano: 1_000_000 * u64::from(i) + 500_000,
                ..Default::default()
            })
            .collect();
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans { spans, ..Default::default() }],
                ..Default::default()
            }],
        }
    }

    #[test]
    fn traces_are_kept_newest_first_within_their_bounds() {
        let t = Traces::default();
        t.take(request(1, 3));
        t.take(request(2, 2));
        let r = t.recent(10);
        assert_eq!(r["traces"][0]["traceId"], "02".repeat(16));
        assert_eq!(r["traces"][1]["spans"], 3);
        assert_eq!(r["traces"][1]["durationMs"], 2.5);
        assert_eq!(r["traces"][1]["root"], "unknown: s0");
        assert_eq!(t.trace(&"01".repeat(16)).unwrap()["spans"][2]["parent"], "01".repeat(8));
        // Past the span bound, the oldest traces leave.
        for i in 0..200u8 {
            t.take(request(i, 120));
        }
        let kept = t.inner.lock().spans;
        assert!(kept <= MAX_SPANS, "{kept}");
        assert!(t.trace(&"00".repeat(16)).is_none(), "the oldest left");
    }
}
