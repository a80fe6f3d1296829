//! weft's own resource for local mode: a workload `weft up` starts as a
//! process next to its sidecar.
//!
//! ```yaml
//! apiVersion: weft.dev/v1alpha1
//! kind: Workload
//! metadata: { name: reviews-v1 }
//! spec:
//!   command: ["weft", "demo", "--name", "reviews", "--version", "v1"]
//!   replicas: 2
//!   labels: { app: reviews, version: v1 }
//!   serviceAccount: reviews
//!   port: 9080
//! ```
//! Each replica gets its own port in `$PORT` (the declared port when there is
//! one replica and it is free); `${PORT}` in `command` is replaced by it.

use super::Labels;
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadSpec {
    /// Program and arguments. A first word `weft` means this weft binary.
    #[serde(default)]
    pub command: Vec<String>,
    /// Default 1.
    pub replicas: Option<u32>,
    #[serde(default)]
    pub labels: Labels,
    pub service_account: Option<String>,
    /// The port the application listens on.
    pub port: u16,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// `region/zone/subzone`.
    pub locality: Option<String>,
    pub weight: Option<u32>,
}
