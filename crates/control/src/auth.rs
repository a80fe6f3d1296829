//! Who may ask the control plane for what. Three credentials:
//!
//! - the **admin token**, made at first start and kept 0600 in the CA
//!   directory: config, tokens, certificates for any identity;
//! - a **bootstrap token** for one identity (namespace and service
//!   account), with an expiry: `weft up` hands one to each sidecar through a
//!   0600 file, an operator makes one for a VM (`weft token create`);
//! - a **workload certificate**, presented on the API's TLS port: it
//!   renews itself and registers instances of its own identity.
//!
//! Tokens are 256 random bits; only their SHA-256 is kept.

use parking_lot::Mutex;
use ring::rand::SecureRandom;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A workload identity: namespace and service account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub namespace: String,
    pub service_account: String,
}

impl Identity {
    pub fn spiffe(&self, trust_domain: &str) -> String {
        format!("spiffe://{trust_domain}/ns/{}/sa/{}", self.namespace, self.service_account)
    }
}

struct Bootstrap {
    identity: Identity,
    expires: Instant,
}

pub struct Auth {
    admin_hash: [u8; 32],
    admin_path: PathBuf,
    tokens: Mutex<HashMap<[u8; 32], Bootstrap>>,
}

/// What a request proves.
#[derive(Debug, PartialEq, Eq)]
pub enum Proof {
    Admin,
    /// A bootstrap token's identity, or a TLS client certificate's.
    Workload(Identity),
    None,
}

fn digest(token: &str) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

fn random_token(prefix: &str) -> anyhow::Result<String> {
    let mut bytes = [0u8; 32];
    ring::rand::SystemRandom::new().fill(&mut bytes).map_err(|_| anyhow::anyhow!("no randomness for a token"))?;
    Ok(format!("{prefix}{}", bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()))
}

/// Writes `text` to `path`, readable by its owner alone.
pub fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let _ = std::fs::remove_file(path);
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    f.write_all(text.as_bytes())
}

impl Auth {
    /// The admin token kept in `dir` (made there at first start).
    pub fn open(dir: &Path) -> anyhow::Result<Auth> {
        let admin_path = dir.join("admin-token");
        let admin = match std::fs::read_to_string(&admin_path) {
            Ok(t) if !t.trim().is_empty() => t.trim().to_owned(),
            _ => {
                let t = random_token("weft-admin-")?;
                write_private(&admin_path, &t)
                    .map_err(|e| anyhow::anyhow!("cannot write the admin token to {}: {e}", admin_path.display()))?;
                t
            }
        };
        Ok(Auth { admin_hash: digest(&admin), admin_path, tokens: Default::default() })
    }

    /// Where the admin token is (0600).
    pub fn admin_path(&self) -> &Path {
        &self.admin_path
    }

    /// A bootstrap token for `identity`, valid `ttl`.
    pub fn create_token(&self, identity: Identity, ttl: Duration) -> anyhow::Result<String> {
        let token = random_token("weft-token-")?;
        let now = Instant::now();
        let mut tokens = self.tokens.lock();
        tokens.retain(|_, b| b.expires > now);
        tokens.insert(digest(&token), Bootstrap { identity, expires: now + ttl });
        Ok(token)
    }

    /// What `bearer` (an `Authorization: Bearer` value) and `peer` (a
    /// verified TLS client certificate's identity) prove; the admin token
    /// first. An expired or unknown token proves nothing.
    pub fn prove(&self, bearer: Option<&str>, peer: Option<&Identity>) -> Proof {
        if let Some(t) = bearer {
            let h = digest(t);
            // Digests compared: timing says nothing of the token itself.
            if h == self.admin_hash {
                return Proof::Admin;
            }
            if let Some(b) = self.tokens.lock().get(&h).filter(|b| b.expires > Instant::now()) {
                return Proof::Workload(b.identity.clone());
            }
        }
        match peer {
            Some(id) => Proof::Workload(id.clone()),
            None => Proof::None,
        }
    }
}

impl Proof {
    /// Whether it proves `identity` (the admin may act for any).
    pub fn allows(&self, identity: &Identity) -> bool {
        match self {
            Proof::Admin => true,
            Proof::Workload(id) => id == identity,
            Proof::None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(ns: &str, sa: &str) -> Identity {
        Identity { namespace: ns.into(), service_account: sa.into() }
    }

    #[test]
    fn tokens_prove_their_identity_until_they_expire() {
        let dir = tempfile::tempdir().unwrap();
        let auth = Auth::open(dir.path()).unwrap();
        let mode =
            std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(auth.admin_path()).unwrap().permissions());
        assert_eq!(mode & 0o777, 0o600);
        let admin = std::fs::read_to_string(auth.admin_path()).unwrap();
        assert_eq!(auth.prove(Some(&admin), None), Proof::Admin);
        assert_eq!(Auth::open(dir.path()).unwrap().prove(Some(&admin), None), Proof::Admin, "kept across starts");
        let t = auth.create_token(id("default", "web"), Duration::from_secs(60)).unwrap();
        assert!(auth.prove(Some(&t), None).allows(&id("default", "web")));
        assert!(!auth.prove(Some(&t), None).allows(&id("default", "db")));
        let gone = auth.create_token(id("default", "web"), Duration::ZERO).unwrap();
        assert_eq!(auth.prove(Some(&gone), None), Proof::None);
        assert_eq!(auth.prove(Some("weft-token-guess"), None), Proof::None);
        assert_eq!(auth.prove(None, Some(&id("a", "b"))), Proof::Workload(id("a", "b")));
    }
}
