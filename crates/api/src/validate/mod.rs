//! Checks beyond the schema: values within range, one-of fields, regexes
//! that compile (`fields`), and references between resources (`refs`).

mod authz;
mod client_tls;
mod delegation;
mod fields;
mod gateway;
mod inventory;
mod refs;
mod request_auth;
mod server_tls;
mod telemetry;
mod virtual_service;

use crate::diag::{Diagnostic, Severity, codes};
use crate::resource::Resource;
use std::collections::HashMap;

/// Every problem in a loaded config, errors and warnings, in file order.
pub fn validate(resources: &[Resource]) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let mut seen: HashMap<String, &Resource> = HashMap::new();
    for r in resources {
        if let Some(first) = seen.insert(r.key(), r) {
            let at = first.pos(&[]);
            out.push(r.diag(
                Severity::Error,
                codes::DUPLICATE,
                "metadata.name",
                format!("{} is defined twice", r.key()),
                Some(format!(
                    "the first definition is at {}:{}:{}; rename or remove one",
                    first.origin.file, at.line, at.col
                )),
            ));
        }
        fields::check(r, &mut out);
        // A lowered resource's fields are weft's, not the user's to be told of.
        if r.origin.derived_from.is_none() {
            crate::coverage::check(r, &mut out);
        }
    }
    refs::check(resources, &mut out);
    gateway::credentials(resources, &mut out);
    client_tls::check(resources, &mut out);
    telemetry::providers(resources, &mut out);
    inventory::notes(resources, &mut out);
    derived(resources, &mut out);
    out.sort_by(|a, b| (&a.file, a.pos.line, a.pos.col).cmp(&(&b.file, b.pos.line, b.pos.col)));
    out
}

/// Problems of a lowered resource are the resource's it came from: errors
/// name it (lowering let something through that Istio's model refuses);
/// warnings were said, as status, when it was lowered.
fn derived(resources: &[Resource], out: &mut Vec<Diagnostic>) {
    let from: HashMap<String, &str> =
        resources.iter().filter_map(|r| Some((r.key(), r.origin.derived_from.as_deref()?))).collect();
    if from.is_empty() {
        return;
    }
    out.retain_mut(|d| {
        let Some(source) = d.resource.as_ref().and_then(|k| from.get(k)) else { return true };
        d.message = format!("{} (in what {source} is lowered to, {})", d.message, d.resource.as_deref().unwrap_or(""));
        d.resource = Some((*source).to_owned());
        d.is_error()
    });
}
