//! The benchmark script runs end to end on a tiny configuration and writes
//! well-formed results (benchmarks are not timed tests: no number is judged).

mod common;
use common::*;
use std::process::Command;

#[test]
fn bench_quick_run_produces_results() {
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().to_str().unwrap();
    let status = Command::new("python3")
        // The same binary as the baseline too: only the plumbing is checked.
        .args(["bench/run.py", "--quick", "--weft", weft(), "--baseline", weft(), "--out", dir])
        .current_dir(repo())
        .status()
        .expect("python3");
    assert!(status.success(), "bench/run.py --quick failed");
    let res: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.path().join("latest.json")).unwrap()).unwrap();
    for peer in ["direct", "weft", "weft-plain", "envoy", "haproxy", "nginx"] {
        assert!(res["throughput_h1"][peer].as_f64().unwrap() > 0.0, "{peer}: {res}");
        assert!(res["throughput_h2"][peer].as_f64().unwrap() > 0.0, "{peer}: {res}");
        assert!(res["latency_ms"][peer]["p99"].as_f64().unwrap() > 0.0, "{peer}: {res}");
    }
    for peer in ["weft", "envoy", "haproxy", "nginx"] {
        let cpu = res["cpu_s_per_1000_req"][peer].as_f64().unwrap();
        assert!(cpu > 0.0, "{peer}: {res}");
        // The user/kernel split adds up to the total (µs a request = ms per 1000).
        let split: Vec<f64> =
            res["cpu_us_per_req_user_kernel"][peer].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
        assert!(split.len() == 2 && split.iter().all(|v| *v >= 0.0), "{peer}: {res}");
        assert!(
            (split[0] + split[1] - cpu * 1000.0).abs() < 1e-6 * cpu * 1000.0 + 1e-9,
            "{peer}: {split:?} against {cpu}"
        );
        // And per HTTP/2 request, from the h2load runs.
        let h2 = res["cpu_us_per_h2_req_user_kernel"][peer].as_array().unwrap();
        assert!(h2.len() == 2 && h2.iter().all(|v| v.as_f64().unwrap() >= 0.0), "{peer}: {res}");
        assert!(h2.iter().map(|v| v.as_f64().unwrap()).sum::<f64>() > 0.0, "{peer}: {res}");
    }
    assert!(res["cpu_us_per_h2_req_user_kernel"].get("direct").is_none(), "no process of its own: {res}");
    // Round by round p99 against HAProxy's: one comparison a round.
    for w in ["weft", "weft-plain", "envoy", "nginx"] {
        let p = &res["p99_against_haproxy"][w];
        let (lower, rounds) = (p["lower_rounds"].as_u64().unwrap(), p["rounds"].as_u64().unwrap());
        assert!(rounds == res["meta"]["rounds"].as_u64().unwrap() && lower <= rounds, "{w}: {res}");
        assert!(p["median_difference_ms"].as_f64().is_some(), "{w}: {res}");
    }
    // The mesh path, plaintext and mutual TLS (Envoy on weft's certificates).
    for side in ["weft", "envoy", "weft-mtls", "envoy-mtls"] {
        assert!(res["mesh"][side]["throughput_h1"].as_f64().unwrap() > 0.0, "{res}");
    }
    // Policies on the STRICT mesh path, weft and Envoy on one control
    // plane's config (bench/policies.py checked each is in force).
    for plane in ["weft", "envoy"] {
        for n in [0, 10, 100] {
            let p = &res["policies"][format!("{plane}-{n}")];
            assert!(p["cpu_s_per_1000_req"].as_f64().unwrap() > 0.0, "{plane}-{n}: {res}");
            assert!(p["cpu_added_pct"].as_f64().is_some() && p["p99_added_ms"].as_f64().is_some(), "{res}");
        }
    }
    // Traces and access logs, weft and Envoy on one control plane's config
    // (bench/telemetry.py checked each mode was in force).
    for plane in ["weft", "envoy"] {
        for mode in ["off", "trace1", "trace100", "log"] {
            let t = &res["telemetry"][format!("{plane}-{mode}")];
            assert!(t["cpu_s_per_1000_req"].as_f64().unwrap() > 0.0, "{plane}-{mode}: {res}");
            assert!(t["cpu_added_pct"].as_f64().is_some() && t["p99_added_ms"].as_f64().is_some(), "{res}");
        }
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

/// `bench/orderfile.py` (the order the linker lays functions out in, see
/// crates/cli/build.rs) runs the proxies under callgrind and lists the
/// functions that ran: the request path and the xDS client among them, and
/// every name one the binary has.
#[test]
fn orderfile_lists_the_functions_that_ran() {
    let out = tempfile::tempdir().unwrap();
    let order = out.path().join("weft.order");
    let status = Command::new("python3")
        .args(["bench/orderfile.py", "--weft", weft(), "--requests", "20", "--idle", "1"])
        .arg("--out")
        .arg(&order)
        .current_dir(repo())
        .status()
        .expect("python3");
    assert!(status.success(), "bench/orderfile.py failed");
    let listed = std::fs::read_to_string(&order).unwrap();
    let listed: Vec<&str> = listed.lines().collect();
    assert!(listed.len() > 500, "only {} functions listed", listed.len());
    let nm = Command::new("nm").args(["--defined-only", weft()]).output().expect("nm");
    let nm = String::from_utf8_lossy(&nm.stdout);
    let symbols: std::collections::HashSet<&str> = nm.lines().filter_map(|l| l.split_whitespace().nth(2)).collect();
    for name in &listed {
        assert!(symbols.contains(name), "{name} is not a symbol of {}", weft());
    }
    for part in ["http6handle", "xds"] {
        assert!(listed.iter().any(|n| n.contains(part)), "nothing named {part} ran");
    }
}

/// `bench/flame.py` samples a loaded gateway with perf and draws a flame
/// graph in which weft's request path appears.
#[test]
fn flame_graph_of_the_request_path() {
    let out = tempfile::tempdir().unwrap();
    let status = Command::new("python3")
        .args(["bench/flame.py", "--weft", weft(), "--seconds", "1", "--protocols", "h1"])
        .arg("--out")
        .arg(out.path())
        .current_dir(repo())
        .status()
        .expect("python3");
    assert!(status.success(), "bench/flame.py failed");
    let svg = std::fs::read_to_string(out.path().join("flame-h1.svg")).unwrap();
    assert!(svg.contains("<svg") && svg.trim_end().ends_with("</svg>"), "not an SVG");
    assert!(svg.contains("weft_proxy::http"), "the request path is not in the flame graph");
}

/// `bench/cost.py` counts a request's instructions (callgrind) and
/// syscalls (strace) in a gateway, and HAProxy's syscalls beside them.
#[test]
fn request_costs_are_counted() {
    let out = tempfile::tempdir().unwrap();
    let json = out.path().join("cost.json");
    let status = Command::new("python3")
        .args(["bench/cost.py", "--weft", weft(), "--kinds", "h1,h1-conn,h2-bench", "--requests", "40", "--warm", "10"])
        .arg("--out")
        .arg(&json)
        .current_dir(repo())
        .status()
        .expect("python3");
    assert!(status.success(), "bench/cost.py failed");
    let res: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    for kind in ["h1", "h1-conn", "h2-bench"] {
        assert!(res["weft"][kind]["instructions"].as_f64().unwrap() > 1000.0, "{res}");
        for target in ["weft", "haproxy"] {
            let calls = &res[target][kind]["syscalls"];
            // A proxied request reads and writes at least once on each side.
            assert!(calls["per_request"].as_f64().unwrap() >= 2.0, "{target} {kind}: {res}");
            assert!(calls["by_name"].as_object().is_some_and(|m| !m.is_empty()), "{target} {kind}: {res}");
        }
    }
    // A connection per request costs more syscalls than a kept-alive one.
    let per = |kind: &str| res["weft"][kind]["syscalls"]["per_request"].as_f64().unwrap();
    assert!(per("h1-conn") > per("h1"), "{res}");
}
