//! Typed resources, field for field as upstream names them (camelCase).
//! Defaults are upstream's; they are applied where the value is used, so an
//! unset field stays distinguishable from an explicit one.

pub mod authz;
pub mod duration;
pub mod gateway;
pub mod gateway_api;
pub mod k8s;
pub mod local;
pub mod mesh_config;
pub mod peer_auth;
pub mod pods;
pub mod request_auth;
pub mod routing;
pub mod service_entry;
pub mod sidecar;
pub mod telemetry;
pub mod traffic_policy;

pub use authz::*;
pub use duration::Duration;
pub use gateway::*;
pub use k8s::*;
pub use local::*;
pub use mesh_config::MeshConfig;
pub use peer_auth::*;
pub use pods::*;
pub use request_auth::*;
pub use routing::*;
pub use service_entry::*;
pub use sidecar::*;
pub use telemetry::TelemetrySpec;
pub use traffic_policy::*;

use serde::Deserialize;
use std::collections::BTreeMap;

pub type Labels = BTreeMap<String, String>;

/// Istio's label for a workload with a sidecar (`istio`) or without one
/// (`disabled`). weft's sidecars put `istio` on the instances they
/// register; only such endpoints receive the caller's identity.
pub const TLS_MODE_LABEL: &str = "security.istio.io/tlsMode";

/// Whether `labels` put an instance in the mesh (a sidecar fronts it).
pub fn in_mesh(labels: &Labels) -> bool {
    labels.get(TLS_MODE_LABEL).is_some_and(|v| v == "istio")
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectMeta {
    #[serde(default)]
    pub name: String,
    pub namespace: Option<String>,
    #[serde(default)]
    pub labels: Labels,
    #[serde(default)]
    pub annotations: Labels,
    // Accepted so `kubectl get -o yaml` output loads without warnings.
    pub generate_name: Option<serde_json::Value>,
    pub uid: Option<serde_json::Value>,
    pub resource_version: Option<serde_json::Value>,
    pub generation: Option<serde_json::Value>,
    pub creation_timestamp: Option<serde_json::Value>,
    pub managed_fields: Option<serde_json::Value>,
    pub owner_references: Option<serde_json::Value>,
    pub finalizers: Option<serde_json::Value>,
}

/// `{ matchLabels: {...} }`, Istio's workloadSelector.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadSelector {
    #[serde(default)]
    pub match_labels: Labels,
}

/// A Kubernetes label selector: every `matchLabels` pair and every
/// `matchExpressions` requirement must hold; an empty one selects all.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LabelSelector {
    #[serde(default)]
    pub match_labels: Labels,
    #[serde(default)]
    pub match_expressions: Vec<LabelRequirement>,
}

/// `{key, operator: In|NotIn|Exists|DoesNotExist, values}`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LabelRequirement {
    #[serde(default)]
    pub key: String,
    #[serde(default)]
    pub operator: String,
    #[serde(default)]
    pub values: Vec<String>,
}

impl LabelSelector {
    pub fn selects(&self, labels: &Labels) -> bool {
        selects(&self.match_labels, labels) && self.match_expressions.iter().all(|r| r.holds(labels))
    }

    /// What Kubernetes would refuse in it: the requirement's index, the
    /// field at fault, and why.
    pub fn invalid(&self) -> Option<(usize, &'static str, String)> {
        self.match_expressions.iter().enumerate().find_map(|(i, r)| {
            let (field, why) = match r.operator.as_str() {
                "In" | "NotIn" if r.values.is_empty() => ("operator", format!("`{}` needs `values`", r.operator)),
                "Exists" | "DoesNotExist" if !r.values.is_empty() => {
                    ("values", format!("`{}` takes no `values`", r.operator))
                }
                "In" | "NotIn" | "Exists" | "DoesNotExist" => return None,
                other => ("operator", format!("unknown operator `{other}`: use In, NotIn, Exists or DoesNotExist")),
            };
            Some((i, field, why))
        })
    }
}

impl LabelRequirement {
    /// An invalid requirement (see `LabelSelector::invalid`) holds for nothing.
    pub fn holds(&self, labels: &Labels) -> bool {
        let v = labels.get(&self.key);
        match self.operator.as_str() {
            "In" => v.is_some_and(|v| self.values.contains(v)),
            "NotIn" => v.is_none_or(|v| !self.values.contains(v)),
            "Exists" => v.is_some(),
            "DoesNotExist" => v.is_none(),
            _ => false,
        }
    }
}

/// Does `selector` select `labels`? An empty selector selects everything.
pub fn selects(selector: &Labels, labels: &Labels) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}
