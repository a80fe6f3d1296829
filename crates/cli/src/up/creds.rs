//! Each proxy's credentials: `weft up` is the trusted launcher, so it
//! makes each sidecar and gateway a bootstrap token for its own identity
//! and hands it over in a file only this user can read (never argv or
//! the environment, which other processes can read). A proxy exchanges it
//! for its certificate at the CA's TLS port, and renews by that certificate.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use weft_control::auth::{Auth, Identity, write_private};

/// How long a proxy has to exchange its token: it does so at start.
const TOKEN_TTL: Duration = Duration::from_secs(3600);

pub struct Creds {
    pub auth: Arc<Auth>,
    /// A directory only this user can enter.
    pub dir: PathBuf,
    /// The mesh root, which proxies check the CA's certificate against.
    pub root: PathBuf,
    /// The CA's TLS address.
    pub api_tls: String,
}

impl Creds {
    /// A new token for `name`'s identity, written to its file; the flags
    /// that give a proxy its CA, root and token.
    pub fn proxy_args(&self, name: &str, namespace: &str, service_account: &str) -> anyhow::Result<Vec<String>> {
        let identity = Identity { namespace: namespace.into(), service_account: service_account.into() };
        let token = self.auth.create_token(identity, TOKEN_TTL)?;
        let file = self.dir.join(format!("{}.token", name.replace(['/', ' '], "-")));
        write_private(&file, &token).map_err(|e| anyhow::anyhow!("cannot write {}: {e}", file.display()))?;
        Ok(vec![
            "--ca".into(),
            self.api_tls.clone(),
            "--ca-root".into(),
            self.root.display().to_string(),
            "--token-file".into(),
            file.display().to_string(),
        ])
    }
}
