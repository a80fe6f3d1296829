//! The labels of Istio's request metrics: owned (`RequestLabels`, a
//! series' key) and borrowed (`Labels`, what a request is recorded with),
//! which hash alike so a request finds its series without an allocation;
//! what a client may claim is checked, and past the cap folds to `overflow`.

use super::{OVERFLOW, UNKNOWN};
use prometheus_client::encoding::EncodeLabelSet;
use std::sync::Arc;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub reporter: &'static str,
    pub source_workload: Arc<str>,
    pub source_workload_namespace: Arc<str>,
    pub destination_workload: Arc<str>,
    pub destination_workload_namespace: Arc<str>,
    pub destination_service: Arc<str>,
    pub destination_service_name: Arc<str>,
    pub destination_service_namespace: Arc<str>,
    pub request_protocol: &'static str,
    pub response_code: u16,
    pub grpc_response_status: &'static str,
    pub response_flags: &'static str,
    pub connection_security_policy: &'static str,
    pub source_principal: Arc<str>,
    pub source_app: Arc<str>,
    pub source_version: Arc<str>,
    pub source_canonical_service: Arc<str>,
    pub source_canonical_revision: Arc<str>,
    pub source_cluster: &'static str,
    pub destination_principal: Arc<str>,
    pub destination_app: Arc<str>,
    pub destination_version: Arc<str>,
    pub destination_canonical_service: Arc<str>,
    pub destination_canonical_revision: Arc<str>,
    pub destination_cluster: &'static str,
}

/// A request's labels, borrowed. Hashes as `RequestLabels` does: the same
/// fields in the same order, and a `&str` hashes as an `Arc<str>`.
#[derive(Clone, Copy, Debug, Hash, PartialEq)]
pub struct Labels<'a> {
    pub reporter: &'static str,
    pub source_workload: &'a str,
    pub source_workload_namespace: &'a str,
    pub destination_workload: &'a str,
    pub destination_workload_namespace: &'a str,
    pub destination_service: &'a str,
    pub destination_service_name: &'a str,
    pub destination_service_namespace: &'a str,
    pub request_protocol: &'static str,
    pub response_code: u16,
    pub grpc_response_status: &'static str,
    pub response_flags: &'static str,
    pub connection_security_policy: &'static str,
    pub source_principal: &'a str,
    pub source_app: &'a str,
    pub source_version: &'a str,
    pub source_canonical_service: &'a str,
    pub source_canonical_revision: &'a str,
    pub source_cluster: &'static str,
    pub destination_principal: &'a str,
    pub destination_app: &'a str,
    pub destination_version: &'a str,
    pub destination_canonical_service: &'a str,
    pub destination_canonical_revision: &'a str,
    pub destination_cluster: &'static str,
}

impl<'a> Labels<'a> {
    /// The catch-all set a request past the cap is recorded in.
    pub(super) fn overflowed(self) -> Labels<'a> {
        Labels {
            source_workload: OVERFLOW,
            source_workload_namespace: OVERFLOW,
            destination_workload: OVERFLOW,
            destination_workload_namespace: OVERFLOW,
            destination_service: OVERFLOW,
            destination_service_name: OVERFLOW,
            destination_service_namespace: OVERFLOW,
            source_principal: OVERFLOW,
            source_app: OVERFLOW,
            source_version: OVERFLOW,
            source_canonical_service: OVERFLOW,
            source_canonical_revision: OVERFLOW,
            destination_principal: OVERFLOW,
            destination_app: OVERFLOW,
            destination_version: OVERFLOW,
            destination_canonical_service: OVERFLOW,
            destination_canonical_revision: OVERFLOW,
            ..self
        }
    }

    /// The caller's names as recorded: a name a header claimed that is not
    /// a workload's or namespace's name is `unknown`.
    pub(super) fn checked(self) -> Labels<'a> {
        let name = |s: &'a str| {
            let ok = s == UNKNOWN || is_name(s);
            if ok { s } else { UNKNOWN }
        };
        let value = |s: &'a str| if s == UNKNOWN || is_label_value(s) { s } else { UNKNOWN };
        Labels {
            source_workload: name(self.source_workload),
            source_workload_namespace: name(self.source_workload_namespace),
            source_app: value(self.source_app),
            source_version: value(self.source_version),
            source_canonical_service: value(self.source_canonical_service),
            source_canonical_revision: value(self.source_canonical_revision),
            ..self
        }
    }
}

/// The shape of a workload's or namespace's name: lowercase letters,
/// digits, `-` and `.`, at most 253 bytes (weft-api's `names` holds the
/// full rules; the proxy does not depend on it).
fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
}

/// The shape of a Kubernetes label value: letters, digits, `-`, `_` and
/// `.`, at most 63 bytes (an app or version a header names).
fn is_label_value(s: &str) -> bool {
    !s.is_empty() && s.len() <= 63 && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

impl Labels<'_> {
    pub(super) fn to_owned(self) -> RequestLabels {
        RequestLabels {
            reporter: self.reporter,
            source_workload: self.source_workload.into(),
            source_workload_namespace: self.source_workload_namespace.into(),
            destination_workload: self.destination_workload.into(),
            destination_workload_namespace: self.destination_workload_namespace.into(),
            destination_service: self.destination_service.into(),
            destination_service_name: self.destination_service_name.into(),
            destination_service_namespace: self.destination_service_namespace.into(),
            request_protocol: self.request_protocol,
            response_code: self.response_code,
            grpc_response_status: self.grpc_response_status,
            response_flags: self.response_flags,
            connection_security_policy: self.connection_security_policy,
            source_principal: self.source_principal.into(),
            source_app: self.source_app.into(),
            source_version: self.source_version.into(),
            source_canonical_service: self.source_canonical_service.into(),
            source_canonical_revision: self.source_canonical_revision.into(),
            source_cluster: self.source_cluster,
            destination_principal: self.destination_principal.into(),
            destination_app: self.destination_app.into(),
            destination_version: self.destination_version.into(),
            destination_canonical_service: self.destination_canonical_service.into(),
            destination_canonical_revision: self.destination_canonical_revision.into(),
            destination_cluster: self.destination_cluster,
        }
    }
}

impl RequestLabels {
    pub(super) fn view(&self) -> Labels<'_> {
        Labels {
            reporter: self.reporter,
            source_workload: &self.source_workload,
            source_workload_namespace: &self.source_workload_namespace,
            destination_workload: &self.destination_workload,
            destination_workload_namespace: &self.destination_workload_namespace,
            destination_service: &self.destination_service,
            destination_service_name: &self.destination_service_name,
            destination_service_namespace: &self.destination_service_namespace,
            request_protocol: self.request_protocol,
            response_code: self.response_code,
            grpc_response_status: self.grpc_response_status,
            response_flags: self.response_flags,
            connection_security_policy: self.connection_security_policy,
            source_principal: &self.source_principal,
            source_app: &self.source_app,
            source_version: &self.source_version,
            source_canonical_service: &self.source_canonical_service,
            source_canonical_revision: &self.source_canonical_revision,
            source_cluster: self.source_cluster,
            destination_principal: &self.destination_principal,
            destination_app: &self.destination_app,
            destination_version: &self.destination_version,
            destination_canonical_service: &self.destination_canonical_service,
            destination_canonical_revision: &self.destination_canonical_revision,
            destination_cluster: self.destination_cluster,
        }
    }
}

impl hashbrown::Equivalent<RequestLabels> for Labels<'_> {
    fn equivalent(&self, k: &RequestLabels) -> bool {
        *self == k.view()
    }
}
