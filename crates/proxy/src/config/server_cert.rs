//! The certificates a terminating chain shows: one, or several of different
//! key types (a gateway server's `credentialNames`: RSA and ECDSA), the one
//! shown chosen by what the client can verify. A certificate from files is
//! read again when they change, at most once a second and on a handshake,
//! so a renewed certificate reaches new connections without a config push;
//! open connections keep theirs.

use super::CompileError;
use super::certs::data;
use arc_swap::ArcSwap;
use envoy_types::pb::envoy::config::core::v3::data_source;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::TlsCertificate;
use parking_lot::Mutex;
use rustls::crypto::{CryptoProvider, KeyProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{SupportedCipherSuite, SupportedProtocolVersion};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

/// How often a handshake may look at a certificate's files.
const RECHECK: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub struct ServerCerts {
    each: Vec<Cert>,
    /// The suites the server speaks: a certificate is shown only to a
    /// client that offers one usable with its key.
    suites: Vec<SupportedCipherSuite>,
    keys: &'static dyn KeyProvider,
}

#[derive(Debug)]
struct Cert {
    current: ArcSwap<CertifiedKey>,
    files: Option<Files>,
}

#[derive(Debug)]
struct Files {
    chain: PathBuf,
    key: PathBuf,
    /// When (unix ms) a handshake may next look at the files.
    next_check: AtomicU64,
    /// The files' (modified, length) when last read; only the handshake
    /// that won `next_check` takes it.
    seen: Mutex<Option<Stamp>>,
}

type Stamp = [(SystemTime, u64); 2];

impl ServerCerts {
    pub fn compile(
        certs: &[TlsCertificate],
        provider: &Arc<CryptoProvider>,
        versions: &[&'static SupportedProtocolVersion],
    ) -> Result<ServerCerts, CompileError> {
        if certs.is_empty() {
            return Err(CompileError::new(
                "a TLS filter chain needs an inline or file certificate (SDS is not supported)",
            ));
        }
        let keys = provider.key_provider;
        let each = certs.iter().map(|c| Cert::compile(c, keys)).collect::<Result<Vec<_>, _>>()?;
        let suites = provider
            .cipher_suites
            .iter()
            .filter(|s| versions.iter().any(|v| v.version == s.version().version))
            .copied();
        Ok(ServerCerts { each, suites: suites.collect(), keys })
    }
}

impl ResolvesServerCert for ServerCerts {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let offered = hello.cipher_suites();
        let schemes = hello.signature_schemes();
        let usable = |ck: &CertifiedKey| {
            let alg = ck.key.algorithm();
            ck.key.choose_scheme(schemes).is_some()
                && self.suites.iter().any(|s| offered.contains(&s.suite()) && s.usable_for_signature_algorithm(alg))
        };
        let mut first = None;
        for c in &self.each {
            c.refresh(self.keys);
            let ck = c.current.load_full();
            if self.each.len() == 1 || usable(&ck) {
                return Some(ck);
            }
            first.get_or_insert(ck);
        }
        first
    }
}

impl Cert {
    fn compile(c: &TlsCertificate, keys: &dyn KeyProvider) -> Result<Cert, CompileError> {
        let chain = data(c.certificate_chain.as_ref(), "certificate chain")?;
        let key = data(c.private_key.as_ref(), "private key")?;
        let current = ArcSwap::from_pointee(certified(&chain, &key, keys)?);
        let path = |d: &Option<envoy_types::pb::envoy::config::core::v3::DataSource>| match d
            .as_ref()
            .and_then(|d| d.specifier.as_ref())
        {
            Some(data_source::Specifier::Filename(f)) => Some(PathBuf::from(f)),
            _ => None,
        };
        let files = match (path(&c.certificate_chain), path(&c.private_key)) {
            (Some(chain), Some(key)) => {
                let seen = Mutex::new(stamp(&chain, &key));
                Some(Files { chain, key, next_check: AtomicU64::new(now_ms() + RECHECK.as_millis() as u64), seen })
            }
            _ => None,
        };
        Ok(Cert { current, files })
    }

    /// Reads the files again if they changed since they were last read; a
    /// pair caught mid-write (unreadable, or a key not the certificate's)
    /// is left for a later handshake, and the last good pair stays.
    fn refresh(&self, keys: &dyn KeyProvider) {
        let Some(f) = &self.files else { return };
        let now = now_ms();
        let due = f.next_check.load(Ordering::Relaxed);
        if now < due
            || f.next_check
                .compare_exchange(due, now + RECHECK.as_millis() as u64, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        let Some(mut seen) = f.seen.try_lock() else { return };
        let Some(stamp) = stamp(&f.chain, &f.key) else { return };
        if seen.as_ref() == Some(&stamp) {
            return;
        }
        let read = std::fs::read(&f.chain).and_then(|c| Ok((c, std::fs::read(&f.key)?)));
        match read.map_err(|e| e.to_string()).and_then(|(c, k)| certified(&c, &k, keys).map_err(|e| e.to_string())) {
            Ok(ck) => {
                self.current.store(Arc::new(ck));
                *seen = Some(stamp);
                tracing::info!(chain = %f.chain.display(), "a changed certificate file was read: new connections show it");
            }
            Err(e) => {
                tracing::warn!(chain = %f.chain.display(), "a changed certificate file is not usable yet ({e}); the last one stays")
            }
        }
    }
}

/// A certificate chain and its key, checked to belong together.
fn certified(chain: &[u8], key: &[u8], keys: &dyn KeyProvider) -> Result<CertifiedKey, CompileError> {
    let err = |what: &str, e: &dyn std::fmt::Display| CompileError::new(format!("{what}: {e}"));
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(chain).collect::<Result<_, _>>().map_err(|e| err("certificate chain", &e))?;
    if chain.is_empty() {
        return Err(CompileError::new("certificate chain: no certificate in it"));
    }
    let key = PrivateKeyDer::from_pem_slice(key).map_err(|e| err("private key", &e))?;
    let key = keys.load_private_key(key).map_err(|e| err("private key", &e))?;
    let ck = CertifiedKey::new(chain, key);
    ck.keys_match().map_err(|e| err("certificate and key", &e))?;
    Ok(ck)
}

fn stamp(chain: &PathBuf, key: &PathBuf) -> Option<Stamp> {
    let one =
        |p: &PathBuf| std::fs::metadata(p).ok().map(|m| (m.modified().unwrap_or(SystemTime::UNIX_EPOCH), m.len()));
    Some([one(chain)?, one(key)?])
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}
