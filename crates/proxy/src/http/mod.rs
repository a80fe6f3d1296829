//! The HTTP request path: `handle` has `authz` judge the request, then
//! finds the route and answers, redirects, answers CORS preflights, or
//! injects a fault; `forward` sends to a cluster (retrying by
//! `retry`, copying to mirrors by `mirror`, switching protocols by
//! `upgrade`); every request ends in an `Outcome` for telemetry.

mod attempt;
pub mod authz;
pub mod body;
mod cors;
pub mod error;
mod fault;
pub mod flags;
pub mod forward;
pub mod handle;
pub mod headers;
pub mod jwt;
mod mirror;
pub(crate) mod observe;
pub mod outcome;
mod record;
pub mod respond;
pub mod retry;
mod upgrade;
