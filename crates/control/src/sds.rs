//! SDS for a proxy that cannot make its own key (Envoy): the secrets
//! Istio's names stand for, `default` (a workload certificate and key, made
//! here for the identity the proxy's TLS client certificate proved on the
//! xDS stream) and `ROOTCA` (the mesh's roots). Only a proxy proven on the
//! TLS port gets them; the key crosses only that mutual-TLS connection.

use crate::auth::Identity;
use crate::ca::Ca;
use crate::translate::{Res, encode_res};
use envoy_types::pb::envoy::config::core::v3::{DataSource, data_source};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    CertificateValidationContext, Secret, TlsCertificate, secret,
};
use std::sync::Arc;

pub const SECRET: &str = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret";

fn inline(s: String) -> Option<DataSource> {
    Some(DataSource { specifier: Some(data_source::Specifier::InlineString(s)), ..Default::default() })
}

/// The two secrets for `id`, from the CA of the moment.
pub fn secrets(ca: &Ca, id: &Identity) -> anyhow::Result<Vec<Arc<Res>>> {
    let (cert, key) = ca.workload_cert(id)?;
    let workload = Secret {
        name: "default".into(),
        r#type: Some(secret::Type::TlsCertificate(TlsCertificate {
            certificate_chain: inline(cert),
            private_key: inline(key),
            ..Default::default()
        })),
    };
    let roots = Secret {
        name: "ROOTCA".into(),
        r#type: Some(secret::Type::ValidationContext(CertificateValidationContext {
            trusted_ca: inline(ca.root_pem().to_owned()),
            ..Default::default()
        })),
    };
    Ok(vec![encode_res("default".into(), workload), encode_res("ROOTCA".into(), roots)])
}
