//! What weft does with each field it accepts: applied (and the test that
//! shows it), applied in part, not applied, or bookkeeping with nothing to
//! apply. Validation warns of every field set in a config that is not (or
//! not wholly) applied, so no configuration is silently ignored; the
//! field-coverage test holds this table against the types
//! (`crates/api/tests/coverage.rs`).

mod render;
mod table;
mod table_authz;
mod table_gateway;
mod table_gateway_api;
mod table_sidecar;
mod table_telemetry;

use crate::diag::{Diagnostic, Severity, codes};
use crate::resource::Resource;
use crate::schema::Structs;
use crate::tree::{Node, Seg, Value, path_string};
use std::collections::BTreeMap;
use std::sync::OnceLock;

pub use render::markdown;
/// Every row of the coverage table.
pub fn fields() -> impl Iterator<Item = &'static Field> {
    table::FIELDS
        .iter()
        .chain(table_gateway::GATEWAY)
        .chain(table_sidecar::SIDECAR)
        .chain(table_authz::AUTHZ)
        .chain(table_authz::PEER_AUTH)
        .chain(table_authz::REQUEST_AUTH)
        .chain(table_telemetry::TELEMETRY)
        .chain(table_gateway_api::GATEWAY_API)
}

/// What becomes of one field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Support {
    /// Applied; the test that shows its effect through real proxies,
    /// `file.rs::test_name` under `crates/*/tests/`.
    Applied(&'static str),
    /// Applied by the code, with no effect test through real proxies yet:
    /// counted by the coverage test and docs/COVERAGE.md, to be driven to none.
    Untested,
    /// Applied in part (the test that shows what is), and what is not:
    /// said as a warning when the field is set.
    Partial(&'static str, &'static str),
    /// Accepted and not applied: what happens instead, said as a warning.
    /// Covers the fields under it.
    NotApplied(&'static str),
    /// Nothing to apply (Kubernetes bookkeeping such as `metadata.uid`, or
    /// `status`): accepted quietly. Covers the fields under it.
    Bookkeeping,
    /// A value among these is applied (or needs nothing: `type: ClusterIP`);
    /// any other is warned of, with what happens instead.
    Values(&'static [&'static str], &'static str),
}

/// One row of the table: `kind` is `*` for fields every kind has (`metadata`).
#[derive(Clone, Copy, Debug)]
pub struct Field {
    pub kind: &'static str,
    pub path: &'static str,
    pub support: Support,
}

/// A row of the table (`table.rs` and the `table_*.rs` of single kinds).
const fn row(kind: &'static str, path: &'static str, support: Support) -> Field {
    Field { kind, path, support }
}

/// The kinds weft reads, whose every field the table covers.
pub const KINDS: &[&str] = &[
    "Service",
    "Endpoints",
    "EndpointSlice",
    "Gateway",
    "VirtualService",
    "DestinationRule",
    "ServiceEntry",
    "WorkloadEntry",
    "Workload",
    "Sidecar",
    "AuthorizationPolicy",
    "PeerAuthentication",
    "RequestAuthentication",
    "Telemetry",
    "GatewayClass",
    crate::gateway_api::GATEWAY_KIND,
    "HTTPRoute",
    "ReferenceGrant",
    "GRPCRoute",
    "TCPRoute",
    "TLSRoute",
];

/// The table's row for `path` of `kind`, or the row of the nearest field
/// above it that covers what is under it (not applied, bookkeeping).
pub fn support(kind: &str, path: &str) -> Option<Support> {
    let row = |p: &str| find(kind, p).map(|f| f.support);
    if let Some(s) = row(path) {
        return Some(s);
    }
    let mut at = path;
    while let Some(i) = at.rfind(['.', '[']) {
        at = &at[..i];
        if let Some(s @ (Support::NotApplied(_) | Support::Bookkeeping)) = row(at) {
            return Some(s);
        }
    }
    None
}

/// Every struct of each kind, from the types (computed once).
fn structs(kind: &str) -> Option<&'static Structs> {
    static STRUCTS: OnceLock<BTreeMap<&'static str, Structs>> = OnceLock::new();
    STRUCTS
        .get_or_init(|| KINDS.iter().map(|k| (*k, crate::documents::structs(k).unwrap_or_default())).collect())
        .get(kind)
}

