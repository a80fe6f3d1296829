//! The Kubernetes Gateway API lowered into Istio's model, as Istio itself
//! does: each listener of a `Gateway` becomes an Istio Gateway server, and
//! the `HTTPRoute`s attached to it become VirtualServices (one per listener,
//! hostname and route namespace) whose rules keep the Gateway API's
//! precedence. A route whose parent is a `Service` is a mesh route (GAMMA).
//! What a route or gateway cannot take is said as its status conditions
//! (`Accepted`, `ResolvedRefs`, `Programmed`) in diagnostics.

mod attach;
mod grants;
mod http;
mod listeners;
mod routes;

use crate::diag::{Diagnostic, Severity, codes};
use crate::index::Index;
use crate::load::Loaded;
use crate::resource::{Origin, Resource, Spec};
use crate::types::ObjectMeta;
use std::sync::Arc;

/// The kind name weft gives the Gateway API's `Gateway`, told apart from
/// Istio's: `kubectl`'s `kind.group` form.
pub const GATEWAY_KIND: &str = "Gateway.gateway.networking.k8s.io";
/// The label the gateway workloads of a Gateway API `Gateway` carry (as
/// Istio's deployment controller sets it); `weft up` runs one per Gateway.
pub const GATEWAY_NAME_LABEL: &str = "gateway.networking.k8s.io/gateway-name";
/// The group of the Gateway API's kinds.
pub const GROUP: &str = "gateway.networking.k8s.io";

/// Adds to `loaded` the Istio resources its Gateway API resources mean, and
/// their status as diagnostics. Runs over a whole config, since routes and
/// gateways refer to each other across files.
pub fn lower(loaded: &mut Loaded) {
    let any = loaded.resources.iter().any(|r| {
        matches!(
            r.spec,
            Spec::KubeGateway(_)
                | Spec::KubeHttpRoute(_)
                | Spec::KubeGrpcRoute(_)
                | Spec::KubeTcpRoute(_)
                | Spec::KubeTlsRoute(_)
        )
    });
    if !any {
        return;
    }
    let index = Index::new(&loaded.resources);
    let mut out = Lowered::default();
    let listeners = listeners::lower(&loaded.resources, &mut out);
    attach::routes(&index, &listeners, &mut out);
    loaded.resources.extend(out.resources);
    loaded.diagnostics.extend(out.diagnostics);
}

/// What lowering adds to a config.
#[derive(Default)]
pub(crate) struct Lowered {
    pub resources: Vec<Resource>,
    pub diagnostics: Vec<Diagnostic>,
}

impl Lowered {
    /// An Istio resource derived from `from`: it points back at it, so its
    /// diagnostics are placed in `from`'s file.
    pub fn derive(&mut self, from: &Resource, name: String, namespace: &str, spec: Spec) {
        let meta = ObjectMeta { name, namespace: Some(namespace.to_owned()), ..Default::default() };
        let origin = Origin {
            file: from.origin.file.clone(),
            node: from.origin.node.clone(),
            derived_from: Some(Arc::from(from.key())),
        };
        self.resources.push(Resource { api_version: "networking.istio.io/v1".into(), meta, spec, origin });
    }

    /// A status condition that is not `True`: the resource, or the part of
    /// it at `path`, is not applied; `reason` is the Gateway API's.
    pub fn condition(&mut self, r: &Resource, path: &str, condition: &str, reason: &str, message: String, hint: &str) {
        let message = format!("{condition}=False ({reason}): {message}");
        let hint = (!hint.is_empty()).then(|| hint.to_owned());
        self.diagnostics.push(r.diag(Severity::Warning, codes::ROUTE_STATUS, path, message, hint));
    }
}

/// How a Gateway API listener's certificate in another namespace is named
/// in the Istio Gateway it becomes, as Istio names it.
pub const CREDENTIAL_SCHEME: &str = "kubernetes-gateway://";

/// The Secret (namespace, name) that a gateway of namespace `gw_ns` reads
/// for `credentialName` `name`: one of its own namespace; or, written
/// `kubernetes-gateway://ns/name`, one of `ns` that a ReferenceGrant there
/// lets Gateways of `gw_ns` read. None when none permits it.
pub fn credential<'a>(resources: &[Resource], gw_ns: &'a str, name: &'a str) -> Option<(&'a str, &'a str)> {
    let Some(rest) = name.strip_prefix(CREDENTIAL_SCHEME) else { return Some((gw_ns, name)) };
    let (ns, name) = rest.split_once('/')?;
    let from = grants::From { kind: "Gateway", namespace: gw_ns };
    (ns == gw_ns || grants::permits(resources, &from, "Secret", ns, name)).then_some((ns, name))
}

impl Lowered {
    /// What Kubernetes would refuse: an error at `path` of `r`.
    pub fn error(&mut self, r: &Resource, path: &str, message: String, hint: &str) {
        let hint = (!hint.is_empty()).then(|| hint.to_owned());
        self.diagnostics.push(r.diag(Severity::Error, codes::INVALID_VALUE, path, message, hint));
    }
}

/// Whether a policy of namespace `ns` (AuthorizationPolicy,
/// RequestAuthentication: its `selector`, `targetRef` and `targetRefs`)
/// applies to a proxy of `node_ns` with `labels`: by selector (or none),
/// from the root namespace or the proxy's own; or, attached by target
/// references, when one names a Gateway API `Gateway` of the policy's
/// namespace that the proxy serves. Istio's other targets (waypoint
/// Services, GatewayClasses) attach to nothing here; validation says so.
pub fn policy_applies(
    selector: Option<&crate::types::WorkloadSelector>,
    refs: (Option<&crate::types::PolicyTargetRef>, &[crate::types::PolicyTargetRef]),
    ns: &str,
    node_ns: &str,
    labels: &crate::types::Labels,
) -> bool {
    let (target_ref, target_refs) = refs;
    if target_ref.is_none() && target_refs.is_empty() {
        let scoped = ns == crate::types::ROOT_NAMESPACE || ns == node_ns;
        return scoped && selector.is_none_or(|s| crate::types::selects(&s.match_labels, labels));
    }
    targets(target_ref.into_iter().chain(target_refs), ns, node_ns, labels)
}

/// Whether target references `refs` of a policy of namespace `ns` attach
/// it to a proxy of `node_ns` with `labels` (see [`policy_applies`]).
pub fn targets<'r>(
    refs: impl IntoIterator<Item = &'r crate::types::PolicyTargetRef>,
    ns: &str,
    node_ns: &str,
    labels: &crate::types::Labels,
) -> bool {
    node_ns == ns
        && refs.into_iter().any(|t| {
            t.kind.as_deref() == Some("Gateway")
                && t.group.as_deref() == Some(GROUP)
                && t.namespace.as_deref().is_none_or(|n| n == ns)
                && t.name.as_deref().is_some_and(|n| labels.get(GATEWAY_NAME_LABEL).is_some_and(|g| g == n))
        })
}
