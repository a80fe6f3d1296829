//! The loader's limits: a config past one is refused whole, quickly, with
//! an error that names the limit.

use std::path::PathBuf;
use weft_api::load::{LoadLimits, load_paths_within, parse_str};

/// 20 KB of nested aliases that would expand to 3.2 GB of strings.
fn alias_bomb() -> String {
    let mut lines = vec![format!("a0: &a0 [{}]", vec![format!("\"{}\"", "x".repeat(1000)); 20].join(","))];
    for i in 1..6 {
        lines.push(format!("a{i}: &a{i} [{}]", vec![format!("*a{}", i - 1); 20].join(",")));
    }
    let labels: Vec<String> = lines.iter().map(|l| format!("    {l}")).collect();
    format!(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: bomb\n  labels:\n{}\nspec: {{ports: [{{port: 80}}]}}\n",
        labels.join("\n")
    )
}

#[test]
fn nested_aliases_are_refused_before_they_expand() {
    let text = alias_bomb();
    assert!(text.len() < 25_000);
    let start = std::time::Instant::now();
    let loaded = parse_str("bomb.yaml", &text);
    assert!(loaded.resources.is_empty());
    let d = &loaded.diagnostics[0];
    assert!(d.message.contains("budget breached"), "{d}");
    assert!(d.hint.as_deref().unwrap_or("").contains("aliases"), "{d}");
    // Expanding 64 MiB (the scalar budget) takes well under a second; the
    // old 1 GiB budget took seconds and a GB.
    println!("refused in {:?}", start.elapsed());
}

#[test]
fn a_config_past_its_size_or_document_limit_is_one_error() {
    let dir = tempfile::tempdir().unwrap();
    let svc = |i: usize| {
        format!("apiVersion: v1\nkind: Service\nmetadata: {{name: s{i}}}\nspec: {{ports: [{{port: 80}}]}}\n")
    };
    let text: Vec<String> = (0..50).map(svc).collect();
    std::fs::write(dir.path().join("a.yaml"), text.join("---\n")).unwrap();
    std::fs::write(dir.path().join("b.yaml"), text.join("---\n").replace("name: s", "name: t")).unwrap();
    let paths = [PathBuf::from(dir.path())];

    let ok = load_paths_within(&paths, &LoadLimits::default());
    assert_eq!((ok.resources.len(), ok.diagnostics.len()), (100, 0));

    let few = LoadLimits { max_documents: 99, ..LoadLimits::default() };
    let refused = load_paths_within(&paths, &few);
    let errors: Vec<_> = refused.diagnostics.iter().filter(|d| d.is_error()).collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].message.contains("100 resources, over the limit of 99"), "{}", errors[0]);
    assert!(errors[0].hint.as_deref().unwrap().contains("--max-config-documents"));

    let small = LoadLimits { max_bytes: 1000, ..LoadLimits::default() };
    let refused = load_paths_within(&paths, &small);
    assert!(refused.resources.is_empty());
    assert!(refused.diagnostics[0].message.contains("over the limit of 1000 bytes"), "{}", refused.diagnostics[0]);
    assert!(refused.diagnostics[0].hint.as_deref().unwrap().contains("--max-config-bytes"));
}
