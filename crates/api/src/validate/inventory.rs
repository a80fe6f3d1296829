//! One note per kind weft reads only in part or keeps as information, with
//! its count: a folder of real manifests says once what weft made of them,
//! instead of a line per ServiceAccount.

use crate::diag::{Diagnostic, Severity, codes};
use crate::resource::{Resource, Spec};
use std::collections::BTreeMap;

pub(super) fn notes(resources: &[Resource], out: &mut Vec<Diagnostic>) {
    let mut kinds: BTreeMap<&str, (usize, &Resource)> = BTreeMap::new();
    for r in resources.iter().filter(|r| matches!(r.spec, Spec::Pods(_) | Spec::Secret(_) | Spec::Inert(_))) {
        kinds.entry(r.kind()).or_insert((0, r)).0 += 1;
    }
    for (kind, (n, first)) in kinds {
        let (message, hint) = match first.spec {
            Spec::Pods(_) => (
                format!(
                    "{kind} ({n}): read for the pods' labels, service account and ports, which selector and \
                     subset checks count as instances; weft does not run containers"
                ),
                "`weft up` runs weft `Workload` resources: describe the app as one to run it locally",
            ),
            Spec::Secret(_) => (
                format!("{kind} ({n}): read; a `kubernetes.io/tls` one holds a certificate and key"),
                "a Gateway server names one in `tls.credentialName`",
            ),
            _ => (format!("{kind} ({n}): accepted; weft does not act on {kind}"), "nothing to do"),
        };
        let mut d = first.diag(Severity::Info, codes::READ_IN_PART, "kind", message, Some(hint.to_owned()));
        d.resource = None;
        d.path.clear();
        out.push(d);
    }
}
