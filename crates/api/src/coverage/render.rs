//! docs/COVERAGE.md, rendered from the table: the coverage test keeps the
//! file equal to this.

use super::{KINDS, Support, fields, support};
use crate::kinds::Role;
use std::fmt::Write;

/// The coverage page: counts per kind, then every row.
pub fn markdown() -> String {
    let mut out = String::from(
        "# What weft applies\n\n\
         Every field of every kind weft reads, from `crates/api/src/coverage/table.rs`.\n\
         Generated: `WEFT_WRITE_COVERAGE=1 cargo test -p weft-api --test coverage`\n\
         rewrites this file, and that test fails while it is out of date.\n\n\
         A field is **applied** (with the test that shows its effect through real\n\
         proxies), **applied, no effect test yet** (the code applies it; a\n\
         test through real proxies is still to write), **in part** or **some values** (`weft validate` warns of\n\
         the rest), **not applied** (`weft validate` warns, saying what happens\n\
         instead; the row covers the fields under it) or **bookkeeping**\n\
         (nothing to apply, such as `metadata.uid`).\n\n\
         | kind | fields | applied | no effect test yet | in part / some values | not applied | bookkeeping |\n\
         | --- | ---: | ---: | ---: | ---: | ---: | ---: |\n",
    );
    for kind in KINDS {
        let paths = crate::documents::field_paths(kind).unwrap_or_default();
        let mut n = [0usize; 5];
        for p in &paths {
            match support(kind, p) {
                Some(Support::Applied(_)) => n[0] += 1,
                Some(Support::Untested) => n[1] += 1,
                Some(Support::Partial(..) | Support::Values(..)) => n[2] += 1,
                Some(Support::NotApplied(_)) => n[3] += 1,
                Some(Support::Bookkeeping) | None => n[4] += 1,
            }
        }
        let _ = writeln!(out, "| {kind} | {} | {} | {} | {} | {} | {} |", paths.len(), n[0], n[1], n[2], n[3], n[4]);
    }
    out.push_str(
        "\n## Other kinds\n\n\
         Accepted beside the kinds above, with one note per kind (`weft validate`):\n\n\
         | kind | apiVersion | what weft does |\n| --- | --- | --- |\n",
    );
    for k in crate::kinds::KINDS {
        let what = match k.role {
            Role::Read => continue,
            Role::Pods => "read for the pods' labels, service account and container ports (selector, subset and \
                           `targetPort` checks); weft does not run containers"
                .to_owned(),
            Role::Secret => "read; a `kubernetes.io/tls` one for its `tls.crt` and `tls.key`".to_owned(),
            Role::Inert => "accepted; nothing of it acts on traffic".to_owned(),
            Role::NotApplied(instead) => format!("**not applied** (a warning): {instead}"),
        };
        let _ = writeln!(out, "| {} | {} | {what} |", k.name, k.api_versions.join(", "));
    }
    out.push_str("\nA Kubernetes `List` is read as its items.\n");
    for kind in std::iter::once("*").chain(KINDS.iter().copied()) {
        let title = if kind == "*" { "Every kind" } else { kind };
        let _ = write!(out, "\n## {title}\n\n| field | status |\n| --- | --- |\n");
        for f in fields().filter(|f| f.kind == kind) {
            let status = match f.support {
                Support::Applied(test) => format!("applied (`{test}`)"),
                Support::Untested => "applied, no effect test yet".to_owned(),
                Support::Partial(test, missing) => format!("in part (`{test}`): {missing}"),
                Support::Values(values, why) => format!("`{}`; other values: {why}", values.join("`, `")),
                Support::NotApplied(why) => format!("**not applied**: {why}"),
                Support::Bookkeeping => "bookkeeping".to_owned(),
            };
            let _ = writeln!(out, "| `{}` | {status} |", f.path);
        }
    }
    out
}
