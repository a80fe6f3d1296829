//! DestinationRule `connectionPool.tcp.tcpKeepalive` on real sockets: the
//! sidecar's upstream connections carry the keepalive timer it sets (read
//! back with `ss`), and those of a service without it carry none.

mod common;
use common::*;

/// `ss`'s timer on the established connections to 127.0.0.1:`port`.
fn timers(port: u16) -> String {
    let out = std::process::Command::new("ss")
        .args(["-tno", "state", "established", "dst", &format!("127.0.0.1:{port}")])
        .output()
        .expect("ss (iproute2)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn tcp_keepalive_reaches_the_upstream_sockets() {
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let (_k, kept) = demo("kept", "v1").await;
        let (_p, plain) = demo("plain", "v1").await;
        let rule = "---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: kept}\nspec:\n  host: kept\n  trafficPolicy:\n    connectionPool:\n      tcp: {tcpKeepalive: {time: 7s, interval: 3s, probes: 4}}\n";
        let yaml = backend_yaml("kept", kept) + "---\n" + &backend_yaml("plain", plain) + rule;
        std::fs::write(dir.path().join("mesh.yaml"), yaml).unwrap();
        let control = Control::start(dir.path()).await;
        let sc = Sidecar::start(&control.xds, "client").await;
        for host in ["kept", "plain"] {
            let r = request(&sc.outbound, "GET", &format!("http://{host}/"), &[], Default::default()).await;
            assert_eq!(r.status, 200);
        }
        // The pooled upstream connections stay open; their timers say it.
        let kept_timers = timers(kept);
        // ss writes the time left as `6.992ms` (6 s 992 ms), `7sec` or `119min`.
        let left = kept_timers
            .split("timer:(keepalive,")
            .nth(1)
            .and_then(|t| t.split(',').next())
            .unwrap_or_else(|| panic!("no keepalive timer on the upstream connection: {kept_timers}"));
        let secs: u32 = match left.split_once('.') {
            Some((s, _)) => s.parse().unwrap_or(u32::MAX),
            None if left.ends_with("sec") => left.trim_end_matches("sec").parse().unwrap_or(u32::MAX),
            None => 0, // under a second left
        };
        assert!(!left.contains("min") && secs <= 7, "fires after 7 s idle, not the system's 2 h: {kept_timers}");
        let plain_timers = timers(plain);
        assert!(plain_timers.contains("127.0.0.1") && !plain_timers.contains("keepalive"), "{plain_timers}");
    });
}
