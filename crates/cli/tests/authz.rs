//! Security policies through a real sidecar. AuthorizationPolicy: one table-driven matrix,
//! a row per semantic rule (DENY before ALLOW, an ALLOW policy denies what
//! it does not match, every source, operation and condition field and its
//! `not` form, Istio's value and path-template forms, selectors and
//! namespaces), with callers proven by mesh certificates from the CA,
//! plaintext ones, and ones calling from another address.
//! PeerAuthentication: STRICT, PERMISSIVE and DISABLE by mesh, namespace,
//! workload and port, and what a client's sidecar then speaks.

mod common;
use common::authz::*;
use common::tls::{Call, send};
use common::*;
use std::path::{Path, PathBuf};

/// `weft cert` files for a namespace and service account.
fn cert(control: &Control, dir: &Path, ns: &str, sa: &str) -> PathBuf {
    common::tls::weft_cert(control, dir, ns, sa)
}

/// A demo app behind a sidecar with a mesh certificate, under the policies
/// `mesh` writes for its app and inbound ports.
async fn web(dir: &Path, mesh: fn(u16, u16) -> String) -> (Control, Sidecar, Proc, u16, String) {
    let (app_proc, app) = demo("web", "v1").await;
    let inbound = free_port();
    std::fs::write(dir.join("mesh.yaml"), mesh(app, inbound)).unwrap();
    let control = Control::start(dir).await;
    let (a, i) = (app.to_string(), inbound.to_string());
    let extra = ["--app-port", &a, "--inbound-port", &i, "--labels", "app=web", "--service-account", "web"];
    let extra: Vec<&str> = extra.into_iter().chain(control.ca_args()).collect();
    let sc = Sidecar::start_with(&control.xds, "web", &extra).await;
    let admin = sc.admin.clone();
    eventually(20, "the sidecar's certificate", || {
        let a = admin.clone();
        async move { get(&a, "/config_dump", &[]).await.json()["mtls"]["identity"].is_string() }
    })
    .await;
    (control, sc, app_proc, app, format!("127.0.0.1:{inbound}"))
}

#[test]
fn policies_decide_by_identity_request_and_conditions() {
    let dir = tempfile::tempdir().unwrap();
    let certs = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let (control, sc, _app, app, inbound) = web(dir.path(), mesh).await;
        let mut failures = Vec::new();
        for r in matrix() {
            let certs = match r.who {
                Who::Plain => None,
                Who::Id(ns, sa) => Some(cert(&control, certs.path(), ns, sa)),
            };
            let got = send(&inbound, certs.is_some(), certs.as_deref(), &r.call).await;
            match got {
                Ok((status, _)) if status == r.want => {}
                Ok((status, body)) => failures.push(format!(
                    "{} {} {:?}: {status}, want {} ({}): {body}",
                    r.call.method, r.call.path, r.call.headers, r.want, r.why
                )),
                Err(e) => failures.push(format!("{} {}: {e} ({})", r.call.method, r.call.path, r.why)),
            }
        }
        assert!(failures.is_empty(), "{} rows failed:\n{}", failures.len(), failures.join("\n"));

        // `weft authz check` decides each row as the sidecar did, from the folder.
        for r in matrix() {
            let out = explain(dir.path(), app, &r);
            let allowed = out.status.success();
            assert_eq!(
                allowed,
                r.want == 200,
                "{} {} ({}): {}",
                r.call.method,
                r.call.path,
                r.why,
                String::from_utf8_lossy(&out.stdout)
            );
        }
        let delete = row(OPS, "DELETE", "/data", 403, "");
        let said = String::from_utf8(explain(dir.path(), app, &delete).stdout).unwrap();
        assert!(said.contains("DENY by AuthorizationPolicy default/deny-rules, rule 3"), "{said}");

        // A denial is Envoy's: 403 `RBAC: access denied`, counted by policy.
        let (status, body) =
            send(&inbound, false, None, &Call { path: "/secret", ..Default::default() }).await.unwrap();
        assert_eq!((status, body.trim()), (403, "RBAC: access denied"));
        let page = String::from_utf8(get(&sc.admin, "/stats/prometheus", &[]).await.body.to_vec()).unwrap();
        let denied = page.lines().find(|l| {
            l.starts_with("weft_authz_decisions_total{")
                && l.contains(r#"decision="denied""#)
                && l.contains(r#"policy="ns[default]-policy[deny-rules]-rule[1]""#)
        });
        assert!(denied.is_some(), "{page}");
    });
}

