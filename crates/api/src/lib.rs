//! weft's configuration: Kubernetes and Istio resources read from YAML or
//! JSON with source positions, validated and cross-checked.

pub mod coverage;
pub mod delegate;
pub mod diag;
pub mod documents;
pub mod extensions;
mod fields;
pub mod gateway_api;
pub mod index;
pub mod kinds;
pub mod load;
mod load_limits;
mod load_other;
pub mod names;
pub mod observability;
pub mod resource;
mod schema;
pub mod tree;
pub mod types;
pub mod validate;

pub use diag::{Diagnostic, Severity};
pub use load::{Loaded, load_paths, parse_str};
pub use resource::{Resource, Spec};
pub use validate::validate;
