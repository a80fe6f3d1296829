//! Spans out of the proxy: OTLP over gRPC or HTTP to a collector, batched
//! by a task per collector from a bounded queue. A request only offers its
//! span; a slow or dead collector fills the queue and spans are dropped
//! and counted, never waited for.

use crate::node::NodeInfo;
use bytes::Bytes;
use http_body_util::Full;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Status, span::SpanKind, status::StatusCode};
use parking_lot::Mutex;
use prometheus_client::metrics::counter::Counter;
use prost::Message;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, SystemTime};
use tokio::sync::mpsc;

/// Spans a collector's queue holds before new ones are dropped.
pub const QUEUE_SPANS: usize = 4096;
/// Spans sent in one export at most.
const BATCH: usize = 512;
/// How long a batch waits for more spans.
const BATCH_WAIT: Duration = Duration::from_millis(500);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);

/// A finished span.
pub struct Span {
    pub trace_id: u128,
    pub span_id: u64,
    pub parent: Option<u64>,
    pub name: String,
    pub server: bool,
    pub start: SystemTime,
    pub end: SystemTime,
    pub attributes: Vec<(&'static str, Attr)>,
    /// Custom tags: their names are the operator's.
    pub tags: Vec<(Arc<str>, String)>,
    pub error: bool,
}

pub enum Attr {
    Str(String),
    Int(i64),
}

/// How spans reach a collector.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Target {
    /// OTLP/gRPC: the trace service's `Export`.
    Grpc,
    /// OTLP/HTTP: protobuf POSTed over HTTP/1.1.
    Http(HttpTarget),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HttpTarget {
    pub path: String,
    /// The `host` header; the collector's address when none.
    pub host: Option<http::HeaderValue>,
    pub timeout: Duration,
    pub headers: Vec<(http::HeaderName, http::HeaderValue)>,
}

/// Finds a collector's address by its cluster's name, in the config of
/// the moment (set once by the proxy when it starts).
pub type Resolver = Arc<dyn Fn(&str) -> Option<SocketAddr> + Send + Sync>;

/// The exporters open now, by collector cluster and service name. Used
/// when config is compiled, never per request.
#[derive(Default)]
pub struct Exporters {
    open: Mutex<HashMap<(String, String, Target), Weak<Exporter>>>,
    resolver: OnceLock<Resolver>,
    /// The attributes every span of this proxy has (who made it), made once.
    node: OnceLock<Arc<[KeyValue]>>,
    /// Spans dropped: the queue was full, or the collector did not take them.
    pub dropped: Counter,
    pub exported: Counter,
}

pub struct Exporter {
    tx: mpsc::Sender<Span>,
    dropped: Counter,
}

impl std::fmt::Debug for Exporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Exporter")
    }
}

impl Exporters {
    /// Set once when the proxy starts: how collectors are found, and who
    /// this proxy is.
    pub fn start(&self, r: Resolver, node: &NodeInfo) {
        let _ = self.resolver.set(r);
        let _ = self.node.set(node_attributes(node).into());
    }

    /// The exporter to the collector `cluster` for spans of `service`;
    /// its task is started on the current runtime if none is open.
    pub fn open(&self, cluster: &str, service: &str, target: Target) -> Result<Arc<Exporter>, String> {
        let key = (cluster.to_owned(), service.to_owned(), target.clone());
        let mut open = self.open.lock();
        if let Some(e) = open.get(&key).and_then(Weak::upgrade) {
            return Ok(e);
        }
        open.retain(|_, w| w.strong_count() > 0);
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| "no runtime to export spans on".to_owned())?;
        let (tx, rx) = mpsc::channel(QUEUE_SPANS);
        let task = Task {
            rx,
            cluster: cluster.to_owned(),
            target,
            resource: resource(service),
            resolver: self.resolver.get().cloned(),
            node: self.node.get().cloned().unwrap_or_else(|| Arc::new([])),
            dropped: self.dropped.clone(),
            exported: self.exported.clone(),
        };
        runtime.spawn(task.run());
        let e = Arc::new(Exporter { tx, dropped: self.dropped.clone() });
        open.insert(key, Arc::downgrade(&e));
        Ok(e)
    }
}

