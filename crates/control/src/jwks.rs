//! The key sets RequestAuthentications name by URL (`jwksUri`, or the
//! issuer's OpenID discovery), fetched by the control plane as istiod does,
//! so that proxies get them inline and never reach out themselves. Each is
//! refetched every `REFRESH` (an issuer's new key reaches the proxies then);
//! a failed fetch is retried with backoff, and until one succeeds its
//! provider has a key set no token verifies with (tokens of that issuer are
//! refused; requests without one go on), as Istio does.

use crate::hub::Hub;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Istio's default refresh interval (`PILOT_JWT_PUB_KEY_REFRESH_INTERVAL`).
const REFRESH: Duration = Duration::from_secs(20 * 60);
/// A fetch's limit (a rule's `timeout`; Istio's default).
const TIMEOUT: Duration = Duration::from_secs(5);
/// A key set's largest size: a few keys are a few kilobytes.
const MAX_BODY: usize = 1 << 20;

struct Entry {
    /// The last key set fetched, kept through later failures.
    jwks: Option<String>,
    next: Instant,
    failures: u32,
}

/// Fetches what the current config names, when due; publishes a snapshot
/// when a key set changed. Runs until the process ends.
pub async fn run(hub: Arc<Hub>) {
    let mut updates = hub.subscribe();
    let mut entries: BTreeMap<String, Entry> = BTreeMap::new();
    loop {
        let snap = hub.snapshot();
        let wanted = crate::translate::jwt::sources(&snap.resources);
        entries.retain(|k, _| wanted.contains(k));
        let mut changed = false;
        let timeouts = crate::translate::jwt::timeouts(&snap.resources);
        for key in wanted {
            let e = entries.entry(key.clone()).or_insert(Entry { jwks: None, next: Instant::now(), failures: 0 });
            if e.next > Instant::now() {
                continue;
            }
            let limit = timeouts.get(&key).copied().unwrap_or(TIMEOUT);
            match fetch(&key, limit).await {
                Ok(jwks) => {
                    changed |= e.jwks.as_deref() != Some(&jwks);
                    e.jwks = Some(jwks);
                    e.failures = 0;
                    e.next = Instant::now() + REFRESH;
                }
                Err(why) => {
                    hub.metrics.jwks_fetch_failures.inc();
                    tracing::warn!(source = %key, error = %why, "cannot fetch a RequestAuthentication's key set; its tokens are refused until it is fetched");
                    e.failures += 1;
                    e.next = Instant::now() + Duration::from_secs(1 << e.failures.min(6));
                }
            }
        }
        if changed {
            hub.set_jwks(entries.iter().filter_map(|(k, e)| Some((k.clone(), e.jwks.clone()?))).collect());
        }
        let next = entries.values().map(|e| e.next).min().unwrap_or_else(|| Instant::now() + REFRESH);
        tokio::select! {
            r = updates.changed() => if r.is_err() { return },
            _ = tokio::time::sleep_until(next) => {}
        }
    }
}

/// The key set at `source`: a JWKS document, or an OpenID discovery
/// document whose `jwks_uri` is then fetched.
async fn fetch(source: &str, limit: Duration) -> Result<String, String> {
    let body = get(source, limit).await?;
    let doc: serde_json::Value = serde_json::from_str(&body).map_err(|e| format!("not JSON: {e}"))?;
    if doc.get("keys").is_some() {
        return Ok(body);
    }
    let Some(uri) = doc.get("jwks_uri").and_then(|u| u.as_str()) else {
        return Err("neither a key set (`keys`) nor an OpenID discovery document (`jwks_uri`)".into());
    };
    let body = get(uri, limit).await?;
    let doc: serde_json::Value = serde_json::from_str(&body).map_err(|e| format!("{uri}: not JSON: {e}"))?;
    doc.get("keys").ok_or_else(|| format!("{uri}: no `keys`"))?;
    Ok(body)
}

/// A GET of `url` (http or https, checked against the system's CAs),
/// within `limit`; the body of a 200.
async fn get(url: &str, limit: Duration) -> Result<String, String> {
    let uri: http::Uri = url.parse().map_err(|e| format!("{url}: {e}"))?;
    let https = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => return Err(format!("{url}: not an http:// or https:// URL")),
    };
    let host = uri.host().ok_or_else(|| format!("{url}: no host"))?.to_owned();
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
    let exchange = async {
        let tcp = tokio::net::TcpStream::connect((host.as_str(), port)).await.map_err(|e| e.to_string())?;
        let req = http::Request::get(path)
            .header(http::header::HOST, uri.authority().map_or(host.as_str(), |a| a.as_str()))
            .header(http::header::ACCEPT, "application/json")
            .body(Empty::<Bytes>::new())
            .map_err(|e| e.to_string())?;
        if https {
            let name = rustls::pki_types::ServerName::try_from(host.clone()).map_err(|e| e.to_string())?;
            let tls = tokio_rustls::TlsConnector::from(Arc::new(system_client()?))
                .connect(name, tcp)
                .await
                .map_err(|e| e.to_string())?;
            exchange(tls, req).await
        } else {
            exchange(tcp, req).await
        }
    };
    tokio::time::timeout(limit, exchange)
        .await
        .map_err(|_| format!("{url}: no answer within {limit:?}"))?
        .map_err(|e| format!("{url}: {e}"))
}

async fn exchange<S>(io: S, req: http::Request<Empty<Bytes>>) -> Result<String, String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(io)).await.map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    if resp.status() != http::StatusCode::OK {
        return Err(format!("answered {}", resp.status()));
    }
    let body = http_body_util::Limited::new(resp.into_body(), MAX_BODY);
    let bytes = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
    String::from_utf8(bytes.to_vec()).map_err(|_| "the body is not UTF-8".into())
}

/// A TLS client trusting the system's CAs.
fn system_client() -> Result<rustls::ClientConfig, String> {
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    let mut roots = rustls::RootCertStore::empty();
    let bundle = crate::translate::SYSTEM_CA_BUNDLE;
    for cert in CertificateDer::pem_file_iter(bundle).map_err(|e| format!("{bundle}: {e}"))? {
        let _ = roots.add(cert.map_err(|e| format!("{bundle}: {e}"))?);
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth())
}
