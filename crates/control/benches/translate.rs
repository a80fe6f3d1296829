//! Micro-benchmark of translation: 1,000 Services (one WorkloadEntry each)
//! into one sidecar's clusters, endpoints, routes and listeners, encoded,
//! with nothing cached (every iteration translates from scratch; in the
//! control plane, proxies sharing a namespace share the result).
//!
//! `cargo bench -p weft-control --bench translate` (numbers in BENCHMARKS.md).

use criterion::{Criterion, criterion_group, criterion_main};
use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::google::protobuf::{Struct, Value, value::Kind};
use parking_lot::Mutex;
use std::sync::Arc;
use weft_control::translate::{Cache, ProxyNode, Snapshot, encoded};

fn yaml(services: usize) -> String {
    let mut out = String::new();
    for i in 0..services {
        out += &format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: svc-{i}}}\nspec:\n  selector: {{app: svc-{i}}}\n  ports: [{{name: http, port: 80}}]\n---\n\
             apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {{name: svc-{i}-0}}\n\
             spec: {{address: 10.0.{}.{}, ports: {{http: 8080}}, labels: {{app: svc-{i}}}}}\n---\n",
            i / 250,
            i % 250 + 1
        );
    }
    out
}

fn sidecar() -> ProxyNode {
    let s = |v: &str| Value { kind: Some(Kind::StringValue(v.into())) };
    let fields = [
        ("ROLE", "sidecar"),
        ("NAMESPACE", "default"),
        ("WORKLOAD_NAME", "productpage"),
        ("LISTEN_IP", "127.0.0.1"),
        ("OUTBOUND_PORT", "15001"),
        ("INBOUND_PORT", "15006"),
    ];
    let metadata = Struct { fields: fields.iter().map(|(k, v)| (k.to_string(), s(v))).collect() };
    ProxyNode::from_node(&Node { id: "bench".into(), metadata: Some(metadata), ..Default::default() })
}

fn translation(c: &mut Criterion) {
    let loaded = weft_api::parse_str("bench.yaml", &yaml(1000));
    assert!(loaded.diagnostics.iter().all(|d| !d.is_error()), "{:?}", loaded.diagnostics);
    let snap = Arc::new(Snapshot::new(1, Arc::new(loaded.resources), Vec::<weft_control::registry::Instance>::new()));
    let node = sidecar();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let first = rt.block_on(encoded(&snap, &node, &Mutex::new(Cache::default())));
    assert_eq!(first.clusters.len(), 1000, "one cluster per service port");
    let mut g = c.benchmark_group("translate");
    g.sample_size(20);
    g.bench_function("1,000 services for one sidecar, encoded", |b| {
        b.iter(|| rt.block_on(encoded(&snap, &node, &Mutex::new(Cache::default()))))
    });
    g.finish();
}

criterion_group!(benches, translation);
criterion_main!(benches);
