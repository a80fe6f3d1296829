//! A root rotation on the CA directory, in Istio's three steps, each taken
//! by a running control plane within a second or two (`ca_reload`), then
//! by every proxy within 5 s (`mtls::ca_client`):
//!
//! 1. `trust`: a new root is made and added to `root-cert.pem` beside the
//!    old one; the old one still signs. Every proxy comes to trust both.
//! 2. `sign`: the new root signs (`ca-cert.pem`, `ca-key.pem`); the old
//!    one's files are kept as `old-*`. Proxies get certificates of the new
//!    root at once, and both ends of every connection still trust both.
//! 3. `retire`: `root-cert.pem` holds the new root alone; `old-*` go.
//!
//! A connection never meets a certificate its peer does not trust, as
//! long as each step waits for every proxy to have taken the one before
//! (`weft status`'s ROOTS column; `weft check` names the proxies behind).

use crate::ca::{Ca, TRUST_DOMAIN, WORKLOAD_TTL};
use anyhow::{Context, bail};
use std::path::Path;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    Trust,
    Sign,
    Retire,
}

impl std::str::FromStr for Step {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "trust" => Ok(Step::Trust),
            "sign" => Ok(Step::Sign),
            "retire" => Ok(Step::Retire),
            _ => Err(format!("`{s}` is not a step: trust, sign, retire (in that order)")),
        }
    }
}

const NEXT_CERT: &str = "next-ca-cert.pem";
const NEXT_KEY: &str = "next-ca-key.pem";
const OLD_CERT: &str = "old-ca-cert.pem";
const OLD_KEY: &str = "old-ca-key.pem";

/// Carries out `step` on `dir`; what was done and what comes next.
pub fn rotate(dir: &Path, step: Step) -> anyhow::Result<String> {
    let path = |f: &str| dir.join(f);
    let read = |f: &str| std::fs::read_to_string(path(f)).with_context(|| format!("reading {}", path(f).display()));
    let exists = |f: &str| path(f).exists();
    match step {
        Step::Trust => {
            if exists(NEXT_CERT) || exists(OLD_CERT) {
                bail!(
                    "a rotation is under way in {} (next-* or old-* files): finish it with `sign` or `retire`",
                    dir.display()
                );
            }
            let (cert, roots) = (read("ca-cert.pem")?, read("root-cert.pem")?);
            if cert.trim() != roots.trim() {
                bail!(
                    "{} holds an intermediate or a bundle, not weft's own root: rotate your CA as its operator does, then replace the files",
                    dir.display()
                );
            }
            let new = Ca::new(TRUST_DOMAIN, WORKLOAD_TTL)?;
            let (new_cert, new_key) = new.root_files();
            std::fs::write(path(NEXT_CERT), &new_cert)?;
            crate::auth::write_private(&path(NEXT_KEY), &new_key)?;
            std::fs::write(path("root-cert.pem"), format!("{}\n{}", roots.trim_end(), new_cert))?;
            Ok("a new root is made and trusted beside the old one (root-cert.pem holds both); the old one still signs.\n\
                The control plane takes it within seconds; once every proxy trusts both roots (`weft status`: ROOTS 2), run `weft ca rotate sign`."
                .into())
        }
        Step::Sign => {
            if !exists(NEXT_CERT) {
                bail!("no new root to sign with in {}: run `weft ca rotate trust` first", dir.display());
            }
            std::fs::rename(path("ca-cert.pem"), path(OLD_CERT))?;
            std::fs::rename(path("ca-key.pem"), path(OLD_KEY))?;
            let new_cert = read(NEXT_CERT)?;
            std::fs::rename(path(NEXT_KEY), path("ca-key.pem"))?;
            std::fs::rename(path(NEXT_CERT), path("ca-cert.pem"))?;
            std::fs::write(path("cert-chain.pem"), new_cert)?;
            Ok("the new root signs now; both roots stay trusted.\n\
                The control plane takes it within seconds; once every proxy holds a certificate of the new root (`weft status`), run `weft ca rotate retire`."
                .into())
        }
        Step::Retire => {
            if exists(NEXT_CERT) || !exists(OLD_CERT) {
                bail!("nothing to retire in {}: the steps are trust, sign, retire", dir.display());
            }
            std::fs::write(path("root-cert.pem"), read("ca-cert.pem")?)?;
            std::fs::remove_file(path(OLD_CERT))?;
            std::fs::remove_file(path(OLD_KEY))?;
            Ok("the old root is retired: root-cert.pem holds the new root alone.\n\
                The control plane takes it within seconds; proxies trust the new root alone within 5 s more."
                .into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_steps_trust_then_sign_then_retire() {
        let dir = tempfile::tempdir().unwrap();
        let first = Ca::open(dir.path(), TRUST_DOMAIN, WORKLOAD_TTL).unwrap();
        assert!(rotate(dir.path(), Step::Sign).is_err(), "sign before trust");
        rotate(dir.path(), Step::Trust).unwrap();
        assert!(rotate(dir.path(), Step::Trust).is_err(), "one rotation at a time");
        let trusting = Ca::open(dir.path(), TRUST_DOMAIN, WORKLOAD_TTL).unwrap();
        assert_eq!(trusting.root_pem().matches("BEGIN CERTIFICATE").count(), 2);
        assert_eq!(trusting.signer_id(), first.signer_id(), "the old root still signs");
        rotate(dir.path(), Step::Sign).unwrap();
        let signing = Ca::open(dir.path(), TRUST_DOMAIN, WORKLOAD_TTL).unwrap();
        assert_ne!(signing.signer_id(), first.signer_id());
        assert_eq!(signing.root_pem(), trusting.root_pem(), "both roots stay trusted");
        let key = std::fs::metadata(dir.path().join("ca-key.pem")).unwrap();
        assert_eq!(std::os::unix::fs::PermissionsExt::mode(&key.permissions()) & 0o777, 0o600);
        rotate(dir.path(), Step::Retire).unwrap();
        let done = Ca::open(dir.path(), TRUST_DOMAIN, WORKLOAD_TTL).unwrap();
        assert_eq!(done.root_pem().matches("BEGIN CERTIFICATE").count(), 1);
        assert_eq!(done.signer_id(), signing.signer_id());
        assert!(!done.root_pem().contains(first.root_pem().trim()), "the old root is gone");
        let signed = done.sign_for_test();
        assert!(!signed.contains(first.root_pem().trim()), "no chain appended for a root signer");
    }
}
