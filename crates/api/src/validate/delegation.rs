//! VirtualService delegation (`crate::delegate`): a VirtualService without
//! hosts must be some root's delegate, a delegate must exist and be visible
//! to its root, and a delegate's rule outside its root's match is said to
//! be left out, as Istio leaves it out.

use crate::delegate::{self, Missing};
use crate::diag::{Diagnostic, Severity::*, codes};
use crate::index::Index;
use crate::resource::Resource;
use crate::types::*;

pub(super) fn check(index: &Index, r: &Resource, vs: &VirtualServiceSpec, out: &mut Vec<Diagnostic>) {
    if vs.hosts.is_empty() {
        delegate_itself(index, r, vs, out);
    }
    for (i, rule) in vs.http.iter().enumerate() {
        let Some(d) = &rule.delegate else { continue };
        let path = format!("spec.http[{i}].delegate");
        let ns = d.namespace.as_deref().unwrap_or(r.namespace());
        let (child, child_spec) = match delegate::find(index, r.namespace(), d) {
            Ok(found) => found,
            Err(why) => {
                let reason = match why {
                    Missing::NotFound => format!("no VirtualService `{}` in namespace `{ns}`", d.name),
                    Missing::HasHosts => {
                        format!("VirtualService `{ns}/{}` has `hosts`, so it is not a delegate", d.name)
                    }
                    Missing::NotExported => {
                        format!("`{ns}/{}` is not exported to namespace `{}`", d.name, r.namespace())
                    }
                };
                out.push(r.diag(
                    Warning,
                    codes::UNKNOWN_HOST,
                    &path,
                    format!("{reason}: this rule is left out, and requests it matches go on to the next rule"),
                    Some("a delegate is a VirtualService without `hosts`, exported to the root's namespace".into()),
                ));
                continue;
            }
        };
        for (j, sub) in child_spec.http.iter().enumerate() {
            if sub.delegate.is_none() && delegate::merge(rule, sub).is_none() {
                out.push(child.diag(
                    Warning,
                    codes::UNREACHABLE_RULE,
                    &format!("spec.http[{j}].match"),
                    format!(
                        "this rule's match is not within the match of {} rule {i}, which delegates here: it is left out there",
                        r.key()
                    ),
                    Some("a delegate's match must narrow its root's: a prefix or exact path under the root's prefix, the same header values; regexes never nest".into()),
                ));
            }
        }
    }
}

/// A VirtualService without hosts only applies through a root.
fn delegate_itself(index: &Index, r: &Resource, vs: &VirtualServiceSpec, out: &mut Vec<Diagnostic>) {
    if !delegate::is_delegate(index, r) {
        out.push(r.diag(
            Error,
            codes::MISSING_FIELD,
            "spec.hosts",
            "a VirtualService needs at least one host, unless another delegates to it",
            Some("add `hosts: [my-service]` (or `\"*\"` on a gateway), or name it in a root's `delegate`".into()),
        ));
    }
    let ignored = [
        ("spec.gateways", !vs.gateways.is_empty(), "a delegate applies where its root does"),
        ("spec.tcp", !vs.tcp.is_empty(), "a delegate's tcp rules are not merged into its root"),
        ("spec.tls", !vs.tls.is_empty(), "a delegate's tls rules are not merged into its root"),
    ];
    for (path, _, why) in ignored.into_iter().filter(|(_, set, _)| *set) {
        out.push(r.diag(Warning, codes::NOT_APPLIED, path, format!("ignored on a delegate: {why}"), None));
    }
    for (j, _) in vs.http.iter().enumerate().filter(|(_, h)| h.delegate.is_some()) {
        out.push(r.diag(
            Warning,
            codes::NOT_APPLIED,
            &format!("spec.http[{j}].delegate"),
            "delegation is one level deep: a delegate's own delegating rule is left out",
            None,
        ));
    }
}
