//! xDS over the control plane's TLS port: a proxy that shows its workload
//! certificate (`--xds https://...`) gets its config and serves; a client
//! with no certificate is refused, and one whose certificate proves another
//! namespace than its node claims gets nothing.

mod common;
use common::*;
use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::DiscoveryRequest;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::google::protobuf::{Struct, Value, value::Kind};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;
use std::sync::Arc;

/// `weft cert` files for `ns`/`sa` in `dir`.
fn cert(control: &Control, dir: &Path, ns: &str) -> std::path::PathBuf {
    let out = dir.join(ns);
    let done = std::process::Command::new(weft())
        .args(["cert", "--ca", &control.api, "--token-file", &control.admin_token])
        .args(["--namespace", ns, "--service-account", "probe", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(done.status.success(), "{}", String::from_utf8_lossy(&done.stderr));
    out
}

/// The status an ADS stream to `addr` over TLS ends with, for a node in
/// `node_ns`, showing the certificate in `certs` (or none).
async fn ads_status(addr: &str, certs: Option<&Path>, root: &str, node_ns: &str) -> tonic::Code {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_slice(root.as_bytes()).unwrap()).unwrap();
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let cfg = Arc::new(match certs {
        Some(d) => builder
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_file(d.join("cert.pem")).unwrap()],
                PrivateKeyDer::from_pem_file(d.join("key.pem")).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    });
    let a = addr.to_owned();
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_with_connector(tower::service_fn(move |_: http::Uri| {
            let (a, cfg) = (a.clone(), cfg.clone());
            async move {
                let tcp = tokio::net::TcpStream::connect(&a).await?;
                let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
                let tls = tokio_rustls::TlsConnector::from(cfg).connect(name, tcp).await?;
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(tls))
            }
        }))
        .await
        .unwrap();
    let meta = [("NAMESPACE".to_owned(), Value { kind: Some(Kind::StringValue(node_ns.into())) })].into();
    let req = DiscoveryRequest {
        node: Some(Node { id: "probe".into(), metadata: Some(Struct { fields: meta }), ..Default::default() }),
        type_url: "type.googleapis.com/envoy.config.cluster.v3.Cluster".into(),
        ..Default::default()
    };
    let mut client = AggregatedDiscoveryServiceClient::new(channel);
    match client
        .stream_aggregated_resources(futures::StreamExt::chain(
            futures::stream::iter(vec![req]),
            futures::stream::pending(),
        ))
        .await
    {
        Err(s) => s.code(),
        Ok(resp) => match resp.into_inner().message().await {
            Ok(Some(_)) => tonic::Code::Ok,
            Ok(None) => tonic::Code::Unknown,
            Err(s) => s.code(),
        },
    }
}

#[test]
fn xds_over_tls_serves_proven_proxies_their_own_namespace() {
    let dir = tempfile::tempdir().unwrap();
    let certs = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let (_app, port) = demo("echo", "v1").await;
        std::fs::write(dir.path().join("mesh.yaml"), backend_yaml("echo", port)).unwrap();
        let control = Control::start(dir.path()).await;
        let tls_xds = format!("https://{}", control.api_tls);
        // A proxy on the TLS port with its certificate: config, and traffic.
        let sc = Sidecar::start_with(&tls_xds, "client", &control.ca_args()).await;
        let out = sc.outbound.clone();
        eventually(20, "a request through the proxy configured over TLS", || {
            let o = out.clone();
            async move {
                try_request(&o, "GET", "http://echo/", &[], Default::default()).await.is_ok_and(|r| r.status == 200)
            }
        })
        .await;

        let root = get(&control.api, "/v1/root", &[]).await.json()["root"].as_str().unwrap().to_owned();
        let default_ns = cert(&control, certs.path(), "default");
        assert_eq!(ads_status(&control.api_tls, Some(&default_ns), &root, "default").await, tonic::Code::Ok);
        assert_eq!(
            ads_status(&control.api_tls, Some(&default_ns), &root, "kube-system").await,
            tonic::Code::PermissionDenied,
            "a certificate of `default` reads no other namespace's config"
        );
        assert_eq!(ads_status(&control.api_tls, None, &root, "default").await, tonic::Code::Unauthenticated);
        let metrics = String::from_utf8(get(&control.api, "/metrics", &[]).await.body.to_vec()).unwrap();
        assert!(metrics.lines().any(|l| l.contains("request=\"xds\"") && !l.ends_with(" 0")), "{metrics}");
    });
    // Plaintext xDS on a routable address is refused unless asked for.
    let out = std::process::Command::new(weft())
        .args(["control", "--config"])
        .arg(dir.path())
        .args(["--xds-addr", "0.0.0.0:0", "--api-addr", "127.0.0.1:0", "--api-tls-addr", "127.0.0.1:0"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("--insecure-plaintext-xds"), "{err}");
}
