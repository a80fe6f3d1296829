//! How much config a load accepts: the folder's bytes and documents, and
//! what one file may expand to. Past a limit, the config is refused whole
//! with one diagnostic naming the limit and the flag that raises it.

use crate::diag::{Diagnostic, Severity, codes};
use crate::tree::Pos;
use std::path::PathBuf;

/// How much config a load accepts. A config past a limit is refused whole
/// with an error naming the limit (and the flag that raises it), before it
/// can take the memory and time it would cost to parse and translate.
#[derive(Clone, Debug)]
pub struct LoadLimits {
    /// All files together, in bytes (`--max-config-bytes`).
    pub max_bytes: u64,
    /// Documents in all files together (`--max-config-documents`).
    pub max_documents: usize,
    /// Scalar bytes one file may expand to, aliases included: a few KB of
    /// nested aliases ("billion laughs") would otherwise expand to GBs.
    pub max_scalar_bytes: usize,
}

impl Default for LoadLimits {
    fn default() -> Self {
        LoadLimits { max_bytes: 64 << 20, max_documents: 100_000, max_scalar_bytes: 64 << 20 }
    }
}

fn too_large(paths: &[PathBuf], message: String, hint: &str) -> Diagnostic {
    let shown: Vec<_> = paths.iter().map(|p| p.display().to_string()).collect();
    Diagnostic {
        severity: Severity::Error,
        code: codes::TOO_LARGE,
        file: shown.join(", ").into(),
        pos: Pos::default(),
        resource: None,
        path: String::new(),
        message,
        hint: Some(hint.into()),
    }
}

/// The error for a config of `bytes` bytes, if that is past the limit.
pub fn over_bytes(paths: &[PathBuf], bytes: u64, limits: &LoadLimits) -> Option<Diagnostic> {
    (bytes > limits.max_bytes).then(|| {
        too_large(
            paths,
            format!("the config is {bytes} bytes, over the limit of {} bytes", limits.max_bytes),
            "split it across meshes, remove what is unused, or raise the limit with --max-config-bytes",
        )
    })
}

/// The error for a config of `documents` resources, if that is past the limit.
pub fn over_documents(paths: &[PathBuf], documents: usize, limits: &LoadLimits) -> Option<Diagnostic> {
    (documents > limits.max_documents).then(|| {
        too_large(
            paths,
            format!("the config holds {documents} resources, over the limit of {}", limits.max_documents),
            "raise the limit with --max-config-documents if the control plane has the memory for it",
        )
    })
}

/// A mesh's config can hold tens of thousands of documents in one file, so
/// the document count is raised past serde-saphyr's default (1,024) to the
/// mesh's limit. Events and nodes grow with the file: plain YAML makes
/// about one per few bytes, and only aliases make more, so a budget of a
/// few per byte admits any real config and stops "billion laughs" early.
pub(crate) fn parse_options(text_len: usize, limits: &LoadLimits) -> serde_saphyr::Options {
    let mut budget = serde_saphyr::Budget::default();
    let per_byte = 1_000_000usize.max(text_len.saturating_mul(2));
    budget.max_documents = limits.max_documents;
    budget.max_events = per_byte;
    budget.max_nodes = per_byte;
    budget.max_total_scalar_bytes = limits.max_scalar_bytes;
    let mut o = serde_saphyr::Options::default();
    o.budget = Some(budget);
    o
}