#[test]
fn audit_and_dry_run_policies_count_without_deciding() {
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let (control, sc, _app, _, inbound) = web(dir.path(), mesh).await;
        let extra = r#"---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: audit-api}
spec:
  action: AUDIT
  rules: [{to: [{operation: {paths: ["/api/*"]}}]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: would-deny-health
  annotations: {istio.io/dry-run: "true"}
spec:
  action: DENY
  rules: [{to: [{operation: {paths: [/healthz]}}]}]
"#;
        let mut yaml = std::fs::read_to_string(dir.path().join("mesh.yaml")).unwrap();
        yaml.push_str(extra);
        std::fs::write(dir.path().join("mesh.yaml"), yaml).unwrap();
        let admin = sc.admin.clone();
        eventually(20, "the audit policy on the sidecar", || {
            let a = admin.clone();
            async move { get(&a, "/config_dump", &[]).await.body.windows(9).any(|w| w == b"audit-api") }
        })
        .await;
        let count = |decision: &'static str, policy: &'static str| {
            let admin = sc.admin.clone();
            async move {
                let page = String::from_utf8(get(&admin, "/stats/prometheus", &[]).await.body.to_vec()).unwrap();
                let label = format!(r#"decision="{decision}",policy="{policy}""#);
                page.lines()
                    .find(|l| l.starts_with("weft_authz_decisions_total{") && l.contains(&label))
                    .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
                    .unwrap_or(0)
            }
        };
        // The dry-run DENY would refuse /healthz: it is served, and counted.
        let health = Call { path: "/healthz", ..Default::default() };
        assert_eq!(send(&inbound, false, None, &health).await.unwrap().0, 200);
        assert_eq!(count("shadow_denied", "ns[default]-policy[would-deny-health]-rule[0]").await, 1);
        // AUDIT decides nothing: /api/x is denied by the ALLOW policy (no
        // principal) and logged by the audit policy all the same.
        let api = Call { path: "/api/x", ..Default::default() };
        assert_eq!(send(&inbound, false, None, &api).await.unwrap().0, 403);
        assert_eq!(count("logged", "ns[default]-policy[audit-api]-rule[0]").await, 1);

        // Through a client's sidecar, the caller is its sidecar's identity.
        let [c, api, t, token] = control.ca_args();
        let ca = [c, api, t, token, "--service-account", "frontend"];
        let client = Sidecar::start_with(&control.xds, "frontend", &ca).await;
        let out = client.outbound.clone();
        eventually(20, "frontend's certificate", || {
            let a = client.admin.clone();
            async move { get(&a, "/config_dump", &[]).await.json()["mtls"]["identity"].is_string() }
        })
        .await;
        let r = get(&out, "/api/x", &[("host", "web")]).await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        let r = get(&out, "/other", &[("host", "web")]).await;
        assert_eq!((r.status, String::from_utf8_lossy(&r.body).trim()), (403, "RBAC: access denied"));
    });
}

/// `web`'s Service and its sidecar's WorkloadEntry, with no policy.
fn plain_mesh(app: u16, inbound: u16) -> String {
    let mut m = mesh(app, inbound);
    m.truncate(m.find("---\napiVersion: security.istio.io").unwrap());
    m
}

const PA: &str = "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\n";

#[test]
fn peer_authentication_decides_what_a_sidecar_takes() {
    let dir = tempfile::tempdir().unwrap();
    let certs = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let (control, sc, _app, app, inbound) = web(dir.path(), plain_mesh).await;
        let frontend = cert(&control, certs.path(), "default", "frontend");
        let base = std::fs::read_to_string(dir.path().join("mesh.yaml")).unwrap();
        let transport = |want: &'static str| {
            let admin = sc.admin.clone();
            async move {
                eventually(20, want, || {
                    let a = admin.clone();
                    async move {
                        let dump = get(&a, "/config_dump", &[]).await.json();
                        let inbound = dump["listeners"].as_array().unwrap().iter().find(|l| l["name"] == "inbound").cloned();
                        inbound.is_some_and(|l| l["http"]["transport"] == want)
                    }
                })
                .await
            }
        };
        let call = Call::default();
        let plain = || send(&inbound, false, None, &call);
        let mtls = || send(&inbound, true, Some(&frontend), &call);

        // The mesh's STRICT: plaintext is closed unanswered, and counted.
        let strict = format!("---\n{PA}metadata: {{name: mesh, namespace: istio-system}}\nspec: {{mtls: {{mode: STRICT}}}}\n");
        std::fs::write(dir.path().join("mesh.yaml"), base.clone() + &strict).unwrap();
        transport("Tls").await;
        let refused = counter(&sc.admin, "weft_inbound_plaintext_refused_total").await;
        assert!(plain().await.is_err(), "STRICT served plaintext");
        assert_eq!(counter(&sc.admin, "weft_inbound_plaintext_refused_total").await, refused + 1);
        assert_eq!(mtls().await.unwrap().0, 200);

        // The namespace's PERMISSIVE overrides the mesh's.
        let ns = format!("---\n{PA}metadata: {{name: default}}\nspec: {{mtls: {{mode: PERMISSIVE}}}}\n");
        std::fs::write(dir.path().join("mesh.yaml"), base.clone() + &strict + &ns).unwrap();
        transport("Any").await;
        assert_eq!(plain().await.unwrap().0, 200);
        assert_eq!(mtls().await.unwrap().0, 200);

        // The workload's DISABLE overrides both: TLS is refused, and a
        // client's sidecar speaks plaintext to it (auto mutual TLS).
        let workload = format!("---\n{PA}metadata: {{name: web}}\nspec: {{selector: {{matchLabels: {{app: web}}}}, mtls: {{mode: DISABLE}}}}\n");
        std::fs::write(dir.path().join("mesh.yaml"), base.clone() + &strict + &ns + &workload).unwrap();
        transport("Plaintext").await;
        assert!(mtls().await.is_err(), "DISABLE served mutual TLS");
        assert_eq!(plain().await.unwrap().0, 200);
        let [c, api, t, token] = control.ca_args();
        let ca = [c, api, t, token, "--service-account", "frontend"];
        let client = Sidecar::start_with(&control.xds, "frontend", &ca).await;
        let r = get(&client.outbound, "/", &[("host", "web")]).await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        assert_eq!(r.json()["headers"].get("x-forwarded-client-cert"), None, "plaintext carries no caller");

        // A port's mode beats the workload's own (UNSET defers to the namespace's).
        let port = format!("---\n{PA}metadata: {{name: web}}\nspec: {{selector: {{matchLabels: {{app: web}}}}, portLevelMtls: {{\"{app}\": {{mode: STRICT}}}}}}\n");
        std::fs::write(dir.path().join("mesh.yaml"), base + &strict + &ns + &port).unwrap();
        transport("Tls").await;
        assert!(plain().await.is_err(), "the port's STRICT served plaintext");
        let r = get(&client.outbound, "/", &[("host", "web")]).await;
        assert_eq!(r.status, 200, "the client's sidecar speaks mutual TLS again: {}", String::from_utf8_lossy(&r.body));
    });
}

/// `weft authz check` on the folder for one matrix row.
fn explain(dir: &Path, app: u16, r: &Row) -> std::process::Output {
    let port = app.to_string();
    let mut args: Vec<String> =
        ["authz", "check", dir.to_str().unwrap(), "--labels", "app=web", "--port", &port].map(String::from).to_vec();
    args.extend([
        "--method".into(),
        r.call.method.into(),
        "--path".into(),
        r.call.path.into(),
        "--host".into(),
        r.call.host.into(),
    ]);
    if let Who::Id(ns, sa) = r.who {
        args.extend(["--from".into(), format!("cluster.local/ns/{ns}/sa/{sa}")]);
    }
    if let Some(ip) = r.call.from {
        args.extend(["--source-ip".into(), ip.to_string()]);
    }
    for (k, v) in r.call.headers {
        args.extend(["--header".into(), format!("{k}={v}")]);
    }
    std::process::Command::new(weft()).args(&args).output().unwrap()
}
