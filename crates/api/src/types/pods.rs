//! What weft reads of Kubernetes objects that run pods (Deployment,
//! StatefulSet, DaemonSet, ReplicaSet, ReplicationController, Job, CronJob,
//! Pod) and of `Secret`s. Only these fields are read; the rest of a manifest
//! (images, resources, probes, volumes...) is accepted without a word, as
//! weft does not run containers.

use super::{Labels, ObjectMeta};
use serde::Deserialize;
use std::collections::BTreeMap;

/// The pods one object runs, as selectors and subsets see them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PodsSpec {
    /// `Deployment`, `Pod`, ...
    pub kind: &'static str,
    /// Unset for a Pod, a DaemonSet or a Job; Kubernetes' default is 1.
    pub replicas: Option<u32>,
    /// The pods' labels (the template's; a Pod's own).
    pub labels: Labels,
    pub service_account: Option<String>,
    pub ports: Vec<ContainerPort>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerPort {
    pub name: Option<String>,
    pub container_port: u16,
    pub protocol: Option<String>,
}

/// A controller's document: `spec.template`, or a CronJob's
/// `spec.jobTemplate.spec.template`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ControllerDoc {
    #[serde(default)]
    pub(crate) metadata: ObjectMeta,
    #[serde(default)]
    pub(crate) spec: ControllerSpec,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ControllerSpec {
    replicas: Option<u32>,
    template: Option<PodTemplate>,
    job_template: Option<Box<JobTemplate>>,
}

#[derive(Default, Deserialize)]
struct JobTemplate {
    #[serde(default)]
    spec: ControllerSpec,
}

#[derive(Default, Deserialize)]
struct PodTemplate {
    #[serde(default)]
    metadata: ObjectMeta,
    #[serde(default)]
    spec: PodSpec,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PodSpec {
    service_account_name: Option<String>,
    /// Deprecated alias of `serviceAccountName`, still honoured by Kubernetes.
    service_account: Option<String>,
    #[serde(default)]
    containers: Vec<Container>,
}

#[derive(Default, Deserialize)]
struct Container {
    #[serde(default)]
    ports: Vec<ContainerPort>,
}

/// A Pod's document: its labels are its own.
#[derive(Deserialize)]
pub(crate) struct PodDoc {
    #[serde(default)]
    pub(crate) metadata: ObjectMeta,
    #[serde(default)]
    pub(crate) spec: PodSpec,
}

impl ControllerSpec {
    pub(crate) fn pods(self, kind: &'static str) -> PodsSpec {
        if let Some(job) = self.job_template {
            return job.spec.pods(kind);
        }
        let template = self.template.unwrap_or_default();
        PodsSpec { replicas: self.replicas, ..template.spec.pods(kind, template.metadata.labels) }
    }
}

impl PodSpec {
    pub(crate) fn pods(self, kind: &'static str, labels: Labels) -> PodsSpec {
        PodsSpec {
            kind,
            replicas: None,
            labels,
            service_account: self.service_account_name.or(self.service_account),
            ports: self.containers.into_iter().flat_map(|c| c.ports).collect(),
        }
    }
}

/// A `Secret`: of type `kubernetes.io/tls`, its `tls.crt` and `tls.key`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SecretSpec {
    pub type_: Option<String>,
    /// The decoded `tls.crt` and `tls.key` of a TLS secret.
    pub tls: Option<TlsKeyPair>,
    /// The decoded `ca.crt` (or `cacert`, Istio's other name): the CA a
    /// gateway's MUTUAL server checks client certificates against.
    pub ca_pem: Option<Vec<u8>>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct TlsKeyPair {
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
}

/// The TLS secret type.
pub const TLS_SECRET: &str = "kubernetes.io/tls";

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SecretDoc {
    #[serde(default)]
    pub(crate) metadata: ObjectMeta,
    #[serde(rename = "type")]
    pub(crate) type_: Option<String>,
    /// Base64 values.
    #[serde(default)]
    pub(crate) data: BTreeMap<String, String>,
    /// Plain values, which win over `data`'s as in Kubernetes.
    #[serde(default)]
    pub(crate) string_data: BTreeMap<String, String>,
}

/// A ConfigMap: its string data.
#[derive(Deserialize)]
pub(crate) struct ConfigMapDoc {
    #[serde(default)]
    pub(crate) metadata: ObjectMeta,
    #[serde(default)]
    pub(crate) data: BTreeMap<String, String>,
}

/// Any other kind weft accepts: only its name matters.
#[derive(Deserialize)]
pub(crate) struct MetaDoc {
    #[serde(default)]
    pub(crate) metadata: ObjectMeta,
}
