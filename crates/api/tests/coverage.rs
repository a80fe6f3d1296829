//! The field-coverage rule: every field of every kind weft reads, found
//! from the types themselves, is in the coverage table as applied (with an
//! effect test that exists), applied in part, not applied (validation warns
//! of it) or bookkeeping. A new field cannot slip in unclassified, and a
//! row cannot outlive its field.

use std::path::Path;
use weft_api::coverage::{KINDS, Support, fields, support};
use weft_api::documents::field_paths;

/// The text of `crates/<..>/tests/<file>`, searched in every crate.
fn test_source(file: &str) -> Option<String> {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    std::fs::read_dir(&crates)
        .ok()?
        .flatten()
        .find_map(|c| std::fs::read_to_string(c.path().join("tests").join(file)).ok())
}

#[test]
fn every_field_is_applied_or_warned() {
    let mut missing = Vec::new();
    let mut counts = Vec::new();
    for kind in KINDS {
        let paths = field_paths(kind).expect("a kind weft reads");
        let (mut applied, mut untested, mut partial, mut warned, mut quiet) = (0, 0, 0, 0, 0);
        for path in &paths {
            match support(kind, path) {
                Some(Support::Applied(_)) => applied += 1,
                Some(Support::Untested) => untested += 1,
                Some(Support::Partial(..)) => partial += 1,
                Some(Support::NotApplied(_)) => warned += 1,
                Some(Support::Bookkeeping) => quiet += 1,
                Some(Support::Values(..)) => partial += 1,
                None => missing.push(format!("{kind} {path}")),
            }
        }
        counts.push(format!(
            "{kind:<16} {:>4} fields: {applied:>4} applied ({untested} more without an effect test) {partial:>3} in part {warned:>4} warned {quiet:>3} bookkeeping",
            paths.len()
        ));
    }
    println!("{}", counts.join("\n"));
    assert!(missing.is_empty(), "fields neither applied nor warned ({}):\n{}", missing.len(), missing.join("\n"));
}

#[test]
fn every_row_names_a_real_field_and_a_real_test() {
    for f in fields() {
        // A row for every kind (`*`) names a field of at least one.
        let kinds: Vec<&str> = if f.kind == "*" { KINDS.to_vec() } else { vec![f.kind] };
        let named = kinds.iter().any(|kind| {
            let paths = field_paths(kind).unwrap_or_else(|| panic!("row for unknown kind {}", f.kind));
            paths.iter().any(|p| weft_api::coverage::find(kind, p).is_some_and(|r| std::ptr::eq(r, f)))
        });
        assert!(named, "{} has no field {} (a stale or shadowed row?)", f.kind, f.path);
        if let Support::Applied(test) | Support::Partial(test, _) = f.support {
            let (file, name) =
                test.split_once("::").unwrap_or_else(|| panic!("{}: `file.rs::test`, not {test}", f.path));
            let source = test_source(file).unwrap_or_else(|| panic!("{}: no test file {file}", f.path));
            assert!(source.contains(&format!("fn {name}(")), "{}: {file} has no test {name}", f.path);
        }
    }
}

/// docs/COVERAGE.md is the table, rendered; `WEFT_WRITE_COVERAGE=1` rewrites it.
#[test]
fn the_coverage_page_is_the_table() {
    let page = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/COVERAGE.md");
    let want = weft_api::coverage::markdown();
    if std::env::var_os("WEFT_WRITE_COVERAGE").is_some() {
        std::fs::write(&page, &want).unwrap();
    }
    let have = std::fs::read_to_string(&page).unwrap_or_default();
    assert!(
        have == want,
        "docs/COVERAGE.md is out of date: WEFT_WRITE_COVERAGE=1 cargo test -p weft-api --test coverage"
    );
}
