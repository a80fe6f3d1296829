//! ReferenceGrants: a reference from one namespace to an object of another
//! holds only when the target's namespace grants it.

use crate::resource::{Resource, Spec};

/// What refers: a route or a Gateway, of a namespace.
pub(crate) struct From<'a> {
    pub kind: &'a str,
    pub namespace: &'a str,
}

/// Whether a ReferenceGrant in `to_ns` lets `from` refer to the object of
/// core `kind` (`Service`, `Secret`) named `name` there.
pub(crate) fn permits(resources: &[Resource], from: &From, kind: &str, to_ns: &str, name: &str) -> bool {
    resources.iter().any(|r| {
        let Spec::ReferenceGrant(g) = &r.spec else { return false };
        r.namespace() == to_ns
            && g.from.iter().any(|f| f.group == super::GROUP && f.kind == from.kind && f.namespace == from.namespace)
            && g.to.iter().any(|t| t.group.is_empty() && t.kind == kind && t.name.as_deref().is_none_or(|n| n == name))
    })
}
