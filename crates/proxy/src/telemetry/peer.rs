//! What Istio's metrics say of each end of a request beyond its workload:
//! principal, app, version, canonical service and revision, cluster.
//!
//! This proxy's own come from its labels and certificate; a destination's
//! from its endpoint's metadata (`istio.workload` in Istio's form
//! `name;namespace;canonical service;canonical revision;cluster`, with
//! `app` and `version` beside it); a caller's from the `x-weft-source`
//! header its sidecar sends (`workload.namespace;canonical service;canonical
//! revision;app;version`), checked as the workload name is.

use super::UNKNOWN;
use crate::node::NodeInfo;
use std::sync::Arc;

/// The cluster every workload is in until weft spans several (Istio's
/// default cluster id).
pub const CLUSTER: &str = "Kubernetes";

/// One workload's names in metrics.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Workload {
    pub app: Arc<str>,
    pub version: Arc<str>,
    pub canonical_service: Arc<str>,
    pub canonical_revision: Arc<str>,
    /// Its SPIFFE ID; `unknown` without one.
    pub principal: Arc<str>,
}

impl Default for Workload {
    fn default() -> Self {
        let u: Arc<str> = UNKNOWN.into();
        Workload {
            app: u.clone(),
            version: u.clone(),
            canonical_service: u.clone(),
            canonical_revision: u.clone(),
            principal: u,
        }
    }
}

impl Workload {
    /// The names of a workload no metadata describes: all `unknown`, shared.
    pub fn unknown() -> Arc<Workload> {
        static UNKNOWN_WORKLOAD: std::sync::LazyLock<Arc<Workload>> = std::sync::LazyLock::new(Default::default);
        UNKNOWN_WORKLOAD.clone()
    }
}

/// Istio's canonical service and revision of a workload with `labels`:
/// `service.istio.io/canonical-name`, else `app.kubernetes.io/name`, else
/// `app`, else the workload's name; `service.istio.io/canonical-revision`,
/// else `app.kubernetes.io/version`, else `version`, else `latest`.
pub fn canonical<'a>(get: impl Fn(&str) -> Option<&'a str>, workload: &'a str) -> (&'a str, &'a str) {
    let first = |keys: &[&str]| keys.iter().find_map(|k| get(k));
    let service = first(&["service.istio.io/canonical-name", "app.kubernetes.io/name", "app"]).unwrap_or(workload);
    let revision = first(&["service.istio.io/canonical-revision", "app.kubernetes.io/version", "version"]);
    (service, revision.unwrap_or("latest"))
}

impl Workload {
    /// This proxy's own, from its node.
    pub fn of(node: &NodeInfo) -> Self {
        let get = |k: &str| node.labels.get(k).map(String::as_str);
        let (service, revision) = canonical(get, &node.workload);
        Workload {
            app: get("app").unwrap_or(UNKNOWN).into(),
            version: get("version").unwrap_or(UNKNOWN).into(),
            canonical_service: service.into(),
            canonical_revision: revision.into(),
            principal: node.identity.as_deref().unwrap_or(UNKNOWN).into(),
        }
    }

    /// Its names beside a workload's and namespace's.
    pub fn claimed<'a>(&'a self, workload: &'a str, namespace: &'a str) -> Claimed<'a> {
        Claimed {
            workload,
            namespace,
            canonical_service: &self.canonical_service,
            canonical_revision: &self.canonical_revision,
            app: &self.app,
            version: &self.version,
        }
    }

    /// What this proxy's sidecar tells the endpoints it calls
    /// (`x-weft-source`).
    pub fn header(&self, workload: &str, namespace: &str) -> String {
        format!(
            "{workload}.{namespace};{};{};{};{}",
            self.canonical_service, self.canonical_revision, self.app, self.version
        )
    }
}

/// A caller's names as its `x-weft-source` header gives them; `unknown`
/// for each it leaves out (an older sidecar sends the first alone).
#[derive(Clone, Copy, Debug)]
pub struct Claimed<'a> {
    pub workload: &'a str,
    pub namespace: &'a str,
    pub canonical_service: &'a str,
    pub canonical_revision: &'a str,
    pub app: &'a str,
    pub version: &'a str,
}

impl<'a> Claimed<'a> {
    pub const UNKNOWN: Claimed<'static> = Claimed {
        workload: UNKNOWN,
        namespace: UNKNOWN,
        canonical_service: UNKNOWN,
        canonical_revision: UNKNOWN,
        app: UNKNOWN,
        version: UNKNOWN,
    };

    pub fn parse(v: &'a str) -> Option<Claimed<'a>> {
        let mut parts = v.split(';');
        let (workload, namespace) = parts.next()?.split_once('.')?;
        let mut next = || parts.next().filter(|p| !p.is_empty()).unwrap_or(UNKNOWN);
        Some(Claimed {
            workload,
            namespace,
            canonical_service: next(),
            canonical_revision: next(),
            app: next(),
            version: next(),
        })
    }
}

impl super::Labels<'_> {
    /// Every peer label `unknown` (clusters: weft's one), for the fields a
    /// caller does not set.
    pub fn unknown_peers() -> super::Labels<'static> {
        super::Labels {
            reporter: "source",
            source_workload: UNKNOWN,
            source_workload_namespace: UNKNOWN,
            destination_workload: UNKNOWN,
            destination_workload_namespace: UNKNOWN,
            destination_service: UNKNOWN,
            destination_service_name: UNKNOWN,
            destination_service_namespace: UNKNOWN,
            request_protocol: "http",
            response_code: 0,
            grpc_response_status: "",
            response_flags: "-",
            connection_security_policy: UNKNOWN,
            source_principal: UNKNOWN,
            source_app: UNKNOWN,
            source_version: UNKNOWN,
            source_canonical_service: UNKNOWN,
            source_canonical_revision: UNKNOWN,
            source_cluster: CLUSTER,
            destination_principal: UNKNOWN,
            destination_app: UNKNOWN,
            destination_version: UNKNOWN,
            destination_canonical_service: UNKNOWN,
            destination_canonical_revision: UNKNOWN,
            destination_cluster: CLUSTER,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_names_follow_istios_label_order() {
        let labels = [("app", "reviews"), ("version", "v2")];
        let get = |k: &str| labels.iter().find(|(l, _)| *l == k).map(|(_, v)| *v);
        assert_eq!(canonical(get, "reviews-v2"), ("reviews", "v2"));
        assert_eq!(canonical(|_| None, "reviews-v2"), ("reviews-v2", "latest"));
        let named = |k: &str| (k == "service.istio.io/canonical-name").then_some("shop");
        assert_eq!(canonical(named, "w").0, "shop");
    }

    #[test]
    fn a_callers_header_reads_with_or_without_its_names() {
        let c = Claimed::parse("productpage-v1.default;productpage;v1;productpage;v1").unwrap();
        assert_eq!(
            (c.workload, c.namespace, c.canonical_service, c.version),
            ("productpage-v1", "default", "productpage", "v1")
        );
        let old = Claimed::parse("productpage-v1.default").unwrap();
        assert_eq!((old.namespace, old.app, old.canonical_revision), ("default", UNKNOWN, UNKNOWN));
        assert!(Claimed::parse("no-namespace").is_none());
    }
}
