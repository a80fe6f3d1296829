//! What weft does with each field it accepts: applied (and the test that
//! shows it), applied in part, not applied, or bookkeeping with nothing to
//! apply. Validation warns of every field set in a config that is not (or
//! not wholly) applied, so no configuration is silently ignored; the
//! field-coverage test holds this table against the types
//! (`crates/api/tests/coverage.rs`).

mod render;
mod table;

use crate::diag::{Diagnostic, Severity, codes};
use crate::resource::Resource;
use crate::tree::{Node, Seg, Value, path_string};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

pub use render::markdown;
pub use table::FIELDS;

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

/// Every field path of each kind, from the types (computed once).
fn known(kind: &str) -> Option<&'static BTreeSet<String>> {
    static KNOWN: OnceLock<BTreeMap<&'static str, BTreeSet<String>>> = OnceLock::new();
    KNOWN
        .get_or_init(|| {
            KINDS
                .iter()
                .map(|k| (*k, crate::documents::field_paths(k).unwrap_or_default().into_iter().collect()))
                .collect()
        })
        .get(kind)
}

/// A warning for each field set in `r` that weft does not apply, or applies
/// only in part.
pub fn check(r: &Resource, out: &mut Vec<Diagnostic>) {
    let Some(known) = known(r.kind()) else { return };
    let mut set: Vec<Set> = Vec::new();
    fields_set(&r.origin.node, known, String::new(), &mut Vec::new(), &mut set);
    for (segs, pattern, value) in set {
        let (message, hint) = match support(r.kind(), &pattern) {
            // Only the field the row names: what is under it is said by it.
            Some(Support::NotApplied(why)) if is_row(r.kind(), &pattern) => (
                format!("`{}` is accepted but not applied by weft: {why}", path_string(&segs)),
                "remove it, or see docs/COVERAGE.md for what weft applies",
            ),
            Some(Support::Partial(_, missing)) => (
                format!("`{}` is applied only in part: {missing}", path_string(&segs)),
                "see docs/COVERAGE.md for what weft applies",
            ),
            Some(Support::Values(values, why)) => match value {
                Some(v) if !values.iter().any(|x| x.eq_ignore_ascii_case(&v)) => (
                    format!("`{}: {v}` is accepted but not applied by weft: {why}", path_string(&segs)),
                    "see docs/COVERAGE.md for what weft applies",
                ),
                _ => continue,
            },
            _ => continue,
        };
        let mut d = r.diag(Severity::Warning, codes::NOT_APPLIED, "", message, Some(hint.to_owned()));
        d.pos = r.pos(&segs);
        d.path = path_string(&segs);
        out.push(d);
    }
}

fn is_row(kind: &str, path: &str) -> bool {
    find(kind, path).is_some()
}

/// The row naming `path` of `kind`: the row with that path, else one whose
/// path is `**.<suffix>` that `path` ends with (a struct met in several
/// places, as a DestinationRule's traffic policy).
pub fn find(kind: &str, path: &str) -> Option<&'static Field> {
    let of_kind = || FIELDS.iter().filter(move |f| f.kind == kind || f.kind == "*");
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

/// Collects each field set under `node`, whose
/// pattern is `pattern` (`spec.http[].route`): a map key is a field when the
/// kind has that path, else an entry of a map (`*`).
fn fields_set(node: &Node, known: &BTreeSet<String>, pattern: String, at: &mut Vec<Seg>, out: &mut Vec<Set>) {
    let join = |p: &str, k: &str| if p.is_empty() { k.to_owned() } else { format!("{p}.{k}") };
    match &node.value {
        Value::Map(entries) => {
            for (key, _, value) in entries {
                let field = join(&pattern, key);
                let next = if known.contains(&field) {
                    at.push(Seg::Key(key.clone()));
                    let scalar = match &value.value {
                        Value::Str(s) => Some(s.clone()),
                        Value::Int(i) => Some(i.to_string()),
                        Value::Bool(b) => Some(b.to_string()),
                        _ => None,
                    };
                    out.push((at.clone(), field.clone(), scalar));
                    field
                } else {
                    let entry = join(&pattern, "*");
                    if !known.range(entry.clone()..).next().is_some_and(|p| p.starts_with(&entry)) {
                        continue; // an unknown field: the loader warns of it
                    }
                    at.push(Seg::Key(key.clone()));
                    entry
                };
                fields_set(value, known, next, at, out);
                at.pop();
            }
        }
        Value::Seq(items) => {
            for (i, item) in items.iter().enumerate() {
                at.push(Seg::Index(i));
                fields_set(item, known, format!("{pattern}[]"), at, out);
                at.pop();
            }
        }
        _ => {}
    }
}
