//! The CA directory, watched: a rotation step (`weft ca rotate`) or an
//! operator's new `cacerts` is taken without a restart. A change is loaded
//! once the files have stood still for a tick (a rotation renames several),
//! and only a consistent set (the key is the certificate's); then the API's
//! TLS port shows a certificate of the new signer, and proxies, which ask
//! `/v1/root` every few seconds, renew.

use crate::api::Api;
use crate::ca::Ca;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

const TICK: Duration = Duration::from_secs(1);
const FILES: [&str; 4] = ["ca-cert.pem", "ca-key.pem", "root-cert.pem", "cert-chain.pem"];

/// What the files look like: each one's size and modification time.
fn look(dir: &Path) -> Vec<Option<(u64, SystemTime)>> {
    FILES
        .iter()
        .map(|f| {
            std::fs::metadata(dir.join(f)).ok().map(|m| (m.len(), m.modified().ok().unwrap_or(SystemTime::UNIX_EPOCH)))
        })
        .collect()
}

/// Reloads the CA when its files change, until the process ends.
pub async fn run(api: Arc<Api>, dir: PathBuf, listen: std::net::IpAddr) {
    let mut loaded = look(&dir);
    let mut seen = loaded.clone();
    loop {
        tokio::time::sleep(TICK).await;
        let now = look(&dir);
        let settled = now == seen;
        seen = now.clone();
        if !settled || now == loaded {
            continue;
        }
        let current = api.ca.load_full();
        match Ca::load(&dir, crate::ca::TRUST_DOMAIN, current.ttl()) {
            Ok(Some(ca)) if ca.same_as(&current) => loaded = now,
            Ok(Some(ca)) => {
                let ca = Arc::new(ca);
                api.ca.store(ca.clone());
                match crate::api::tls::server_config(&ca, listen) {
                    Ok(cfg) => api.tls.store(cfg),
                    Err(e) => tracing::error!(error = %e, "the reloaded CA cannot make the API's TLS certificate"),
                }
                let ca = api.ca.load();
                tracing::info!(signer = %ca.signer_id(), roots = crate::ca::root_count(ca.root_pem()), "CA reloaded from its directory");
                loaded = now;
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "the CA directory changed but does not load; the CA in use stays")
            }
        }
    }
}
