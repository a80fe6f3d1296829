//! The benchmark script runs end to end on a tiny configuration and writes
//! well-formed results (benchmarks are not timed tests: no number is judged).

mod common;
use common::*;
use std::process::Command;

#[test]
fn bench_quick_run_produces_results() {
    let out = tempfile::tempdir().unwrap();
    let status = Command::new("python3")
        .args(["bench/run.py", "--quick", "--weft", weft(), "--out", out.path().to_str().unwrap()])
        .current_dir(repo())
        .status()
        .expect("python3");
    assert!(status.success(), "bench/run.py --quick failed");
    let res: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.path().join("latest.json")).unwrap()).unwrap();
    for peer in ["direct", "weft", "envoy", "haproxy", "nginx"] {
        assert!(res["throughput_h1"][peer].as_f64().unwrap() > 0.0, "{peer}: {res}");
        assert!(res["throughput_h2"][peer].as_f64().unwrap() > 0.0, "{peer}: {res}");
        assert!(res["latency_ms"][peer]["p99"].as_f64().unwrap() > 0.0, "{peer}: {res}");
    }
    for peer in ["weft", "envoy", "haproxy", "nginx"] {
        assert!(res["cpu_s_per_1000_req"][peer].as_f64().unwrap() > 0.0, "{peer}: {res}");
    }
    for side in ["weft", "envoy"] {
        assert!(res["mesh"][side]["throughput_h1"].as_f64().unwrap() > 0.0, "{res}");
    }
    for k in ["weft_rss_kib", "weft_private_kib", "envoy_private_kib"] {
        let m = &res["config_memory"]["50"];
        assert!(m[k].as_u64().unwrap() > 0, "{k}: {res}");
    }
    // Private memory is part of resident memory.
    let m = &res["config_memory"]["50"];
    assert!(m["weft_private_kib"].as_u64() < m["weft_rss_kib"].as_u64(), "{res}");
    assert!(res["control_plane"]["change_applied_by_all_s"].as_f64().unwrap() > 0.0, "{res}");
    let png = std::fs::read(out.path().join("latest.png")).unwrap();
    assert_eq!(&png[..4], b"\x89PNG");
}
