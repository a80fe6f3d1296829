//! The seed examples the mesh was first described with.

use std::path::PathBuf;
use weft_api::load_paths;

fn seed_dirs() -> Vec<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut dirs = vec![root.join("crates/api/tests/fixtures/seed")];
    // The originals in shared/, when the checkout has them beside it.
    let shared = root.join("../shared/examples/seed");
    if shared.is_dir() {
        dirs.push(shared);
    }
    dirs
}

#[test]
fn as_published_is_rejected_at_line_29_col_9_with_hint() {
    for dir in seed_dirs() {
        let loaded = load_paths(&[dir.join("gateway-and-virtualservice.as-published.yaml")]);
        let errors: Vec<_> = loaded.diagnostics.iter().filter(|d| d.is_error()).collect();
        assert_eq!(errors.len(), 1, "{errors:#?}");
        let d = errors[0];
        assert_eq!((d.pos.line, d.pos.col), (29, 9), "{d}");
        let hint = d.hint.as_deref().unwrap_or_default();
        assert!(hint.contains("`route` belongs beside `match`"), "{d}");
        assert!(d.to_string().contains("as-published.yaml:29:9: error"), "{d}");
    }
}

#[test]
fn mended_and_service_are_clean() {
    for dir in seed_dirs() {
        let loaded = load_paths(&[dir.join("gateway-and-virtualservice.yaml"), dir.join("service.yaml")]);
        assert!(loaded.diagnostics.is_empty(), "{:#?}", loaded.diagnostics);
        let kinds: Vec<_> = loaded.resources.iter().map(|r| r.kind()).collect();
        assert_eq!(kinds, ["Gateway", "VirtualService", "Service"]);
    }
}