impl Exporter {
    /// Queues a span; drops it if the queue is full.
    pub fn offer(&self, span: Span) {
        if self.tx.try_send(span).is_err() {
            self.dropped.inc();
        }
    }
}

fn string(key: &str, v: String) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(any_value::Value::StringValue(v)) }),
        ..Default::default()
    }
}

/// Istio's canonical service of a workload: its label for it, else its
/// `app` label, else its name.
pub fn canonical_service(node: &NodeInfo) -> &str {
    let label = |k: &str| node.labels.get(k).map(String::as_str);
    label("service.istio.io/canonical-name").or(label("app")).unwrap_or(&node.workload)
}

/// Istio's attributes naming the proxy that made a span.
fn node_attributes(node: &NodeInfo) -> Vec<KeyValue> {
    let label = |k: &str| node.labels.get(k).map(String::as_str);
    let canonical = canonical_service(node);
    let revision = label("service.istio.io/canonical-revision").or(label("version")).unwrap_or("latest");
    vec![
        string("component", "proxy".into()),
        string("node_id", format!("{}.{}", node.workload, node.namespace)),
        string("istio.canonical_service", canonical.into()),
        string("istio.canonical_revision", revision.into()),
        string("istio.namespace", node.namespace.clone()),
        string("istio.mesh_id", "cluster.local".into()),
    ]
}

fn resource(service: &str) -> Resource {
    Resource { attributes: vec![string("service.name", service.to_owned())], ..Default::default() }
}

