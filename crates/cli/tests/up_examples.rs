//! Both shipped examples, answered end to end through `weft up`: gateway →
//! sidecar → workload, with real processes on 127.0.0.1.

mod common;
use common::*;

#[test]
fn seed_example_routes_exact_root_to_my_app() {
    let mut up = Up::start(&repo().join("examples/seed"));
    let gw = format!("127.0.0.1:{}", up.gateway_port);
    rt().block_on(async {
        let r = get(&gw, "/", &[]).await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        let j = r.json();
        assert_eq!(j["service"], "my-app");
        assert_eq!(j["path"], "/");
        // The VirtualService matches `exact: /` only.
        assert_eq!(get(&gw, "/other", &[]).await.status, 404);
    });
    up.stop();
}

#[test]
fn bookinfo_canary_splits_90_10_and_header_pins_v2() {
    let mut up = Up::start(&repo().join("examples/bookinfo"));
    let gw = format!("127.0.0.1:{}", up.gateway_port);
    rt().block_on(async {
        let n = 300;
        let mut v2 = 0;
        for _ in 0..n {
            let r = get(&gw, "/", &[]).await;
            assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
            let j = r.json();
            assert_eq!(j["service"], "productpage");
            let calls = j["calls"].as_array().unwrap();
            let details = calls.iter().find(|c| c["target"] == "details:9080").unwrap();
            assert_eq!(details["body"]["service"], "details", "{details}");
            let reviews = calls.iter().find(|c| c["target"] == "reviews:9080").unwrap();
            assert_eq!(reviews["status"], 200, "{reviews}");
            if reviews["body"]["version"] == "v2" {
                v2 += 1;
            }
        }
        // 10% of 300 = 30; binomial sd ≈ 5.2, so 12..=54 is beyond 3.5 sd.
        assert!((12..=54).contains(&v2), "v2 got {v2} of {n}, expected about 30");
        for _ in 0..20 {
            let j = get(&gw, "/", &[("end-user", "jason")]).await.json();
            let reviews =
                j["calls"].as_array().unwrap().iter().find(|c| c["target"] == "reviews:9080").unwrap().clone();
            assert_eq!(reviews["body"]["version"], "v2", "{reviews}");
        }
    });
    up.stop();
}
