//! Diagnostics a person reads: what is wrong, where (file:line:col and field
//! path) and how to fix it.

use crate::tree::Pos;
use std::fmt;
use std::sync::Arc;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// What weft read and does not act on: said once, changes nothing.
    Info,
    Warning,
    Error,
}

#[derive(Clone, Debug)]
pub struct Diagnostic {
    pub severity: Severity,
    /// Stable code, e.g. `WEFT0101`, so tools and docs can refer to it.
    pub code: &'static str,
    pub file: Arc<str>,
    pub pos: Pos,
    /// Resource the problem is in, `Kind/namespace/name`, when known.
    pub resource: Option<String>,
    /// Field path inside the document, e.g. `spec.http[0].route`.
    pub path: String,
    pub message: String,
    pub hint: Option<String>,
}

impl Diagnostic {
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    pub fn is_warning(&self) -> bool {
        self.severity == Severity::Warning
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sev = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "info",
        };
        if self.pos.line == 0 {
            write!(f, "{}: {sev}[{}]: {}", self.file, self.code, self.message)?;
        } else {
            write!(f, "{}:{}:{}: {sev}[{}]: {}", self.file, self.pos.line, self.pos.col, self.code, self.message)?;
        }
        if let Some(r) = &self.resource {
            write!(f, "\n  in {r}")?;
            if !self.path.is_empty() {
                write!(f, " at {}", self.path)?;
            }
        } else if !self.path.is_empty() {
            write!(f, "\n  at {}", self.path)?;
        }
        if let Some(h) = &self.hint {
            write!(f, "\n  hint: {h}")?;
        }
        Ok(())
    }
}

/// Diagnostic codes, one per kind of problem.
pub mod codes {
    pub const IO: &str = "WEFT0001";
    pub const TOO_LARGE: &str = "WEFT0002";
    pub const YAML_SYNTAX: &str = "WEFT0101";
    pub const NOT_A_RESOURCE: &str = "WEFT0102";
    pub const UNKNOWN_KIND: &str = "WEFT0103";
    pub const BAD_FIELD: &str = "WEFT0104";
    pub const UNKNOWN_FIELD: &str = "WEFT0105";
    pub const DUPLICATE: &str = "WEFT0106";
    pub const INVALID_VALUE: &str = "WEFT0201";
    pub const MISSING_FIELD: &str = "WEFT0202";
    pub const UNKNOWN_GATEWAY: &str = "WEFT0301";
    pub const UNKNOWN_HOST: &str = "WEFT0302";
    pub const UNKNOWN_SUBSET: &str = "WEFT0303";
    pub const UNKNOWN_PORT: &str = "WEFT0304";
    pub const SUBSET_SELECTS_NOTHING: &str = "WEFT0305";
    pub const WEIGHTS: &str = "WEFT0306";
    pub const UNREACHABLE_RULE: &str = "WEFT0307";
    pub const SERVICE_SELECTS_NOTHING: &str = "WEFT0308";
    /// A Gateway API status condition that is not True: what of a route or
    /// gateway is not applied, and why (the specification's reason).
    pub const ROUTE_STATUS: &str = "WEFT0309";
    /// A field weft accepts and does not apply, or applies in part.
    pub const NOT_APPLIED: &str = "WEFT0401";
    /// Kinds read only in part, or kept as information: counted once.
    pub const READ_IN_PART: &str = "WEFT0402";
}
