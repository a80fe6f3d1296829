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
        crate::coverage::check(r, &mut out);
    }
    refs::check(resources, &mut out);
    gateway::credentials(resources, &mut out);
    client_tls::check(resources, &mut out);
    telemetry::providers(resources, &mut out);
    inventory::notes(resources, &mut out);
    out.sort_by(|a, b| (&a.file, a.pos.line, a.pos.col).cmp(&(&b.file, b.pos.line, b.pos.col)));
    out
}
