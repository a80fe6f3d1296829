//! The YAML loader and validation on any text: diagnostics, never a panic
//! (a config file is outside input: an operator's, or a repository's).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let loaded = weft_api::load::parse_str("fuzz.yaml", text);
    let _ = weft_api::validate::validate(&loaded.resources);
});