fn nanos(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

fn otlp(s: Span, node: &[KeyValue]) -> opentelemetry_proto::tonic::trace::v1::Span {
    let mut attributes: Vec<KeyValue> = s
        .attributes
        .into_iter()
        .map(|(k, v)| match v {
            Attr::Str(v) => string(k, v),
            Attr::Int(i) => KeyValue {
                key: k.to_owned(),
                value: Some(AnyValue { value: Some(any_value::Value::IntValue(i)) }),
                ..Default::default()
            },
        })
        .collect();
    attributes.extend(node.iter().cloned());
    attributes.extend(s.tags.into_iter().map(|(k, v)| string(&k, v)));
    opentelemetry_proto::tonic::trace::v1::Span {
        trace_id: s.trace_id.to_be_bytes().to_vec(),
        span_id: s.span_id.to_be_bytes().to_vec(),
        parent_span_id: s.parent.map(|p| p.to_be_bytes().to_vec()).unwrap_or_default(),
        name: s.name,
        kind: if s.server { SpanKind::Server } else { SpanKind::Client } as i32,
        start_time_unix_nano: nanos(s.start),
        end_time_unix_nano: nanos(s.end),
        attributes,
        status: s.error.then(|| Status { code: StatusCode::Error as i32, message: String::new() }),
        ..Default::default()
    }
}

struct Task {
    rx: mpsc::Receiver<Span>,
    cluster: String,
    target: Target,
    resource: Resource,
    resolver: Option<Resolver>,
    node: Arc<[KeyValue]>,
    dropped: Counter,
    exported: Counter,
}

/// A connection to a collector, kept between exports.
enum Client {
    Grpc(SocketAddr, TraceServiceClient<tonic::transport::Channel>),
    Http(SocketAddr, SendRequest<Full<Bytes>>),
}

impl Client {
    /// Whether it is still a usable connection to `addr`.
    fn serves(&self, addr: SocketAddr) -> bool {
        match self {
            Client::Grpc(a, _) => *a == addr,
            Client::Http(a, s) => *a == addr && !s.is_closed(),
        }
    }
}

impl Task {
    /// Sends batches until every `Exporter` handle is gone.
    async fn run(mut self) {
        let mut client: Option<Client> = None;
        while let Some(first) = self.rx.recv().await {
            let mut batch = vec![first];
            let wait = tokio::time::sleep(BATCH_WAIT);
            tokio::pin!(wait);
            while batch.len() < BATCH {
                tokio::select! {
                    s = self.rx.recv() => match s {
                        Some(s) => batch.push(s),
                        None => break,
                    },
                    _ = &mut wait => break,
                }
            }
            let n = batch.len() as u64;
            match self.export(&mut client, batch).await {
                Ok(()) => {
                    self.exported.inc_by(n);
                }
                Err(e) => {
                    tracing::debug!(collector = %self.cluster, error = %e, spans = n, "spans not exported");
                    self.dropped.inc_by(n);
                    client = None;
                }
            }
        }
    }

    async fn export(&self, client: &mut Option<Client>, batch: Vec<Span>) -> Result<(), String> {
        let addr = self
            .resolver
            .as_ref()
            .and_then(|r| r(&self.cluster))
            .ok_or_else(|| format!("collector cluster {} has no endpoint", self.cluster))?;
        if !client.as_ref().is_some_and(|c| c.serves(addr)) {
            *client = Some(self.connect(addr).await?);
        }
        let request = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(self.resource.clone()),
                scope_spans: vec![ScopeSpans {
                    scope: Some(InstrumentationScope { name: "weft".into(), ..Default::default() }),
                    spans: batch.into_iter().map(|s| otlp(s, &self.node)).collect(),
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        match (client.as_mut(), &self.target) {
            (Some(Client::Grpc(_, c)), _) => c.export(request).await.map(|_| ()).map_err(|e| e.to_string()),
            (Some(Client::Http(_, sender)), Target::Http(t)) => post(sender, addr, t, request.encode_to_vec()).await,
            _ => Err("no client".into()),
        }
    }

    async fn connect(&self, addr: SocketAddr) -> Result<Client, String> {
        match &self.target {
            Target::Grpc => {
                let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
                    .map_err(|e| e.to_string())?
                    .connect_timeout(CONNECT_TIMEOUT)
                    .timeout(EXPORT_TIMEOUT)
                    .connect()
                    .await
                    .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
                Ok(Client::Grpc(addr, TraceServiceClient::new(channel)))
            }
            Target::Http(_) => {
                let stream = tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(addr))
                    .await
                    .map_err(|_| format!("cannot connect to {addr}: timed out"))?
                    .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
                let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                    .await
                    .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
                tokio::spawn(connection);
                Ok(Client::Http(addr, sender))
            }
        }
    }
}

/// One OTLP/HTTP export: the protobuf body POSTed, a 2xx answer awaited
/// (and read, so the connection serves the next).
async fn post(
    sender: &mut SendRequest<Full<Bytes>>,
    addr: SocketAddr,
    t: &HttpTarget,
    body: Vec<u8>,
) -> Result<(), String> {
    use http_body_util::BodyExt;
    let host = match &t.host {
        Some(h) => h.clone(),
        None => http::HeaderValue::from_str(&addr.to_string()).map_err(|e| e.to_string())?,
    };
    let mut req = http::Request::post(t.path.as_str())
        .header(http::header::HOST, host)
        .header(http::header::CONTENT_TYPE, "application/x-protobuf")
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| e.to_string())?;
    for (name, value) in &t.headers {
        req.headers_mut().append(name.clone(), value.clone());
    }
    let exchange = async {
        sender.ready().await?;
        let resp = sender.send_request(req).await?;
        let status = resp.status();
        resp.into_body().collect().await?;
        Ok::<_, hyper::Error>(status)
    };
    let status = tokio::time::timeout(t.timeout, exchange)
        .await
        .map_err(|_| format!("{addr} did not answer within {:?}", t.timeout))?
        .map_err(|e| e.to_string())?;
    if status.is_success() { Ok(()) } else { Err(format!("{addr} answered {status}")) }
}
