//! Peer certificates pinned by hash, as Envoy's validation context takes
//! them (Istio's `verifyCertificateSpki` and `verifyCertificateHash`): the
//! SHA-256 of the certificate's public key info (base64) or of the whole
//! certificate (hex, colons allowed). A certificate matching either list
//! is accepted.

use super::CompileError;
use base64::Engine;
use ring::digest::{SHA256, digest};
use rustls::pki_types::CertificateDer;

#[derive(Debug, Default)]
pub struct Pins {
    spki: Vec<[u8; 32]>,
    hash: Vec<[u8; 32]>,
}

impl Pins {
    pub fn of(spki: &[String], hash: &[String]) -> Result<Pins, CompileError> {
        let bad = |what: &str, v: &str| CompileError::new(format!("{what} {v:?} is not a SHA-256 digest"));
        let spki = spki
            .iter()
            .map(|v| {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(v)
                    .map_err(|_| bad("verify_certificate_spki", v))?;
                <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| bad("verify_certificate_spki", v))
            })
            .collect::<Result<_, _>>()?;
        let hash = hash
            .iter()
            .map(|v| {
                let hex: String = v.chars().filter(|c| *c != ':').collect();
                let bytes = (0..hex.len())
                    .step_by(2)
                    .map(|i| hex.get(i..i + 2).and_then(|b| u8::from_str_radix(b, 16).ok()))
                    .collect::<Option<Vec<u8>>>()
                    .ok_or_else(|| bad("verify_certificate_hash", v))?;
                <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| bad("verify_certificate_hash", v))
            })
            .collect::<Result<_, _>>()?;
        Ok(Pins { spki, hash })
    }

    pub fn is_empty(&self) -> bool {
        self.spki.is_empty() && self.hash.is_empty()
    }

    /// Whether `cert` is one of the pinned certificates.
    pub fn admit(&self, cert: &CertificateDer<'_>) -> bool {
        let sha = |b: &[u8]| -> [u8; 32] { digest(&SHA256, b).as_ref().try_into().unwrap_or_default() };
        if !self.hash.is_empty() && self.hash.contains(&sha(cert)) {
            return true;
        }
        if self.spki.is_empty() {
            return false;
        }
        use x509_parser::prelude::{FromDer, X509Certificate};
        X509Certificate::from_der(cert).is_ok_and(|(_, c)| self.spki.contains(&sha(c.public_key().raw)))
    }
}
