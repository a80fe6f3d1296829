//! Getting and renewing the workload certificate from the mesh CA (the
//! control plane's `POST /v1/certificates`): a key made here, only its CSR
//! sent.

use super::control::ControlApi;
use super::{Issued, MeshTls};
use crate::state::ProxyState;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Asks the CA at `api` for a certificate for `identity`, with a new key
/// that stays here: only its CSR is sent. `current`, the certificate this
/// proxy holds, proves the identity on renewal.
pub async fn issue(api: &ControlApi, current: Option<&MeshTls>, identity: &str) -> anyhow::Result<Issued> {
    use anyhow::Context;
    let key = rcgen::KeyPair::generate()?;
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.subject_alt_names = vec![rcgen::SanType::URI(identity.try_into()?)];
    let csr = params.serialize_request(&key)?.pem()?;
    let body = serde_json::json!({ "csr": csr });
    let addr = &api.addr;
    let (status, body) = api.call(current, http::Method::POST, "/v1/certificates", Some(body)).await.with_context(|| {
        format!("cannot reach the mesh CA at {addr} (the control plane's API: is `weft control` or `weft up` running there?)")
    })?;
    if status != 200 {
        anyhow::bail!("the CA at {addr} refused the CSR ({status}): {}", String::from_utf8_lossy(&body));
    }
    let v: serde_json::Value = serde_json::from_slice(&body).context("the CA's answer is not JSON")?;
    let (Some(cert), Some(root)) = (v["certificate"].as_str(), v["root"].as_str()) else {
        anyhow::bail!("the CA's answer lacks `certificate` or `root`");
    };
    Ok(Issued {
        identity: identity.to_owned(),
        cert_pem: cert.to_owned(),
        key_pem: key.serialize_pem(),
        root_pem: root.to_owned(),
        signer: v["signer"].as_str().unwrap_or_default().to_owned(),
        ttl: Duration::from_secs(v["expiresInSeconds"].as_u64().unwrap_or(3600)),
    })
}

/// A certificate from the CA, made into the proxy's TLS configurations.
pub async fn fetch(api: &ControlApi, current: Option<&MeshTls>, identity: &str) -> anyhow::Result<MeshTls> {
    MeshTls::new(&issue(api, current, identity).await?)
}

/// How often the CA's root is compared with the one this proxy trusts.
const ROOT_CHECK: Duration = Duration::from_secs(5);

/// The CA's current roots and signer, if it answers.
async fn ca_root(api: &ControlApi, current: Option<&MeshTls>) -> Option<(String, String)> {
    let (status, body) = api.call(current, http::Method::GET, "/v1/root", None).await.ok()?;
    let v: serde_json::Value = serde_json::from_slice(&body).ok().filter(|_| status == 200)?;
    Some((v["root"].as_str()?.to_owned(), v["signer"].as_str().unwrap_or_default().to_owned()))
}

/// Sleeps `wait`, or less if the CA's roots or signer stop being the ones
/// this proxy's certificate has (a rotation's step, or a control plane
/// restarted with a new root): a proxy that kept the old ones would fail
/// handshakes with workloads certified since.
async fn sleep_unless_root_changes(state: &ProxyState, api: &ControlApi, wait: Duration) {
    let until = tokio::time::Instant::now() + wait;
    loop {
        let now = tokio::time::Instant::now();
        if now >= until {
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep((until - now).min(ROOT_CHECK)) => {}
            _ = state.drained() => return,
        }
        let current = state.tls().load_full();
        let ours = current.as_ref().map(|t| (t.root_pem.clone(), t.signer.clone()));
        if let (Some(ours), Some(theirs)) = (ours, ca_root(api, current.as_deref()).await)
            && ours != theirs
        {
            tracing::warn!(api = %api.addr, "the mesh CA's roots or signer changed; getting a certificate from it now");
            return;
        }
    }
}

/// Keeps the proxy's certificate current until it drains: the first at
/// once, then a new one at half the current one's life, or at once when
/// the CA's root changes; a failed request is retried with backoff (1 s,
/// doubling to 30 s).
pub async fn run(state: Arc<ProxyState>, api: Arc<ControlApi>, identity: String) {
    let mut backoff = Duration::from_secs(1);
    while !state.is_draining() {
        let current = state.tls().load_full();
        let wait = match fetch(&api, current.as_deref(), &identity).await {
            Ok(tls) => {
                let life = tls.expires.duration_since(SystemTime::now()).unwrap_or_default();
                tracing::info!(%identity, expires_in = ?life, "workload certificate issued");
                state.tls().store(Some(Arc::new(tls)));
                *state.cert_error.lock() = None;
                state.metrics.cert_renewals.inc();
                backoff = Duration::from_secs(1);
                (life / 2).max(Duration::from_secs(1))
            }
            Err(e) => {
                tracing::warn!(error = %e, api = %api.addr, "cannot get a workload certificate; mesh traffic stays plaintext until one is issued");
                *state.cert_error.lock() = Some(format!("{e}"));
                let w = backoff;
                backoff = (backoff * 2).min(Duration::from_secs(30));
                w
            }
        };
        sleep_unless_root_changes(&state, &api, wait).await;
    }
}
