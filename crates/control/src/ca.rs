//! The mesh's certificate authority (Istio's istiod CA, in small): a root
//! kept in the CA directory (made at first start, or the operator's own in
//! Istio's `cacerts` layout), and short-lived workload certificates signed
//! for the SPIFFE identity a proxy's CSR asks for.
//!
//! A proxy makes its own key and sends only a CSR (`POST /v1/certificates`),
//! so no private key crosses the wire. This module checks the form of the
//! identity (its trust domain, `ns/<ns>/sa/<sa>`); the API checks that the
//! caller proved it (`auth`).

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use std::path::Path;
use std::time::Duration;
use time::OffsetDateTime;

/// Istio's default trust domain.
pub const TRUST_DOMAIN: &str = "cluster.local";

/// Istio's default workload certificate lifetime.
pub const WORKLOAD_TTL: Duration = Duration::from_secs(24 * 3600);

pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    /// The signing certificate (the root itself unless an intermediate).
    signer_pem: String,
    /// The SHA-256 of the signing certificate: proxies get a certificate
    /// anew when it changes (a rotation's switch to the new root).
    signer_id: String,
    /// The roots workloads trust: one, or during a rotation the old and
    /// the new (a trust bundle).
    root_pem: String,
    /// The signing certificate and those up to the root, appended to each
    /// workload certificate when the signer is an intermediate.
    chain_pem: Option<String>,
    trust_domain: String,
    ttl: Duration,
}

/// Istio's `cacerts` file names.
const CA_CERT: &str = "ca-cert.pem";
const CA_KEY: &str = "ca-key.pem";
const ROOT_CERT: &str = "root-cert.pem";
const CERT_CHAIN: &str = "cert-chain.pem";

/// A signed workload certificate.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Signed {
    pub identity: String,
    /// The workload's certificate (PEM).
    pub certificate: String,
    /// The mesh root every workload trusts (PEM).
    pub root: String,
    /// Which certificate signed it (`Ca::signer_id`).
    pub signer: String,
    pub expires_in_seconds: u64,
}

/// The DER of each certificate in a PEM text.
fn ders(pem: &str) -> Vec<Vec<u8>> {
    x509_parser::pem::Pem::iter_from_buffer(pem.as_bytes()).filter_map(|p| p.ok().map(|p| p.contents)).collect()
}

/// How many certificates a bundle holds.
pub fn root_count(pem: &str) -> usize {
    ders(pem).len()
}