/// A warning for each field set in `r` that weft does not apply, or applies
/// only for some values; and for each Istio annotation it does not apply.
pub fn check(r: &Resource, out: &mut Vec<Diagnostic>) {
    let Some(structs) = structs(r.kind()) else { return };
    let mut set: Vec<Set> = Vec::new();
    fields_set(&r.origin.node, structs, &mut Vec::new(), &mut set);
    let key = r.key();
    for (segs, pattern, value) in set {
        let path = path_string(&segs);
        // A field already in error is not warned of again.
        if out.iter().any(|d| d.is_error() && d.path == path && d.resource.as_deref() == Some(key.as_str())) {
            continue;
        }
        // Only the row that names the field: what is under a not-applied
        // field is said by its row.
        let message = match find(r.kind(), &pattern).map(|f| f.support) {
            Some(Support::NotApplied(why)) => format!("`{path}` is accepted but not applied by weft: {why}"),
            Some(Support::Partial(_, missing)) => format!("`{path}` is applied only in part: {missing}"),
            Some(Support::Values(values, why)) => match value {
                Some(v) if !values.iter().any(|x| x.eq_ignore_ascii_case(&v)) => {
                    format!("`{path}: {v}` is accepted but not applied by weft: {why}")
                }
                _ => continue,
            },
            _ => continue,
        };
        out.push(warning(r, &segs, message));
    }
    for (name, _) in r.meta.annotations.iter().filter(|(k, _)| istio_annotation_not_applied(k)) {
        let segs = [Seg::Key("metadata".into()), Seg::Key("annotations".into()), Seg::Key(name.clone())];
        let message = format!("annotation `{name}` is accepted but not applied by weft");
        out.push(warning(r, &segs, message));
    }
}

/// Istio's annotations weft applies; any other of Istio's is warned of.
const ISTIO_ANNOTATIONS_APPLIED: &[&str] = &["networking.istio.io/exportTo", crate::types::DRY_RUN_ANNOTATION];

fn istio_annotation_not_applied(name: &str) -> bool {
    let domain = name.split_once('/').map_or("", |(d, _)| d);
    (domain == "istio.io" || domain.ends_with(".istio.io")) && !ISTIO_ANNOTATIONS_APPLIED.contains(&name)
}

fn warning(r: &Resource, segs: &[Seg], message: String) -> Diagnostic {
    let hint = "remove it, or see docs/COVERAGE.md for what weft applies and what happens instead";
    let mut d = r.diag(Severity::Warning, codes::NOT_APPLIED, "", message, Some(hint.to_owned()));
    d.pos = r.pos(segs);
    d.path = path_string(segs);
    d
}

/// The row naming `path` of `kind`: the row with that path, else one whose
/// path is `**.<suffix>` that `path` ends with (a struct met in several
/// places, as a DestinationRule's traffic policy).
pub fn find(kind: &str, path: &str) -> Option<&'static Field> {
    let of_kind = || fields().filter(move |f| f.kind == kind || f.kind == "*");
    of_kind().find(|f| f.path == path).or_else(|| {
        of_kind().find(|f| {
            f.path
                .strip_prefix("**.")
                .is_some_and(|s| path == s || path.strip_suffix(s).is_some_and(|p| p.ends_with('.')))
        })
    })
}

/// A field set in a document: where, its pattern, its value if a scalar.
type Set = (Vec<Seg>, String, Option<String>);

/// Collects each field set under `node` (at `at`), with its pattern
/// (`schema::pattern`): a key is a field where the path is a struct, else
/// an entry of a map; a field the kind does not have is passed over (the
/// loader warns of it).
fn fields_set(node: &Node, structs: &Structs, at: &mut Vec<Seg>, out: &mut Vec<Set>) {
    match &node.value {
        Value::Map(entries) => {
            for (key, _, value) in entries {
                at.push(Seg::Key(key.clone()));
                if let Some(pattern) = crate::schema::pattern(structs, at) {
                    // A field is a key of a struct; an entry's key is data.
                    if !pattern.ends_with('*') {
                        let scalar = match &value.value {
                            Value::Str(s) => Some(s.clone()),
                            Value::Int(i) => Some(i.to_string()),
                            Value::Bool(b) => Some(b.to_string()),
                            _ => None,
                        };
                        out.push((at.clone(), pattern, scalar));
                    }
                    fields_set(value, structs, at, out);
                }
                at.pop();
            }
        }
        Value::Seq(items) => {
            for (i, item) in items.iter().enumerate() {
                at.push(Seg::Index(i));
                fields_set(item, structs, at, out);
                at.pop();
            }
        }
        _ => {}
    }
}
