//! VirtualService rules as Envoy route tables.
//!
//! Each match block of an http rule becomes one Envoy route with the rule's
//! action, in order, so "first match wins" carries over unchanged.

//!
//! `matchers` turns match blocks into Envoy route matches, `actions` a
//! rule's action into an Envoy route action, `tables` builds the tables.

mod actions;
pub mod cors;
pub mod l4;
mod matchers;
mod tables;

pub use actions::{fraction, pb_duration};
pub use tables::{gateway, referenced_clusters, sidecar_inbound, sidecar_outbound, tcp_port, tcp_route};