/// The SHA-256 (hex) of the first certificate in `pem`.
fn fingerprint(pem: &str) -> String {
    let der = ders(pem).into_iter().next().unwrap_or_default();
    ring::digest::digest(&ring::digest::SHA256, &der).as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

impl Ca {
    /// A new root for `trust_domain`, valid ten years (Istio's self-signed
    /// root default), signing workload certificates valid `ttl`.
    pub fn new(trust_domain: &str, ttl: Duration) -> anyhow::Result<Ca> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(DnType::OrganizationName, trust_domain);
        params.distinguished_name.push(DnType::CommonName, "weft mesh root");
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let now = OffsetDateTime::now_utc();
        params.not_before = now - Duration::from_secs(3600);
        params.not_after = now + Duration::from_secs(10 * 365 * 24 * 3600);
        let root_pem = params.self_signed(&key)?.pem();
        Ok(Ca {
            issuer: Issuer::new(params, key),
            signer_id: fingerprint(&root_pem),
            signer_pem: root_pem.clone(),
            root_pem,
            chain_pem: None,
            trust_domain: trust_domain.to_owned(),
            ttl,
        })
    }

    /// The CA kept in `dir`: the operator's (`ca-cert.pem` and `ca-key.pem`,
    /// with `root-cert.pem` and `cert-chain.pem` for an intermediate, as
    /// Istio's `cacerts`), or a root made there at first start and used
    /// again at the next (proxies keep trusting it across restarts).
    pub fn open(dir: &Path, trust_domain: &str, ttl: Duration) -> anyhow::Result<Ca> {
        if let Some(ca) = Ca::load(dir, trust_domain, ttl)? {
            return Ok(ca);
        }
        let ca = Ca::new(trust_domain, ttl)?;
        std::fs::create_dir_all(dir)?;
        crate::auth::write_private(&dir.join(CA_KEY), &ca.issuer.key().serialize_pem())?;
        for f in [CA_CERT, ROOT_CERT, CERT_CHAIN] {
            std::fs::write(dir.join(f), &ca.root_pem)?;
        }
        Ok(ca)
    }

    /// The CA kept in `dir`; None when its certificate or key is not there.
    pub fn load(dir: &Path, trust_domain: &str, ttl: Duration) -> anyhow::Result<Option<Ca>> {
        let read = |f: &str| std::fs::read_to_string(dir.join(f));
        let (Ok(cert), Ok(key)) = (read(CA_CERT), read(CA_KEY)) else { return Ok(None) };
        let at = |f: &str| dir.join(f).display().to_string();
        let key = KeyPair::from_pem(&key).map_err(|e| anyhow::anyhow!("{}: not a private key: {e}", at(CA_KEY)))?;
        if !key_matches(&cert, &key) {
            anyhow::bail!("{} is not the key of {}", at(CA_KEY), at(CA_CERT));
        }
        let issuer = Issuer::from_ca_cert_pem(&cert, key)
            .map_err(|e| anyhow::anyhow!("{}: not a CA certificate: {e}", at(CA_CERT)))?;
        let root_pem = read(ROOT_CERT).unwrap_or_else(|_| cert.clone());
        // An intermediate's chain goes with each certificate; a root of
        // the bundle (one, or two during a rotation) needs none.
        let signer_is_root = ders(&root_pem).contains(&ders(&cert).into_iter().next().unwrap_or_default());
        let chain_pem = (!signer_is_root).then(|| read(CERT_CHAIN).unwrap_or_else(|_| cert.clone()));
        Ok(Some(Ca {
            issuer,
            signer_id: fingerprint(&cert),
            signer_pem: cert,
            root_pem,
            chain_pem,
            trust_domain: trust_domain.to_owned(),
            ttl,
        }))
    }

    /// Whether `other` signs and is trusted as this one does (a reload
    /// that changes nothing changes nothing).
    pub fn same_as(&self, other: &Ca) -> bool {
        self.signer_id == other.signer_id && self.root_pem == other.root_pem && self.chain_pem == other.chain_pem
    }

    /// Workload certificates' lifetime.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    pub fn root_pem(&self) -> &str {
        &self.root_pem
    }

    /// A new root's certificate and key (PEM), for `ca_rotate`.
    pub fn root_files(&self) -> (String, String) {
        (self.root_pem.clone(), self.issuer.key().serialize_pem())
    }

    #[cfg(test)]
    pub fn sign_for_test(&self) -> String {
        self.sign(&tests::csr("spiffe://cluster.local/ns/default/sa/web")).unwrap().certificate
    }

    pub fn signer_id(&self) -> &str {
        &self.signer_id
    }

    /// The root's and the signing certificate's subjects and expiry, and
    /// the workload certificates' lifetime (`/debug/certs`, `weft check`).
    pub fn validity(&self) -> serde_json::Value {
        let cert = |pem: &str| {
            let parsed = x509_parser::pem::parse_x509_pem(pem.as_bytes()).ok().and_then(|(_, p)| {
                let c = p.parse_x509().ok()?;
                Some((c.subject().to_string(), c.validity().not_after.timestamp()))
            });
            let now = OffsetDateTime::now_utc().unix_timestamp();
            match parsed {
                Some((subject, not_after)) => {
                    serde_json::json!({"subject": subject, "notAfter": not_after, "expiresInSeconds": not_after - now})
                }
                None => serde_json::json!({"error": "not a PEM certificate"}),
            }
        };
        serde_json::json!({
            "root": cert(&self.root_pem),
            "signer": cert(&self.signer_pem),
            "intermediate": self.chain_pem.is_some(),
            "signerId": self.signer_id,
            "roots": ders(&self.root_pem).len(),
            "workloadTtlSeconds": self.ttl.as_secs(),
        })
    }

    /// The identity a CSR (PEM) asks for, checked to form; the error says
    /// what is wrong with the request.
    pub fn csr_identity(&self, csr_pem: &str) -> Result<crate::auth::Identity, String> {
        let (_, identity) = self.parse_csr(csr_pem)?;
        self.identity_of(&identity).ok_or_else(|| format!("`{identity}` is not a workload identity"))
    }

    /// A CSR and the SPIFFE ID it asks for, checked to form.
    fn parse_csr(&self, csr_pem: &str) -> Result<(CertificateSigningRequestParams, String), String> {
        let csr = CertificateSigningRequestParams::from_pem(csr_pem)
            .map_err(|e| format!("`csr` is not a PEM certificate signing request: {e}"))?;
        let identity = match csr.params.subject_alt_names.as_slice() {
            [SanType::URI(uri)] => uri.as_str().to_owned(),
            _ => return Err("the CSR must carry exactly one URI SAN, the workload's SPIFFE ID".into()),
        };
        self.check_identity(&identity)?;
        Ok((csr, identity))
    }

    /// Signs a CSR (PEM) whose one URI SAN is a SPIFFE ID of this trust
    /// domain, `spiffe://<td>/ns/<namespace>/sa/<service account>`. The
    /// error says what was wrong with the request.
    pub fn sign(&self, csr_pem: &str) -> Result<Signed, String> {
        let (csr, identity) = self.parse_csr(csr_pem)?;
        let params = self.workload_params(csr.params.subject_alt_names.clone());
        let cert = params.signed_by(&csr.public_key, &self.issuer).map_err(|e| format!("signing failed: {e}"))?;
        let mut certificate = cert.pem();
        if let Some(chain) = &self.chain_pem {
            certificate.push_str(chain);
        }
        Ok(Signed {
            identity,
            certificate,
            root: self.root_pem.clone(),
            signer: self.signer_id.clone(),
            expires_in_seconds: self.ttl.as_secs(),
        })
    }

    /// A workload certificate's profile: `sans`, client and server use,
    /// this CA's lifetime, backdated an hour for clocks a little behind
    /// (Istio backdates too).
    fn workload_params(&self, sans: Vec<SanType>) -> CertificateParams {
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.subject_alt_names = sans;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        params.use_authority_key_identifier_extension = true;
        let now = OffsetDateTime::now_utc();
        params.not_before = now - Duration::from_secs(3600);
        params.not_after = now + self.ttl;
        params
    }

    /// The control plane's own certificate and key (PEM), for its TLS API:
    /// `identity` as URI SAN, `ips` as IP SANs, `localhost` as DNS name.
    pub fn server_cert(&self, identity: &str, ips: &[std::net::IpAddr]) -> anyhow::Result<(String, String)> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.subject_alt_names = vec![SanType::URI(identity.try_into()?), SanType::DnsName("localhost".try_into()?)];
        params.subject_alt_names.extend(ips.iter().map(|ip| SanType::IpAddress(*ip)));
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let now = OffsetDateTime::now_utc();
        params.not_before = now - Duration::from_secs(3600);
        params.not_after = now + Duration::from_secs(365 * 24 * 3600);
        let mut pem = params.signed_by(&key, &self.issuer)?.pem();
        if let Some(chain) = &self.chain_pem {
            pem.push_str(chain);
        }
        Ok((pem, key.serialize_pem()))
    }

    /// A workload certificate and its key (PEM) made here, for a proxy that
    /// cannot make a CSR (Envoy, over SDS) and proved `identity` on the
    /// TLS port: its key crosses only that mutual-TLS connection.
    pub fn workload_cert(&self, identity: &crate::auth::Identity) -> anyhow::Result<(String, String)> {
        let id = format!("spiffe://{}/ns/{}/sa/{}", self.trust_domain, identity.namespace, identity.service_account);
        self.check_identity(&id).map_err(anyhow::Error::msg)?;
        let key = KeyPair::generate()?;
        let params = self.workload_params(vec![SanType::URI(id.as_str().try_into()?)]);
        let mut pem = params.signed_by(&key, &self.issuer)?.pem();
        if let Some(chain) = &self.chain_pem {
            pem.push_str(chain);
        }
        Ok((pem, key.serialize_pem()))
    }

    /// The identity of a SPIFFE ID of this trust domain, if it is one.
    pub fn identity_of(&self, id: &str) -> Option<crate::auth::Identity> {
        self.check_identity(id).ok()?;
        let rest = id.strip_prefix(&format!("spiffe://{}/ns/", self.trust_domain))?;
        let (ns, sa) = rest.split_once("/sa/")?;
        Some(crate::auth::Identity { namespace: ns.into(), service_account: sa.into() })
    }

    fn check_identity(&self, id: &str) -> Result<(), String> {
        let want = format!("spiffe://{}/", self.trust_domain);
        let rest = id.strip_prefix(&want).ok_or_else(|| {
            format!(
                "`{id}` is not a SPIFFE ID of trust domain `{}` (expected {want}ns/<namespace>/sa/<service account>)",
                self.trust_domain
            )
        })?;
        // Checked to the names' rules: the ID is copied into the
        // `x-forwarded-client-cert` header applications parse, where a `;`,
        // `,` or `"` would add fields of the caller's choosing.
        match rest.split('/').collect::<Vec<_>>().as_slice() {
            ["ns", ns, "sa", sa] => {
                weft_api::names::dns_label(ns).map_err(|e| format!("the namespace of `{id}`: {e}"))?;
                weft_api::names::dns_subdomain(sa).map_err(|e| format!("the service account of `{id}`: {e}"))
            }
            _ => Err(format!("`{id}` is not of the form {want}ns/<namespace>/sa/<service account>")),
        }
    }
}

