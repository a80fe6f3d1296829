//! `weft validate`: every problem (errors, warnings) and note, then a summary.

use std::path::PathBuf;
use std::process::ExitCode;

pub fn run(paths: &[PathBuf]) -> ExitCode {
    let loaded = weft_api::load_paths(paths);
    let mut diags = loaded.diagnostics;
    diags.extend(weft_api::validate(&loaded.resources));
    for d in &diags {
        eprintln!("{d}\n");
    }
    let errors = diags.iter().filter(|d| d.is_error()).count();
    let warnings = diags.iter().filter(|d| d.is_warning()).count();
    let notes = diags.len() - errors - warnings;
    let lowered = loaded.resources.iter().filter(|r| r.origin.derived_from.is_some()).count();
    let mut summary = format!("{} resources", loaded.resources.len() - lowered);
    if lowered > 0 {
        let noun = if lowered == 1 { "resource" } else { "resources" };
        summary.push_str(&format!(" (and {lowered} Istio {noun} lowered from the Gateway API)"));
    }
    summary.push_str(&format!(", {errors} errors, {warnings} warnings"));
    if notes > 0 {
        summary.push_str(&format!(", {notes} notes"));
    }
    if errors > 0 {
        eprintln!("{summary}");
        ExitCode::FAILURE
    } else {
        println!("{summary}: ok");
        ExitCode::SUCCESS
    }
}
