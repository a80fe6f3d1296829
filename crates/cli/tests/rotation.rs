//! A root rotation of the mesh CA under steady mutual-TLS load: `weft ca
//! rotate` trust, sign, retire, each taken by the running control plane
//! (it watches its CA directory; no restart) and by every proxy before the
//! next. Not one request fails.

mod common;
use common::*;

const SVC: &str = "apiVersion: v1\nkind: Service\nmetadata: {name: echo}\nspec:\n  selector: {app: echo}\n  ports: [{name: http, port: 80}]\n";

/// The `mtls` part of a proxy's config dump.
async fn mtls(admin: &str) -> serde_json::Value {
    get(admin, "/config_dump", &[]).await.json()["mtls"].clone()
}

#[test]
fn a_root_rotation_under_load_fails_no_request() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("svc.yaml"), SVC).unwrap();
    rt().block_on(async {
        let control = Control::start_with(dir.path(), &["--warmup", "3"]).await;
        let (_app, port) = demo("echo", "v1").await;
        let (p, inbound) = (port.to_string(), free_port().to_string());
        let mut server = vec!["--labels", "app=echo", "--app-port", &p, "--inbound-port", &inbound];
        server.extend(["--register", &control.api, "--register-ttl", "3"]);
        server.extend(control.ca_args());
        let server = Sidecar::start_with(&control.xds, "echo", &server).await;
        let client = Sidecar::start_with(&control.xds, "client", &control.ca_args()).await;
        let out = client.outbound.clone();
        eventually(20, "echo over mutual TLS", || {
            let o = out.clone();
            async move {
                let r = get(&o, "http://echo/", &[]).await;
                r.status == 200 && String::from_utf8_lossy(&r.body).contains("x-forwarded-client-cert")
            }
        })
        .await;
        let first_signer = mtls(&client.admin).await["signer"].as_str().unwrap().to_owned();

        let load = common::load::Load::start(&out, "http://echo/");
        let ca_dir = control.ca_dir.path().to_owned();
        for (step, roots, new_signer) in [("trust", 2, false), ("sign", 2, true), ("retire", 1, true)] {
            let done = std::process::Command::new(weft())
                .args(["ca", "rotate", "--ca-dir"])
                .arg(&ca_dir)
                .arg(step)
                .output()
                .unwrap();
            assert!(done.status.success(), "{step}: {}", String::from_utf8_lossy(&done.stderr));
            // Every proxy takes the step before the next one.
            for admin in [&client.admin, &server.admin] {
                let a = admin.clone();
                let took = eventually(30, &format!("{admin} to take `{step}`"), || {
                    let (a, first) = (a.clone(), first_signer.clone());
                    async move {
                        let m = mtls(&a).await;
                        m["roots"] == roots && (m["signer"].as_str() != Some(first.as_str())) == new_signer
                    }
                })
                .await;
                println!("{step}: {admin} took it in {took:?}");
            }
            // What an operator reads before the next step.
            let status = std::process::Command::new(weft())
                .args(["status", "--control", &control.api, "--admin-token-file", &control.admin_token])
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&status.stdout);
            let client_line = text.lines().find(|l| l.starts_with("client")).unwrap_or_default();
            assert_eq!(client_line.split_whitespace().nth(6), Some(roots.to_string().as_str()), "{step}: {text}");
            assert!(
                !text.contains("old signer"),
                "{step}: every proxy holds a certificate of the current signer: {text}"
            );
        }
        // A last request after the old root is gone, on fresh connections too.
        let r = get(&out, "http://echo/", &[]).await;
        assert_eq!(r.status, 200);
        let (ok, errors) = load.stop().await;
        println!("root rotation: {ok} requests served, {} failed", errors.len());
        assert!(ok > 100, "too little load to mean anything: {ok}");
        assert!(errors.is_empty(), "requests failed during the rotation: {:?}", &errors[..errors.len().min(10)]);
    });
}