/// Whether `key` is the private key of the certificate `cert_pem` (a
/// directory caught in the middle of a rotation's renames is not loaded).
fn key_matches(cert_pem: &str, key: &KeyPair) -> bool {
    let Some(der) = ders(cert_pem).into_iter().next() else { return false };
    match x509_parser::parse_x509_certificate(&der) {
        Ok((_, cert)) => cert.public_key().subject_public_key.data.as_ref() == key.public_key_raw(),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_directory_keeps_the_root_across_starts() {
        let dir = tempfile::tempdir().unwrap();
        let first = Ca::open(dir.path(), TRUST_DOMAIN, WORKLOAD_TTL).unwrap();
        let again = Ca::open(dir.path(), TRUST_DOMAIN, WORKLOAD_TTL).unwrap();
        assert_eq!(first.root_pem(), again.root_pem());
        let key = std::fs::metadata(dir.path().join(CA_KEY)).unwrap();
        assert_eq!(std::os::unix::fs::PermissionsExt::mode(&key.permissions()) & 0o777, 0o600);
        let signed = again.sign(&csr("spiffe://cluster.local/ns/default/sa/web")).unwrap();
        assert_eq!(signed.root, first.root_pem());
    }

    pub(super) fn csr(uri: &str) -> String {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::default();
        p.subject_alt_names = vec![SanType::URI(uri.try_into().unwrap())];
        p.serialize_request(&key).unwrap().pem().unwrap()
    }

    #[test]
    fn signs_a_spiffe_id_of_its_trust_domain_and_refuses_others() {
        let ca = Ca::new(TRUST_DOMAIN, WORKLOAD_TTL).unwrap();
        let ok = ca.sign(&csr("spiffe://cluster.local/ns/default/sa/reviews")).unwrap();
        assert_eq!(ok.identity, "spiffe://cluster.local/ns/default/sa/reviews");
        assert!(ok.certificate.starts_with("-----BEGIN CERTIFICATE-----"));
        assert_eq!(ok.root, ca.root_pem());
        let other = ca.sign(&csr("spiffe://example.org/ns/default/sa/reviews")).unwrap_err();
        assert!(other.contains("trust domain `cluster.local`"), "{other}");
        let form = ca.sign(&csr("spiffe://cluster.local/reviews")).unwrap_err();
        assert!(form.contains("ns/<namespace>/sa/<service account>"), "{form}");
        assert!(ca.sign("not a csr").unwrap_err().contains("not a PEM"));
        for injected in [
            "default/sa/x;By=evil",
            "default/sa/x,URI=spiffe://cluster.local/ns/kube-system/sa/admin",
            "default/sa/x\"",
            "Default/sa/x",
            "/sa/x",
        ] {
            let e = ca.sign(&csr(&format!("spiffe://cluster.local/ns/{injected}"))).unwrap_err();
            assert!(e.contains("RFC 1123") || e.contains("1 to 63") || e.contains("of the form"), "{injected}: {e}");
        }
    }
}
